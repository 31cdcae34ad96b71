// socket.io-client 2.5.0 (Engine.IO v3), credentials in the socket query as 2.x apps send them:
// io(url + "/public", { query: { token } }). Default transports (polling, then the upgrade to
// websocket), polling only, and websocket only (where the client sends `40/public?token=...`
// over the WebSocket, which herald bridges to strip the query as npm socket.io does).

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { JWT_SECRET, UUID_RE, WAIT_MS, ack, flush, mintToken, once, publish, record, startHerald, uid, withoutPosition } from "./harness.mjs";

/** Resolves with {event, arg} for the first of connect / error / connect_error on a v2 socket. */
function firstOutcome(socket) {
  return new Promise((resolve, reject) => {
    const events = ["connect", "error", "connect_error"];
    const handlers = {};
    const cleanup = () => {
      clearTimeout(timer);
      for (const e of events) socket.off(e, handlers[e]);
    };
    for (const e of events) {
      handlers[e] = (arg) => {
        cleanup();
        resolve({ event: e, arg });
      };
      socket.on(e, handlers[e]);
    }
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`v2 socket: no connect, error or connect_error within ${WAIT_MS} ms`));
    }, WAIT_MS);
  });
}

const TRANSPORTS = [
  ["default transports", undefined],
  ["polling only", ["polling"]],
  ["websocket only", ["websocket"]],
];

