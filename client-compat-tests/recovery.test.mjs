// Socket.IO connection state recovery with the real socket.io-client 4.8.4, against herald with
// `[recovery] enabled = true`: a socket whose transport breaks mid-stream reconnects with
// `socket.recovered === true`, back in its workspace, and every event arrives exactly once, in
// order, over WebSocket, long-polling and the upgrade between them. Sessions that ended on
// purpose, expired, or belong to someone else are not recovered.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { ack, connected, eventually, flush, mintToken, once, publish, startHerald, uid } from "./harness.mjs";

/** Options of a client that reconnects at once after losing its transport. */
const RECONNECTING = { reconnection: true, reconnectionDelay: 20, reconnectionDelayMax: 50 };

/** Records `tick` events: their data, and whether the last argument was a string offset. */
function recordTicks(socket) {
  const rec = { values: [], offsets: [] };
  socket.on("tick", (...args) => {
    rec.values.push(args[0]);
    rec.offsets.push(args[args.length - 1]);
  });
  return rec;
}

/** Publishes ticks 1..count to `workspace`, one after the other, each acknowledged. */
async function publishTicks(backend, workspace, count) {
  for (let n = 1; n <= count; n++) {
    await publish(backend, { event: "tick", workspace, data: n });
  }
}

const range = (count) => Array.from({ length: count }, (_, i) => i + 1);

describe("connection state recovery", () => {
  let herald;
  before(async () => {
    herald = await startHerald("recovery", { recovery: { maxDisconnection: "2m" } });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald.stop());

  for (const transports of [["websocket"], ["polling"], ["polling", "websocket"]]) {
    test(`a broken transport mid-stream is recovered: ${transports.join(" then ")}`, async () => {
      const backend = await herald.connectPrivate();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws], register: [ws], transports, ...RECONNECTING });
      assert.equal(socket.recovered, false, "a first connection is not a recovery");
      if (transports.length === 2) {
        await eventually(() => socket.io.engine.transport.name === "websocket", 5000, "the upgrade");
      }
      const ticks = recordTicks(socket);
      const count = 120;
      const publishing = publishTicks(backend, ws, count);

      await eventually(() => ticks.values.length >= 20, 5000, "20 ticks before the break");
      const reconnected = once(socket, "connect", 5000, "the reconnection");
      socket.io.engine.close(); // the transport breaks; not a disconnect of the socket
      await reconnected;
      assert.equal(socket.recovered, true, "socket.recovered after the reconnection");

      await publishing;
      await flush(backend, [socket]);
      assert.deepEqual(ticks.values, range(count), "every tick once, in order");
      assert.ok(
        ticks.offsets.every((offset) => typeof offset === "string" && /^\d+$/.test(offset)),
        `the last argument is the recovery offset: ${JSON.stringify(ticks.offsets.slice(0, 3))}`,
      );
    });
  }

  test("the workspace is still registered after a recovery, without a new register", async () => {
    const backend = await herald.connectPrivate();
    const ws = uid("ws");
    const socket = await herald.user({ workspaces: [ws], register: [ws], transports: ["websocket"], ...RECONNECTING });
    const ticks = recordTicks(socket);
    await publish(backend, { event: "tick", workspace: ws, data: 1 });
    await eventually(() => ticks.values.length === 1, 5000, "the first tick");

    const reconnected = once(socket, "connect", 5000, "the reconnection");
    socket.io.engine.close();
    await reconnected;
    assert.equal(socket.recovered, true);
    await publish(backend, { event: "tick", workspace: ws, data: 2 });
    await flush(backend, [socket]);
    assert.deepEqual(ticks.values, [1, 2]);
  });

  test("a socket that disconnected on purpose starts a new session", async () => {
    const backend = await herald.connectPrivate();
    const ws = uid("ws");
    const socket = await herald.user({ workspaces: [ws], register: [ws], transports: ["websocket"], ...RECONNECTING });
    const ticks = recordTicks(socket);
    await publish(backend, { event: "tick", workspace: ws, data: 1 });
    await eventually(() => ticks.values.length === 1, 5000, "the first tick");

    socket.disconnect();
    await publish(backend, { event: "tick", workspace: ws, data: 2 });
    socket.connect();
    await connected(socket, "the new connection");
    assert.equal(socket.recovered, false, "a clean disconnect is not recoverable");
    await flush(backend, [socket]);
    assert.deepEqual(ticks.values, [1], "not registered any more: nothing of the workspace");
  });

  test("a session cannot be claimed by another user", async () => {
    const backend = await herald.connectPrivate();
    const ws = uid("ws");
    const alice = await herald.user({ workspaces: [ws], register: [ws], transports: ["websocket"] });
    const aliceTicks = recordTicks(alice);
    await publish(backend, { event: "tick", workspace: ws, data: 1 });
    await eventually(() => aliceTicks.values.length === 1, 5000, "alice's tick");
    const { _pid: pid, _lastOffset: offset } = alice;
    assert.ok(pid && offset, "the client holds a pid and an offset");
    alice.io.engine.close(); // alice's session is saved

    const mallory = uid("mallory");
    const thief = herald.publicV4({ auth: { token: mintToken({ sub: mallory }), pid, offset } });
    await connected(thief, "mallory");
    thief.sub = mallory;
    const stolen = recordTicks(thief);
    await publish(backend, { event: "tick", workspace: ws, data: 2 });
    await flush(backend, [thief]);
    assert.equal(thief.recovered, false);
    assert.deepEqual(stolen.values, [], "mallory got alice's workspace");
  });

  test("garbage pid and offset are a plain new session", async () => {
    const sub = uid("user");
    const token = mintToken({ sub });
    for (const auth of [
      { token, pid: "x".repeat(10_000), offset: "1" },
      { token, pid: 7, offset: "1" },
      { token, pid: "unknown", offset: "not a number" },
      { token, pid: "unknown", offset: "1" },
    ]) {
      const socket = herald.publicV4({ auth });
      await connected(socket, JSON.stringify(auth).slice(0, 80));
      assert.equal(socket.recovered, false);
      assert.ok(socket._pid && socket._pid !== auth.pid, "a new pid is given");
      socket.disconnect();
    }
  });
});

