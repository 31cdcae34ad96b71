// Pydio Cells' chat socket, `/ws/chat` ([cells] and [chat] enabled): a plain WebSocket speaking
// the Cells chat UI's JSON protocol, on herald's chat (the rooms, store and presence of the
// `/chat` namespace). The client is cells-chat-ui.mjs, which behaves as the UI's ChatClient does
// (a subscribe on open, JOIN and a PING per held room every 15 s, HISTORY with its paging as JSON
// text inside Message.Message, POST to the Uuid a ROOM_UPDATE taught it, DELETE_MSG with the
// message as received, LEAVE), against the real herald: workspace rooms shared by their members,
// bare messages with string timestamps, history paging, access refusals and no leak to those
// refused, deletion by the author only, the other refusals, NODE rooms in JWT and backend auth
// mode, presence (LEAVE, a socket that stops pinging, a close), one room with the Socket.IO
// `/chat` namespace, and hostile frames. The client's own behaviour is checked first against a
// WebSocket server of the test's own.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { once as onceEvent } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";

import { setTimeout as delay } from "node:timers/promises";

import { WebSocketServer } from "ws";

import { UUID_RE, WAIT_MS, ack, connected, eventually, mintToken, once, startHerald, uid } from "./harness.mjs";
import { CellsChatUI, UI_CHAT_PING_MS, UI_HISTORY_PAGE } from "./cells-chat-ui.mjs";
import { startRedis } from "./redis.mjs";
import { launchChromium, startStaticServer } from "./browser.mjs";

const nowS = () => Math.floor(Date.now() / 1000);

/** The limits of the chat under test (small, so that their edges are cheap to reach). */
const MAX_TEXT = 64;
const HISTORY_PAGE = 3;
const MAX_HISTORY_LIMIT = 4;

/** How long a room's member stays present without a JOIN or PING (the contract's 20 s). */
const PRESENCE_MS = 20000;

// ---------------------------------------------------------------------------------------------
// Workspaces, users and tokens.

/** A workspace of the test's own: {id, slug, roots: [{uuid, path}]}, one root. */
function workspace() {
  return { id: uid("ws"), slug: uid("slug"), roots: [{ uuid: randomUUID(), path: uid("ds") }] };
}

/** A user of the test's own (login differs from sub); `user.token()` mints a token of theirs. */
function chatUser({ sub = uid("sub"), login = uid("login"), workspaces = [] } = {}) {
  const user = { sub, login, workspaces };
  user.token = () => mintToken({ sub, extra: { login, workspace_roots: workspaces } });
  return user;
}

// ---------------------------------------------------------------------------------------------
// Predicates and assertions on frames.

const sorted = (ids) => [...ids].sort();
const sameList = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** A ROOM_UPDATE of the room (Type, RoomTypeObject), with exactly `users` present if given. */
const isUpdateOf = (type, object, users) => (f) =>
  f?.["@type"] === "ROOM_UPDATE" &&
  f.Room?.Type === type &&
  f.Room?.RoomTypeObject === object &&
  (users === undefined || sameList(f.Room.Users, sorted(users)));
const isError = (code) => (f) => f?.["@type"] === "error" && f.code === code;
const isAnyError = (f) => f?.["@type"] === "error";
/** A bare message (no @type) with this text. */
const isMessage = (text) => (f) => f?.["@type"] === undefined && f?.Message === text;

/** Asserts an error frame: exactly {"@type":"error","code","error"} with this code. */
function assertErrorFrame(frame, code, what) {
  const shown = JSON.stringify(frame);
  assert.equal(frame?.["@type"], "error", `${what}: not an error frame: ${shown}`);
  assert.deepEqual(Object.keys(frame).sort(), ["@type", "code", "error"], `${what}: the keys of ${shown}`);
  assert.equal(frame.code, code, `${what}: ${shown}`);
  assert.ok(typeof frame.error === "string" && frame.error.length > 0, `${what}: no text for people in ${shown}`);
}

/** Asserts a ROOM_UPDATE frame's shape and content; returns its Room. */
function assertRoomUpdate(frame, { type, object, users, uuid }, what) {
  const shown = JSON.stringify(frame);
  assert.deepEqual(Object.keys(frame).sort(), ["@type", "Room"], `${what}: the keys of ${shown}`);
  const room = frame.Room;
  const keys = Object.keys(room);
  for (const key of ["Uuid", "Type", "RoomTypeObject", "Users", "LastUpdated"]) {
    assert.ok(keys.includes(key), `${what}: Room.${key} missing in ${shown}`);
  }
  for (const key of keys) {
    assert.ok(["Uuid", "Type", "RoomTypeObject", "RoomLabel", "Users", "LastUpdated"].includes(key), `${what}: Room.${key} in ${shown}`);
  }
  assert.match(room.Uuid, UUID_RE, `${what}: Room.Uuid of ${shown}`);
  if (uuid !== undefined) assert.equal(room.Uuid, uuid, `${what}: the room's Uuid in ${shown}`);
  assert.equal(room.Type, type, `${what}: ${shown}`);
  assert.equal(room.RoomTypeObject, object, `${what}: ${shown}`);
  assert.deepEqual(room.Users, sorted(users), `${what}: Users (present users, sorted) in ${shown}`);
  assert.ok(Number.isInteger(room.LastUpdated), `${what}: LastUpdated is a number of seconds in ${shown}`);
  assert.ok(Math.abs(room.LastUpdated - nowS()) < 120, `${what}: LastUpdated ${room.LastUpdated} is not now-ish (${nowS()})`);
  return room;
}

/** Asserts a bare message: exactly {Uuid, RoomUuid, Message, Author, Timestamp}. */
function assertMessage(message, { room, author, text }, what) {
  const shown = JSON.stringify(message);
  assert.deepEqual(Object.keys(message).sort(), ["Author", "Message", "RoomUuid", "Timestamp", "Uuid"], `${what}: the keys of ${shown}`);
  assert.match(message.Uuid, UUID_RE, `${what}: Uuid of ${shown}`);
  assert.equal(message.RoomUuid, room, `${what}: RoomUuid of ${shown}`);
  assert.equal(message.Author, author, `${what}: Author (the poster's user id) of ${shown}`);
  assert.equal(message.Message, text, `${what}: Message of ${shown}`);
  assert.equal(typeof message.Timestamp, "string", `${what}: Timestamp is a string in ${shown}`);
  assert.match(message.Timestamp, /^[0-9]+$/, `${what}: Timestamp is seconds in ${shown}`);
  assert.ok(Math.abs(Number(message.Timestamp) - nowS()) < 60, `${what}: Timestamp ${message.Timestamp} is not now (${nowS()})`);
}

// ---------------------------------------------------------------------------------------------
// One herald's /ws/chat door, as tests use it.

class ChatDoor {
  constructor(herald) {
    this.herald = herald;
    this.clients = [];
  }

  get url() {
    return `${this.herald.url.replace(/^http/, "ws")}/ws/chat`;
  }

  /** A UI-like client (not opened) of `user`: it subscribes with the user's token unless `token` is given. */
  client({ user, token, label, ...options } = {}) {
    const c = new CellsChatUI({
      url: this.url,
      token: token ?? (user ? () => user.token() : () => undefined),
      label: label ?? `chat session of ${user?.sub ?? "nobody"}`,
      ...options,
    });
    c.user = user;
    this.clients.push(c);
    return c;
  }

