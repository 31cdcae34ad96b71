// Self-check of reference-server.js: starts it on a free port and drives the contract of
// docs/protocol.md with socket.io-client 4.8.4 and plain HTTP. Every wait is an awaited event
// with a timeout that fails with a message saying what did not happen; no bare sleeps.
//
//   npm ci && node check-reference.mjs      (exit 0: all checks passed)

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

import jwt from "jsonwebtoken";
import { io } from "socket.io-client";

const JWT_SECRET = "check-jwt-secret";
const PRIVATE_KEY = "check-private-key";
const WAIT_MS = 5000;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HERE = dirname(fileURLToPath(import.meta.url));

/** Resolves with `promise`, or rejects after `ms` with "timed out waiting for <what>". */
function within(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The arguments of the next `event` on `emitter` (a socket.io-client socket). */
const next = (emitter, event) =>
  within(new Promise((resolve) => emitter.once(event, (...args) => resolve(args))), `"${event}"`);

/** Emits with an ack and resolves with the ack's argument. */
const call = (socket, event, ...args) =>
  within(new Promise((resolve) => socket.emit(event, ...args, resolve)), `the ack of "${event}"`);

const token = (claims, secret = JWT_SECRET) =>
  jwt.sign({ exp: Math.floor(Date.now() / 1000) + 600, ...claims }, secret, { algorithm: "HS256" });

// ---------------------------------------------------------------------------------------------
// The server under test.

/** Starts the server with the secrets as flags plus `env`; resolves once it printed its port. */
async function startServer(env = {}) {
  const child = spawn(process.execPath, [join(HERE, "reference-server.js"), "--port", "0",
    "--jwt-secret", JWT_SECRET, "--private-key", PRIVATE_KEY],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const listening = new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once("line", (line) => {
      try {
        const msg = JSON.parse(line);
        if (msg.event !== "listening" || !Number.isInteger(msg.port)) throw new Error("wrong shape");
        resolve(msg.port);
      } catch {
        reject(new Error(`unexpected first line from the server: ${line}`));
      }
    });
    exited.then(({ code, signal }) => reject(new Error(`server exited early (code ${code}, signal ${signal})`)));
  });
  try {
    return { child, exited, port: await within(listening, "the server's listening line", 10000) };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

async function stopServer({ child, exited }) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  try {
    const { code } = await within(exited, "the server to exit after SIGTERM");
    assert.equal(code, 0, "the server exits 0 on SIGTERM");
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Checks.

const step = (name) => console.log(`ok - ${name}`);

/** Socket.IO clients of one server; `closeAll()` closes every one opened. */
function clients(base, path = "/socket.io") {
  const sockets = [];
  const connect = (nsp, opts) => {
    const socket = io(base + nsp, { path, forceNew: true, reconnection: false, ...opts });
    sockets.push(socket);
    return socket;
  };
  const connected = async (nsp, opts) => {
    const socket = connect(nsp, opts);
    const [err] = await Promise.race([next(socket, "connect").then(() => []), next(socket, "connect_error")]);
    if (err) throw new Error(`${nsp}: connect_error ${err.message}`);
    return socket;
  };
  return { connect, connected, closeAll: () => sockets.forEach((socket) => socket.close()) };
}

/** The contract, against a server with the default options. */
async function contractChecks(base) {
  const { connect, connected, closeAll } = clients(base);
  try {
    // Refused handshakes.
    const forged = connect("/public", { auth: { token: token({ sub: "alice" }, "not-the-secret") } });
    const [err] = await next(forged, "connect_error");
    assert.equal(err.message, "unauthorized");
    const expired = connect("/public", { auth: { token: token({ sub: "alice", exp: 1 }) } });
    assert.equal((await next(expired, "connect_error"))[0].message, "unauthorized");
    const wrongKey = connect("/private", { auth: { key: "wrong" } });
    assert.equal((await next(wrongKey, "connect_error"))[0].message, "unauthorized");
    step("refused token, expired token and wrong private key end in connect_error \"unauthorized\"");

    // register / unregister, bad input.
    const alice = await connected("/public", { auth: { token: token({ sub: "alice", workspaces: ["ws1"] }) } });
    assert.deepEqual(await call(alice, "register", { workspace: "ws1" }), { ok: true, workspace: "ws1" });
    assert.deepEqual(await call(alice, "register", "ws2"), { ok: false, error: "forbidden" });
    assert.equal((await call(alice, "register", { workspace: "" })).error, "bad_request");
    assert.equal((await call(alice, "register", "x".repeat(257))).error, "bad_request");
    assert.deepEqual(await call(alice, "nope", 1),
      { ok: false, error: "bad_request", message: "unknown event" });
    step("register ws1 ok, ws2 forbidden, bad ids and unknown events are bad_request");

    // Header token (third source) and the /private namespace.
    const bob = await connected("/public", {
      extraHeaders: { authorization: `Bearer ${token({ sub: "bob", groups: ["/eng"] })}` },
    });
    const backend = await connected("/private", { auth: { key: PRIVATE_KEY } });

    // Publish to ws1: alice, registered to it, gets (data, meta) with meta.workspace "ws1".
    const data = { node: "n1", type: "rename", nested: [1, "two", null] };
    const got = next(alice, "tree_changes");
    const ack = await call(backend, "publish", { event: "tree_changes", workspace: "ws1", data });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.match(ack.id, UUID_RE);
    const [gotData, meta] = await got;
    assert.deepEqual(gotData, data);
    assert.equal(meta.id, ack.id);
    assert.equal(meta.workspace, "ws1");
    assert.ok(Number.isInteger(meta.ts) && Math.abs(Date.now() - meta.ts) < 60000, `meta.ts ${meta.ts}`);
    step("a publish to ws1 reaches the ws1 socket with (data, meta), meta.workspace === \"ws1\"");

    // Union of rooms, each socket once: alice via ws1 (tagged ws1) and user:alice, bob via group.
    const seen = [];
    alice.on("multi", (d, m) => seen.push(["alice", d, m.workspace]));
    bob.on("multi", (d, m) => seen.push(["bob", d, m.workspace]));
    const marks = [next(alice, "mark"), next(bob, "mark")];
    await call(backend, "publish", { event: "multi", data: 1, user: "alice", workspaces: ["ws9", "ws1"], group: "/eng" });
    // Per-socket order is preserved: a duplicate of "multi" would arrive before "mark".
    await call(backend, "publish", { event: "mark", users: ["alice", "bob"] });
    await Promise.all(marks);
    assert.deepEqual(seen.sort(), [["alice", 1, "ws1"], ["bob", 1, null]]);
    step("a socket in several targeted rooms gets the event once; user/group deliveries have workspace null");

    // Publish errors.
    const codes = [
      [{ event: "e", workspace: "ws1", extra: 1 }, "bad_request"],
      [{ event: "e", workspace: 5 }, "bad_request"],
      ["not an object", "bad_request"],
      [{ event: "", workspace: "ws1" }, "invalid_event"],
      [{ event: "x".repeat(129), workspace: "ws1" }, "invalid_event"],
      [{ event: "disconnect", workspace: "ws1" }, "reserved_event"],
      [{ event: "e", workspaces: [] }, "no_target"],
      [{ event: "e", users: Array.from({ length: 1001 }, (_, i) => `u${i}`) }, "too_many_targets"],
    ];
    for (const [body, code] of codes) {
      const reply = await call(backend, "publish", body);
      assert.equal(reply.error, code, `publish ${JSON.stringify(body).slice(0, 60)}: ${JSON.stringify(reply)}`);
      assert.equal(typeof reply.message, "string");
    }
    step("publish refusals carry bad_request, invalid_event, reserved_event, no_target, too_many_targets");

    // HTTP.
    const post = (body, key = PRIVATE_KEY) => fetch(`${base}/api/v1/publish`, {
      method: "POST", body: JSON.stringify(body),
      headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    });
    const viaHttp = next(alice, "http_event");
    let res = await post({ event: "http_event", workspace: "ws1", data: "hi" });
    assert.equal(res.status, 202);
    const { id } = await res.json();
    const [httpData, httpMeta] = await viaHttp;
    assert.deepEqual([httpData, httpMeta.id, httpMeta.workspace], ["hi", id, "ws1"]);
    res = await post({ event: "http_event", workspace: "ws1" }, "wrong-key");
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { code: "unauthorized", message: "unauthorized" });
    res = await post({ event: "e" });
    assert.deepEqual([res.status, (await res.json()).code], [400, "no_target"]);
    res = await post({ event: "e", workspace: "ws1", data: "x".repeat(1024 * 1024) });
    assert.deepEqual([res.status, (await res.json()).code], [413, "payload_too_large"]);
    res = await fetch(`${base}/health`);
    assert.deepEqual([res.status, await res.text()], [200, "ok"]);
    res = await fetch(`${base}/status`, { headers: { authorization: `Bearer ${PRIVATE_KEY}` } });
    const status = await res.json();
    assert.deepEqual([status.status, status.connections, status.workspaces], ["ON", { public: 2, private: 1 }, 1]);
    assert.equal((await fetch(`${base}/status`)).status, 401);
    res = await fetch(`${base}/nowhere`);
    assert.deepEqual([res.status, await res.json()], [404, { code: "not_found", message: "not found" }]);
    step("HTTP publish 202/400/401/413, /health, /status, 404");

    // disconnect_user.
    const invalid = next(alice, "session_invalid");
    const gone = next(alice, "disconnect");
    assert.deepEqual(await call(backend, "disconnect_user", { user: "alice" }), { ok: true, sockets: 1 });
    assert.deepEqual((await invalid)[0], { reason: "logout" });
    assert.equal((await gone)[0], "io server disconnect");
    assert.equal(bob.connected, true, "bob stays connected");
    assert.equal((await call(backend, "disconnect_user", { user: 3 })).error, "bad_request");
    step("disconnect_user sends session_invalid then disconnects (\"io server disconnect\")");
  } finally {
    closeAll();
  }
}

/** Against a server whose authorized hosts exclude this one: the right key is not enough. */
async function hostRuleChecks(base, path) {
  const { connect, connected, closeAll } = clients(base, path);
  try {
    await connected("/public", { auth: { token: token({ sub: "carol" }) } });
    const backend = connect("/private", { auth: { key: PRIVATE_KEY } });
    assert.equal((await next(backend, "connect_error"))[0].message, "unauthorized");
    const res = await fetch(`${base}/api/v1/publish`, {
      method: "POST", headers: { authorization: `Bearer ${PRIVATE_KEY}` },
      body: JSON.stringify({ event: "e", workspace: "ws1" }),
    });
    assert.equal(res.status, 401);
    step(`engine path ${path}; the right key from a host not authorized is refused (socket and HTTP)`);
  } finally {
    closeAll();
  }
}

// ---------------------------------------------------------------------------------------------

let server;
try {
  server = await startServer();
  await contractChecks(`http://127.0.0.1:${server.port}`);
  await stopServer(server);
  // Options from herald's environment variables: another engine path, another authorized host.
  server = await startServer({ HERALD_ENGINE_PATH: "/push/io", HERALD_PRIVATE__AUTHORIZED_HOSTS: "10.9.9.0/24" });
  await hostRuleChecks(`http://127.0.0.1:${server.port}`, "/push/io");
  await stopServer(server);
  console.log("reference server: all checks passed");
} catch (error) {
  console.error(`reference server check FAILED: ${error.stack ?? error}`);
  if (server) await stopServer(server).catch(() => server.child.kill("SIGKILL"));
  process.exit(1);
}
