// Coalescing seen by a real client, with coalesce.delay = 300 ms and max_delay = 900 ms: a burst
// of publishes with the same (targets, event, coalesce_key) arrives as one event carrying the
// data and meta.id of the last of them; other keys, event names and targets are merged
// separately; publishes without a key are neither held nor merged; a steady stream still comes
// through every max_delay.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { UUID_RE, WAIT_MS, eventually, flush, publish, startHerald, uid } from "./harness.mjs";

const DELAY_MS = 300;
const MAX_DELAY_MS = 900;
/** Timer slack allowed below a "not before" bound (the client's clock starts after the server's). */
const SLACK_MS = 50;

/** Records every arrival of `event` on `socket` with its arrival time: `[{args, at}]`. */
function arrivals(socket, event) {
  const list = [];
  socket.on(event, (...args) => list.push({ args, at: Date.now() }));
  return list;
}

/** Bounded wait until `list` holds at least `n` arrivals. */
const atLeast = (list, n, what, ms = WAIT_MS) => eventually(() => list.length >= n, ms, `${n} ${what}`);

describe("coalescing", () => {
  let herald;
  let backend;
  before(async () => {
    herald = await startHerald("coalesce", { coalesce: { delay: `${DELAY_MS}ms`, maxDelay: `${MAX_DELAY_MS}ms` } });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  const privateSocket = async () => (backend = await herald.connectPrivate());

  /** Publishes through /private or HTTP; resolves with the id. */
  async function publishVia(door, body) {
    if (door === "private") return (await publish(backend, body)).id;
    const res = await herald.publishHttp(body);
    assert.equal(res.status, 202, `HTTP publish: ${res.status} ${res.text}`);
    return res.json.id;
  }

  for (const door of ["private", "http"]) {
    test(`a burst with one key is one event with the last data and id; an unkeyed publish is not held (${door})`, async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws], register: [ws] });
      const event = uid("tree_changes");
      const got = arrivals(socket, event);
      const key = uid("node");

      const ids = [];
      for (let n = 0; n < 5; n++) {
        ids.push(await publishVia(door, { event, workspace: ws, coalesce_key: key, data: { node: key, n } }));
      }
      const lastPublish = Date.now();
      assert.equal(new Set(ids).size, 5, "each merged publish is acknowledged with its own id");
      for (const id of ids) assert.match(id, UUID_RE);
      const unkeyedId = await publishVia(door, { event, workspace: ws, data: "unkeyed" });

      await atLeast(got, 2, `"${event}" arrivals (the unkeyed one and the merged burst)`);
      assert.deepEqual(got[0].args[0], "unkeyed", "first arrival: the unkeyed publish overtakes the held burst");
      assert.equal(got[0].args[1].id, unkeyedId);
      const [data, meta] = got[1].args;
      assert.deepEqual(data, { node: key, n: 4 }, "the merged event carries the last data");
      assert.equal(meta.id, ids[4], "the merged event carries the last publish's id");
      assert.equal(meta.workspace, ws);
      assert.ok(
        got[1].at - lastPublish >= DELAY_MS - SLACK_MS,
        `the merged event came ${got[1].at - lastPublish} ms after the last publish, before coalesce.delay (${DELAY_MS} ms)`,
      );

      await flush(backend, [socket]);
      assert.equal(got.length, 2, `arrivals: ${JSON.stringify(got.map((a) => a.args[0]))}`);
    });
  }

  test("different keys, event names and targets are merged separately", async () => {
    await privateSocket();
    const [ws1, ws2] = [uid("ws1"), uid("ws2")];
    const socket = await herald.user({ workspaces: [ws1, ws2], register: [ws1, ws2] });
    const [event, other] = [uid("tree_changes"), uid("meta_changes")];
    const got = arrivals(socket, event);
    const gotOther = arrivals(socket, other);
    const [k1, k2] = [uid("node1"), uid("node2")];

    const streams = {
      [`${event} ${ws1} ${k1}`]: { event, workspace: ws1, coalesce_key: k1 },
      [`${event} ${ws1} ${k2}`]: { event, workspace: ws1, coalesce_key: k2 },
      [`${other} ${ws1} ${k1}`]: { event: other, workspace: ws1, coalesce_key: k1 },
      [`${event} ${ws2} ${k1}`]: { event, workspace: ws2, coalesce_key: k1 },
    };
    const lastId = {};
    for (let n = 0; n < 3; n++) {
      for (const [name, body] of Object.entries(streams)) {
        lastId[name] = await publish(backend, { ...body, data: [name, n] }).then((r) => r.id);
      }
    }

    await atLeast(got, 3, `"${event}" arrivals (one per key and workspace)`);
    await atLeast(gotOther, 1, `"${other}" arrival`);
    await flush(backend, [socket]);
    const delivered = [...got, ...gotOther].map(({ args: [data, meta] }) => {
      const [name, n] = data;
      assert.equal(n, 2, `${name}: delivered with data of publish ${n}, not the last`);
      assert.equal(meta.id, lastId[name], `${name}: meta.id of the last publish`);
      assert.equal(meta.workspace, streams[name].workspace, `${name}: meta.workspace`);
      return name;
    });
    assert.deepEqual(delivered.sort(), Object.keys(streams).sort(), "one delivery per (event, targets, key)");
  });

  test("publishes without a key (or with coalesce_key null) are delivered one by one", async () => {
    await privateSocket();
    const ws = uid("ws");
    const socket = await herald.user({ workspaces: [ws], register: [ws] });
    const event = uid("tree_changes");
    const got = arrivals(socket, event);
    const ids = [];
    for (const [n, extra] of [[0, {}], [1, { coalesce_key: null }], [2, {}]]) {
      ids.push(await publishVia(n === 1 ? "http" : "private", { event, workspace: ws, data: n, ...extra }));
    }
    await atLeast(got, 3, `unkeyed "${event}" arrivals`);
    await flush(backend, [socket]);
    assert.deepEqual(got.map(({ args }) => args[0]), [0, 1, 2], "each unkeyed publish arrives, in order");
    assert.deepEqual(got.map(({ args }) => args[1].id), ids);
  });

  test("a steady stream is released every max_delay, and its last value is never lost", async (t) => {
    await privateSocket();
    const ws = uid("ws");
    const socket = await herald.user({ workspaces: [ws], register: [ws] });
    const event = uid("tree_changes");
    const got = arrivals(socket, event);
    const key = uid("node");

    // Publish back to back (each awaits its ack, far less than coalesce.delay apart) until the
    // first delivery: only max_delay can release it.
    const idOf = [];
    const start = Date.now();
    const deadline = start + MAX_DELAY_MS + WAIT_MS;
    let gap = 0;
    let last = start;
    while (got.length === 0) {
      assert.ok(Date.now() < deadline, `no delivery within ${MAX_DELAY_MS + WAIT_MS} ms of a steady stream (${idOf.length} publishes)`);
      idOf.push((await publish(backend, { event, workspace: ws, coalesce_key: key, data: idOf.length })).id);
      gap = Math.max(gap, Date.now() - last);
      last = Date.now();
    }
    const published = idOf.length;
    assert.ok(gap < DELAY_MS - SLACK_MS, `the stream paused ${gap} ms: coalesce.delay could have released it`);
    const first = got[0];
    assert.ok(
      first.at - start >= MAX_DELAY_MS - SLACK_MS,
      `the first delivery of the stream came ${first.at - start} ms after its first publish, before max_delay`,
    );
    const [n, meta] = first.args;
    assert.ok(Number.isInteger(n) && n >= 0 && n < published, `first delivery data ${n}`);
    assert.equal(meta.id, idOf[n], "the first delivery carries the id of the publish whose data it has");

    // The stream has stopped: whatever is still held comes out after coalesce.delay.
    await eventually(
      () => got.at(-1).args[0] === published - 1,
      DELAY_MS + WAIT_MS,
      `the stream's last value ${published - 1}`,
    );
    await flush(backend, [socket]);
    const values = got.map(({ args }) => args[0]);
    t.diagnostic(`${published} publishes in ${last - start} ms (longest gap ${gap} ms); delivered: ${values}`);
    assert.ok(values.every((v, i) => i === 0 || v > values[i - 1]), `values arrive in publish order: ${values}`);
    assert.equal(got.at(-1).args[1].id, idOf[published - 1], "the last delivery carries the last id");
    assert.ok(values.length <= 3, `${values.length} deliveries for ${published} publishes: ${values}`);
  });
});
