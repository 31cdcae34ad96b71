// Cluster mode on a Redis Cluster: three herald processes (redis_mode = "cluster", the seeds in
// redis_url, a unique key prefix per run) joined by a 3-master Redis Cluster of the test's own.
// A publish accepted by any node, over HTTP or /private, reaches every registered socket on every
// node exactly once; a client resumes on another node with `since`; the npm redis-emitter, itself
// connected to the cluster, reaches every node; every key herald writes lives in the one hash
// slot of its {prefix} tag; and an outage of that slot's master is survived: clean errors while
// it lasts, no crash, delivery across nodes back once the master has rejoined.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { setTimeout as delay } from "node:timers/promises";

import { PRIVATE_KEY, ack, eventually, flush, metric, publish, record, startHerald, uid, until } from "./harness.mjs";
import { emit, redisCli, startRedisCluster } from "./redis.mjs";

describe("cluster of three nodes on a Redis Cluster", () => {
  let cluster;
  let prefix;
  const nodes = [];
  before(async () => {
    cluster = await startRedisCluster({ masters: 3 });
    prefix = uid("herald");
    const options = { cluster: { redisUrl: cluster.url, prefix, mode: "cluster" } };
    for (const n of [1, 2, 3]) nodes.push(await startHerald(`redis-cluster-${n}`, options));
  });
  afterEach((t) => nodes.forEach((node) => node.afterEach(t)));
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await cluster?.stop();
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
    assert.deepEqual(
      resumed.events.map(([, m]) => m.offset),
      [meta.offset + 1, meta.offset + 2, meta.offset + 3, meta.offset + 4],
      "the replay and the live event go on from the offset given",
    );
  });

  test("the npm @socket.io/redis-emitter on the Redis Cluster reaches registered sockets on every node, once", async () => {
    const ws = uid("ws");
    const sockets = [];
    for (const node of nodes) sockets.push(await node.user({ workspaces: [ws], register: [ws] }));
    const got = sockets.map((socket) => record(socket, "tree_changes"));
    const probe = record(sockets[0], "probe");
    // One node takes emitter publishes in once it holds the lease (within seconds): probe until
    // a publish reaches a socket, bounded.
    await until(
      async () => {
        await emit(cluster.url, ["--cluster", "--to", `user:${sockets[0].sub}`, "--event", "probe"]);
        await delay(200); // poll interval: a probe's delivery, if subscribed
        return probe.events.length > 0;
      },
      15_000,
      "a node taking in redis-emitter publishes",
    );
    await emit(cluster.url, ["--cluster", "--to", `workspace:${ws}`, "--event", "tree_changes", "--json", '{"path":"/a"}']);
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

  test("every key herald writes is under its {prefix} hash tag, on the master of that one slot", async () => {
    const ws = uid("ws");
    const socket = await nodes[1].user({ workspaces: [ws], register: [ws] });
    const backend = await nodes[2].connectPrivate();
    await publish(backend, { event: "changed", workspace: ws, data: "keys" });
    await settle([socket]);

    const owner = await cluster.slotOwner(`{${prefix}}`);
    // The cluster is this test's own and only herald writes keys in it (the emitter only
    // publishes): every key of every master is one of herald's.
    const found = [];
    for (const node of cluster.nodes) {
      const keys = (await redisCli(node.port, "--scan", "--pattern", "*")).split("\n").filter(Boolean);
      found.push(...keys.map((key) => ({ port: node.port, key })));
    }
    const list = () => found.map(({ port, key }) => `${port} ${key}`).join("\n");
    assert.ok(
      found.some(({ key }) => key.includes(ws)),
      `no key of the workspace published to (${ws}) on any master:\n${list()}`,
    );
    for (const { port, key } of found) {
      assert.ok(key.startsWith(`{${prefix}}:`), `key ${JSON.stringify(key)} is not under {${prefix}}:\n${list()}`);
      assert.equal(port, owner, `key ${JSON.stringify(key)} is on ${port}, not on ${owner}, the master of {${prefix}}`);
    }
  });

  test("/status lists the live nodes from their heartbeats on the cluster; /ready is 200", async () => {
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
    assert.equal(new Set(status.cluster.nodes.map((n) => n.addr)).size, 3);
    for (const node of nodes) {
      const ready = await node.http("GET", "/ready");
      assert.equal(ready.status, 200, ready.text);
    }
  });

  // Last in this group: the master of herald's slot is restarted empty.
  test("the master of herald's slot goes away: clean errors, no crash, delivery across nodes back after", async () => {
    const ws = uid("ws");
    const browser = await nodes[1].user({ workspaces: [ws], register: [ws] });
    const got = record(browser, "news");
    const backend = await nodes[0].connectPrivate();
    await publish(backend, { event: "news", workspace: ws, data: "before" });
    await eventually(() => got.events.length === 1, 5000, "the event before the outage");
    for (const node of nodes) assert.equal(await metric(node, "herald_redis_up"), 1, "herald_redis_up before the outage");

    const ownerPort = await cluster.slotOwner(`{${prefix}}`);
    const owner = cluster.nodes.find((node) => node.port === ownerPort);
    await owner.stop();
    const started = Date.now();
    const refused = await nodes[0].publishHttp({ event: "news", workspace: ws, data: "during" });
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.json?.code, "unavailable", refused.text);
    assert.ok(Date.now() - started < 5000, `the refusal took ${Date.now() - started} ms`);
    const reply = await ack(backend, "publish", [{ event: "news", workspace: ws, data: "during" }]);
    assert.deepEqual([reply.ok, reply.error], [false, "unavailable"], JSON.stringify(reply));
    for (const node of nodes) {
      assert.equal(node.exited, null, `${node.label} exited during the outage`);
      assert.equal((await node.http("GET", "/health")).status, 200, `${node.label} died`);
      assert.equal((await node.http("GET", "/ready")).status, 503, `${node.label} ready while its slot is away`);
    }
    assert.ok(browser.connected, "the browser was dropped during the outage");
    for (const node of nodes) {
      await until(async () => (await metric(node, "herald_redis_up")) === 0, 8000, `herald_redis_up 0 on ${node.label}`);
      await until(
        async () => (await metric(node, "herald_redis_outages_total")) >= 1,
        8000,
        `an outage counted by ${node.label}`,
      );
    }

    // Started again on its port and directory, the master rejoins from its nodes.conf, its
    // slots served again (its keys gone: it persists nothing).
    await owner.start();
    await cluster.waitHealthy(30_000);
    // Publish until one goes through (the nodes reconnect by themselves), bounded.
    await until(
      async () => (await nodes[0].publishHttp({ event: "news", workspace: ws, data: "after" })).status === 202,
      15_000,
      "a publish on node 1 accepted after the master came back",
    );
    await eventually(() => got.events.some(([data]) => data === "after"), 5000, "the event after the outage on node 2");
    assert.ok(!got.events.some(([data]) => data === "during"), "a refused publish was delivered");
    // The emitter's subscription moves to a seed that answers (the first may be the one killed).
    const emitted = record(browser, "emitted");
    await until(
      async () => {
        await emit(cluster.url, ["--cluster", "--to", `workspace:${ws}`, "--event", "emitted", "--json", '"after"']);
        await delay(200); // poll interval: an emit's delivery, if one was taken in
        return emitted.events.length > 0;
      },
      10_000,
      "a redis-emitter publish delivered after the master came back",
    );
    for (const node of nodes) {
      assert.equal(node.exited, null, `${node.label} exited`);
      await until(async () => (await metric(node, "herald_redis_up")) === 1, 5000, `herald_redis_up 1 on ${node.label}`);
      assert.equal((await node.http("GET", "/ready")).status, 200, `${node.label} ready after the outage`);
    }
  });
});
