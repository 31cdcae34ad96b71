// socket.io-client 4.x: transports, handshake credentials and every refusal, on /public and
// /private, plus a custom engine path.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Manager } from "socket.io-client";

import {
  PRIVATE_KEY,
  JWT_SECRET,
  ack,
  flush,
  mintToken,
  once,
  publish,
  record,
  refused,
  startHerald,
  uid,
  withoutPosition,
} from "./harness.mjs";

/** Proves a connected /public socket is usable: it registers and receives a publish. */
async function assertUsable(herald, socket, workspace) {
  const reply = await ack(socket, "register", [{ workspace }]);
  assert.deepEqual(withoutPosition(reply), { ok: true, workspace });
  const backend = await herald.connectPrivate();
  const event = uid("usable");
  const arrival = once(socket, event, undefined, "publish to the registered workspace");
  const { id } = await publish(backend, { event, workspace, data: { hello: "world" } });
  const [data, meta] = await arrival;
  assert.deepEqual(data, { hello: "world" });
  assert.equal(meta.id, id);
  assert.equal(meta.workspace, workspace);
}

describe("socket.io-client 4.x handshake", () => {
  let herald;
  before(async () => {
    herald = await startHerald("v4-connect");
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  describe("transports", () => {
    test("websocket only", async () => {
      const ws = uid("ws");
      const sub = uid("alice");
      const socket = await herald.connectPublic({
        token: mintToken({ sub, workspaces: [ws] }),
        transports: ["websocket"],
      });
      assert.equal(socket.io.engine.transport.name, "websocket");
      await assertUsable(herald, socket, ws);
      assert.equal(socket.io.engine.transport.name, "websocket");
    });

    test("polling only", async () => {
      const ws = uid("ws");
      const socket = await herald.connectPublic({
        token: mintToken({ sub: uid("alice"), workspaces: [ws] }),
        transports: ["polling"],
      });
      assert.equal(socket.io.engine.transport.name, "polling");
      await assertUsable(herald, socket, ws);
      assert.equal(socket.io.engine.transport.name, "polling");
    });

    test("polling upgraded to websocket (default transports)", async () => {
      const ws = uid("ws");
      const socket = herald.publicV4({ token: mintToken({ sub: uid("alice"), workspaces: [ws] }) });
      // The engine exists as soon as io() returns (autoConnect): listen before it can upgrade.
      const engine = socket.io.engine;
      assert.ok(engine, "the manager has no engine right after io()");
      const upgrade = once(engine, "upgrade", undefined, "engine upgrade from polling to websocket");
      const connect = once(socket, "connect", undefined, "connect with default transports");
      const [transport] = await upgrade;
      await connect;
      assert.equal(transport.name, "websocket");
      assert.equal(socket.io.engine.transport.name, "websocket");
      await assertUsable(herald, socket, ws);
    });
  });

  describe("/public credentials", () => {
    test("auth.token", async () => {
      const ws = uid("ws");
      const socket = await herald.connectPublic({ token: mintToken({ sub: uid("u"), workspaces: [ws] }) });
      await assertUsable(herald, socket, ws);
    });

    test("query.token", async () => {
      const ws = uid("ws");
      const socket = await herald.connectPublic({
        query: { token: mintToken({ sub: uid("u"), workspaces: [ws] }) },
      });
      await assertUsable(herald, socket, ws);
    });

    for (const transports of [["polling"], ["websocket"]]) {
      test(`Authorization: Bearer header (${transports[0]})`, async () => {
        const ws = uid("ws");
        const token = mintToken({ sub: uid("u"), workspaces: [ws] });
        const socket = await herald.connectPublic({
          extraHeaders: { Authorization: `Bearer ${token}` },
          transports,
        });
        await assertUsable(herald, socket, ws);
      });
    }

    test("the user of the token is the user of the socket", async () => {
      const backend = await herald.connectPrivate();
      const alice = await herald.user({ sub: uid("alice") });
      const event = uid("to-user");
      const arrival = once(alice, event, undefined, "event published to the token's sub");
      await publish(backend, { event, user: alice.sub, data: 1 });
      const [data, meta] = await arrival;
      assert.equal(data, 1);
      assert.equal(meta.workspace, null);
    });

    // First present wins: auth.token, then query.token, then the Authorization header.
    const precedence = [
      ["auth.token wins over query.token", { auth: "good", query: "bad" }, true],
      ["auth.token wins over query.token (refusal)", { auth: "bad", query: "good" }, false],
      ["auth.token wins over the header", { auth: "good", header: "bad" }, true],
      ["auth.token wins over the header (refusal)", { auth: "bad", header: "good" }, false],
      ["query.token wins over the header", { query: "good", header: "bad" }, true],
      ["query.token wins over the header (refusal)", { query: "bad", header: "good" }, false],
    ];
    for (const [name, where, admitted] of precedence) {
      test(`precedence: ${name}`, async () => {
        const good = mintToken({ sub: uid("u") });
        const bad = mintToken({ sub: uid("u"), secret: "not-the-secret" });
        const pick = (v) => (v === "good" ? good : bad);
        const options = {};
        if (where.auth) options.token = pick(where.auth);
        if (where.query) options.query = { token: pick(where.query) };
        if (where.header) options.extraHeaders = { Authorization: `Bearer ${pick(where.header)}` };
        const socket = herald.publicV4(options);
        if (admitted) {
          await once(socket, "connect", undefined, "connect with the first-present token valid");
        } else {
          const err = await refused(socket, "first-present token invalid");
          assert.equal(err.message, "unauthorized");
        }
      });
    }
  });

  describe("/public refusals: connect_error \"unauthorized\"", () => {
    const now = () => Math.floor(Date.now() / 1000);
    const cases = [
      ["no token at all", () => ({})],
      ["garbage token", () => ({ token: "not.a.jwt" })],
      ["token that is not even dotted", () => ({ token: "garbage" })],
      ["wrong secret", () => ({ token: mintToken({ sub: "u", secret: JWT_SECRET + "x" }) })],
      ["expired (an hour ago)", () => ({ token: mintToken({ sub: "u", exp: now() - 3600 }) })],
      ["alg none", () => ({ token: mintToken({ sub: "u", algorithm: "none" }) })],
      ["HS512 while HS256 is configured", () => ({ token: mintToken({ sub: "u", algorithm: "HS512" }) })],
      ["HS384 while HS256 is configured", () => ({ token: mintToken({ sub: "u", algorithm: "HS384" }) })],
      ["missing sub", () => ({ token: mintToken({ omit: ["sub"] }) })],
      ["missing exp", () => ({ token: mintToken({ sub: "u", omit: ["exp"] }) })],
      ["signature stripped", () => ({ token: mintToken({ sub: "u" }).replace(/\.[^.]+$/, ".") })],
      [
        "payload swapped under a valid signature",
        () => {
          const [h, , s] = mintToken({ sub: "u" }).split(".");
          const [, p] = mintToken({ sub: "admin", workspaces: ["*"] }).split(".");
          return { token: `${h}.${p}.${s}` };
        },
      ],
      ["garbage token in query", () => ({ query: { token: "garbage" } })],
      ["garbage bearer header", () => ({ extraHeaders: { Authorization: "Bearer garbage" } })],
      [
        "valid token under a non-Bearer scheme",
        () => ({ extraHeaders: { Authorization: `Basic ${mintToken({ sub: "u" })}` } }),
      ],
    ];
    for (const [name, options] of cases) {
      test(name, async () => {
        const socket = herald.publicV4(options());
        const err = await refused(socket, name);
        assert.ok(err instanceof Error, "connect_error carries an Error");
        assert.equal(err.message, "unauthorized");
        assert.equal(socket.connected, false);
      });
    }

    test("refusal over websocket only", async () => {
      const socket = herald.publicV4({ token: "garbage", transports: ["websocket"] });
      const err = await refused(socket, "websocket refusal");
      assert.equal(err.message, "unauthorized");
    });

    test("refusal over polling only", async () => {
      const socket = herald.publicV4({ token: "garbage", transports: ["polling"] });
      const err = await refused(socket, "polling refusal");
      assert.equal(err.message, "unauthorized");
    });

    test("a refused handshake does not disturb connected sockets", async () => {
      const ws = uid("ws");
      const alice = await herald.user({ workspaces: [ws], register: [ws] });
      const err = await refused(herald.publicV4({ token: "garbage" }));
      assert.equal(err.message, "unauthorized");
      const backend = await herald.connectPrivate();
      await flush(backend, [alice]);
      assert.equal(alice.connected, true);
    });
  });

  describe("/private handshake", () => {
    test("auth.key", async () => {
      const backend = await herald.connectPrivate({ key: PRIVATE_KEY });
      const reply = await ack(backend, "publish", [{ event: uid("e"), user: uid("nobody") }]);
      assert.equal(reply.ok, true);
    });

    for (const transports of [["polling"], ["websocket"]]) {
      test(`Authorization: Bearer key (${transports[0]})`, async () => {
        const backend = await herald.connectPrivate({
          key: undefined,
          extraHeaders: { Authorization: `Bearer ${PRIVATE_KEY}` },
          transports,
        });
        const reply = await ack(backend, "publish", [{ event: uid("e"), user: uid("nobody") }]);
        assert.equal(reply.ok, true);
      });
    }

    const cases = [
      ["no key", { key: undefined }],
      ["empty auth", { auth: {} }],
      ["wrong key", { key: PRIVATE_KEY + "x" }],
      ["key prefix", { key: PRIVATE_KEY.slice(0, -1) }],
      ["key of the wrong type", { auth: { key: 123 } }],
      ["wrong bearer key", { key: undefined, extraHeaders: { Authorization: "Bearer wrong" } }],
      ["a browser token instead of the key", { key: undefined, auth: { token: mintToken({ sub: "u" }) } }],
    ];
    for (const [name, options] of cases) {
      test(`refused: ${name}`, async () => {
        const err = await refused(herald.privateV4(options), `/private with ${name}`);
        assert.equal(err.message, "unauthorized");
      });
    }
  });
});

describe("host not authorized (authorized_hosts = [\"10.9.9.9\"])", () => {
  let herald;
  before(async () => {
    herald = await startHerald("v4-hosts", { authorizedHosts: ["10.9.9.9"] });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  test("/private with the right key from 127.0.0.1 is refused", async () => {
    const err = await refused(herald.privateV4({ key: PRIVATE_KEY }), "/private from 127.0.0.1");
    assert.equal(err.message, "unauthorized");
  });

  test("/private with the right bearer key from 127.0.0.1 is refused", async () => {
    const socket = herald.privateV4({
      key: undefined,
      extraHeaders: { Authorization: `Bearer ${PRIVATE_KEY}` },
    });
    const err = await refused(socket, "/private bearer from 127.0.0.1");
    assert.equal(err.message, "unauthorized");
  });

  test("/public is not affected by the host list", async () => {
    const socket = await herald.connectPublic({ token: mintToken({ sub: uid("u") }) });
    assert.equal(socket.connected, true);
  });
});

describe("custom engine_path /socket.io/appsuite", () => {
  let herald;
  before(async () => {
    herald = await startHerald("v4-engine-path", { enginePath: "/socket.io/appsuite" });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  test("the readiness log names the engine path", () => {
    assert.equal(herald.enginePath, "/socket.io/appsuite");
  });

  test("the default /socket.io path is not served (404)", async () => {
    const res = await herald.http("GET", "/socket.io/?EIO=4&transport=polling");
    assert.equal(res.status, 404, `HTTP ${res.status} ${res.text.slice(0, 200)}`);
    const served = await herald.http("GET", "/socket.io/appsuite/?EIO=4&transport=polling");
    assert.equal(served.status, 200, `HTTP ${served.status} ${served.text.slice(0, 200)}`);
  });

  for (const transports of [["websocket"], ["polling"], undefined]) {
    const name = transports ? transports[0] : "default transports";
    test(`/public and /private work with path "/socket.io/appsuite" (${name})`, async () => {
      const ws = uid("ws");
      const socket = await herald.connectPublic({
        token: mintToken({ sub: uid("u"), workspaces: [ws] }),
        path: "/socket.io/appsuite",
        transports,
      });
      // assertUsable connects /private with the herald's engine path as well.
      await assertUsable(herald, socket, ws);
    });
  }
});

describe("issuer and audience configured", () => {
  const ISS = "https://issuer.compat.test";
  const AUD = "herald-compat";
  let herald;
  before(async () => {
    herald = await startHerald("v4-iss-aud", { issuer: ISS, audience: AUD });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  test("a token with the right iss and aud connects", async () => {
    const ws = uid("ws");
    const socket = await herald.connectPublic({ token: mintToken({ sub: uid("u"), workspaces: [ws], iss: ISS, aud: AUD }) });
    await assertUsable(herald, socket, ws);
  });

  test("aud as an array containing the audience connects", async () => {
    const socket = await herald.connectPublic({ token: mintToken({ sub: uid("u"), iss: ISS, aud: ["other", AUD] }) });
    assert.equal(socket.connected, true);
  });

  for (const [name, claims] of [
    ["wrong iss", { iss: `${ISS}.evil`, aud: AUD }],
    ["missing iss", { aud: AUD }],
    ["wrong aud", { iss: ISS, aud: "someone-else" }],
    ["missing aud", { iss: ISS }],
    ["neither", {}],
  ]) {
    test(`refused: ${name}`, async () => {
      const err = await refused(herald.publicV4({ token: mintToken({ sub: uid("u"), ...claims }) }), name);
      assert.equal(err.message, "unauthorized");
    });
  }
});

describe("root namespace /", () => {
  let herald;
  before(async () => {
    herald = await startHerald("v4-root");
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  test("exists: a client connects to / without credentials", async () => {
    const socket = herald.publicV4({ namespace: "/" });
    await once(socket, "connect", undefined, "connect to the root namespace");
    assert.equal(socket.connected, true);
  });

  test("is inert: a root socket sharing a connection with /public receives nothing", async () => {
    const backend = await herald.connectPrivate();
    // One Manager, one Engine.IO connection, two namespaces: packets for both travel in order
    // on the same connection, so the /public marker proves the root socket was flushed too.
    const manager = new Manager(herald.url, { path: herald.enginePath, reconnection: false });
    const root = herald.track(manager.socket("/"));
    const sub = uid("alice");
    const alice = herald.track(manager.socket("/public", { auth: { token: mintToken({ sub }) } }));
    alice.sub = sub;
    await Promise.all([
      once(root, "connect", undefined, "connect to the root namespace"),
      once(alice, "connect", undefined, "connect to /public on the same Manager"),
    ]);
    const event = uid("not-for-root");
    const rootRec = record(root, event);
    const aliceRec = record(alice, event);
    await publish(backend, { event, user: sub, data: 1 });
    await flush(backend, [alice]);
    assert.equal(aliceRec.events.length, 1, "the /public socket on the shared connection got the event");
    assert.deepEqual(rootRec.events, [], "the root socket received a /public event");
    assert.equal(root.connected, true);
  });
});

// A browser app emits `register` from its "connect" listener, a backend emits `publish` as soon
// as it is connected. Those first events must be answered like any other. Repeated, because a
// server that installs its event handlers only after sending CONNECT loses them now and then
// (most often over a websocket-only connection, where nothing else delays the client).
describe("events emitted from the connect listener are answered", () => {
  const ROUNDS = 200;
  let herald;
  before(async () => {
    herald = await startHerald("v4-first-event");
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  for (const transports of [["websocket"], ["polling"]]) {
    test(`/public register, ${ROUNDS} fresh ${transports[0]} connections`, async () => {
      for (let round = 1; round <= ROUNDS; round++) {
        const ws = uid("ws");
        const socket = herald.publicV4({ token: mintToken({ sub: uid("u"), workspaces: [ws] }), transports });
        const reply = new Promise((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`round ${round}: register emitted from the connect listener got no ack within 2000 ms`)),
            2000,
          );
          socket.on("connect", () =>
            socket.emit("register", { workspace: ws }, (r) => {
              clearTimeout(timer);
              resolve(r);
            }),
          );
          socket.on("connect_error", (err) => reject(new Error(`round ${round}: connect_error ${err.message}`)));
        });
        assert.deepEqual(withoutPosition(await reply), { ok: true, workspace: ws }, `round ${round}`);
        herald.closeClients();
      }
    });

    test(`/private publish, ${ROUNDS} fresh ${transports[0]} connections`, async () => {
      for (let round = 1; round <= ROUNDS; round++) {
        const backend = herald.privateV4({ transports });
        const reply = new Promise((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`round ${round}: publish emitted from the connect listener got no ack within 2000 ms`)),
            2000,
          );
          backend.on("connect", () =>
            backend.emit("publish", { event: "first", user: uid("u") }, (r) => {
              clearTimeout(timer);
              resolve(r);
            }),
          );
          backend.on("connect_error", (err) => reject(new Error(`round ${round}: connect_error ${err.message}`)));
        });
        const r = await reply;
        assert.equal(r?.ok, true, `round ${round}: ${JSON.stringify(r)}`);
        herald.closeClients();
      }
    });
  }
});