describe("connection state recovery: expired sessions", () => {
  let herald;
  before(async () => {
    herald = await startHerald("recovery-expired", { recovery: { maxDisconnection: "0s" } });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald.stop());

  test("past max_disconnection the session is new and must register again", async () => {
    const backend = await herald.connectPrivate();
    const ws = uid("ws");
    const socket = await herald.user({ workspaces: [ws], register: [ws], transports: ["websocket"], ...RECONNECTING });
    const ticks = recordTicks(socket);
    await publish(backend, { event: "tick", workspace: ws, data: 1 });
    await eventually(() => ticks.values.length === 1, 5000, "the first tick");

    const reconnected = once(socket, "connect", 5000, "the reconnection");
    socket.io.engine.close();
    await reconnected;
    assert.equal(socket.recovered, false);
    await publish(backend, { event: "tick", workspace: ws, data: 2 });
    await flush(backend, [socket]);
    assert.deepEqual(ticks.values, [1]);
    assert.equal((await ack(socket, "register", [{ workspace: ws }])).ok, true);
  });
});

describe("without recovery (the default)", () => {
  let herald;
  before(async () => {
    herald = await startHerald("no-recovery");
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald.stop());

  test("no pid, no offset argument, no recovery", async () => {
    const backend = await herald.connectPrivate();
    const ws = uid("ws");
    const socket = await herald.user({ workspaces: [ws], register: [ws], transports: ["websocket"], ...RECONNECTING });
    const events = [];
    socket.on("tick", (...args) => events.push(args));
    await publish(backend, { event: "tick", workspace: ws, data: 1 });
    await flush(backend, [socket]);
    assert.equal(socket._pid, undefined);
    assert.equal(events[0].length, 2, "data and meta only");
    const reconnected = once(socket, "connect", 5000, "the reconnection");
    socket.io.engine.close();
    await reconnected;
    assert.ok(!socket.recovered, `recovered: ${socket.recovered}`);
  });
});