  /**
   * An open client of `user` whose subscribe herald has taken (proven by `subscribed`), unless
   * it does not subscribe on open (`autoSubscribe: false`).
   */
  async session(user, options = {}) {
    const c = this.client({ user, ...options });
    await c.open();
    if (options.autoSubscribe !== false) await this.subscribed(c);
    return c;
  }

  /**
   * Bounded poll until `c`'s session is subscribed: a HISTORY of a workspace room nobody has is
   * answered `forbidden` once it is, `not_subscribed` before. Then `c.readyAt` is the number of
   * frames it had received (what came before is the probes' answers).
   */
  async subscribed(c) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const nowhere = uid("nowhere");
      const answer = c.nextFrame(isAnyError, WAIT_MS, `the answer to a HISTORY of ${nowhere} (is it subscribed?)`);
      c.history("WORKSPACE", nowhere, 0, 1);
      const frame = await answer;
      if (frame.code === "forbidden") {
        c.readyAt = c.frames.length;
        return;
      }
      if (frame.code !== "not_subscribed" || Date.now() >= deadline) {
        throw new Error(`${c.label} did not become subscribed within ${WAIT_MS} ms: ${JSON.stringify(frame)}`);
      }
      await delay(50); // poll interval of a bounded poll
    }
  }

  /** The error frames `c` received since it was proven subscribed, but the probes' answers. */
  errorsSinceReady(c) {
    return c.frames.slice(c.readyAt ?? 0).filter((f) => isAnyError(f) && !c.probeAnswers?.has(f));
  }

  /**
   * The UI's order: a subscribe on open, then at once a JOIN of W. Resolves with what answered
   * the JOIN on each of `n` fresh sockets ({user, token?} from `make()`): "ROOM_UPDATE" or an
   * error code.
   */
  async joinRightAfterSubscribe(n, make, W) {
    const answers = [];
    for (let i = 0; i < n; i += 1) {
      const { user, token } = make();
      const c = this.client({ user, token, label: `JOIN right after subscribe #${i}` });
      await c.open();
      const answer = c.nextFrame(
        (f) => isUpdateOf("WORKSPACE", W.id)(f) || isAnyError(f),
        WAIT_MS,
        "the answer to the JOIN sent right after the subscribe",
      );
      c.join("WORKSPACE", W.id);
      const frame = await answer;
      answers.push(frame["@type"] === "error" ? frame.code : frame["@type"]);
      c.terminate();
    }
    return answers;
  }

  /** JOINs and resolves with the ROOM_UPDATE frame answering it (Users as `users` if given). */
  async joined(c, type, object, users, what = `${c.label} joins ${type}:${object}`) {
    const update = c.nextFrame(isUpdateOf(type, object, users), WAIT_MS, `the ROOM_UPDATE answering the JOIN (${what})`);
    c.join(type, object);
    return update;
  }

  /** Sends `frame` and resolves with the error frame that answers it. */
  async refused(c, frame, what) {
    const answer = c.nextFrame(isAnyError, WAIT_MS, `the error frame answering ${what}`);
    if (typeof frame === "function") frame();
    else c.send(frame);
    return answer;
  }

  /** Sends `frame` and asserts it is answered with an error frame `code`. */
  async assertRefused(c, frame, code, what) {
    assertErrorFrame(await this.refused(c, frame, what), code, what);
  }

  /**
   * A probe: a frame that is not JSON, whose bad_message answer comes after what herald sent the
   * session before it read the probe.
   */
  async probe(c) {
    const answer = c.nextFrame(isError("bad_message"), WAIT_MS, "the bad_message answer to a probe");
    c.send("probe (not JSON)");
    c.probeAnswers ??= new Set();
    c.probeAnswers.add(await answer);
  }

  /** POSTs `text` and resolves with the message as it came back to the sender (its text `stored`). */
  async post(c, roomUuid, text, stored = text) {
    const back = c.nextFrame((f) => isMessage(stored)(f) && f.RoomUuid === roomUuid, WAIT_MS, `${c.label}'s own message ${JSON.stringify(stored)}`);
    c.post(roomUuid, text);
    return back;
  }

  /**
   * HISTORY of the room: resolves with {update, messages}: the ROOM_UPDATE answering it and the
   * messages of the room after it. Waits for `count` messages (at most WAIT_MS), then probes, so
   * that any message more would be counted too.
   */
  async history(c, type, object, { offset, limit, raw, count }) {
    const answer = c.nextFrame(isUpdateOf(type, object), WAIT_MS, `the ROOM_UPDATE answering HISTORY ${type}:${object}`);
    if (raw !== undefined) {
      c.send({ "@type": "HISTORY", Room: { Type: type, RoomTypeObject: object }, Message: { Message: raw } });
    } else {
      c.history(type, object, offset, limit);
    }
    const update = await answer;
    const messages = () =>
      c.frames.slice(c.frames.indexOf(update) + 1).filter((f) => f?.["@type"] === undefined && f?.RoomUuid === update.Room.Uuid);
    // Fewer than `count` by WAIT_MS: the caller's assertion shows which.
    await eventually(() => messages().length >= count, WAIT_MS).catch(() => {});
    await this.probe(c);
    return { update, messages: messages() };
  }

  /** afterEach: drops every client; fails the test if the UI would have thrown on, or lost, a frame. */
  afterEach(t) {
    const problems = [];
    for (const c of this.clients) {
      c.terminate();
      if (c.errors.length > 0) problems.push(`${c.label} would have thrown on: ${c.errors.join("\n  ")}`);
      if (c.unroutable.length > 0) problems.push(`${c.label} got messages of no room it knew: ${JSON.stringify(c.unroutable).slice(0, 1000)}`);
    }
    this.clients = [];
    this.herald.afterEach(t);
    if (problems.length > 0) throw new Error(`frames the UI could not handle:\n${problems.join("\n")}`);
  }
}

/** A connected `/chat` Socket.IO socket of `sub` whose token lists `workspaces`. */
async function socketIoChatter(herald, { sub = uid("sio"), workspaces = [] } = {}) {
  const socket = herald.publicV4({ token: mintToken({ sub, workspaces }), namespace: "/chat" });
  await connected(socket, `/chat socket of ${sub}`);
  socket.sub = sub;
  return socket;
}

// =============================================================================================
// The client itself, against a WebSocket server of the test's own: it must behave as the UI does
// before it can tell anything about herald.

