// The chat namespace with the real socket.io-client 4.x: rooms attached to a workspace, a node
// or a set of users; messages persisted (SQLite in a temp data_dir per herald) and replayed on
// join, after a restart too; paging; deletion by the author only; access checks on join;
// presence as users (two tabs count once; a lost connection counts until presence_timeout);
// bad inputs answered with clear errors that affect nothing else.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { randomUUID } from "node:crypto";

import { UUID_RE, WAIT_MS, ack, connected, mintToken, once, record, refused, startHerald, uid, eventually } from "./harness.mjs";

/** A connected /chat socket of `sub` whose token lists `workspaces`. */
async function chatter(herald, { sub = uid("user"), workspaces = [] } = {}) {
  const socket = herald.publicV4({ token: mintToken({ sub, workspaces }), namespace: "/chat" });
  await connected(socket, `/chat socket of ${sub}`);
  socket.sub = sub;
  return socket;
}

/** Joins and asserts the ack is ok; resolves with it. */
async function join(socket, room) {
  const reply = await ack(socket, "join", [{ room }]);
  assert.equal(reply?.ok, true, `join ${JSON.stringify(room)} by ${socket.sub}: ${JSON.stringify(reply)}`);
  return reply;
}

/** Posts and asserts the ack is ok; resolves with the stored message. */
async function post(socket, room, text) {
  const reply = await ack(socket, "post", [{ room, text }]);
  assert.equal(reply?.ok, true, `post by ${socket.sub}: ${JSON.stringify(reply)}`);
  return reply.message;
}

