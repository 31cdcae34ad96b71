// The reconnect storm in smoke mode (storm.mjs --smoke): a few hundred real socket.io-client
// sockets connect at once against a handshake budget of 4. The budget must bite (herald answers
// 503 overloaded), and still every client gets in, none refused for good, within the bound.

import { test } from "node:test";
import assert from "node:assert/strict";

import { SMOKE, storm } from "./storm.mjs";

test("a storm against a small handshake budget: everyone in, some 503s, bounded memory", async (t) => {
  const figures = await storm({ ...SMOKE, log: (line) => t.diagnostic(line) });
  t.diagnostic(JSON.stringify(figures));
  assert.equal(figures.fatal, 0, "clients refused for good");
  assert.equal(figures.connected, SMOKE.clients, `only ${figures.connected} of ${SMOKE.clients} got in`);
  assert.ok(figures.serverOverloaded503 > 0, "the handshake budget never refused anything: no storm");
  assert.ok(figures.clientRefusedAttempts > 0, "no client saw a refusal it retried");
  assert.ok(figures.allInAfterS < SMOKE.deadlineS, `everyone in only after ${figures.allInAfterS} s`);
  assert.equal(figures.handshakesInFlightAtEnd, 0, "handshake slots still held once everyone is in");
  assert.ok(figures.rssPeakMiB < 256, `herald's RSS peaked at ${figures.rssPeakMiB} MiB`);
});