describe("the chat UI-like client (cells-chat-ui.mjs) against a WebSocket server of the test's own", () => {
  let server;
  let url;
  const conns = [];
  const clients = [];
  before(async () => {
    server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await onceEvent(server, "listening");
    url = `ws://127.0.0.1:${server.address().port}/ws/chat`;
    server.on("connection", (socket) => {
      const conn = { socket, messages: [] };
      socket.on("message", (data) => {
        conn.messages.push(JSON.parse(data.toString()));
        server.emit("client_message", conn);
      });
      conns.push(conn);
      server.emit("conn", conn);
    });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.terminate();
    for (const conn of conns.splice(0)) conn.socket.terminate();
    server.removeAllListeners("conn");
  });
  after(() => server?.close());

  const client = (options) => {
    const c = new CellsChatUI({ url, ...options });
    clients.push(c);
    return c;
  };
  const pingOf = (object) => ({
    "@type": "JOIN",
    Room: { Type: "WORKSPACE", RoomTypeObject: object },
    Message: { Message: "PING" },
  });

  test("the UI's defaults: a PING every 15 s, history {Offset: 0, Limit: 40}", () => {
    assert.equal(UI_CHAT_PING_MS, 15000);
    assert.deepEqual({ ...UI_HISTORY_PAGE }, { Offset: 0, Limit: 40 });
    assert.equal(new CellsChatUI({ url }).pingMs, 15000);
  });

  test("subscribe on open; JOIN, then a PING per period per held room; LEAVE stops that room's PINGs; HISTORY, POST, DELETE_MSG as the UI sends them", async () => {
    const c = client({ token: () => "token-1", pingMs: 40 });
    const connecting = once(server, "conn", WAIT_MS, "the connection");
    await c.open();
    const [conn] = await connecting;
    c.join("WORKSPACE", "ws-a");
    c.join("WORKSPACE", "ws-b");
    const pings = (object, from = 0) =>
      conn.messages.slice(from).filter((m) => JSON.stringify(m) === JSON.stringify(pingOf(object))).length;
    await eventually(() => pings("ws-a") >= 2 && pings("ws-b") >= 2, WAIT_MS, "two PINGs of each room");
    assert.deepEqual(conn.messages.slice(0, 3), [
      { "@type": "subscribe", jwt: "token-1" },
      { "@type": "JOIN", Room: { Type: "WORKSPACE", RoomTypeObject: "ws-a" } },
      { "@type": "JOIN", Room: { Type: "WORKSPACE", RoomTypeObject: "ws-b" } },
    ]);

    c.leave("WORKSPACE", "ws-a");
    const leave = { "@type": "LEAVE", Room: { Type: "WORKSPACE", RoomTypeObject: "ws-a" } };
    await eventually(() => conn.messages.some((m) => JSON.stringify(m) === JSON.stringify(leave)), WAIT_MS, "the LEAVE");
    const at = conn.messages.findIndex((m) => JSON.stringify(m) === JSON.stringify(leave));
    // Three PINGs of the room still held prove that the left room would have pinged by then.
    await eventually(() => pings("ws-b", at) >= 3, WAIT_MS, "three more PINGs of the room still held");
    assert.equal(pings("ws-a", at), 0, "a PING of the room left after its LEAVE");

    c.stopPinging("WORKSPACE", "ws-b");
    const received = { Uuid: "m-1", RoomUuid: "room-1", Message: "hi", Author: "alice", Timestamp: "1700000000" };
    const before = conn.messages.length;
    c.history("NODE", "node-1", 2, 40);
    c.post("room-1", "hello");
    c.deleteMessage(received);
    const sent = () => conn.messages.slice(before).filter((m) => JSON.stringify(m) !== JSON.stringify(pingOf("ws-b")));
    await eventually(() => sent().length >= 3, WAIT_MS, "the three frames");
    assert.deepEqual(sent(), [
      { "@type": "HISTORY", Room: { Type: "NODE", RoomTypeObject: "node-1" }, Message: { Message: '{"Offset":2,"Limit":40}' } },
      { "@type": "POST", Message: { RoomUuid: "room-1", Message: "hello" } },
      { "@type": "DELETE_MSG", Message: received },
    ]);
  });

  test("frames sorted as the UI does; the chat view's HISTORY after a room's first ROOM_UPDATE only", async () => {
    const c = client({ token: () => "token-1", autoHistory: true, pingMs: 60000 });
    const connecting = once(server, "conn", WAIT_MS, "the connection");
    await c.open();
    const [conn] = await connecting;
    c.join("WORKSPACE", "ws-a");
    const update = { "@type": "ROOM_UPDATE", Room: { Uuid: "r-1", Type: "WORKSPACE", RoomTypeObject: "ws-a", Users: ["alice"], LastUpdated: 1 } };
    const message = { Uuid: "m-1", RoomUuid: "r-1", Message: "hi", Author: "alice", Timestamp: "1700000000" };
    const frames = [
      { ...message, RoomUuid: "r-unknown" }, // before its room is known: lost to the UI
      update,
      update, // a second ROOM_UPDATE: no second HISTORY
      message,
      { "@type": "DELETE_MSG", Message: { Uuid: "m-1", RoomUuid: "r-1" } },
      { "@type": "error", code: "forbidden", error: "no access" },
      { ...message, Uuid: "m-2", Message: 42 }, // the UI would throw on it
      { ...message, Uuid: "m-3", Message: "last" },
    ];
    for (const f of frames) conn.socket.send(JSON.stringify(f));
    await c.waitFrame((f) => f?.Uuid === "m-3", WAIT_MS, "the last frame");
    c.post("r-1", "after");
    await eventually(() => conn.messages.some((m) => m["@type"] === "POST"), WAIT_MS, "the POST");
    assert.deepEqual(conn.messages.slice(1), [
      { "@type": "JOIN", Room: { Type: "WORKSPACE", RoomTypeObject: "ws-a" } },
      { "@type": "HISTORY", Room: { Type: "WORKSPACE", RoomTypeObject: "ws-a" }, Message: { Message: '{"Offset":0,"Limit":40}' } },
      { "@type": "POST", Message: { RoomUuid: "r-1", Message: "after" } },
    ]);
    assert.deepEqual([...c.rooms], [["r-1", "WORKSPACE:ws-a"]]);
    assert.equal(c.roomUuid("WORKSPACE", "ws-a"), "r-1");
    assert.deepEqual(c.roomUpdates, [update.Room, update.Room]);
    assert.deepEqual(c.messages, [message, { ...message, Uuid: "m-3", Message: "last" }]);
    assert.deepEqual(c.deletions, [{ Uuid: "m-1", RoomUuid: "r-1" }]);
    assert.deepEqual(c.errorFrames, [frames[5]]);
    assert.deepEqual(c.unroutable, [frames[0]]);
    assert.equal(c.errors.length, 1, JSON.stringify(c.errors));
  });
});

// =============================================================================================
// herald.

