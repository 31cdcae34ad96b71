// Errors herald answers to Engine.IO requests, read with a raw client as an independent one
// reads them: the whole body, `Connection: close`, then the connection closed by herald, for
// polling requests and for requests carrying WebSocket upgrade headers, Engine.IO v4 and v3,
// with connection state recovery off and on, over plain HTTP, over native TLS, and through the
// shipped nginx config (where the client must get the whole body at once).

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { startHerald } from "./harness.mjs";
import { selfSignedCert } from "./certs.mjs";
import { startNginx } from "./nginx.mjs";
import { UPGRADE_HEADERS, assertWhole, assertWholeAndClosed, exchangeUntilClose } from "./raw-http.mjs";

const ORIGIN = "https://app.example";

/** The error requests, each with and without upgrade headers. */
function cases(enginePath) {
  const list = [
    ["unknown sid (v4)", `${enginePath}/?EIO=4&transport=polling&sid=nope`, {}, 400],
    ["unknown sid (v3)", `${enginePath}/?EIO=3&transport=polling&sid=nope`, {}, 400],
    ["unsupported EIO", `${enginePath}/?EIO=9&transport=polling`, {}, 400],
    ["unknown transport", `${enginePath}/?EIO=4&transport=carrier-pigeon`, {}, 400],
    ["foreign origin", `${enginePath}/?EIO=4&transport=polling`, { origin: "https://evil.example" }, 403],
  ];
  return list.flatMap(([name, path, headers, status]) => [
    [`${name}, polling`, path.replace("transport=websocket", "transport=polling"), headers, status],
    [`${name}, with upgrade headers`, path.replace("transport=polling", "transport=websocket"), { ...headers, ...UPGRADE_HEADERS }, status],
  ]);
}

/** Opens the node's only session (max_connections = 1): a raw polling handshake; returns its close. */
async function fillTheNode(herald, ca) {
  const res = await fetch(`${herald.url}${herald.enginePath}/?EIO=4&transport=polling`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200, "the filling handshake");
  const { sid } = JSON.parse((await res.text()).slice(1));
  return async () => {
    const closed = await fetch(`${herald.url}${herald.enginePath}/?EIO=4&transport=polling&sid=${sid}`, {
      method: "POST",
      body: "1",
      signal: AbortSignal.timeout(5000),
    });
    await closed.text();
  };
}

for (const recovery of [false, true]) {
  describe(`error answers over plain HTTP, recovery ${recovery ? "on" : "off"}`, () => {
    let herald;
    before(async () => {
      herald = await startHerald(`errors-${recovery ? "recovery" : "plain"}`, {
        allowedOrigins: [ORIGIN],
        recovery: { enabled: recovery },
        limits: { max_connections: 1 },
      });
    });
    afterEach((t) => herald.afterEach(t));
    after(() => herald?.stop());

    for (const [name, path, headers, status] of cases("/socket.io")) {
      test(`${name}: ${status}, whole, Connection: close, closed`, async () => {
        const answer = await exchangeUntilClose(herald.url, path, { headers: { origin: ORIGIN, ...headers } });
        assert.equal(answer.status, status, answer.body.toString());
        assertWholeAndClosed(assert, answer, name);
      });
    }

    for (const upgrade of [false, true]) {
      test(`server_full${upgrade ? " with upgrade headers" : ""}: 503, whole, Connection: close, closed`, async () => {
        const release = await fillTheNode(herald);
        try {
          const transport = upgrade ? "websocket" : "polling";
          const answer = await exchangeUntilClose(herald.url, `/socket.io/?EIO=4&transport=${transport}`, {
            headers: { origin: ORIGIN, ...(upgrade ? UPGRADE_HEADERS : {}) },
          });
          assert.equal(answer.status, 503, answer.body.toString());
          assert.equal(JSON.parse(answer.body.toString()).code, "server_full");
          assertWholeAndClosed(assert, answer, "server_full");
        } finally {
          await release();
        }
      });
    }
  });
}

describe("error answers over native TLS (recovery on)", () => {
  let cert;
  let herald;
  before(async () => {
    cert = selfSignedCert();
    herald = await startHerald("errors-tls", {
      tls: cert,
      allowedOrigins: [ORIGIN],
      recovery: { enabled: true },
    });
  });
  afterEach((t) => herald?.afterEach(t));
  after(async () => {
    await herald?.stop();
    cert?.remove();
  });

  for (const [name, path, headers, status] of cases("/socket.io")) {
    test(`${name}: ${status}, whole, Connection: close, closed`, async () => {
      const answer = await exchangeUntilClose(herald.url, path, { headers: { origin: ORIGIN, ...headers }, ca: cert.ca });
      assert.equal(answer.status, status, answer.body.toString());
      assertWholeAndClosed(assert, answer, name);
    });
  }
});

describe("error answers through the shipped nginx config (recovery on)", () => {
  let herald;
  let nginx;
  before(async () => {
    herald = await startHerald("errors-nginx", {
      trustedProxies: ["127.0.0.1"],
      allowedOrigins: [ORIGIN],
      recovery: { enabled: true },
    });
    nginx = await startNginx("errors-nginx", { upstreams: [`127.0.0.1:${herald.port}`] });
  });
  afterEach((t) => {
    herald?.afterEach(t);
    if (t.passed === false && nginx) t.diagnostic(`nginx log:\n${nginx.log()}`);
  });
  after(async () => {
    await nginx?.stop();
    await herald?.stop();
  });

  for (const [name, path, headers, status] of cases("/socket.io")) {
    test(`${name}: ${status}, the whole body at once`, async () => {
      const answer = await exchangeUntilClose(nginx.url, path, { headers: { origin: ORIGIN, ...headers }, untilWholeBody: true });
      assert.equal(answer.status, status, answer.body.toString());
      assertWhole(assert, answer, name);
    });
  }
});
