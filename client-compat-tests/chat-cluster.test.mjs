// The chat in cluster mode: herald nodes joined by a Redis of the test's own keep rooms and
// messages in Redis and tell each other over the control stream. A post on one node reaches a
// member on another; history joined on another node comes from Redis; deletions travel too;
// presence is cluster-wide, and the members of a node that died are dropped after
// chat.presence_timeout.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { WAIT_MS, ack, connected, mintToken, once, startHerald, uid } from "./harness.mjs";
import { REDIS_KINDS } from "./redis.mjs";

/** A connected /chat socket of `sub` on `node`. */
async function chatter(node, { sub = uid("user"), workspaces = [] } = {}) {
  const socket = node.publicV4({ token: mintToken({ sub, workspaces }), namespace: "/chat" });
  await connected(socket, `/chat socket of ${sub} on ${node.label}`);
  socket.sub = sub;
  return socket;
}

async function join(socket, room) {
  const reply = await ack(socket, "join", [{ room }]);
  assert.equal(reply?.ok, true, `join by ${socket.sub}: ${JSON.stringify(reply)}`);
  return reply;
}

async function post(socket, room, text) {
  const reply = await ack(socket, "post", [{ room, text }]);
  assert.equal(reply?.ok, true, `post by ${socket.sub}: ${JSON.stringify(reply)}`);
  return reply.message;
}

for (const kind of REDIS_KINDS) {
  describe(`chat across a cluster on ${kind.name}`, () => {
    let redis;
    let cluster;
    const nodes = [];
    const chat = { presenceTimeout: "1500ms", historyPage: 10 };
    before(async () => {
      redis = await kind.start();
      cluster = { redisUrl: redis.url, prefix: uid("herald"), mode: kind.mode };
      for (const n of [1, 2]) nodes.push(await startHerald(`chat-cluster-${n}`, { cluster, chat }));
    });
    afterEach((t) => nodes.forEach((node) => node.afterEach(t)));
    after(async () => {
      await Promise.all(nodes.map((node) => node.stop()));
      await redis?.stop();
    });

    test("a post on one node reaches a member on the other; history and deletions come from Redis", async () => {
      const ws = uid("ws");
      const [a, b] = nodes;
      const alice = await chatter(a, { workspaces: [ws] });
      const { room } = await join(alice, { type: "workspace", target: ws, label: "Across" });
      const early = await post(alice, room.uuid, "before bob came");

      const bob = await chatter(b, { workspaces: [ws] });
      const joined = await join(bob, { type: "workspace", target: ws, label: "Other" });
      assert.equal(joined.room.uuid, room.uuid);
      assert.equal(joined.room.label, "Across", "the room was opened on the other node");
      assert.deepEqual(joined.messages, [early], "history from Redis");
      assert.deepEqual(joined.members, [alice.sub, bob.sub].sort(), "presence across nodes");

      const arrival = once(bob, "message", WAIT_MS, "bob (node 2) gets alice's post (node 1)");
      const sent = await post(alice, room.uuid, "hello from node 1");
      assert.deepEqual(await arrival, [sent]);
      const back = once(alice, "message", WAIT_MS, "alice (node 1) gets bob's post (node 2)");
      const reply = await post(bob, room.uuid, "hello from node 2");
      assert.deepEqual(await back, [reply]);

      const deleted = once(bob, "message_deleted", WAIT_MS, "bob hears of the deletion on node 1");
      assert.deepEqual(await ack(alice, "delete_message", [{ room: room.uuid, uuid: sent.uuid }]), { ok: true });
      assert.deepEqual(await deleted, [{ room: room.uuid, uuid: sent.uuid }]);
      const refused = await ack(bob, "delete_message", [{ room: room.uuid, uuid: early.uuid }]);
      assert.equal(refused?.error, "forbidden", JSON.stringify(refused));

      const page = await ack(bob, "history", [{ room: room.uuid, limit: 2 }]);
      assert.deepEqual([page.messages, page.more], [[early, reply], false]);
      const older = await ack(bob, "history", [{ room: room.uuid, before: reply.uuid, limit: 1 }]);
      assert.deepEqual([older.messages, older.more], [[early], false]);
    });

    test("presence is cluster-wide: joins and leaves on one node are seen on the other", async () => {
      const ws = uid("ws");
      const [a, b] = nodes;
      const alice = await chatter(a, { workspaces: [ws] });
      const { room } = await join(alice, { type: "workspace", target: ws });
      const bob = await chatter(b, { workspaces: [ws] });
      const seen = once(alice, "room_members", WAIT_MS, "alice sees bob join on the other node");
      await join(bob, { type: "workspace", target: ws });
      assert.deepEqual(await seen, [{ room: room.uuid, members: [alice.sub, bob.sub].sort() }]);
      const gone = once(alice, "room_members", WAIT_MS, "alice sees bob leave on the other node");
      assert.deepEqual(await ack(bob, "leave", [{ room: room.uuid }]), { ok: true });
      assert.deepEqual(await gone, [{ room: room.uuid, members: [alice.sub] }]);
    });

    test("the members of a node that died are dropped after the presence timeout", async () => {
      const ws = uid("ws");
      const doomed = await startHerald("chat-cluster-doomed", { cluster, chat });
      nodes.push(doomed);
      const alice = await chatter(nodes[0], { workspaces: [ws] });
      const { room } = await join(alice, { type: "workspace", target: ws });
      const carol = await chatter(doomed, { workspaces: [ws] });
      const seen = once(alice, "room_members", WAIT_MS, "alice sees carol join");
      await join(carol, { type: "workspace", target: ws });
      assert.deepEqual((await seen)[0].members, [alice.sub, carol.sub].sort());

      const dropped = once(alice, "room_members", 15_000, "carol dropped once her node's entries expired");
      const killed = Date.now();
      doomed.stopping = true; // its exit is the test, not a failure
      await doomed.kill(); // SIGKILL: no disconnect is ever processed for carol
      const [update] = await dropped;
      const after = Date.now() - killed;
      assert.deepEqual(update, { room: room.uuid, members: [alice.sub] });
      assert.ok(after >= 800, `dropped after ${after} ms: too early for entries refreshed every 500 ms that live 1500 ms`);
    });
  });
}
