// Cluster mode and resuming: Socket.IO connection state recovery across nodes (the session is
// saved in Redis, the recovery offset is the cluster's event number), a clean fallback to a new
// session when Redis is away during the claim, and `since` positions that survive a restart of
// every node (epochs and offsets live in Redis). Real herald processes, a redis-server of the
// test's own, the real socket.io-client 4.8.4.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { ack, eventually, flush, once, publish, record, startHerald, uid } from "./harness.mjs";
import { REDIS_KINDS, startRedis } from "./redis.mjs";

/** A client that reconnects at once after losing its transport. */
const RECONNECTING = { reconnection: true, reconnectionDelay: 20, reconnectionDelayMax: 50 };

/** Records `tick` events: their data and their recovery offset (the last argument). */
function recordTicks(socket) {
  const rec = { values: [], offsets: [] };
  socket.on("tick", (...args) => {
    rec.values.push(args[0]);
    rec.offsets.push(args[args.length - 1]);
  });
  return rec;
}

const range = (count) => Array.from({ length: count }, (_, i) => i + 1);

/** Points the client's next reconnection at `node`, then breaks its transport. */
function moveTo(socket, node) {
  socket.io.uri = node.url;
  socket.io.engine.close(); // the transport breaks; the socket is not disconnected on purpose
}

/** The port the client's engine is connected to. */
const enginePort = (socket) => Number(socket.io.engine.port);

for (const kind of REDIS_KINDS) {
  describe(`cluster: connection state recovery across nodes, on ${kind.name}`, () => {
    let redis;
    const nodes = [];
    before(async () => {
      redis = await kind.start();
      const cluster = { redisUrl: redis.url, prefix: uid("herald"), mode: kind.mode };
      const options = { cluster, recovery: { maxDisconnection: "2m" } };
      for (const n of [1, 2]) nodes.push(await startHerald(`recovery-cluster-${n}`, options));
    });
    afterEach((t) => nodes.forEach((node) => node.afterEach(t)));
    after(async () => {
      await Promise.all(nodes.map((node) => node.stop()));
      await redis?.stop();
    });

    for (const transports of [["websocket"], ["polling"]]) {
      test(`a client whose ${transports[0]} transport breaks recovers on the other node, every event once`, async () => {
        const [a, b] = nodes;
        const ws = uid("ws");
        const backend = await b.connectPrivate();
        const socket = await a.user({ workspaces: [ws], register: [ws], transports, ...RECONNECTING });
        assert.equal(socket.recovered, false, "a first connection is not a recovery");
        // A socket that stays on node 2 sees the same events: their offsets must be the same.
        const witness = await b.user({ workspaces: [ws], register: [ws] });
        const ticks = recordTicks(socket);
        const seen = recordTicks(witness);

        const count = 60;
        const publishing = (async () => {
          for (const n of range(count)) await publish(backend, { event: "tick", workspace: ws, data: n });
        })();
        await eventually(() => ticks.values.length >= 10, 10_000, "10 ticks on node 1 before the break");
        const reconnected = once(socket, "connect", 10_000, "the reconnection to node 2");
        moveTo(socket, b);
        await reconnected;
        assert.equal(enginePort(socket), b.port, "the client reconnected to node 2");
        assert.equal(socket.recovered, true, "socket.recovered after reconnecting to another node");

        await publishing;
        await flush(backend, [socket, witness]);
        assert.deepEqual(ticks.values, range(count), "every tick once, in order, across the move");
        assert.deepEqual(seen.values, range(count));
        assert.deepEqual(ticks.offsets, seen.offsets, "an event's recovery offset is the same on both nodes");
        assert.ok(ticks.offsets.every((offset) => /^\d+$/.test(offset)), JSON.stringify(ticks.offsets.slice(0, 3)));
      });
    }

    test("recovered on another node, the socket is still registered without a new register", async () => {
      const [a, b] = nodes;
      const ws = uid("ws");
      const backend = await a.connectPrivate();
      const socket = await b.user({ workspaces: [ws], register: [ws], transports: ["websocket"], ...RECONNECTING });
      const ticks = recordTicks(socket);
      await publish(backend, { event: "tick", workspace: ws, data: 1 });
      await eventually(() => ticks.values.length === 1, 5000, "the first tick");

      const reconnected = once(socket, "connect", 10_000, "the reconnection to node 1");
      moveTo(socket, a);
      await reconnected;
      assert.equal(socket.recovered, true);
      await publish(backend, { event: "tick", workspace: ws, data: 2 });
      await flush(backend, [socket]);
      assert.deepEqual(ticks.values, [1, 2]);
    });

    // Last in this group: Redis is restarted empty. (A Redis Cluster's outage and return are
    // redis-cluster.test.mjs's.)
    if (kind.mode === undefined) test("Redis unreachable when the session is claimed: a new session at once, no hang, no crash", async () => {
      const [a, b] = nodes;
      const ws = uid("ws");
      const backend = await a.connectPrivate();
      const socket = await a.user({ workspaces: [ws], register: [ws], transports: ["websocket"], ...RECONNECTING });
      const ticks = recordTicks(socket);
      await publish(backend, { event: "tick", workspace: ws, data: 1 });
      await eventually(() => ticks.values.length === 1, 5000, "the first tick");

      await redis.stop();
      const started = Date.now();
      const reconnected = once(socket, "connect", 10_000, "the reconnection to node 2 while Redis is away");
      moveTo(socket, b);
      await reconnected;
      assert.equal(enginePort(socket), b.port);
      assert.equal(socket.recovered, false, "nothing to recover from while Redis is away");
      assert.ok(Date.now() - started < 8000, `the reconnection took ${Date.now() - started} ms`);
      assert.ok(socket._pid, "the new session has a pid of its own");
      for (const node of nodes) assert.equal((await node.http("GET", "/health")).status, 200, `${node.label} is up`);

      await redis.start();
      // The new session is a plain one: it registers again once the log is reachable.
      await eventually(() => b.stderrLines.some((line) => line.includes("Redis is back")), 10_000, "node 2 logging that Redis is back");
      const reply = await ack(socket, "register", [{ workspace: ws }]);
      assert.equal(reply.ok, true, JSON.stringify(reply));
    });
  });
}