/** Asserts an error ack with `code`; resolves with its message. */
function assertRefused(reply, code, what) {
  assert.equal(reply?.ok, false, `${what}: expected a refusal, got ${JSON.stringify(reply)}`);
  assert.equal(reply.error, code, `${what}: error code in ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.message, "string", `${what}: a message for people`);
  return reply.message;
}

describe("chat", () => {
  let herald;
  let dataDir;
  before(async () => {
    dataDir = mkdtempSync(joinPath(tmpdir(), "herald-chat-"));
    herald = await startHerald("chat", { chat: { dataDir, historyPage: 3, maxText: 1000, presenceTimeout: "1500ms", maxRoomsPerSocket: 4 } });
  });
  afterEach((t) => herald.afterEach(t));
  after(async () => {
    await herald?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("two users chat in a workspace room: the author is the socket's user, the other gets `message`", async () => {
    const ws = uid("ws");
    const alice = await chatter(herald, { workspaces: [ws] });
    const bob = await chatter(herald, { workspaces: [ws] });
    const joined = await join(alice, { type: "workspace", target: ws, label: "Team\u0007" });
    assert.match(joined.room.uuid, UUID_RE);
    assert.deepEqual(
      { ...joined.room, uuid: undefined, created: undefined },
      { uuid: undefined, type: "workspace", target: ws, workspace: ws, label: "Team", created: undefined },
    );
    assert.deepEqual([joined.messages, joined.more, joined.members], [[], false, [alice.sub]]);
    const bobJoined = await join(bob, { type: "workspace", target: ws, label: "Ignored" });
    assert.equal(bobJoined.room.uuid, joined.room.uuid, "both reach the same room");
    assert.equal(bobJoined.room.label, "Team", "the first opener's label stays");
    assert.deepEqual(bobJoined.members, [alice.sub, bob.sub].sort());

    const arrival = once(bob, "message", WAIT_MS, "bob gets alice's message");
    const sent = await post(alice, joined.room.uuid, "hello\u0000 bob\nsecond line");
    assert.match(sent.uuid, UUID_RE);
    assert.deepEqual(
      { ...sent, uuid: undefined, ts: undefined },
      { uuid: undefined, room: joined.room.uuid, author: alice.sub, text: "hello bob\nsecond line", ts: undefined },
    );
    assert.ok(Math.abs(sent.ts - Date.now()) < 60_000, `ts is now-ish: ${sent.ts}`);
    assert.deepEqual(await arrival, [sent]);

    const reply = await ack(bob, "post", [{ room: joined.room.uuid, text: "hi", author: alice.sub }]);
    assertRefused(reply, "bad_request", "a post naming its author");
  });

  test("users rooms: listed users reach one room whatever the order; others are refused", async () => {
    const [a, b] = [uid("a"), uid("b")];
    const alice = await chatter(herald, { sub: a });
    const bob = await chatter(herald, { sub: b });
    const mallory = await chatter(herald);
    const fromAlice = await join(alice, { type: "users", users: [a, b] });
    const fromBob = await join(bob, { type: "users", users: [b, a, b] });
    assert.equal(fromAlice.room.uuid, fromBob.room.uuid);
    assert.deepEqual(fromBob.room.users, [a, b].sort());
    const arrival = once(alice, "message", WAIT_MS, "alice gets bob's message");
    const sent = await post(bob, fromBob.room.uuid, "psst");
    assert.deepEqual(await arrival, [sent]);
    assertRefused(await ack(mallory, "join", [{ room: { type: "users", users: [a, b] } }]), "forbidden", "an unlisted user");
    assertRefused(await ack(mallory, "post", [{ room: fromBob.room.uuid, text: "hi" }]), "not_joined", "posting unjoined");
  });

  test("join refused without access, for all three room types", async () => {
    const [mine, theirs] = [uid("ws"), uid("ws")];
    const user = await chatter(herald, { workspaces: [mine] });
    const cases = [
      { type: "workspace", target: theirs },
      { type: "node", target: uid("node"), workspace: theirs },
      { type: "users", users: [uid("x"), uid("y")] },
    ];
    for (const room of cases) {
      assertRefused(await ack(user, "join", [{ room }]), "forbidden", `join ${room.type}`);
    }
    // The same node through a workspace of one's own is a room of one's own.
    const own = await join(user, { type: "node", target: cases[1].target, workspace: mine });
    assert.equal(own.room.workspace, mine);
    // A token without a workspaces claim reads none.
    const none = herald.publicV4({ token: mintToken({ sub: uid("n") }), namespace: "/chat" });
    await connected(none);
    assertRefused(await ack(none, "join", [{ room: { type: "workspace", target: mine } }]), "forbidden", "no workspaces claim");
  });

  test("the handshake is /public's: a bad token is refused", async () => {
    const socket = herald.publicV4({ token: "not-a-jwt", namespace: "/chat" });
    const err = await refused(socket, "/chat with a bad token");
    assert.equal(err.message, "unauthorized");
  });

  test("paging: join returns the latest history_page, `history` goes back with `before`", async () => {
    const ws = uid("ws");
    const alice = await chatter(herald, { workspaces: [ws] });
    const { room } = await join(alice, { type: "workspace", target: ws });
    const sent = [];
    for (let i = 0; i < 7; i += 1) sent.push(await post(alice, room.uuid, `m${i}`));
    const texts = (messages) => messages.map((m) => m.text);

    const again = await join(alice, { type: "workspace", target: ws });
    assert.deepEqual([texts(again.messages), again.more], [["m4", "m5", "m6"], true]);
    const page2 = await ack(alice, "history", [{ room: room.uuid, before: again.messages[0].uuid }]);
    assert.deepEqual([page2.ok, texts(page2.messages), page2.more], [true, ["m1", "m2", "m3"], true]);
    const page3 = await ack(alice, "history", [{ room: room.uuid, before: page2.messages[0].uuid }]);
    assert.deepEqual([texts(page3.messages), page3.more], [["m0"], false]);
    const all = await ack(alice, "history", [{ room: room.uuid, limit: 10 }]);
    assert.deepEqual([all.messages, all.more], [sent, false]);
    const two = await ack(alice, "history", [{ room: room.uuid, before: sent[5].uuid, limit: 2 }]);
    assert.deepEqual(texts(two.messages), ["m3", "m4"]);

    assertRefused(await ack(alice, "history", [{ room: room.uuid, before: randomUUID() }]), "not_found", "unknown before");
    assertRefused(await ack(alice, "history", [{ room: room.uuid, limit: 0 }]), "bad_request", "limit 0");
    assertRefused(await ack(alice, "history", [{ room: room.uuid, limit: 100_000 }]), "bad_request", "huge limit");
    assertRefused(await ack(alice, "history", [{ room: room.uuid, limit: "3" }]), "bad_request", "string limit");
  });

  test("delete: refused to a non-author, by the author broadcast as `message_deleted`", async () => {
    const ws = uid("ws");
    const alice = await chatter(herald, { workspaces: [ws] });
    const bob = await chatter(herald, { workspaces: [ws] });
    const { room } = await join(alice, { type: "workspace", target: ws });
    await join(bob, { type: "workspace", target: ws });
    const kept = await post(alice, room.uuid, "keep me");
    const doomed = await post(alice, room.uuid, "delete me");

    assertRefused(await ack(bob, "delete_message", [{ room: room.uuid, uuid: doomed.uuid }]), "forbidden", "bob deletes alice's");
    const deleted = once(bob, "message_deleted", WAIT_MS, "bob hears of the deletion");
    assert.deepEqual(await ack(alice, "delete_message", [{ room: room.uuid, uuid: doomed.uuid }]), { ok: true });
    assert.deepEqual(await deleted, [{ room: room.uuid, uuid: doomed.uuid }]);
    assertRefused(await ack(alice, "delete_message", [{ room: room.uuid, uuid: doomed.uuid }]), "not_found", "deleted twice");
    const page = await ack(bob, "history", [{ room: room.uuid }]);
    assert.deepEqual(page.messages, [kept]);
  });

  test("presence: two tabs of one user count once, and the user leaves when both are gone", async () => {
    const ws = uid("ws");
    const sub = uid("alice");
    const bob = await chatter(herald, { workspaces: [ws] });
    const { room } = await join(bob, { type: "workspace", target: ws });
    const seen = record(bob, "room_members");
    const tab1 = await chatter(herald, { sub, workspaces: [ws] });
    const tab2 = await chatter(herald, { sub, workspaces: [ws] });
    const both = [bob.sub, sub].sort();

    await join(tab1, { type: "workspace", target: ws });
    await eventually(() => seen.events.length >= 1, WAIT_MS, "room_members after tab 1 joined");
    const second = await join(tab2, { type: "workspace", target: ws });
    assert.deepEqual(second.members, both, "two tabs, one user");
    await eventually(() => seen.events.length >= 2, WAIT_MS, "room_members after tab 2 joined");
    tab1.disconnect();
    assert.deepEqual(await ack(tab2, "leave", [{ room: room.uuid }]), { ok: true });
    await eventually(
      () => seen.events.some(([m]) => m.members.length === 1),
      WAIT_MS,
      "room_members without alice once both tabs are gone",
    );
    assert.deepEqual(
      seen.events.map(([m]) => m),
      [
        { room: room.uuid, members: both },
        { room: room.uuid, members: both },
        { room: room.uuid, members: [bob.sub] },
      ],
      "one broadcast per join, one when the user (not a tab) left",
    );
  });

  test("presence timeout: a lost connection counts until chat.presence_timeout, then the user is dropped", async () => {
    const ws = uid("ws");
    const bob = await chatter(herald, { workspaces: [ws] });
    const { room } = await join(bob, { type: "workspace", target: ws });
    const alice = await chatter(herald, { workspaces: [ws] });
    const joined = once(bob, "room_members", WAIT_MS, "alice joined");
    await join(alice, { type: "workspace", target: ws });
    await joined;

    const dropped = once(bob, "room_members", 10_000, "alice dropped after the presence timeout");
    const lost = Date.now();
    alice.io.engine.close(); // the transport goes away without a Socket.IO disconnect
    const [update] = await dropped;
    const after = Date.now() - lost;
    assert.deepEqual(update, { room: room.uuid, members: [bob.sub] });
    assert.ok(after >= 1200, `dropped after ${after} ms, before presence_timeout (1500 ms)`);
  });

  test("bad inputs get clear errors and affect nothing else", async () => {
    const ws = uid("ws");
    const alice = await chatter(herald, { workspaces: [ws] });
    const bob = await chatter(herald, { workspaces: [ws] });
    const { room } = await join(alice, { type: "workspace", target: ws });
    await join(bob, { type: "workspace", target: ws });
    const cases = [
      ["post", [{ room: room.uuid, text: "x".repeat(1001) }], "bad_request", /at most 1000 bytes/],
      ["post", [{ room: room.uuid, text: "\u0001\u0002" }], "bad_request", /empty/],
      ["post", [{ room: room.uuid }], "bad_request", /text/],
      ["post", [{ text: "hi" }], "bad_request", /room/],
      ["post", [{ room: room.uuid, text: 42 }], "bad_request", /string/],
      ["post", [{ room: "not-a-uuid", text: "hi" }], "bad_request", /UUID/i],
      ["post", [{ room: randomUUID(), text: "hi" }], "not_joined", /join/],
      ["post", ["just a string"], "bad_request", /expected/],
      ["post", [], "bad_request", /./],
      ["history", [{ room: randomUUID() }], "not_joined", /join/],
      ["history", [{ room: 7 }], "bad_request", /./],
      ["delete_message", [{ room: room.uuid, uuid: "zzz" }], "bad_request", /UUID/i],
      ["delete_message", [{ room: room.uuid, uuid: randomUUID() }], "not_found", /./],
      ["delete_message", [{ room: randomUUID(), uuid: randomUUID() }], "not_joined", /./],
      ["join", [{}], "bad_request", /room/],
      ["join", [{ room: { type: "galaxy", target: "x" } }], "bad_request", /galaxy|variant/],
      ["join", [{ room: { type: "workspace", target: "x".repeat(300) } }], "bad_request", /256 bytes/],
      ["join", [{ room: { type: "users", users: "me" } }], "bad_request", /./],
      ["join", [null], "bad_request", /./],
      ["leave", [{ room: "garbage" }], "bad_request", /UUID/i],
      ["no_such_event", [{}], "bad_request", /unknown event/],
    ];
    for (const [event, args, code, pattern] of cases) {
      const message = assertRefused(await ack(alice, event, args), code, `${event} ${JSON.stringify(args).slice(0, 80)}`);
      assert.match(message, pattern, `${event}: message ${JSON.stringify(message)}`);
      assert.ok(message.length < 400, `${event}: a short message`);
    }
    // Emits without an ack are harmless too.
    alice.emit("post", { room: 1 });
    alice.emit("join", "garbage");

    // Everyone keeps working: both ways.
    const toBob = once(bob, "message", WAIT_MS, "bob still gets messages");
    const sent = await post(alice, room.uuid, "still here");
    assert.deepEqual(await toBob, [sent]);
    const toAlice = once(alice, "message", WAIT_MS, "alice still gets messages");
    const back = await post(bob, room.uuid, "me too");
    assert.deepEqual(await toAlice, [back]);
    assert.ok(alice.connected && bob.connected, "nobody was disconnected");
    const page = await ack(alice, "history", [{ room: room.uuid, limit: 10 }]);
    assert.deepEqual(page.messages.map((m) => m.text), ["still here", "me too"], "refused posts stored nothing");
  });

  test("a socket holds at most chat.max_rooms_per_socket rooms", async () => {
    const workspaces = [1, 2, 3, 4, 5].map(() => uid("ws"));
    const alice = await chatter(herald, { workspaces });
    const rooms = [];
    for (const ws of workspaces.slice(0, 4)) rooms.push((await join(alice, { type: "workspace", target: ws })).room);
    const fifth = { type: "workspace", target: workspaces[4] };
    const message = assertRefused(await ack(alice, "join", [{ room: fifth }]), "bad_request", "a fifth room");
    assert.match(message, /at most 4 rooms/);
    await join(alice, { type: "workspace", target: workspaces[0] }); // joining a held room again is fine
    assert.deepEqual(await ack(alice, "leave", [{ room: rooms[0].uuid }]), { ok: true });
    await join(alice, fifth);
  });

  test("revoked access takes the socket out of the workspace's rooms", async () => {
    const [ws, other] = [uid("ws"), uid("ws")];
    const alice = await chatter(herald, { workspaces: [ws, other] });
    const { room } = await join(alice, { type: "workspace", target: ws });
    const { room: node } = await join(alice, { type: "node", target: uid("node"), workspace: ws });
    const { room: kept } = await join(alice, { type: "workspace", target: other });
    const revoked = record(alice, "room_revoked");
    const res = await herald.accessHttp({ user: alice.sub, workspaces: [other] });
    assert.equal(res.status, 200, res.text);
    await eventually(() => revoked.events.length === 2, WAIT_MS, "room_revoked for the workspace and the node room");
    assert.deepEqual(
      revoked.events.map(([r]) => r).sort((a, b) => a.room.localeCompare(b.room)),
      [room.uuid, node.uuid].sort().map((uuid) => ({ room: uuid, reason: "access_revoked" })),
    );
    assertRefused(await ack(alice, "post", [{ room: room.uuid, text: "hi" }]), "not_joined", "post after revocation");
    assertRefused(await ack(alice, "join", [{ room: { type: "workspace", target: ws } }]), "forbidden", "join after revocation");
    await post(alice, kept.uuid, "the other workspace still works");
  });
});

describe("chat token refresh", () => {
  let herald;
  let dataDir;
  before(async () => {
    dataDir = mkdtempSync(joinPath(tmpdir(), "herald-chat-"));
    herald = await startHerald("chat-refresh", { chat: { dataDir } });
  });
  afterEach((t) => herald.afterEach(t));
  after(async () => {
    await herald?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("`refresh` moves the expiry and leaves the rooms of workspaces the new token lost", async () => {
    const [kept, lost] = [uid("ws"), uid("ws")];
    const alice = await chatter(herald, { workspaces: [kept, lost] });
    const { room: keptRoom } = await join(alice, { type: "workspace", target: kept });
    const { room: lostRoom } = await join(alice, { type: "node", target: uid("node"), workspace: lost });
    const revoked = once(alice, "room_revoked", WAIT_MS, "room_revoked for the lost workspace's node room");
    const token = mintToken({ sub: alice.sub, workspaces: [kept], expiresInS: 7200 });
    const reply = await ack(alice, "refresh", [{ token }]);
    assert.equal(reply?.ok, true, JSON.stringify(reply));
    assert.equal(reply.revoked, 1);
    assert.ok(reply.exp > Date.now() / 1000 + 3600, `new exp ${reply.exp}`);
    assert.deepEqual(await revoked, [{ room: lostRoom.uuid, reason: "access_revoked" }]);
    assertRefused(await ack(alice, "post", [{ room: lostRoom.uuid, text: "x" }]), "not_joined", "post in the lost room");
    await post(alice, keptRoom.uuid, "still in the kept room");

    const other = mintToken({ sub: uid("mallory"), workspaces: [kept, lost] });
    assertRefused(await ack(alice, "refresh", [{ token: other }]), "forbidden", "another user's token");
    assertRefused(await ack(alice, "refresh", [{ token: "garbage" }]), "forbidden", "a token that does not verify");
    assertRefused(await ack(alice, "refresh", [{}]), "bad_request", "no token");
  });
});

describe("chat history survives a restart", () => {
  let herald;
  let dataDir;
  afterEach((t) => herald?.afterEach(t));
  after(async () => {
    await herald?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test("messages posted before a restart are replayed on join after it", async () => {
    dataDir = mkdtempSync(joinPath(tmpdir(), "herald-chat-"));
    const ws = uid("ws");
    const sub = uid("alice");
    herald = await startHerald("chat-restart-1", { chat: { dataDir } });
    let alice = await chatter(herald, { sub, workspaces: [ws] });
    const { room } = await join(alice, { type: "workspace", target: ws, label: "Before" });
    const sent = [];
    for (const text of ["one", "two", "three"]) sent.push(await post(alice, room.uuid, text));
    await herald.stop();

    herald = await startHerald("chat-restart-2", { chat: { dataDir } });
    alice = await chatter(herald, { sub, workspaces: [ws] });
    const again = await join(alice, { type: "workspace", target: ws });
    assert.equal(again.room.uuid, room.uuid);
    assert.equal(again.room.label, "Before");
    assert.deepEqual([again.messages, again.more], [sent, false]);
  });
});