describe("socket.io-client 2.x", () => {
  let herald;
  let backend;
  before(async () => {
    herald = await startHerald("v2");
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  const privateSocket = async () => (backend = await herald.connectPrivate());

  test("default transports: connects over polling, then upgrades to websocket", async () => {
    await privateSocket();
    const ws = uid("ws");
    const socket = herald.publicV2({ token: mintToken({ sub: uid("u"), workspaces: [ws] }) });
    const engine = socket.io.engine;
    assert.ok(engine, "the v2 manager has no engine right after io()");
    const upgrade = once(engine, "upgrade", undefined, "v2 engine upgrade to websocket");
    await once(socket, "connect", undefined, "v2 connect");
    const [transport] = await upgrade;
    assert.equal(transport.name, "websocket");
    assert.equal(socket.io.engine.transport.name, "websocket");
    assert.deepEqual(withoutPosition(await ack(socket, "register", [{ workspace: ws }])), { ok: true, workspace: ws });
    const event = uid("after-upgrade");
    const arrival = once(socket, event, undefined, "event after upgrade");
    const { id } = await publish(backend, { event, workspace: ws, data: { up: true } });
    const [data, meta] = await arrival;
    assert.deepEqual(data, { up: true });
    assert.equal(meta.id, id);
  });

  for (const [name, transports] of TRANSPORTS) {
    describe(name, () => {
      test("connects with query.token", async () => {
        const socket = await herald.connectPublicV2({ token: mintToken({ sub: uid("u") }), transports });
        assert.equal(socket.connected, true);
        assert.equal(socket.nsp, "/public");
        if (transports) assert.equal(socket.io.engine.transport.name, transports[0]);
      });

      const refusals = [
        ["no token", () => ({})],
        ["garbage token", () => ({ token: "garbage" })],
        ["wrong secret", () => ({ token: mintToken({ sub: "u", secret: `${JWT_SECRET}-not` }) })],
        ["expired token", () => ({ token: mintToken({ sub: "u", exp: Math.floor(Date.now() / 1000) - 3600 }) })],
        ["alg none", () => ({ token: mintToken({ sub: "u", algorithm: "none" }) })],
        ["HS512 token", () => ({ token: mintToken({ sub: "u", algorithm: "HS512" }) })],
        ["missing sub", () => ({ token: mintToken({ omit: ["sub"] }) })],
      ];
      for (const [why, options] of refusals) {
        test(`refused (${why}): "error" event with {message: "unauthorized"}`, async () => {
          const socket = herald.publicV2({ ...options(), transports });
          const outcome = await firstOutcome(socket);
          assert.equal(outcome.event, "error", `expected the "error" event, got ${JSON.stringify(outcome)}`);
          // npm socket.io sends a string here; herald sends an object (documented difference).
          assert.equal(typeof outcome.arg, "object", `error payload ${JSON.stringify(outcome.arg)}`);
          assert.equal(outcome.arg?.message, "unauthorized");
          assert.equal(socket.connected, false);
        });
      }

      test("register: ok, forbidden, bad_request; the socket stays connected", async () => {
        const ws = uid("ws");
        const socket = await herald.user({ client: "v2", workspaces: [ws], transports });
        assert.deepEqual(await ack(socket, "register", [{ workspace: uid("not-mine") }]), {
          ok: false,
          error: "forbidden",
        });
        const bad = await ack(socket, "register", [42]);
        assert.equal(bad.ok, false);
        assert.equal(bad.error, "bad_request");
        assert.equal(typeof bad.message, "string");
        assert.deepEqual(withoutPosition(await ack(socket, "register", [{ workspace: ws }])), { ok: true, workspace: ws });
        assert.deepEqual(withoutPosition(await ack(socket, "register", [ws])), { ok: true, workspace: ws });
        assert.deepEqual(await ack(socket, "nope", [1]), { ok: false, error: "bad_request", message: "unknown event" });
        assert.equal(socket.connected, true);
      });

      test("no workspaces claim: register forbidden", async () => {
        const socket = await herald.user({ client: "v2", transports });
        assert.deepEqual(await ack(socket, "register", [uid("ws")]), { ok: false, error: "forbidden" });
      });

      test("receives a workspace publish as (data, meta); unregistered sockets do not", async () => {
        await privateSocket();
        const ws = uid("ws");
        const socket = await herald.user({ client: "v2", workspaces: [ws], register: [ws], transports });
        const idle = await herald.user({ client: "v2", workspaces: [ws], transports });
        const event = uid("v2-event");
        const rec = record(socket, event);
        const idleRec = record(idle, event);
        const data = { text: "héllo 日本 😀 \u2028", list: [1, 2.5, null, true], nested: { a: { b: "c" } } };
        const t0 = Date.now();
        const { id } = await publish(backend, { event, workspace: ws, data });
        const t1 = Date.now();
        await flush(backend, [socket, idle]);
        assert.equal(rec.events.length, 1, `received ${rec.events.length} copies`);
        const args = rec.events[0];
        assert.equal(args.length, 2, "exactly (data, meta)");
        const [got, meta] = args;
        assert.deepEqual(got, data);
        assert.deepEqual(Object.keys(meta).sort(), ["epoch", "id", "offset", "ts", "workspace"]);
        assert.equal(meta.id, id);
        assert.match(meta.id, UUID_RE);
        assert.equal(meta.workspace, ws);
        assert.ok(meta.ts >= t0 - 50 && meta.ts <= t1 + 50, `meta.ts ${meta.ts}`);
        assert.deepEqual(idleRec.events, [], "an unregistered v2 socket received a workspace event");
      });

      test("a large unicode payload arrives intact", async () => {
        await privateSocket();
        const socket = await herald.user({ client: "v2", transports });
        const data = { blob: "😀é日".repeat(20000), n: 1 };
        const event = uid("big");
        const arrival = once(socket, event, undefined, "large unicode event");
        const res = await herald.publishHttp({ event, user: socket.sub, data });
        assert.equal(res.status, 202, res.text);
        const [got, meta] = await arrival;
        assert.deepEqual(got, data);
        assert.equal(meta.id, res.json.id);
      });

      test("user targeting: meta.workspace null; another user gets nothing", async () => {
        await privateSocket();
        const socket = await herald.user({ client: "v2", transports });
        const other = await herald.user({ client: "v2", transports });
        const event = uid("to-user");
        const rec = record(socket, event);
        const otherRec = record(other, event);
        const { id } = await publish(backend, { event, user: socket.sub, data: "for you" });
        await flush(backend, [socket, other]);
        assert.equal(rec.events.length, 1);
        assert.equal(rec.events[0][0], "for you");
        assert.equal(rec.events[0][1].id, id);
        assert.equal(rec.events[0][1].workspace, null);
        assert.deepEqual(otherRec.events, []);
      });

      test("register then unregister back to back: ends unregistered", async () => {
        await privateSocket();
        const ws = uid("ws");
        const socket = await herald.user({ client: "v2", workspaces: [ws], transports });
        const [r1, r2] = await Promise.all([ack(socket, "register", [ws]), ack(socket, "unregister", [ws])]);
        assert.deepEqual(withoutPosition(r1), { ok: true, workspace: ws });
        assert.deepEqual(r2, { ok: true });
        const event = uid("after-unregister");
        const rec = record(socket, event);
        await publish(backend, { event, workspace: ws });
        await flush(backend, [socket]);
        assert.deepEqual(rec.events, []);
      });

      test("disconnect_user: session_invalid, then io server disconnect", async () => {
        await privateSocket();
        const socket = await herald.user({ client: "v2", transports });
        const log = [];
        socket.on("session_invalid", (payload) => log.push(["session_invalid", payload]));
        const gone = once(socket, "disconnect", undefined, "v2 server disconnect").then(([reason]) =>
          log.push(["disconnect", reason]),
        );
        assert.deepEqual(await ack(backend, "disconnect_user", [{ user: socket.sub }]), { ok: true, sockets: 1 });
        await gone;
        assert.deepEqual(log, [
          ["session_invalid", { reason: "logout" }],
          ["disconnect", "io server disconnect"],
        ]);
        assert.equal(socket.connected, false);
      });
    });
  }

  test("v2 and v4 clients in the same workspace receive the same publish", async () => {
    await privateSocket();
    const ws = uid("ws");
    const v2Default = await herald.user({ client: "v2", workspaces: [ws], register: [ws] });
    const v2Polling = await herald.user({ client: "v2", workspaces: [ws], register: [ws], transports: ["polling"] });
    const v4 = await herald.user({ workspaces: [ws], register: [ws] });
    const v4Ws = await herald.user({ workspaces: [ws], register: [ws], transports: ["websocket"] });
    const sockets = [v2Default, v2Polling, v4, v4Ws];
    for (const door of ["private", "http"]) {
      const event = uid("shared");
      const recs = sockets.map((s) => record(s, event));
      const data = { door, items: ["a", "b"], ok: true };
      let id;
      if (door === "private") ({ id } = await publish(backend, { event, workspace: ws, data }));
      else {
        const res = await herald.publishHttp({ event, workspace: ws, data });
        assert.equal(res.status, 202, res.text);
        id = res.json.id;
      }
      await flush(backend, sockets);
      for (const [i, rec] of recs.entries()) {
        assert.equal(rec.events.length, 1, `${door}: socket ${i} received ${rec.events.length} copies`);
        const [got, meta] = rec.events[0];
        assert.deepEqual(got, data, `${door}: socket ${i} data`);
        assert.equal(meta.id, id, `${door}: socket ${i} meta.id`);
        assert.equal(meta.workspace, ws, `${door}: socket ${i} meta.workspace`);
      }
    }
  });

  test("disconnect_user reaches a user's v2 and v4 sockets alike", async () => {
    await privateSocket();
    const sub = uid("alice");
    const sockets = [
      await herald.user({ sub, client: "v2" }),
      await herald.user({ sub, client: "v2", transports: ["polling"] }),
      await herald.user({ sub }),
    ];
    const invalid = sockets.map((s, i) => once(s, "session_invalid", undefined, `session_invalid on socket ${i}`));
    const gone = sockets.map((s, i) => once(s, "disconnect", undefined, `disconnect of socket ${i}`));
    assert.deepEqual(await ack(backend, "disconnect_user", [{ user: sub, reason: "revoked" }]), { ok: true, sockets: 3 });
    for (const [i, p] of invalid.entries()) assert.deepEqual((await p)[0], { reason: "revoked" }, `socket ${i}`);
    for (const [i, p] of gone.entries()) assert.equal((await p)[0], "io server disconnect", `socket ${i}`);
  });
});