describe("cluster: every node restarted on the same Redis", () => {
  let redis;
  let nodes = [];
  let options;
  before(async () => {
    redis = await startRedis();
    options = { cluster: { redisUrl: redis.url, prefix: uid("herald") }, recovery: { maxDisconnection: "2m" } };
    for (const n of [1, 2]) nodes.push(await startHerald(`restart-${n}`, options));
  });
  afterEach((t) => nodes.forEach((node) => node.afterEach(t)));
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  /** Stops every node, then starts as many new ones on the same Redis and prefix. */
  async function restartAll(round) {
    await Promise.all(nodes.map((node) => node.stop()));
    const fresh = [];
    for (const n of range(nodes.length)) fresh.push(await startHerald(`restart-${round}-${n}`, options));
    nodes = fresh;
  }

  test("a `since` from before the restart resumes without resync and without a gap", async () => {
    const ws = uid("ws");
    const sub = uid("user");
    const first = await nodes[0].user({ sub, workspaces: [ws], register: [ws] });
    const before = record(first, "tick");
    let backend = await nodes[1].connectPrivate();
    await publish(backend, { event: "tick", workspace: ws, data: 1 });
    await eventually(() => before.events.length === 1, 5000, "tick 1");
    const [, meta] = before.events[0];
    first.disconnect();
    await publish(backend, { event: "tick", workspace: ws, data: 2 });

    await restartAll("since");
    backend = await nodes[0].connectPrivate();
    await publish(backend, { event: "tick", workspace: ws, data: 3 });
    const again = await nodes[1].user({ sub, workspaces: [ws] });
    const resumed = record(again, "tick");
    const resyncs = record(again, "resync");
    const head = await ack(again, "register", [{ workspace: ws, since: { offset: meta.offset, epoch: meta.epoch } }]);
    assert.equal(head.ok, true, JSON.stringify(head));
    assert.equal(head.epoch, meta.epoch, "the epoch survived the restart");
    await publish(backend, { event: "tick", workspace: ws, data: 4 });
    await flush(backend, [again]);
    assert.deepEqual(resyncs.events, [], "no resync");
    assert.deepEqual(
      resumed.events.map(([data]) => data),
      [2, 3, 4],
    );
    assert.deepEqual(
      resumed.events.map(([, m]) => m.offset),
      [meta.offset + 1, meta.offset + 2, meta.offset + 3],
      "offsets go on from where they were",
    );
  });

  test("a client connected while every node restarts recovers its session on a new node", async () => {
    const ws = uid("ws");
    const socket = await nodes[0].user({
      workspaces: [ws],
      register: [ws],
      transports: ["websocket"],
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 200,
    });
    nodes[0].clients.delete(socket); // not closed with its node: it is to reconnect
    const ticks = recordTicks(socket);
    let backend = await nodes[1].connectPrivate();
    await publish(backend, { event: "tick", workspace: ws, data: 1 });
    await eventually(() => ticks.values.length === 1, 5000, "tick 1");

    const dropped = once(socket, "disconnect", 20_000, "the drop at shutdown");
    const stopping = Promise.all(nodes.map((node) => node.stop()));
    const [reason] = await dropped;
    assert.equal(reason, "transport close");
    await stopping;
    const fresh = [];
    for (const n of range(nodes.length)) fresh.push(await startHerald(`restart-recovery-${n}`, options));
    nodes = fresh;
    backend = await nodes[0].connectPrivate();
    await publish(backend, { event: "tick", workspace: ws, data: 2 });

    const reconnected = once(socket, "connect", 10_000, "the reconnection to a new node");
    socket.io.uri = nodes[1].url; // its next attempt
    nodes[1].track(socket);
    await reconnected;
    assert.equal(socket.recovered, true, "the session saved at shutdown was recovered");
    await publish(backend, { event: "tick", workspace: ws, data: 3 });
    await flush(backend, [socket]);
    assert.deepEqual(ticks.values, [1, 2, 3]);
  });
});
