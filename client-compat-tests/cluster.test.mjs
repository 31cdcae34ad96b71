// Cluster mode: three herald processes joined by a Redis of the test's own (a unique key prefix
// per run), once on a redis-server and once on a three-master Redis Cluster (REDIS_KINDS). A publish accepted by any node, over HTTP or /private, reaches every registered
// socket on every node exactly once; a client resumes on another node with `since`; /status
// lists the nodes; and a Redis outage is survived: clean errors while it lasts, delivery across
// nodes and the redis-emitter subscription back within a second of Redis's return, logged.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { setTimeout as delay } from "node:timers/promises";

import { PRIVATE_KEY, ack, eventually, flush, metric, once, publish, record, startHerald, uid, until } from "./harness.mjs";
import { REDIS_KINDS, assertCleanOutage, emit, emitUntilDelivered, startRedis } from "./redis.mjs";

for (const kind of REDIS_KINDS) {
  describe(`cluster of three nodes on ${kind.name}`, () => {
    let redis;
    const nodes = [];
    before(async () => {
      redis = await kind.start();
      const cluster = { redisUrl: redis.url, prefix: uid("herald"), mode: kind.mode };
      for (const n of [1, 2, 3]) nodes.push(await startHerald(`cluster-${n}`, { cluster }));
    });
    afterEach((t) => nodes.forEach((node) => node.afterEach(t)));
    after(async () => {
      await Promise.all(nodes.map((node) => node.stop()));
      await redis?.stop();
    });

    /** Proves every socket has everything published so far (markers through each node's user). */
    async function settle(sockets) {
      const backend = await nodes[0].connectPrivate();
      await flush(backend, sockets);
    }

    test("every registered socket on every node gets each event once; nobody else does", async () => {
      const ws = uid("ws");
      const other = uid("other");
      const registered = [];
      const bystanders = [];
      for (const node of nodes) {
        registered.push(await node.user({ workspaces: [ws], register: [ws] }));
        registered.push(await node.user({ workspaces: [ws], register: [ws], transports: ["polling"] }));
        bystanders.push(await node.user({ workspaces: [ws] })); // may read ws, did not register
        bystanders.push(await node.user({ workspaces: [other], register: [other] }));
      }
      const got = registered.map((socket) => record(socket, "changed"));
      const leaked = bystanders.map((socket) => record(socket, "changed"));

      const viaHttp = await nodes[0].publishHttp({ event: "changed", workspace: ws, data: "http" });
      assert.equal(viaHttp.status, 202, viaHttp.text);
      const backend = await nodes[2].connectPrivate();
      await publish(backend, { event: "changed", workspace: ws, data: "private" });

      await settle([...registered, ...bystanders]);
      for (const [i, rec] of got.entries()) {
        assert.deepEqual(
          rec.events.map(([data]) => data),
          ["http", "private"],
          `registered socket ${i} (node ${Math.floor(i / 2) + 1})`,
        );
        const offsets = rec.events.map(([, meta]) => meta.offset);
        assert.equal(offsets[1], offsets[0] + 1, "offsets are the cluster's, contiguous");
      }
      for (const [i, rec] of leaked.entries()) assert.deepEqual(rec.events, [], `bystander ${i}`);
    });

    test("a client resumes on another node with since: no gap, no duplicate", async () => {
      const ws = uid("ws");
      const backend = await nodes[1].connectPrivate();
      const first = await nodes[0].user({ workspaces: [ws] });
      const reply = await ack(first, "register", [{ workspace: ws }]);
      const events = record(first, "tick");
      await publish(backend, { event: "tick", workspace: ws, data: 1 });
      await eventually(() => events.events.length === 1, 5000, "tick 1 on node 1");
      const [, meta] = events.events[0];
      assert.equal(meta.epoch, reply.epoch);
      first.disconnect();

      for (const n of [2, 3, 4]) await publish(backend, { event: "tick", workspace: ws, data: n });
      const again = await nodes[2].user({ sub: first.sub, workspaces: [ws] });
      const resumed = record(again, "tick");
      const since = { offset: meta.offset, epoch: meta.epoch };
      const head = await ack(again, "register", [{ workspace: ws, since }]);
      assert.equal(head.ok, true, JSON.stringify(head));
      assert.equal(head.epoch, meta.epoch, "the epoch is the cluster's");
      await publish(backend, { event: "tick", workspace: ws, data: 5 });
      await settle([again]);
      assert.deepEqual(
        resumed.events.map(([data]) => data),
        [2, 3, 4, 5],
      );
    });

    test("disconnect_user and access changes reach the user's sockets on every node", async () => {
      const sub = uid("user");
      const [ws1, ws2] = [uid("ws"), uid("ws")];
      const tabs = [];
      for (const node of nodes) tabs.push(await node.user({ sub, workspaces: [ws1, ws2], register: [ws1, ws2] }));
      const revoked = tabs.map((tab) => once(tab, "access_revoked", 5000, "access_revoked"));
      const change = await nodes[2].http("POST", "/api/v1/access", {
        key: PRIVATE_KEY,
        body: { user: sub, workspaces: [ws2] },
      });
      assert.equal(change.status, 200, change.text);
      for (const [i, [payload]] of (await Promise.all(revoked)).entries()) {
        assert.deepEqual(payload, { workspace: ws1 }, `tab on node ${i + 1}`);
      }

      const backend = await nodes[0].connectPrivate();
      const told = tabs.map((tab) => once(tab, "session_invalid", 5000, "session_invalid"));
      const gone = tabs.map((tab) => once(tab, "disconnect", 5000, "disconnect"));
      const reply = await ack(backend, "disconnect_user", [{ user: sub, reason: "logout" }]);
      assert.equal(reply.ok, true, JSON.stringify(reply));
      for (const [i, [payload]] of (await Promise.all(told)).entries()) {
        assert.deepEqual(payload, { reason: "logout" }, `tab on node ${i + 1}`);
      }
      for (const [reason] of await Promise.all(gone)) assert.equal(reason, "io server disconnect");
    });

    test("a backend's npm @socket.io/redis-emitter reaches registered sockets on every node, once", async () => {
      const ws = uid("ws");
      const sockets = [];
      for (const node of nodes) sockets.push(await node.user({ workspaces: [ws], register: [ws] }));
      const got = sockets.map((socket) => record(socket, "tree_changes"));
      const probe = record(sockets[0], "probe");
      // One node takes emitter publishes in once it holds the lease (within seconds): probe until
      // a publish reaches a socket, bounded.
      await until(
        async () => {
          await emit(redis.url, [...kind.emitArgs, "--to", `user:${sockets[0].sub}`, "--event", "probe"]);
          await delay(200); // poll interval: a probe's delivery, if subscribed
          return probe.events.length > 0;
        },
        15_000,
        "a node taking in redis-emitter publishes",
      );
      const json = '{"path":"/a","n":18446744073709551615}';
      await emit(redis.url, [...kind.emitArgs, "--to", `workspace:${ws}`, "--event", "tree_changes", "--json", json]);
      await settle(sockets);
      for (const [i, rec] of got.entries()) {
        assert.equal(rec.events.length, 1, `socket on node ${i + 1}: ${JSON.stringify(rec.events)}`);
        const [data, meta] = rec.events[0];
        assert.equal(data.path, "/a");
        assert.equal(meta.workspace, ws);
        assert.ok(Number.isSafeInteger(meta.offset), "the emit got an offset like any publish");
      }
      const offsets = new Set(got.map((rec) => rec.events[0][1].offset));
      assert.equal(offsets.size, 1, `one event, one offset on every node: ${[...offsets]}`);
    });

    test("/status lists the live nodes and their connections; /ready is 200", async () => {
      await nodes[1].user({});
      // Heartbeats come every 2 s: wait until every node has reported, and node 2's socket.
      const status = await until(
        async () => {
          const res = await nodes[0].http("GET", "/status", { key: PRIVATE_KEY });
          const cluster = res.json?.cluster;
          return cluster?.nodes?.length === 3 && cluster.connections.public >= 1 ? res.json : undefined;
        },
        8000,
        "three nodes in /status",
      );
      assert.equal(status.cluster.redis, "up");
      assert.deepEqual(new Set(status.cluster.nodes.map((n) => n.addr)).size, 3);
      for (const node of nodes) {
        const ready = await node.http("GET", "/ready");
        assert.equal(ready.status, 200, ready.text);
      }
    });
  });
}