describe("Pydio Cells /ws/chat", () => {
  let herald;
  let door;
  let dataDir;
  before(async () => {
    dataDir = mkdtempSync(joinPath(tmpdir(), "herald-cells-chat-"));
    herald = await startHerald("cells-chat", {
      cells: {},
      chat: { dataDir, maxText: MAX_TEXT, historyPage: HISTORY_PAGE, maxHistoryLimit: MAX_HISTORY_LIMIT },
    });
    door = new ChatDoor(herald);
  });
  afterEach((t) => door.afterEach(t));
  after(async () => {
    await herald?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test("two members of a workspace: ROOM_UPDATE with both, a POST reaches both as a bare message, HISTORY is ROOM_UPDATE then the messages oldest first", async () => {
    const W = workspace();
    const alice = chatUser({ workspaces: [W] });
    const bob = chatUser({ workspaces: [W] });
    const a = await door.session(alice);
    const b = await door.session(bob);

    const first = await door.joined(a, "WORKSPACE", W.id);
    const room = assertRoomUpdate(first, { type: "WORKSPACE", object: W.id, users: [alice.sub] }, "alice's JOIN");
    const toAlice = a.nextFrame(isUpdateOf("WORKSPACE", W.id, [alice.sub, bob.sub]), WAIT_MS, "alice hears that bob is present");
    const second = await door.joined(b, "WORKSPACE", W.id, [alice.sub, bob.sub]);
    assertRoomUpdate(second, { type: "WORKSPACE", object: W.id, users: [alice.sub, bob.sub], uuid: room.Uuid }, "bob's JOIN");
    assertRoomUpdate(await toAlice, { type: "WORKSPACE", object: W.id, users: [alice.sub, bob.sub], uuid: room.Uuid }, "the ROOM_UPDATE to alice");
    assert.equal(b.roomUuid("WORKSPACE", W.id), room.Uuid, "bob files the room under WORKSPACE:<id>");

    // Control characters but newline and tab are stripped.
    const text = "hello\u0000 bob\u0007\nsecond\tline";
    const clean = "hello bob\nsecond\tline";
    const atBob = b.nextFrame(isMessage(clean), WAIT_MS, "bob gets alice's message");
    const m1 = await door.post(a, room.Uuid, text, clean);
    assertMessage(m1, { room: room.Uuid, author: alice.sub, text: clean }, "alice's message back to alice");
    assert.deepEqual(await atBob, m1, "both get the same message");
    const atAlice = a.nextFrame(isMessage("hi alice"), WAIT_MS, "alice gets bob's message");
    const m2 = await door.post(b, room.Uuid, "hi alice");
    assertMessage(m2, { room: room.Uuid, author: bob.sub, text: "hi alice" }, "bob's message");
    assert.deepEqual(await atAlice, m2);
    assert.notEqual(m1.Uuid, m2.Uuid);

    const { update, messages } = await door.history(a, "WORKSPACE", W.id, { offset: 0, limit: 40, count: 2 });
    assertRoomUpdate(update, { type: "WORKSPACE", object: W.id, users: [alice.sub, bob.sub], uuid: room.Uuid }, "HISTORY's ROOM_UPDATE");
    assert.deepEqual(messages, [m1, m2], "HISTORY: the messages, oldest first, as they were sent");

    // The chat view's own flow: JOIN, then HISTORY {Offset: 0, Limit: 40} after the first ROOM_UPDATE.
    const carol = chatUser({ workspaces: [W] });
    const c = await door.session(carol, { autoHistory: true });
    c.join("WORKSPACE", W.id);
    await eventually(() => c.messagesOf(room.Uuid).length >= 2, WAIT_MS, "the history the chat view asked for");
    await door.probe(c);
    assert.deepEqual(c.messagesOf(room.Uuid), [m1, m2]);
    assert.deepEqual(
      c.sent.filter((f) => f["@type"] === "HISTORY" && f.Room.RoomTypeObject === W.id),
      [{ "@type": "HISTORY", Room: { Type: "WORKSPACE", RoomTypeObject: W.id }, Message: { Message: '{"Offset":0,"Limit":40}' } }],
    );
    assert.ok(c.roomUpdates.length >= 2, "a ROOM_UPDATE for the JOIN and one for the HISTORY");
    assert.deepEqual([a, b, c].map((x) => door.errorsSinceReady(x)), [[], [], []], "error frames");
  });

  test("the UI's JOIN sent at once after its subscribe on open is served, never not_subscribed", async () => {
    const W = workspace();
    const answers = await door.joinRightAfterSubscribe(50, () => ({ user: chatUser({ workspaces: [W] }) }), W);
    assert.deepEqual(answers, answers.map(() => "ROOM_UPDATE"), "what answered each JOIN sent right after the subscribe");
  });

  test("HISTORY paging: skip the Offset newest, then up to Limit, oldest first; no Limit is history_page, at most max_history_limit", async () => {
    const W = workspace();
    const alice = chatUser({ workspaces: [W] });
    const a = await door.session(alice);
    const room = (await door.joined(a, "WORKSPACE", W.id)).Room;
    const sent = [];
    for (let i = 0; i < 5; i += 1) sent.push(await door.post(a, room.Uuid, `m${i}`));
    const texts = (messages) => messages.map((m) => m.Message);
    const cases = [
      [{ offset: 2, limit: 2 }, ["m1", "m2"]],
      [{ offset: 0, limit: 2 }, ["m3", "m4"]],
      [{ offset: 1, limit: 3 }, ["m1", "m2", "m3"]],
      [{ offset: 4, limit: 2 }, ["m0"]],
      [{ offset: 5, limit: 2 }, []],
      [{ offset: 0, limit: 40 }, ["m1", "m2", "m3", "m4"]], // capped at max_history_limit (4)
      [{ raw: '{"Offset":0}' }, ["m2", "m3", "m4"]], // history_page (3)
      [{ raw: '{"Offset":1}' }, ["m1", "m2", "m3"]],
    ];
    const got = [];
    for (const [ask, expected] of cases) {
      const { update, messages } = await door.history(a, "WORKSPACE", W.id, { ...ask, count: expected.length });
      assert.equal(update.Room.Uuid, room.Uuid);
      got.push([ask, texts(messages)]);
    }
    assert.deepEqual(got, cases, "[what HISTORY asked, the texts it gave]");
    const all = await door.history(a, "WORKSPACE", W.id, { offset: 0, limit: 4, count: 4 });
    assert.deepEqual(all.messages, sent.slice(1), "history gives the messages exactly as they were sent");
  });

  test("a user without the workspace: JOIN and HISTORY forbidden, POST and DELETE_MSG not_joined, nothing of the room's messages", async () => {
    const [W, V] = [workspace(), workspace()];
    const alice = chatUser({ workspaces: [W, V] });
    const mallory = chatUser({ workspaces: [V] });
    const a = await door.session(alice);
    const m = await door.session(mallory);
    const room = (await door.joined(a, "WORKSPACE", W.id)).Room;
    const before = await door.post(a, room.Uuid, "before mallory tried");
    const other = (await door.joined(a, "WORKSPACE", V.id)).Room;
    await door.joined(m, "WORKSPACE", V.id, [alice.sub, mallory.sub]);

    await door.assertRefused(m, () => m.join("WORKSPACE", W.id), "forbidden", "mallory's JOIN of W");
    await door.assertRefused(m, () => m.history("WORKSPACE", W.id, 0, 40), "forbidden", "mallory's HISTORY of W");
    await door.assertRefused(m, () => m.post(room.Uuid, "let me in"), "not_joined", "mallory's POST to W's room");
    await door.assertRefused(m, () => m.deleteMessage(before), "not_joined", "mallory's DELETE_MSG in W's room");

    const secret = await door.post(a, room.Uuid, "secret");
    const marker = await door.post(a, other.Uuid, uid("marker"));
    await m.waitFrame((f) => f?.Uuid === marker.Uuid, WAIT_MS, "the marker in the room mallory holds");
    const leaked = m.frames.filter((f) => f?.RoomUuid === room.Uuid || f?.Room?.Uuid === room.Uuid || f?.Message?.RoomUuid === room.Uuid);
    assert.deepEqual(leaked, [], "frames of W's room reached mallory");
    assert.ok(!JSON.stringify(m.frames).includes(secret.Uuid), "the secret's Uuid reached mallory");

    const { update, messages } = await door.history(a, "WORKSPACE", W.id, { offset: 0, limit: 4, count: 2 });
    assert.deepEqual(update.Room.Users, [alice.sub], "a refused JOIN makes nobody present");
    assert.deepEqual(messages, [before, secret], "nothing was posted by mallory");
  });

  test("DELETE_MSG: by the author, both get DELETE_MSG {Uuid, RoomUuid}; by another (with the author's Author) refused, the message stays", async () => {
    const W = workspace();
    const alice = chatUser({ workspaces: [W] });
    const bob = chatUser({ workspaces: [W] });
    const a = await door.session(alice);
    const b = await door.session(bob);
    const room = (await door.joined(a, "WORKSPACE", W.id)).Room;
    await door.joined(b, "WORKSPACE", W.id, [alice.sub, bob.sub]);
    const kept = await door.post(a, room.Uuid, "keep me");
    const doomed = await door.post(a, room.Uuid, "delete me");
    const doomedAtBob = await b.waitFrame((f) => f?.Uuid === doomed.Uuid, WAIT_MS, "bob has the message");
    assert.equal(doomedAtBob.Author, alice.sub);

    // Bob sends the message as he received it: its Author is alice.
    await door.assertRefused(b, () => b.deleteMessage(doomedAtBob), "forbidden", "bob deletes alice's message");
    // A session of alice that does not hold the room.
    const a2 = await door.session(alice);
    await door.assertRefused(a2, () => a2.deleteMessage(doomed), "not_joined", "alice deletes from a socket outside the room");
    const still = await door.history(b, "WORKSPACE", W.id, { offset: 0, limit: 4, count: 2 });
    assert.deepEqual(still.messages, [kept, doomed], "the message stays after refused deletions");
    assert.deepEqual([a.deletions, b.deletions], [[], []], "a DELETE_MSG went out for a refused deletion");

    const expected = { "@type": "DELETE_MSG", Message: { Uuid: doomed.Uuid, RoomUuid: room.Uuid } };
    const isDeletion = (f) => f?.["@type"] === "DELETE_MSG" && f.Message?.Uuid === doomed.Uuid;
    const arrivals = [a, b].map((c) => c.nextFrame(isDeletion, WAIT_MS, `${c.label} hears of the deletion`));
    a.deleteMessage(doomed);
    for (const frame of await Promise.all(arrivals)) assert.deepEqual(frame, expected);
    const after = await door.history(b, "WORKSPACE", W.id, { offset: 0, limit: 4, count: 1 });
    assert.deepEqual(after.messages, [kept], "the deleted message is gone from HISTORY");
  });

  test("refusals: frames before a subscribe are not_subscribed; POST to a room not held is not_joined; a text over max_text is too_long", async () => {
    const W = workspace();
    const alice = chatUser({ workspaces: [W] });
    const bob = chatUser({ workspaces: [W] });
    const b = await door.session(bob);
    const room = (await door.joined(b, "WORKSPACE", W.id)).Room;

    const early = await door.session(alice, { autoSubscribe: false });
    const frames = [
      ["JOIN", () => early.join("WORKSPACE", W.id)],
      ["PING", () => early.ping("WORKSPACE", W.id)],
      ["HISTORY", () => early.history("WORKSPACE", W.id, 0, 40)],
      ["POST", () => early.post(room.Uuid, "too early")],
      ["DELETE_MSG", () => early.deleteMessage({ Uuid: randomUUID(), RoomUuid: room.Uuid })],
      ["LEAVE", () => early.leave("WORKSPACE", W.id)],
    ];
    for (const [name, send] of frames) await door.assertRefused(early, send, "not_subscribed", `${name} before a subscribe`);
    await early.subscribe();
    await door.subscribed(early);
    const joined = await door.joined(early, "WORKSPACE", W.id, [alice.sub, bob.sub]);
    assert.equal(joined.Room.Uuid, room.Uuid, "after its subscribe the same socket joins");

    const a = await door.session(alice);
    await door.assertRefused(a, () => a.post(room.Uuid, "not held here"), "not_joined", "a POST to a room this socket does not hold");
    await door.assertRefused(a, () => a.post(randomUUID(), "nowhere"), "not_joined", "a POST to an unknown room");

    const atMax = "é".repeat(MAX_TEXT / 2); // MAX_TEXT bytes
    const atBob = b.nextFrame(isMessage(atMax), WAIT_MS, "bob gets the message of max_text bytes");
    await door.post(early, room.Uuid, atMax);
    await atBob;
    await door.assertRefused(early, () => early.post(room.Uuid, "x".repeat(MAX_TEXT + 1)), "too_long", "a text of max_text + 1 bytes");
    await door.assertRefused(early, () => early.post(room.Uuid, "é".repeat(MAX_TEXT / 2) + "x"), "too_long", "max_text + 1 bytes in fewer characters");
    const page = await door.history(b, "WORKSPACE", W.id, { offset: 0, limit: 4, count: 1 });
    assert.deepEqual(page.messages.map((m) => m.Message), [atMax], "refused POSTs stored nothing");
  });

  test("USER, GLOBAL and ANY rooms are unsupported_room, for JOIN and HISTORY", async () => {
    const alice = chatUser({ workspaces: [workspace()] });
    const a = await door.session(alice);
    for (const type of ["USER", "GLOBAL", "ANY"]) {
      const object = type === "USER" ? alice.sub : uid("object");
      await door.assertRefused(a, () => a.join(type, object), "unsupported_room", `JOIN of a ${type} room`);
      await door.assertRefused(a, () => a.history(type, object, 0, 40), "unsupported_room", `HISTORY of a ${type} room`);
    }
    assert.deepEqual(a.roomUpdates, [], "no ROOM_UPDATE for a refused room");
  });

  test("NODE rooms (JWT): a root of the session's workspace_roots is allowed and shared by node uuid; any other node is forbidden", async () => {
    const [W, V] = [workspace(), workspace()];
    const R = W.roots[0].uuid;
    const alice = chatUser({ workspaces: [W] });
    const bob = chatUser({ workspaces: [W] });
    const carol = chatUser({ workspaces: [V] });
    const a = await door.session(alice);
    const b = await door.session(bob);
    const c = await door.session(carol);

    const first = await door.joined(a, "NODE", R);
    const room = assertRoomUpdate(first, { type: "NODE", object: R, users: [alice.sub] }, "alice's JOIN of the root node");
    const second = await door.joined(b, "NODE", R, [alice.sub, bob.sub]);
    assert.equal(second.Room.Uuid, room.Uuid, "one room per node uuid");
    const wsRoom = (await door.joined(a, "WORKSPACE", W.id)).Room;
    assert.notEqual(wsRoom.Uuid, room.Uuid, "the node's room is not the workspace's");

    const atBob = b.nextFrame(isMessage("about this folder"), WAIT_MS, "bob gets the comment");
    const comment = await door.post(a, room.Uuid, "about this folder");
    assertMessage(comment, { room: room.Uuid, author: alice.sub, text: "about this folder" }, "a comment");
    assert.deepEqual(await atBob, comment);

    for (const [node, what] of [[randomUUID(), "a node that is no root of hers"], [V.roots[0].uuid, "the root of another workspace"]]) {
      await door.assertRefused(a, () => a.join("NODE", node), "forbidden", `JOIN of ${what}`);
      await door.assertRefused(a, () => a.history("NODE", node, 0, 40), "forbidden", `HISTORY of ${what}`);
    }
    await door.assertRefused(c, () => c.join("NODE", R), "forbidden", "carol's JOIN of W's root");
    await door.assertRefused(c, () => c.history("NODE", R, 0, 40), "forbidden", "carol's HISTORY of W's root");
    const page = await door.history(b, "NODE", R, { offset: 0, limit: 40, count: 1 });
    assert.deepEqual(page.messages, [comment]);
    assert.deepEqual(page.update.Room.Users, sorted([alice.sub, bob.sub]), "refused sessions are not present");
  });

  test("presence: LEAVE takes the user out when no other socket of theirs holds the room; a LEAVEr gets nothing more; a close takes the user out", async () => {
    const [W, V] = [workspace(), workspace()];
    const alice = chatUser({ workspaces: [W, V] });
    const bob = chatUser({ workspaces: [W, V] });
    const b = await door.session(bob);
    const room = (await door.joined(b, "WORKSPACE", W.id)).Room;
    const other = (await door.joined(b, "WORKSPACE", V.id)).Room;
    const both = [alice.sub, bob.sub];

    const tab1 = await door.session(alice, { label: "alice's tab 1" });
    const tab2 = await door.session(alice, { label: "alice's tab 2" });
    const seen = b.nextFrame(isUpdateOf("WORKSPACE", W.id, both), WAIT_MS, "bob hears that alice is present");
    await door.joined(tab1, "WORKSPACE", W.id, both);
    await seen;
    await door.joined(tab2, "WORKSPACE", W.id, both);
    await door.joined(tab2, "WORKSPACE", V.id, both);

    tab1.leave("WORKSPACE", W.id);
    await door.probe(tab1);
    await door.assertRefused(tab1, () => tab1.post(room.Uuid, "gone"), "not_joined", "a POST after LEAVE");
    const stillBoth = await door.history(b, "WORKSPACE", W.id, { offset: 0, limit: 4, count: 0 });
    assert.deepEqual(stillBoth.update.Room.Users, sorted(both), "alice's other tab still holds the room");

    const gone = b.nextFrame(isUpdateOf("WORKSPACE", W.id, [bob.sub]), WAIT_MS, "bob hears that alice left");
    tab2.leave("WORKSPACE", W.id);
    assertRoomUpdate(await gone, { type: "WORKSPACE", object: W.id, users: [bob.sub], uuid: room.Uuid }, "the ROOM_UPDATE after the last LEAVE");

    // Neither tab gets W's messages any more: a marker in V (which tab2 holds) comes after.
    const after = await door.post(b, room.Uuid, "after alice left");
    const marker = await door.post(b, other.Uuid, uid("marker"));
    await tab2.waitFrame((f) => f?.Uuid === marker.Uuid, WAIT_MS, "the marker in V");
    await door.probe(tab1);
    for (const tab of [tab1, tab2]) assert.deepEqual(tab.messagesOf(room.Uuid), [], `${tab.label} got W's messages after LEAVE`);
    assert.ok(!JSON.stringify([tab1.frames, tab2.frames]).includes(after.Uuid));

    // A close (without LEAVE) takes the user out.
    const tab3 = await door.session(alice, { label: "alice's tab 3" });
    const back = b.nextFrame(isUpdateOf("WORKSPACE", W.id, both), WAIT_MS, "bob hears that alice is back");
    await door.joined(tab3, "WORKSPACE", W.id, both);
    await back;
    const closed = b.nextFrame(isUpdateOf("WORKSPACE", W.id, [bob.sub]), WAIT_MS, "bob hears that alice's closed socket left");
    tab2.close(); // it holds V only: V's presence changes, not W's
    tab3.close();
    await closed;
    await tab3.waitClose(WAIT_MS, "tab 3's close");
  });

  test("presence: a socket that stops PINGing drops out of Users 20 s after its last JOIN; a PING brings it back", async () => {
    const W = workspace();
    const alice = chatUser({ workspaces: [W] });
    const bob = chatUser({ workspaces: [W] });
    const b = await door.session(bob, { pingMs: 5000 });
    const room = (await door.joined(b, "WORKSPACE", W.id)).Room;
    const a = await door.session(alice, { pingMs: 120000 }); // never pings within the test
    const both = [alice.sub, bob.sub];
    const seen = b.nextFrame(isUpdateOf("WORKSPACE", W.id, both), WAIT_MS, "bob hears that alice is present");
    const joinedAt = Date.now();
    await door.joined(a, "WORKSPACE", W.id, both);
    await seen;

    const dropped = await b.nextFrame(
      isUpdateOf("WORKSPACE", W.id, [bob.sub]),
      30000 - (Date.now() - joinedAt),
      "bob hears that alice, who stopped pinging, left (within 30 s of her JOIN)",
    );
    const after = Date.now() - joinedAt;
    assert.equal(dropped.Room.Uuid, room.Uuid);
    assert.ok(after >= PRESENCE_MS - 1000, `alice dropped ${after} ms after her JOIN, before the 20 s`);
    assert.ok(b.sent.filter((f) => f.Message?.Message === "PING").length >= 3, "bob pinged, and stayed");
    assert.equal(a.isOpen, true, "the silent socket stays open");

    const back = b.nextFrame(isUpdateOf("WORKSPACE", W.id, both), WAIT_MS, "bob hears that alice is back after her PING");
    a.ping("WORKSPACE", W.id);
    await back;
  });

  test("one room with the Socket.IO /chat namespace: messages, history, presence and deletions both ways", async () => {
    const W = workspace();
    const alice = chatUser({ workspaces: [W] });
    const a = await door.session(alice);
    const room = (await door.joined(a, "WORKSPACE", W.id)).Room;
    const sam = await socketIoChatter(herald, { workspaces: [W.id] });

    const samPresent = a.nextFrame(isUpdateOf("WORKSPACE", W.id, [alice.sub, sam.sub]), WAIT_MS, "alice hears that sam (Socket.IO) is present");
    const joined = await ack(sam, "join", [{ room: { type: "workspace", target: W.id } }]);
    assert.equal(joined?.ok, true, JSON.stringify(joined));
    assert.equal(joined.room.uuid, room.Uuid, "/chat's workspace room is the Cells WORKSPACE room");
    assert.deepEqual(joined.members, sorted([alice.sub, sam.sub]), "the Cells user is a member on /chat");
    await samPresent;

    const atSam = once(sam, "message", WAIT_MS, "sam gets alice's Cells POST");
    const fromCells = await door.post(a, room.Uuid, "from cells");
    const [asSam] = await atSam;
    assert.deepEqual(asSam, { uuid: fromCells.Uuid, room: room.Uuid, author: alice.sub, text: "from cells", ts: asSam.ts });
    assert.equal(String(Math.floor(asSam.ts / 1000)), fromCells.Timestamp, "the same time, in ms on /chat and s on Cells");

    const atAlice = a.nextFrame(isMessage("from socket.io"), WAIT_MS, "alice gets sam's /chat post");
    const posted = await ack(sam, "post", [{ room: room.Uuid, text: "from socket.io" }]);
    assert.equal(posted?.ok, true, JSON.stringify(posted));
    const fromSio = await atAlice;
    assert.deepEqual(fromSio, {
      Uuid: posted.message.uuid,
      RoomUuid: room.Uuid,
      Message: "from socket.io",
      Author: sam.sub,
      Timestamp: String(Math.floor(posted.message.ts / 1000)),
    });

    const page = await door.history(a, "WORKSPACE", W.id, { offset: 0, limit: 4, count: 2 });
    assert.deepEqual(page.messages, [fromCells, fromSio], "one history");
    const onChat = await ack(sam, "history", [{ room: room.Uuid, limit: MAX_HISTORY_LIMIT }]);
    assert.deepEqual(onChat?.messages?.map((m) => m.uuid), [fromCells.Uuid, fromSio.Uuid], `/chat history: ${JSON.stringify(onChat)}`);

    const deletedOnCells = a.nextFrame((f) => f?.["@type"] === "DELETE_MSG", WAIT_MS, "alice hears of sam's deletion");
    assert.deepEqual(await ack(sam, "delete_message", [{ room: room.Uuid, uuid: fromSio.Uuid }]), { ok: true });
    assert.deepEqual(await deletedOnCells, { "@type": "DELETE_MSG", Message: { Uuid: fromSio.Uuid, RoomUuid: room.Uuid } });
    const deletedOnChat = once(sam, "message_deleted", WAIT_MS, "sam hears of alice's deletion");
    a.deleteMessage(fromCells);
    assert.deepEqual(await deletedOnChat, [{ room: room.Uuid, uuid: fromCells.Uuid }]);

    const samGone = a.nextFrame(isUpdateOf("WORKSPACE", W.id, [alice.sub]), WAIT_MS, "alice hears that sam left");
    assert.deepEqual(await ack(sam, "leave", [{ room: room.Uuid }]), { ok: true });
    await samGone;
  });

  test("hostile frames: garbage, a JOIN without Room, a HISTORY whose paging is not JSON are bad_message; the socket stays open and chatting goes on", async () => {
    const W = workspace();
    const alice = chatUser({ workspaces: [W] });
    const bob = chatUser({ workspaces: [W] });
    const a = await door.session(alice);
    const b = await door.session(bob);
    const room = (await door.joined(a, "WORKSPACE", W.id)).Room;
    await door.joined(b, "WORKSPACE", W.id, [alice.sub, bob.sub]);
    const history = (paging) => ({ "@type": "HISTORY", Room: { Type: "WORKSPACE", RoomTypeObject: W.id }, Message: { Message: paging } });
    const garbage = [
      "not json",
      "",
      "[]",
      "42",
      "null",
      "{}",
      '{"@type":"bogus"}',
      '{"@type":7}',
      '{"@type":"JOIN"',
      { "@type": "JOIN" },
      { "@type": "JOIN", Message: { Message: "PING" } },
      history("not json"),
      history('{"Offset":'),
    ];
    for (const frame of garbage) {
      await door.assertRefused(a, frame, "bad_message", JSON.stringify(frame));
    }
    assert.equal(a.isOpen, true, "garbage closed the socket");
    assert.deepEqual(a.closes, []);

    const atBob = b.nextFrame(isMessage("still here"), WAIT_MS, "bob still gets alice's messages");
    const m1 = await door.post(a, room.Uuid, "still here");
    assert.deepEqual(await atBob, m1);
    const atAlice = a.nextFrame(isMessage("me too"), WAIT_MS, "alice still gets bob's messages");
    const m2 = await door.post(b, room.Uuid, "me too");
    assert.deepEqual(await atAlice, m2);
    const page = await door.history(b, "WORKSPACE", W.id, { offset: 0, limit: 4, count: 2 });
    assert.deepEqual(page.messages, [m1, m2], "garbage stored nothing");
  });
});

// =============================================================================================
// NODE rooms asked of the backend.

describe("Pydio Cells /ws/chat with auth.mode = \"backend\"", () => {
  let app;
  let herald;
  let door;
  let dataDir;
  /** token -> the auth backend's answer {status, body}. */
  const answers = new Map();
  /** node uuid -> the status of GET <backend>/nodes/<uuid>. */
  const nodes = new Map();
  /** {path, authorization} of every request the backend got. */
  const requests = [];
  before(async () => {
    app = createHttpServer((req, res) => {
      const authorization = req.headers.authorization ?? "";
      requests.push({ path: req.url, authorization });
      const node = /^\/auth\/nodes\/([^/?]+)$/.exec(req.url);
      let status;
      let body;
      if (node) {
        status = nodes.get(decodeURIComponent(node[1])) ?? 404;
        body = status === 200 ? { uuid: node[1] } : { error: `status ${status}` };
      } else {
        const answer = answers.get(authorization.replace(/^Bearer /, "")) ?? { status: 401, body: { error: "unknown token" } };
        ({ status, body } = answer);
      }
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    });
    app.listen(0, "127.0.0.1");
    await onceEvent(app, "listening");
    dataDir = mkdtempSync(joinPath(tmpdir(), "herald-cells-chat-"));
    herald = await startHerald("cells-chat-backend", {
      authBackend: { url: `http://127.0.0.1:${app.address().port}/auth`, timeout: "1s" },
      cells: {},
      chat: { dataDir },
    });
    door = new ChatDoor(herald);
  });
  afterEach((t) => door.afterEach(t));
  after(async () => {
    await herald?.stop();
    app?.closeAllConnections();
    app?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test("the UI's JOIN sent at once after its subscribe on open is served once the backend answered, never not_subscribed", async () => {
    const W = workspace();
    const make = () => {
      const user = chatUser({ workspaces: [W] });
      const token = uid("opaque-token");
      answers.set(token, { status: 200, body: { user: user.sub, login: user.login, workspace_roots: [W] } });
      return { user, token: () => token };
    };
    const got = await door.joinRightAfterSubscribe(10, make, W);
    assert.deepEqual(got, got.map(() => "ROOM_UPDATE"), "what answered each JOIN sent right after the subscribe");
  });

  test("NODE rooms: the backend's GET /nodes/<uuid> with the session's token decides: 200 allowed, 403 and 404 forbidden, 500 unavailable", async () => {
    const W = workspace();
    const alice = chatUser({ workspaces: [W] });
    const token = uid("opaque-token");
    answers.set(token, { status: 200, body: { user: alice.sub, login: alice.login, workspace_roots: [W] } });
    const [allowed, denied, missing, broken] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    nodes.set(allowed, 200);
    nodes.set(denied, 403);
    nodes.set(broken, 500);
    const a = await door.session(alice, { token: () => token });

    const update = await door.joined(a, "NODE", allowed);
    const room = assertRoomUpdate(update, { type: "NODE", object: allowed, users: [alice.sub] }, "the JOIN of a node the backend allows");
    const comment = await door.post(a, room.Uuid, "a comment");
    assertMessage(comment, { room: room.Uuid, author: alice.sub, text: "a comment" }, "a comment in backend mode");
    const page = await door.history(a, "NODE", allowed, { offset: 0, limit: 40, count: 1 });
    assert.deepEqual(page.messages, [comment]);

    for (const [node, code, what] of [[denied, "forbidden", "403"], [missing, "forbidden", "404"], [broken, "unavailable", "500"]]) {
      await door.assertRefused(a, () => a.join("NODE", node), code, `JOIN of a node answered ${what}`);
      await door.assertRefused(a, () => a.history("NODE", node, 0, 40), code, `HISTORY of a node answered ${what}`);
    }
    for (const node of [allowed, denied, missing, broken]) {
      const asked = requests.filter((r) => r.path === `/auth/nodes/${node}`);
      assert.ok(asked.length >= 1, `the backend was not asked about ${node}: ${JSON.stringify(requests.slice(-10))}`);
      for (const r of asked) assert.equal(r.authorization, `Bearer ${token}`, `the session's credentials for ${node}`);
    }
    assert.deepEqual(a.roomUpdates.filter((r) => r.RoomTypeObject !== allowed), [], "no ROOM_UPDATE for a refused node");
  });
});

// =============================================================================================
// Two nodes on a redis-server of the test's own (the chat kept in Redis).

describe("Pydio Cells /ws/chat on two nodes sharing a Redis", () => {
  let redis;
  const nodes = [];
  const doors = [];
  before(async () => {
    redis = await startRedis();
    const cluster = { redisUrl: redis.url, prefix: uid("herald") };
    for (const n of [1, 2]) {
      const node = await startHerald(`cells-chat-cluster-${n}`, { cluster, cells: {}, chat: {} });
      nodes.push(node);
      doors.push(new ChatDoor(node));
    }
  });
  afterEach((t) => {
    for (const door of doors) door.afterEach(t);
  });
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  test("a message posted on node A reaches a Cells chat socket on node B, and B's deletion reaches A; history is shared", async () => {
    const [A, B] = doors;
    const W = workspace();
    const alice = chatUser({ workspaces: [W] });
    const bob = chatUser({ workspaces: [W] });
    const a = await A.session(alice);
    const b = await B.session(bob);
    const room = assertRoomUpdate(await A.joined(a, "WORKSPACE", W.id), { type: "WORKSPACE", object: W.id, users: [alice.sub] }, "alice's JOIN on A");
    await B.joined(b, "WORKSPACE", W.id);

    const atBob = b.nextFrame(isMessage("across nodes"), WAIT_MS, "bob, on node B, gets the message posted on node A");
    const posted = await A.post(a, room.Uuid, "across nodes");
    assert.deepEqual(await atBob, posted, "the same message on both nodes");

    const reply = await B.post(b, room.Uuid, "and back");
    const deletedAtA = a.nextFrame(
      (f) => f?.["@type"] === "DELETE_MSG" && f.Message?.Uuid === reply.Uuid,
      WAIT_MS,
      "alice, on node A, hears of bob's deletion on node B",
    );
    b.deleteMessage(reply);
    assert.deepEqual((await deletedAtA).Message, { Uuid: reply.Uuid, RoomUuid: room.Uuid });

    const { messages } = await B.history(b, "WORKSPACE", W.id, { offset: 0, limit: 40, count: 1 });
    assert.deepEqual(messages, [posted], "the history from Redis, on node B");
  });
});

// =============================================================================================
// Real Chromium, its own WebSocket.

/** What the Cells chat UI does on open: subscribe, JOIN the workspace room at once, then (here)
 * POST one text to the room once its first ROOM_UPDATE names it. */
const CHAT_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>cells chat</title>
<script>
  const q = new URLSearchParams(location.search);
  window.received = [];
  window.closes = [];
  let posted = false;
  const ws = new WebSocket(q.get("url"));
  ws.onopen = () => {
    ws.send(JSON.stringify({ "@type": "subscribe", jwt: q.get("token") }));
    ws.send(JSON.stringify({ "@type": "JOIN", Room: { Type: "WORKSPACE", RoomTypeObject: q.get("ws") } }));
  };
  ws.onmessage = (e) => {
    const frame = JSON.parse(e.data);
    window.received.push(frame);
    if (frame["@type"] === "ROOM_UPDATE" && !posted) {
      posted = true;
      ws.send(JSON.stringify({ "@type": "POST", Message: { RoomUuid: frame.Room.Uuid, Message: q.get("text") } }));
    }
  };
  ws.onclose = (e) => window.closes.push({ code: e.code, reason: e.reason });
</script>
`;

describe("Pydio Cells /ws/chat in a real browser (headless Chromium, its own WebSocket)", () => {
  let site;
  let herald;
  let door;
  let chrome;
  let dataDir;
  const logs = [];
  before(async () => {
    dataDir = mkdtempSync(joinPath(tmpdir(), "herald-cells-chat-browser-"));
    site = await startStaticServer({ pages: { "/chat.html": CHAT_PAGE } });
    herald = await startHerald("cells-chat-browser", { allowedOrigins: [site.origin], cells: {}, chat: { dataDir } });
    door = new ChatDoor(herald);
    chrome = await launchChromium();
  });
  afterEach((t) => {
    if (t.passed === false) t.diagnostic(`browser console:\n${logs.join("\n")}`);
    door.afterEach(t);
  });
  after(async () => {
    const steps = [() => chrome?.close(), () => herald?.stop(), () => site?.close()];
    for (const step of steps) await Promise.allSettled([step()]);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test("a page subscribes, joins and posts like the chat UI; a Node client in the room gets it, and the page gets the answer", async () => {
    const W = workspace();
    const alice = chatUser({ workspaces: [W] });
    const bob = chatUser({ workspaces: [W] });
    const b = await door.session(bob);
    const room = assertRoomUpdate(await door.joined(b, "WORKSPACE", W.id), { type: "WORKSPACE", object: W.id, users: [bob.sub] }, "bob's JOIN");

    const text = uid("from the browser");
    const fromPage = b.nextFrame(isMessage(text), WAIT_MS, "the page's message, at bob's");
    const context = await chrome.browser.newContext();
    try {
      const page = await context.newPage();
      page.on("console", (m) => logs.push(`console.${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
      const query = new URLSearchParams({ url: door.url, token: alice.token(), ws: W.id, text });
      await page.goto(`${site.origin}/chat.html?${query}`, { timeout: WAIT_MS });
      assertMessage(await fromPage, { room: room.Uuid, author: alice.sub, text }, "the page's message");

      const reply = await door.post(b, room.Uuid, "hello browser");
      await page.waitForFunction((uuid) => window.received.some((f) => f.Uuid === uuid), reply.Uuid, { timeout: WAIT_MS });
      const received = await page.evaluate(() => window.received);
      assert.deepEqual(received.find((f) => f.Uuid === reply.Uuid), reply, "bob's answer on the page");
      assert.deepEqual(received.filter((f) => f["@type"] === "error"), [], "error frames on the page");
      assert.deepEqual(await page.evaluate(() => window.closes), [], "the page's socket closed");
    } finally {
      await context.close();
    }
  });
});
