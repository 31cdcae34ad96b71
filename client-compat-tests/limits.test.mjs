// [limits] with the real socket.io-client 4.x: sockets per user (the oldest makes room),
// workspaces per socket, events per second (error ack, then a disconnect), total connections and
// handshakes in flight (a fast HTTP 503 on the handshake), backend auth calls in flight. Every
// refusal has its stable code and is counted in /metrics.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once as onceEvent } from "node:events";
import { createServer } from "node:http";

import {
  PRIVATE_KEY,
  ack,
  ioV2,
  connected,
  eventually,
  mintToken,
  once,
  publish,
  refused,
  startHerald,
  uid,
} from "./harness.mjs";

/** The value of a counter of herald_limit_refusals_total, 0 when absent. */
async function refusals(herald, limit) {
  const res = await herald.http("GET", "/metrics", { key: PRIVATE_KEY });
  assert.equal(res.status, 200, res.text);
  const m = new RegExp(`^herald_limit_refusals_total\\{limit="${limit}"\\} (\\d+)$`, "m").exec(res.text);
  return m ? Number(m[1]) : 0;
}

/** The value of a gauge in /metrics. */
async function gauge(herald, name) {
  const res = await herald.http("GET", "/metrics", { key: PRIVATE_KEY });
  const m = new RegExp(`^${name} (-?\\d+)$`, "m").exec(res.text);
  return m ? Number(m[1]) : undefined;
}

