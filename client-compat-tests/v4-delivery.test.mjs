// socket.io-client 4.x: what backends publish and who receives it. Delivery isolation, user
// and group targeting, the union of targets delivered once, data exactly as published, the
// meta argument, every publish error code, and disconnect_user.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { UUID_RE, ack, flush, once, publish, record, startHerald, uid, withoutPosition } from "./harness.mjs";

/** Asserts the (data, meta) arguments of one delivery. */
function assertDelivery(args, { data, id, workspace, before: t0, after: t1 }, what = "delivery") {
  assert.equal(args.length, 2, `${what}: expected exactly (data, meta), got ${args.length} args`);
  const [got, meta] = args;
  assert.deepEqual(got, data, `${what}: data`);
  assert.deepEqual(Object.keys(meta).sort(), ["epoch", "id", "offset", "ts", "workspace"], `${what}: meta keys ${JSON.stringify(meta)}`);
  assert.match(meta.id, UUID_RE, `${what}: meta.id`);
  if (id !== undefined) assert.equal(meta.id, id, `${what}: meta.id is the id acked to the publisher`);
  assert.equal(meta.workspace, workspace, `${what}: meta.workspace`);
  assert.ok(Number.isInteger(meta.ts), `${what}: meta.ts is an integer (ms): ${meta.ts}`);
  if (t0 !== undefined) {
    assert.ok(meta.ts >= t0 - 50 && meta.ts <= t1 + 50, `${what}: meta.ts ${meta.ts} not within [${t0}, ${t1}]`);
  }
}