const redisUp = (node) => metric(node, "herald_redis_up");

/** The JSON log lines of `node` logged at or after `since` (ms) whose message contains `text`. */
function logged(node, text, since) {
  const found = [];
  for (const line of node.stderrLines) {
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue; // not a log record (a panic would be one too, and fail elsewhere)
    }
    const at = Date.parse(entry.timestamp);
    if (at >= since && String(entry.message).includes(text)) found.push({ at, message: entry.message });
  }
  return found;
}

/** Awaits a log line of `node` containing `text` after `since`; asserts it came within `ms` of it. */
async function loggedWithin(node, text, since, ms) {
  await until(() => logged(node, text, since).length > 0, 10_000, `"${text}" in the log of ${node.label}`);
  const [{ at, message }] = logged(node, text, since);
  assert.ok(at - since <= ms, `${node.label}: "${message}" came ${at - since} ms after Redis was back (over ${ms} ms)`);
  return at - since;
}

describe("cluster: a Redis outage", () => {
  let redis;
  const nodes = [];
  before(async () => {
    redis = await startRedis();
    const cluster = { redisUrl: redis.url, prefix: uid("herald") };
    for (const n of [1, 2]) nodes.push(await startHerald(`outage-${n}`, { cluster }));
  });
  afterEach((t) => nodes.forEach((node) => node.afterEach(t)));
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  test("clean errors while Redis is away, no crash, every subscription back within 1 s after, logged", async (t) => {
    const ws = uid("ws");
    const browser = await nodes[1].user({ workspaces: [ws], register: [ws] });
    const got = record(browser, "news");
    const backend = await nodes[0].connectPrivate();
    await publish(backend, { event: "news", workspace: ws, data: "before" });
    await eventually(() => got.events.length === 1, 5000, "the event before the outage");

    for (const node of nodes) assert.equal(await redisUp(node), 1, "herald_redis_up before the outage");
    const stopping = Date.now();
    await redis.stop();
    await assertCleanOutage(nodes, backend, browser, ws);
    for (const node of nodes) {
      assert.equal(await redisUp(node), 0, "herald_redis_up while Redis is away");
      // The bus reader notices within its blocking read (1 s) and counts the outage.
      await until(async () => (await metric(node, "herald_redis_outages_total")) === 1, 8000, "an outage counted");
    }

    await redis.start();
    const back = Date.now();
    // Every reader of every node is back within a second of Redis, and says so.
    const restored = [];
    for (const node of nodes) {
      restored.push(`${node.label} bus ${await loggedWithin(node, "cluster bus: Redis is back", back, 1000)} ms`);
      restored.push(`${node.label} control ${await loggedWithin(node, "cluster control: Redis is back", back, 1000)} ms`);
    }
    // The emitter's subscription too: its holder lost it with Redis and takes it again (or
    // another node does), within a second.
    await until(
      () => nodes.some((node) => logged(node, "taking in redis-emitter publishes", back).length > 0),
      10_000,
      "a node taking in redis-emitter publishes again",
    );
    for (const node of nodes.filter((n) => logged(n, "redis-emitter: Redis unreachable", stopping).length > 0)) {
      await loggedWithin(node, "redis-emitter: Redis is back", back, 1000);
    }
    const taker = nodes.find((node) => logged(node, "taking in redis-emitter publishes", back).length > 0);
    restored.push(`${taker.label} emitter ${await loggedWithin(taker, "taking in redis-emitter publishes", back, 1000)} ms`);
    t.diagnostic(`restored after Redis came back: ${restored.join(", ")}`);
    await emitUntilDelivered(redis.url, [], browser, ws, "a redis-emitter publish delivered after Redis came back");
    // Publish until one goes through (the nodes reconnect by themselves), bounded.
    await until(
      async () => (await nodes[0].publishHttp({ event: "news", workspace: ws, data: "after" })).status === 202,
      10_000,
      "a publish accepted after Redis came back",
    );
    await eventually(() => got.events.some(([data]) => data === "after"), 5000, "the event after the outage on node 2");
    assert.ok(!got.events.some(([data]) => data === "during"), "a refused publish was delivered");
    for (const node of nodes) {
      assert.equal((await node.http("GET", "/ready")).status, 200);
      assert.equal(await redisUp(node), 1, "herald_redis_up after the outage");
      assert.equal(await metric(node, "herald_redis_outages_total"), 1, "one outage, counted once");
    }
  });
});