/** Awaits an async condition, every 50 ms, for at most 5 s. */
async function until(check, what) {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() >= deadline) throw new Error(`timed out after 5000 ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50)); // poll interval of a bounded poll
  }
}

/** Ends a session opened by rawHandshake (an Engine.IO close packet), freeing what it holds. */
async function closeRaw(herald, raw) {
  const { sid } = JSON.parse(raw.text.slice(1));
  const res = await fetch(`${herald.url}${herald.enginePath}/?EIO=4&transport=polling&sid=${sid}`, {
    method: "POST",
    body: "1",
    signal: AbortSignal.timeout(5000),
  });
  await res.text();
}

/** A raw Engine.IO polling handshake: status, body and how long the answer took. */
async function rawHandshake(herald) {
  const started = Date.now();
  const res = await fetch(`${herald.url}${herald.enginePath}/?EIO=4&transport=polling`, {
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, ms: Date.now() - started };
}

describe("limits: per user, per socket", () => {
  let herald;
  before(async () => {
    herald = await startHerald("limits-socket", {
      limits: {
        max_sockets_per_user: 2,
        max_workspaces_per_socket: 2,
        events_per_second: 1,
        events_burst: 6,
        rate_limited_disconnect_after: 5,
      },
    });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  test("a user's third socket disconnects the oldest, which is told why", async () => {
    const sub = uid("alice");
    const token = mintToken({ sub });
    const first = await herald.connectPublic({ token });
    const second = await herald.connectPublic({ token });
    const told = once(first, "session_invalid", undefined, "session_invalid on the oldest socket");
    const gone = once(first, "disconnect", undefined, "disconnect of the oldest socket");
    const third = await herald.connectPublic({ token });
    const [payload] = await told;
    assert.deepEqual(payload, { reason: "too_many_sockets" });
    const [reason] = await gone;
    assert.equal(reason, "io server disconnect", "a server disconnect: the client does not reconnect it");

    // The two newest stay and still get the user's events.
    const backend = await herald.connectPrivate();
    const event = uid("after");
    const arrivals = [second, third].map((s) => once(s, event, undefined, "event to a remaining socket"));
    await publish(backend, { event, users: [sub], data: 1 });
    await Promise.all(arrivals);
    assert.equal(second.connected && third.connected, true);
    assert.equal(await refusals(herald, "max_sockets_per_user"), 1);

    // Another user is not affected by alice's count.
    await herald.connectPublic({ token: mintToken({ sub: uid("bob") }) });
  });

  test("register beyond max_workspaces_per_socket is refused with too_many_workspaces", async () => {
    const [a, b, c] = [uid("ws"), uid("ws"), uid("ws")];
    const socket = await herald.connectPublic({ token: mintToken({ sub: uid("u"), workspaces: [a, b, c] }) });
    const before = await refusals(herald, "max_workspaces_per_socket");
    assert.equal((await ack(socket, "register", [{ workspace: a }])).ok, true);
    assert.equal((await ack(socket, "register", [{ workspace: b }])).ok, true);
    const refusedReply = await ack(socket, "register", [{ workspace: c }]);
    assert.equal(refusedReply.ok, false, JSON.stringify(refusedReply));
    assert.equal(refusedReply.error, "too_many_workspaces");
    assert.equal(typeof refusedReply.message, "string");
    // Registering a held one again is fine; after an unregister there is room.
    assert.equal((await ack(socket, "register", [{ workspace: a }])).ok, true);
    assert.equal((await ack(socket, "unregister", [{ workspace: a }])).ok, true);
    assert.equal((await ack(socket, "register", [{ workspace: c }])).ok, true);
    assert.equal(await refusals(herald, "max_workspaces_per_socket"), before + 1);
  });

  test("events beyond the rate get rate_limited, a flood is disconnected, others go on", async () => {
    const ws = uid("ws");
    const flooder = await herald.connectPublic({ token: mintToken({ sub: uid("flood"), workspaces: [ws] }) });
    const calm = await herald.connectPublic({ token: mintToken({ sub: uid("calm"), workspaces: [ws] }) });
    // The burst of 6 (register, unregister and unknown events alike) passes.
    for (const event of ["register", "unregister", "register", "whatever", "unregister", "register"]) {
      const reply = await ack(flooder, event, [{ workspace: ws }]);
      assert.notEqual(reply.error, "rate_limited", `${event} within the burst: ${JSON.stringify(reply)}`);
    }
    // The bucket is empty now; at 1 event/s, a slow machine may have earned one token back.
    let limited;
    for (let i = 0; i < 3 && limited?.error !== "rate_limited"; i += 1) {
      limited = await ack(flooder, "register", [{ workspace: ws }]);
    }
    assert.equal(limited.ok, false);
    assert.equal(limited.error, "rate_limited", JSON.stringify(limited));
    assert.match(limited.message, /events per second/);

    // Refused 5 times in a row: disconnected by the server (no automatic reconnection).
    const gone = once(flooder, "disconnect", undefined, "the flooder's disconnect");
    for (let i = 0; i < 20; i += 1) flooder.emit("register", { workspace: ws }, () => {});
    const [reason] = await gone;
    // The flood's unread bytes do not turn herald's close into a reset that would lose the
    // DISCONNECT packet (src/edge/linger.rs): the client knows it was sent away.
    assert.equal(reason, "io server disconnect", "a server disconnect: the client does not reconnect it");
    assert.ok((await refusals(herald, "rate_limited")) >= 4);
    assert.equal(await refusals(herald, "rate_limited_disconnect"), 1);

    // The calm socket, sharing the workspace, is untouched.
    assert.equal(calm.connected, true);
    assert.equal((await ack(calm, "register", [{ workspace: ws }])).ok, true);
  });
});

describe("limits: max_connections", () => {
  let herald;
  before(async () => {
    herald = await startHerald("limits-conns", { limits: { max_connections: 2 } });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  test("a handshake beyond max_connections gets a fast 503 server_full, and room comes back", async () => {
    const token = () => mintToken({ sub: uid("u") });
    const first = await herald.connectPublic({ token: token() });
    await herald.connectPublic({ token: token(), transports: ["websocket"] });

    const raw = await rawHandshake(herald);
    assert.equal(raw.status, 503, raw.text);
    assert.equal(raw.json?.code, "server_full", raw.text);
    assert.ok(raw.ms < 2000, `the refusal took ${raw.ms} ms`);
    // socket.io-client sees a failed transport (and would retry with backoff).
    const third = herald.publicV4({ token: token() });
    const err = await refused(third, "third socket");
    assert.match(err.message, /xhr poll error/);
    assert.ok((await refusals(herald, "max_connections")) >= 2);

    // One leaves: a new handshake is admitted.
    first.disconnect();
    first.io.engine?.close();
    let status;
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      status = (await rawHandshake(herald)).status;
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 50)); // poll interval of a bounded poll
    }
    assert.equal(status, 200, "no handshake admitted after a session ended");
  });
});

describe("limits: refused sessions free their slot", () => {
  // The engine waits handshake_timeout for a CONNECT before it lets a session's handshake go;
  // a long one here makes a slot that is only freed by that wait fail every case below.
  let herald;
  before(async () => {
    herald = await startHerald("limits-refused", {
      limits: { max_connections: 2, handshake_timeout: "30s" },
    });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  /** Engine.IO sessions as /status and /metrics count them (they must agree). */
  async function sessions() {
    const status = await herald.http("GET", "/status", { key: PRIVATE_KEY });
    assert.equal(status.status, 200, status.text);
    const metrics = await gauge(herald, "herald_engine_sessions");
    return { status: status.json.sessions, metrics };
  }

  /** The engine of a v4 or v2 socket, and a promise of its close. */
  function engineClosed(socket) {
    const engine = socket.io.engine;
    assert.ok(engine, "the socket has no engine yet");
    if (engine.readyState === "closed") return Promise.resolve();
    return once(engine, "close", 5000, "the client's transport closing");
  }

  const clients = {
    v4: (transport, target) =>
      target === "public"
        ? herald.publicV4({ token: "not-a-token", transports: [transport] })
        : herald.privateV4({ key: "wrong-key-0123456789", transports: [transport] }),
    v2: (transport, target) =>
      target === "public"
        ? herald.publicV2({ token: "not-a-token", transports: [transport] })
        : herald.track(
            ioV2(`${herald.url}/private`, {
              path: herald.enginePath,
              forceNew: true,
              reconnection: false,
              extraHeaders: { authorization: "Bearer wrong-key-0123456789" },
              transports: [transport],
            }),
          ),
  };

  for (const version of ["v4", "v2"]) {
    for (const transport of ["websocket", "polling"]) {
      for (const target of ["public", "private"]) {
        const what = `${version} over ${transport}, refused on /${target}`;
        test(`${what}: the slot is free once the client closes its transport`, async () => {
          const before = await sessions();
          assert.deepEqual(before, { status: 0, metrics: 0 }, "sessions left over");
          // Fill the node: one refused client, and max_connections refused ones after it,
          // each gone before the next; then a valid client still gets in.
          for (let i = 0; i < 3; i += 1) {
            const socket = clients[version](transport, target);
            const err = await refused(socket, what);
            assert.match(String(err?.message ?? err), /^(unauthorized|forbidden)$/, what);
            const closed = engineClosed(socket);
            // socket.io-client 4.x closes its transport when its only namespace is refused;
            // 2.x keeps it open (it stays connected to "/") until the page closes the socket.
            socket.close();
            await closed;
            const closedAt = Date.now();
            await until(async () => {
              const now = await sessions();
              return now.status === 0 && now.metrics === 0;
            }, `${what}: the session count back to 0 after the transport closed (#${i + 1})`);
            const took = Date.now() - closedAt;
            assert.ok(took < 1000, `${what}: the slot came back ${took} ms after the transport closed`);
          }
          const valid = await herald.connectPublic({ token: mintToken({ sub: uid("u") }), transports: [transport] });
          assert.ok(valid.connected);
          const closed = engineClosed(valid);
          valid.close();
          await closed;
          await until(async () => (await sessions()).metrics === 0, `${what}: the valid client's session ending`);
        });
      }
    }
  }
});