/** Asserts an error ack: exactly ok/error/message with the given code. */
function assertPublishError(reply, code, what) {
  assert.ok(reply && typeof reply === "object", `${what}: ack is not an object: ${JSON.stringify(reply)}`);
  assert.deepEqual(Object.keys(reply).sort(), ["error", "message", "ok"], `${what}: ${JSON.stringify(reply)}`);
  assert.equal(reply.ok, false, what);
  assert.equal(reply.error, code, `${what}: ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.message, "string", what);
  assert.ok(reply.message.length > 0, `${what}: empty message`);
}

describe("socket.io-client 4.x delivery", () => {
  let herald;
  let backend;
  before(async () => {
    herald = await startHerald("v4-delivery");
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  const privateSocket = async () => (backend = await herald.connectPrivate());

  /** Publishes through /private or HTTP; returns {id, before, after}. */
  async function publishVia(door, body) {
    const t0 = Date.now();
    let id;
    if (door === "private") {
      ({ id } = await publish(backend, body));
    } else {
      const res = await herald.publishHttp(body);
      assert.equal(res.status, 202, `HTTP publish: ${res.status} ${res.text}`);
      ({ id } = res.json);
    }
    assert.match(id, UUID_RE);
    return { id, before: t0, after: Date.now() };
  }

  for (const door of ["private", "http"]) {
    describe(`isolation, published via ${door === "private" ? "/private" : "POST /api/v1/publish"}`, () => {
      test("only the socket registered to ws1 receives a ws1 publish", async () => {
        await privateSocket();
        const [ws1, ws2, ws3] = [uid("ws1"), uid("ws2"), uid("ws3")];
        const aliceSub = uid("alice");
        const alice = await herald.user({ sub: aliceSub, workspaces: [ws1], register: [ws1] });
        const inWs2 = await herald.user({ workspaces: [ws1, ws2], register: [ws2] });
        const otherUser = await herald.user({ workspaces: [ws3], register: [ws3] });
        const unregistered = await herald.user({ workspaces: [ws1] });
        const aliceUnregistered = await herald.user({ sub: aliceSub, workspaces: [ws1] });
        const event = uid("doc-changed");
        const recs = [alice, inWs2, otherUser, unregistered, aliceUnregistered].map((s) => record(s, event));
        const data = { file: "report.odt", by: "bob", size: 1234 };
        const sent = await publishVia(door, { event, workspace: ws1, data });
        // The marker reaches every socket after the ws1 event would have.
        await flush(backend, [alice, inWs2, otherUser, unregistered, aliceUnregistered]);
        assert.equal(recs[0].events.length, 1, "the ws1 socket received the event exactly once");
        assertDelivery(recs[0].events[0], { data, id: sent.id, workspace: ws1, ...sent });
        assert.deepEqual(recs[1].events, [], "a socket registered to ws2 received a ws1 event");
        assert.deepEqual(recs[2].events, [], "a socket of another user received a ws1 event");
        assert.deepEqual(recs[3].events, [], "a connected but unregistered socket received a ws1 event");
        assert.deepEqual(recs[4].events, [], "the ws1 user's other, unregistered socket received a ws1 event");
      });

      test("workspaces: [ws1, ws2] reaches both rooms, each socket tagged with its workspace", async () => {
        await privateSocket();
        const [ws1, ws2, ws3] = [uid("ws1"), uid("ws2"), uid("ws3")];
        const a = await herald.user({ workspaces: [ws1], register: [ws1] });
        const b = await herald.user({ workspaces: [ws2], register: [ws2] });
        const c = await herald.user({ workspaces: [ws3], register: [ws3] });
        const event = uid("multi");
        const recs = [a, b, c].map((s) => record(s, event));
        const sent = await publishVia(door, { event, workspaces: [ws1, ws2], data: [1, 2] });
        await flush(backend, [a, b, c]);
        assert.equal(recs[0].events.length, 1);
        assertDelivery(recs[0].events[0], { data: [1, 2], id: sent.id, workspace: ws1, ...sent }, "ws1 socket");
        assert.equal(recs[1].events.length, 1);
        assertDelivery(recs[1].events[0], { data: [1, 2], id: sent.id, workspace: ws2, ...sent }, "ws2 socket");
        assert.deepEqual(recs[2].events, []);
      });
    });
  }

  describe("user and group targeting", () => {
    test("user: every socket of that user, registered or not, meta.workspace null", async () => {
      await privateSocket();
      const ws = uid("ws");
      const sub = uid("alice");
      const a1 = await herald.user({ sub, workspaces: [ws], register: [ws] });
      const a2 = await herald.user({ sub, transports: ["polling"] });
      const bob = await herald.user({ workspaces: [ws], register: [ws] });
      const event = uid("to-alice");
      const recs = [a1, a2, bob].map((s) => record(s, event));
      const sent = await publishVia("private", { event, user: sub, data: { n: 1 } });
      await flush(backend, [a1, a2, bob]);
      for (const [i, rec] of recs.slice(0, 2).entries()) {
        assert.equal(rec.events.length, 1, `alice's socket ${i + 1}`);
        assertDelivery(rec.events[0], { data: { n: 1 }, id: sent.id, workspace: null, ...sent });
      }
      assert.deepEqual(recs[2].events, [], "another user received a user-targeted event");
    });

    test("users: each listed user, nobody else", async () => {
      await privateSocket();
      const u1 = await herald.user({});
      const u2 = await herald.user({});
      const u3 = await herald.user({});
      const event = uid("to-users");
      const recs = [u1, u2, u3].map((s) => record(s, event));
      const sent = await publishVia("http", { event, users: [u1.sub, u2.sub, uid("offline")], data: "hi" });
      await flush(backend, [u1, u2, u3]);
      for (const rec of recs.slice(0, 2)) {
        assert.equal(rec.events.length, 1);
        assertDelivery(rec.events[0], { data: "hi", id: sent.id, workspace: null, ...sent });
      }
      assert.deepEqual(recs[2].events, []);
    });

    test("group: members of the token's groups, nobody else", async () => {
      await privateSocket();
      const eng = `/org/${uid("eng")}`;
      const sales = `/org/${uid("sales")}`;
      const member = await herald.user({ groups: [sales, eng] });
      const member2 = await herald.user({ groups: [eng], transports: ["websocket"] });
      const other = await herald.user({ groups: [sales] });
      const none = await herald.user({});
      const event = uid("to-group");
      const recs = [member, member2, other, none].map((s) => record(s, event));
      const sent = await publishVia("private", { event, group: eng, data: { g: eng } });
      await flush(backend, [member, member2, other, none]);
      for (const rec of recs.slice(0, 2)) {
        assert.equal(rec.events.length, 1);
        assertDelivery(rec.events[0], { data: { g: eng }, id: sent.id, workspace: null, ...sent });
      }
      assert.deepEqual(recs[2].events, [], "a member of another group received the event");
      assert.deepEqual(recs[3].events, [], "a user without groups received the event");
    });

    test("group via HTTP", async () => {
      await privateSocket();
      const g = `/${uid("g")}`;
      const member = await herald.user({ groups: [g] });
      const event = uid("to-group");
      const arrival = once(member, event, undefined, "group-targeted HTTP publish");
      const sent = await publishVia("http", { event, group: g, data: 7 });
      assertDelivery(await arrival, { data: 7, id: sent.id, workspace: null, ...sent });
    });
  });

  describe("union of targets: each socket once", () => {
    test("workspace + user + group naming the same socket: one copy, meta.workspace = the workspace", async () => {
      await privateSocket();
      const ws1 = uid("ws1");
      const g = `/${uid("g")}`;
      const socket = await herald.user({ workspaces: [ws1], groups: [g], register: [ws1] });
      const event = uid("union");
      const rec = record(socket, event);
      const sent = await publishVia("private", {
        event,
        workspace: ws1,
        user: socket.sub,
        users: [socket.sub],
        group: g,
        data: "once",
      });
      await flush(backend, [socket]);
      assert.equal(rec.events.length, 1, `received ${rec.events.length} copies`);
      assertDelivery(rec.events[0], { data: "once", id: sent.id, workspace: ws1, ...sent });
    });

    test("same over HTTP", async () => {
      await privateSocket();
      const ws1 = uid("ws1");
      const socket = await herald.user({ workspaces: [ws1], register: [ws1] });
      const event = uid("union");
      const rec = record(socket, event);
      const sent = await publishVia("http", { event, workspace: ws1, user: socket.sub, data: "once" });
      await flush(backend, [socket]);
      assert.equal(rec.events.length, 1, `received ${rec.events.length} copies`);
      assertDelivery(rec.events[0], { data: "once", id: sent.id, workspace: ws1, ...sent });
    });

    test("a socket in two targeted workspaces gets one copy tagged with one of them", async () => {
      await privateSocket();
      const [ws1, ws2] = [uid("ws1"), uid("ws2")];
      const socket = await herald.user({ workspaces: [ws1, ws2], register: [ws1, ws2] });
      const event = uid("two-ws");
      const rec = record(socket, event);
      await publishVia("private", { event, workspaces: [ws1, ws2], workspace: ws1, data: 1 });
      await flush(backend, [socket]);
      assert.equal(rec.events.length, 1, `received ${rec.events.length} copies`);
      assert.ok([ws1, ws2].includes(rec.events[0][1].workspace), `meta.workspace ${rec.events[0][1].workspace}`);
    });

    test("one publish: the ws1 socket is tagged ws1, the user-only socket null, same id", async () => {
      await privateSocket();
      const ws1 = uid("ws1");
      const inWs = await herald.user({ workspaces: [ws1], register: [ws1] });
      const byUser = await herald.user({});
      const event = uid("mixed");
      const recs = [inWs, byUser].map((s) => record(s, event));
      const sent = await publishVia("private", { event, workspace: ws1, user: byUser.sub, data: null });
      await flush(backend, [inWs, byUser]);
      assert.equal(recs[0].events.length, 1);
      assertDelivery(recs[0].events[0], { data: null, id: sent.id, workspace: ws1, ...sent });
      assert.equal(recs[1].events.length, 1);
      assertDelivery(recs[1].events[0], { data: null, id: sent.id, workspace: null, ...sent });
    });

    test("user + group naming the same socket: one copy, meta.workspace null", async () => {
      await privateSocket();
      const g = `/${uid("g")}`;
      const socket = await herald.user({ groups: [g] });
      const event = uid("user-group");
      const rec = record(socket, event);
      await publishVia("private", { event, user: socket.sub, group: g, data: 1 });
      await flush(backend, [socket]);
      assert.equal(rec.events.length, 1, `received ${rec.events.length} copies`);
      assert.equal(rec.events[0][1].workspace, null);
    });

    test("each publish gets a new id", async () => {
      await privateSocket();
      const socket = await herald.user({});
      const event = uid("ids");
      const rec = record(socket, event);
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push((await publishVia(i % 2 ? "http" : "private", { event, user: socket.sub, data: i })).id);
      await flush(backend, [socket]);
      assert.equal(new Set(ids).size, 5);
      assert.deepEqual(rec.events.map(([data]) => data), [0, 1, 2, 3, 4], "events arrive in publish order");
      assert.deepEqual(rec.events.map(([, meta]) => meta.id), ids);
    });
  });

  describe("data exactly as published", () => {
    const cases = [
      ["a nested object", { a: { b: { c: [1, { d: "deep" }] } }, e: true, f: null }],
      ["unicode text", { text: "héllo wörld — 日本語 — 😀👍🏽 — \u2028\u2029 — \u0000 — \t\"quoted\"\\" }],
      ["an array of mixed values", [1, "two", 3.5, null, false, { six: 6 }, [7]]],
      ["a string", "just a string"],
      ["an empty string", ""],
      ["zero", 0],
      ["false", false],
      ["an empty object", {}],
      ["an empty array", []],
      ["numbers", { int: 42, neg: -7, frac: 0.1, exp: 1e21, max: Number.MAX_SAFE_INTEGER, min: -Number.MAX_SAFE_INTEGER }],
      ["explicit null", null],
      ["deep nesting (32 levels)", Array.from({ length: 32 }).reduce((acc) => ({ n: acc }), "bottom")],
      ["a 200 KB string", "x".repeat(200 * 1024)],
    ];
    for (const door of ["private", "http"]) {
      for (const [name, data] of cases) {
        test(`${name} (${door})`, async () => {
          await privateSocket();
          const socket = await herald.user({});
          const event = uid("data");
          const arrival = once(socket, event, undefined, `event with ${name}`);
          const sent = await publishVia(door, { event, user: socket.sub, data });
          assertDelivery(await arrival, { data, id: sent.id, workspace: null, ...sent }, name);
        });
      }
    }

    test("absent data arrives as null, still as two arguments", async () => {
      await privateSocket();
      const socket = await herald.user({});
      for (const door of ["private", "http"]) {
        const event = uid("no-data");
        const arrival = once(socket, event, undefined, "event without data");
        const sent = await publishVia(door, { event, user: socket.sub });
        assertDelivery(await arrival, { data: null, id: sent.id, workspace: null, ...sent }, door);
      }
    });

    test("object key order is kept", async () => {
      await privateSocket();
      const socket = await herald.user({});
      const event = uid("order");
      const arrival = once(socket, event);
      // Raw JSON body so the server sees exactly this key order.
      const body = `{"event":${JSON.stringify(event)},"user":${JSON.stringify(socket.sub)},"data":{"zeta":1,"alpha":2,"mid":{"y":1,"x":2}}}`;
      const res = await herald.publishHttp(body);
      assert.equal(res.status, 202, res.text);
      const [data] = await arrival;
      assert.deepEqual(Object.keys(data), ["zeta", "alpha", "mid"]);
      assert.deepEqual(Object.keys(data.mid), ["y", "x"]);
    });

    test("event names with unicode, spaces and 128 bytes are delivered under that name", async () => {
      await privateSocket();
      const socket = await herald.user({});
      const names = [`fichier modifié 📄 ${uid("")}`, `${uid("long")}`.padEnd(128, "z"), "é".repeat(64)];
      assert.equal(Buffer.byteLength(names[1]), 128);
      assert.equal(Buffer.byteLength(names[2]), 128);
      for (const event of names) {
        const arrival = once(socket, event, undefined, `event named ${JSON.stringify(event)}`);
        await publish(backend, { event, user: socket.sub, data: event });
        assert.equal((await arrival)[0], event);
      }
    });
  });

  describe("/private publish error acks", () => {
    const many = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const cases = [
      // bad_request: not an object
      ["bad_request", "a string argument", ["publish me"]],
      ["bad_request", "a number argument", [5]],
      ["bad_request", "a null argument", [null]],
      ["bad_request", "an array argument", [[{ event: "e", workspace: "w" }]]],
      ["bad_request", "no argument", []],
      // bad_request: wrong types
      ["bad_request", "event not a string", [{ event: 5, workspace: "w" }]],
      ["bad_request", "missing event", [{ workspace: "w", data: 1 }]],
      ["bad_request", "workspace not a string", [{ event: "e", workspace: 5 }]],
      ["bad_request", "workspaces not an array", [{ event: "e", workspaces: "w" }]],
      ["bad_request", "workspaces with a number", [{ event: "e", workspaces: ["w", 1] }]],
      ["bad_request", "user not a string", [{ event: "e", user: { id: "u" } }]],
      ["bad_request", "users not an array", [{ event: "e", users: "u" }]],
      ["bad_request", "group not a string", [{ event: "e", group: ["/g"] }]],
      // bad_request: unknown field
      ["bad_request", "an unknown field", [{ event: "e", workspace: "w", extra: 1 }]],
      ["bad_request", "a misspelt target", [{ event: "e", workpace: "w" }]],
      // bad_request: invalid ids
      ["bad_request", "empty workspace id", [{ event: "e", workspace: "" }]],
      ["bad_request", "workspace id of 257 bytes", [{ event: "e", workspace: "w".repeat(257) }]],
      ["bad_request", "empty user id", [{ event: "e", user: "" }]],
      ["bad_request", "user id of 257 bytes", [{ event: "e", users: ["u".repeat(257)] }]],
      ["bad_request", "empty group", [{ event: "e", group: "" }]],
      ["bad_request", "workspace id with a control character", [{ event: "e", workspace: "a\u0001b" }]],
      // invalid_event
      ["invalid_event", "empty event", [{ event: "", workspace: "w" }]],
      ["invalid_event", "event of 129 bytes", [{ event: "e".repeat(129), workspace: "w" }]],
      ["invalid_event", "event of 129 bytes in 65 characters", [{ event: "é".repeat(64) + "e", workspace: "w" }]],
      // reserved_event
      ...["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"].map(
        (event) => ["reserved_event", `reserved event ${event}`, [{ event, workspace: "w" }]],
      ),
      // no_target
      ["no_target", "no target at all", [{ event: "e", data: 1 }]],
      ["no_target", "empty workspaces and users", [{ event: "e", workspaces: [], users: [] }]],
      // too_many_targets
      ["too_many_targets", "1001 workspaces", [{ event: "e", workspaces: many(1001, "w") }]],
      ["too_many_targets", "1001 users", [{ event: "e", users: many(1001, "u") }]],
      [
        "too_many_targets",
        "500 workspaces + 500 users + a group",
        [{ event: "e", workspaces: many(500, "w"), users: many(500, "u"), group: "/g" }],
      ],
    ];
    for (const [code, name, args] of cases) {
      test(`${code}: ${name}`, async () => {
        await privateSocket();
        assertPublishError(await ack(backend, "publish", args), code, name);
        assert.equal(backend.connected, true, "the backend was disconnected by a refused publish");
      });
    }

    test("exactly 1000 targets is accepted", async () => {
      await privateSocket();
      const reply = await ack(backend, "publish", [{ event: uid("e"), workspaces: many(500, uid("w")), users: many(500, uid("u")) }]);
      assert.equal(reply.ok, true, JSON.stringify(reply));
      assert.match(reply.id, UUID_RE);
    });

    test("a refused publish delivers nothing and the backend keeps working", async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws], register: [ws] });
      const event = uid("refused");
      const rec = record(socket, event);
      assertPublishError(await ack(backend, "publish", [{ event, workspace: ws, bogus: true }]), "bad_request", "unknown field");
      assertPublishError(await ack(backend, "publish", [{ event, workspace: ws, users: many(1001, "u") }]), "too_many_targets", "too many");
      await flush(backend, [socket]);
      assert.deepEqual(rec.events, []);
    });

    test("an ok ack is exactly {ok: true, id}", async () => {
      await privateSocket();
      const reply = await ack(backend, "publish", [{ event: uid("e"), user: uid("nobody"), data: 1 }]);
      assert.deepEqual(Object.keys(reply).sort(), ["id", "ok"]);
      assert.equal(reply.ok, true);
      assert.match(reply.id, UUID_RE);
    });

    test("unknown /private event: bad_request \"unknown event\"", async () => {
      await privateSocket();
      assert.deepEqual(await ack(backend, "register", [{ workspace: "w" }]), {
        ok: false,
        error: "bad_request",
        message: "unknown event",
      });
      assert.equal((await ack(backend, "publish", [{ event: uid("e"), user: uid("u") }])).ok, true);
    });
  });

  describe("disconnect_user", () => {
    test("session_invalid {reason: \"logout\"}, then server disconnect, on every socket of the user", async () => {
      await privateSocket();
      const sub = uid("alice");
      const ws = uid("ws");
      const sockets = [
        await herald.user({ sub, workspaces: [ws], register: [ws], transports: ["websocket"] }),
        await herald.user({ sub, transports: ["polling"] }),
        await herald.user({ sub }),
      ];
      const bystander = await herald.user({ workspaces: [ws], register: [ws] });
      const bystanderDisconnect = record(bystander, "disconnect");
      const bystanderInvalid = record(bystander, "session_invalid");
      const seen = sockets.map((socket, i) => {
        const log = [];
        socket.on("session_invalid", (...args) => log.push(["session_invalid", ...args]));
        const done = once(socket, "disconnect", undefined, `disconnect of alice's socket ${i + 1}`).then(
          ([reason]) => log.push(["disconnect", reason]),
        );
        return { log, done };
      });
      const reply = await ack(backend, "disconnect_user", [{ user: sub }]);
      assert.deepEqual(reply, { ok: true, sockets: 3 });
      for (const [i, { log, done }] of seen.entries()) {
        await done;
        assert.deepEqual(
          log,
          [["session_invalid", { reason: "logout" }], ["disconnect", "io server disconnect"]],
          `socket ${i + 1} saw ${JSON.stringify(log)}`,
        );
        assert.equal(sockets[i].connected, false);
      }
      await flush(backend, [bystander]);
      assert.equal(bystander.connected, true);
      assert.deepEqual(bystanderDisconnect.events, []);
      assert.deepEqual(bystanderInvalid.events, []);
    });

    test("the given reason is forwarded", async () => {
      await privateSocket();
      const socket = await herald.user({});
      const invalid = once(socket, "session_invalid", undefined, "session_invalid with a reason");
      const gone = once(socket, "disconnect", undefined, "server disconnect");
      assert.deepEqual(await ack(backend, "disconnect_user", [{ user: socket.sub, reason: "password changed" }]), {
        ok: true,
        sockets: 1,
      });
      assert.deepEqual(await invalid, [{ reason: "password changed" }]);
      assert.equal((await gone)[0], "io server disconnect");
    });

    test("a user with no sockets: {ok: true, sockets: 0}", async () => {
      await privateSocket();
      assert.deepEqual(await ack(backend, "disconnect_user", [{ user: uid("nobody") }]), { ok: true, sockets: 0 });
    });

    test("the disconnected sockets no longer receive the user's events", async () => {
      await privateSocket();
      const socket = await herald.user({});
      const gone = once(socket, "disconnect", undefined, "server disconnect");
      await ack(backend, "disconnect_user", [{ user: socket.sub }]);
      await gone;
      // The server no longer has a socket in that user's room.
      assert.deepEqual(await ack(backend, "disconnect_user", [{ user: socket.sub }]), { ok: true, sockets: 0 });
    });

    for (const [name, args] of [
      ["no argument", []],
      ["an empty object", [{}]],
      ["a number user", [{ user: 5 }]],
      ["an empty user", [{ user: "" }]],
      ["an unknown field", [{ user: "u", extra: 1 }]],
      ["a string argument", ["u"]],
    ]) {
      test(`bad payload: ${name}`, async () => {
        await privateSocket();
        const reply = await ack(backend, "disconnect_user", args);
        assert.equal(reply.ok, false, JSON.stringify(reply));
        assert.equal(reply.error, "bad_request", JSON.stringify(reply));
        assert.equal(backend.connected, true);
      });
    }
  });
});
