// What only a Redis Cluster has: three herald processes (redis_mode = "cluster", the seeds in
// redis_url, a unique key prefix per run) on a 3-master Redis Cluster of the test's own. Every
// key herald writes lives in the one hash slot of its {prefix} tag, and an outage of that slot's
// master is survived: clean errors while it lasts, no crash, delivery across nodes and the
// redis-emitter back once the master has rejoined. (Delivery, `since`, the emitter and /status
// on a Redis Cluster are cluster.test.mjs's, which runs on both kinds of Redis.)

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { eventually, flush, metric, publish, record, startHerald, uid, until } from "./harness.mjs";
import { assertCleanOutage, emitUntilDelivered, redisCli, startRedisCluster } from "./redis.mjs";

describe("a Redis Cluster: herald's one hash slot and the loss of its master", () => {
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
    await assertCleanOutage(nodes, backend, browser, ws);
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
    await emitUntilDelivered(cluster.url, ["--cluster"], browser, ws, "a redis-emitter publish delivered after the master came back");
    for (const node of nodes) {
      assert.equal(node.exited, null, `${node.label} exited`);
      await until(async () => (await metric(node, "herald_redis_up")) === 1, 5000, `herald_redis_up 1 on ${node.label}`);
      assert.equal((await node.http("GET", "/ready")).status, 200, `${node.label} ready after the outage`);
    }
  });
});