/** A stand-in for the application's auth endpoint that answers only when told to. */
async function heldBackend() {
  const waiting = [];
  let calls = 0;
  const server = createServer((req, res) => {
    calls += 1;
    const user = new URL(req.url, "http://x").searchParams.get("user") ?? "held";
    waiting.push(() => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ user: (req.headers.authorization ?? "").replace(/^Bearer /, "") || user, workspaces: [] }));
    });
  });
  server.listen(0, "127.0.0.1");
  await onceEvent(server, "listening");
  return {
    url: `http://127.0.0.1:${server.address().port}/auth`,
    calls: () => calls,
    waiting: () => waiting.length,
    releaseAll: () => waiting.splice(0).forEach((answer) => answer()),
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

describe("limits: handshakes in flight", () => {
  let herald;
  let backend;
  before(async () => {
    backend = await heldBackend();
    herald = await startHerald("limits-handshakes", {
      authBackend: { url: backend.url, timeout: "10s" },
      limits: { max_handshakes_in_flight: 1, handshake_timeout: "1s" },
    });
  });
  afterEach((t) => herald.afterEach(t));
  after(async () => {
    await herald?.stop();
    backend?.close();
  });

  test("while one handshake waits for the auth backend, the next gets a fast 503 overloaded", async () => {
    const slow = herald.publicV4({ token: uid("slowuser") });
    const slowConnected = connected(slow, "the held handshake");
    await eventually(() => backend.waiting() === 1, 5000, "the auth backend to be asked");

    const raw = await rawHandshake(herald);
    assert.equal(raw.status, 503, raw.text);
    assert.equal(raw.json?.code, "overloaded", raw.text);
    assert.ok(raw.ms < 2000, `the refusal took ${raw.ms} ms`);
    assert.ok((await refusals(herald, "max_handshakes_in_flight")) >= 1);

    backend.releaseAll();
    await slowConnected;
    // Admitted: its slot is free again although its session lives on.
    const next = await rawHandshake(herald);
    assert.equal(next.status, 200, next.text);
    // That raw session never sends CONNECT: it holds its slot until handshake_timeout (1 s),
    // even once closed, and no longer.
    await closeRaw(herald, next);
    await until(async () => (await gauge(herald, "herald_handshakes_in_flight")) === 0, "the raw session's slot to come back");
  });

  test("a refused client retries with backoff and gets in once the slot is free", async () => {
    const held = herald.publicV4({ token: uid("held") });
    const heldConnected = connected(held, "the held handshake");
    await eventually(() => backend.waiting() === 1, 5000, "the auth backend to be asked");
    const retrying = herald.publicV4({
      token: uid("retrying"),
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 200,
    });
    const errors = [];
    retrying.on("connect_error", (e) => errors.push(e.message));
    await eventually(() => errors.length >= 1, 5000, "a refused attempt");
    backend.releaseAll();
    await heldConnected;
    // The retry's own backend call is answered as it comes.
    const timer = setInterval(() => backend.releaseAll(), 20);
    try {
      await once(retrying, "connect", 10000, "the retrying client's connect");
    } finally {
      clearInterval(timer);
    }
    assert.ok(errors.length >= 1);
  });
});

describe("limits: auth calls in flight", () => {
  let herald;
  let backend;
  before(async () => {
    backend = await heldBackend();
    herald = await startHerald("limits-auth", {
      authBackend: { url: backend.url, timeout: "3s" },
      limits: { max_auth_calls_in_flight: 1 },
    });
  });
  afterEach((t) => herald.afterEach(t));
  after(async () => {
    await herald?.stop();
    backend?.close();
  });

  test("a call finding no slot within half the backend_timeout fails as unavailable, counted", async () => {
    const first = herald.publicV4({ token: uid("first") });
    await eventually(() => backend.waiting() === 1, 5000, "the first backend call");
    const second = herald.publicV4({ token: uid("second") });
    const err = await refused(second, "the second handshake");
    assert.equal(err.message, "unauthorized");
    assert.equal(backend.calls(), 1, "the second call reached the backend");
    assert.equal(await refusals(herald, "max_auth_calls_in_flight"), 1);
    backend.releaseAll();
    first.disconnect();
  });
});
