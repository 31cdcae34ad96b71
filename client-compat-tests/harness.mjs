// Test harness: starts the real herald release binary, mints tokens, connects real
// socket.io-client 4.x and 2.x sockets, and offers waiting helpers that always fail with a
// message saying what did not happen. There are no bare sleeps: every wait is an awaited event
// with a timeout, or a bounded poll.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once as onceEvent } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, createWriteStream } from "node:fs";
import { createRequire } from "node:module";
import { request as httpsRequestRaw } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { randomUUID } from "node:crypto";

import jwt from "jsonwebtoken";
import { io as ioV4 } from "socket.io-client";

const require = createRequire(import.meta.url);
/** socket.io-client 2.5.0 (Engine.IO v3), installed under an npm alias. */
export const ioV2 = require("socket.io-client-v2");

const SUITE_DIR = dirname(fileURLToPath(import.meta.url));
const ARTIFACTS_DIR = join(SUITE_DIR, "artifacts");

export const PRIVATE_KEY = "compat-private-key-0123";
export const JWT_SECRET = "compat-jwt-secret-0123";

/** Default time any single awaited event may take. */
export const WAIT_MS = 5000;
const STARTUP_MS = 10000;
const STOP_MS = 15000; // above herald's default shutdown_timeout (10 s)

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------------------------------------
// Unique names, so tests sharing one herald never see each other's rooms.

let counter = 0;
const RUN = randomUUID().slice(0, 8);
/** A name unique within this run, e.g. uid("alice") -> "alice-3f2a1b9c-7". */
/** A currently free TCP port on 127.0.0.1 (for a process of the test's own to bind). */
export async function freePort() {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await onceEvent(server, "listening");
  const { port } = server.address();
  server.close();
  await onceEvent(server, "close");
  return port;
}

export function uid(prefix) {
  counter += 1;
  return `${prefix}-${RUN}-${counter}`;
}

// ---------------------------------------------------------------------------------------------
// The binary.

/** Path of the herald binary: $HERALD_BIN, else ../target/release/herald. */
export function heraldBin() {
  const bin = process.env.HERALD_BIN
    ? resolve(process.env.HERALD_BIN)
    : resolve(SUITE_DIR, "..", "target", "release", "herald");
  if (!existsSync(bin)) {
    throw new Error(
      `herald binary not found at ${bin}: build it with cargo build --release ` +
        `(in the repository root), or point HERALD_BIN at a herald binary`,
    );
  }
  return bin;
}

function tomlString(s) {
  return JSON.stringify(String(s)); // JSON string escapes are valid TOML basic strings
}

/** Renders the herald config for the given options (only keys the contract names). */
export function renderConfig({
  enginePath,
  statusPublic,
  trustedProxies,
  allowedOrigins,
  authorizedHosts,
  issuer,
  audience,
  privateKey = PRIVATE_KEY,
  jwtSecret = JWT_SECRET,
  expiryWarning,
  coalesce,
  recovery,
  cluster,
  chat,
  cells,
  tls,
  shutdownTimeout,
  shutdown,
  limits,
  authBackend,
} = {}) {
  const lines = [];
  if (shutdownTimeout !== undefined) lines.push(`shutdown_timeout = ${tomlString(shutdownTimeout)}`);
  if (enginePath !== undefined) lines.push(`engine_path = ${tomlString(enginePath)}`);
  if (statusPublic !== undefined) lines.push(`status_public = ${statusPublic ? "true" : "false"}`);
  if (trustedProxies !== undefined) {
    lines.push(`trusted_proxies = [${trustedProxies.map(tomlString).join(", ")}]`);
  }
  if (allowedOrigins !== undefined) {
    lines.push(`allowed_origins = [${allowedOrigins.map(tomlString).join(", ")}]`);
  }
  lines.push("", "[public]", 'host = "127.0.0.1"', "port = 0");
  lines.push("", "[private]", `key = ${tomlString(privateKey)}`);
  if (authorizedHosts !== undefined) {
    lines.push(`authorized_hosts = [${authorizedHosts.map(tomlString).join(", ")}]`);
  }
  if (authBackend !== undefined) {
    // {url, timeout?}: browsers are authenticated by that backend (auth.mode = "backend").
    lines.push("", "[auth]", 'mode = "backend"', `backend_url = ${tomlString(authBackend.url)}`);
    if (authBackend.timeout !== undefined) lines.push(`backend_timeout = ${tomlString(authBackend.timeout)}`);
  }
  lines.push("", "[auth.jwt]", `secret = ${tomlString(jwtSecret)}`);
  if (issuer !== undefined) lines.push(`issuer = ${tomlString(issuer)}`);
  if (audience !== undefined) lines.push(`audience = ${tomlString(audience)}`);
  if (expiryWarning !== undefined) lines.push(`expiry_warning = ${tomlString(expiryWarning)}`);
  if (coalesce !== undefined) {
    lines.push("", "[coalesce]");
    if (coalesce.delay !== undefined) lines.push(`delay = ${tomlString(coalesce.delay)}`);
    if (coalesce.maxDelay !== undefined) lines.push(`max_delay = ${tomlString(coalesce.maxDelay)}`);
  }
  if (cluster !== undefined) {
    lines.push("", "[cluster]", `redis_url = ${tomlString(cluster.redisUrl)}`, `prefix = ${tomlString(cluster.prefix)}`);
    // "cluster": redis_url is a comma-separated list of Redis Cluster seeds.
    if (cluster.mode !== undefined) lines.push(`redis_mode = ${tomlString(cluster.mode)}`);
  }
  if (chat !== undefined) {
    // `chat: {dataDir, presenceTimeout, historyPage, maxText, ...}`: the [chat] section, enabled.
    lines.push("", "[chat]", `enabled = ${chat.enabled === false ? "false" : "true"}`);
    const keys = {
      dataDir: "data_dir",
      presenceTimeout: "presence_timeout",
      historyPage: "history_page",
      maxHistoryLimit: "max_history_limit",
      maxText: "max_text",
      maxLabel: "max_label",
      maxRoomsPerSocket: "max_rooms_per_socket",
      maxRoomUsers: "max_room_users",
    };
    for (const [option, key] of Object.entries(keys)) {
      const value = chat[option];
      if (value === undefined) continue;
      lines.push(`${key} = ${typeof value === "number" ? value : tomlString(value)}`);
    }
  }
  if (cells !== undefined) {
    // `cells: {eventPath, maxFrameBytes, queue, unsubscribedTimeout, expiryGrace}` (any subset,
    // `{}` for the defaults): the [cells] section (Pydio Cells' /ws/event door), enabled.
    lines.push("", "[cells]", `enabled = ${cells.enabled === false ? "false" : "true"}`);
    const keys = {
      eventPath: "event_path",
      maxFrameBytes: "max_frame_bytes",
      queue: "queue",
      unsubscribedTimeout: "unsubscribed_timeout",
      expiryGrace: "expiry_grace",
    };
    for (const [option, key] of Object.entries(keys)) {
      const value = cells[option];
      if (value === undefined) continue;
      lines.push(`${key} = ${typeof value === "number" ? value : tomlString(value)}`);
    }
  }
  if (recovery !== undefined) {
    lines.push("", "[recovery]", `enabled = ${recovery.enabled === false ? "false" : "true"}`);
    if (recovery.maxDisconnection !== undefined) {
      lines.push(`max_disconnection = ${tomlString(recovery.maxDisconnection)}`);
    }
  }
  if (tls !== undefined) {
    lines.push("", "[tls]", `cert = ${tomlString(tls.cert)}`, `key = ${tomlString(tls.key)}`);
  }
  for (const [section, values] of [["limits", limits], ["shutdown", shutdown]]) {
    // Keys as in config.default.toml; strings (durations) quoted, numbers as they are.
    if (values === undefined) continue;
    lines.push("", `[${section}]`);
    for (const [key, value] of Object.entries(values)) {
      lines.push(`${key} = ${typeof value === "string" ? tomlString(value) : value}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The environment for herald: ours without HERALD_* (they would override the config file). */
function childEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("HERALD_") && k !== "RUST_LOG") env[k] = v;
  }
  // The readiness line is logged at INFO: a stricter inherited RUST_LOG would hide it.
  env.RUST_LOG = process.env.COMPAT_RUST_LOG || "info";
  return env;
}

/**
 * Starts herald with a fresh config on a free port and waits until it serves /health.
 * Returns a Herald handle; call `stop()` (in an after hook) to SIGTERM it and await its exit.
 * With `tls: {cert, key, ca}` (see certs.mjs) herald serves https, and `ca` is what this
 * harness trusts when it checks /health.
 */
export async function startHerald(label, options = {}) {
  const bin = heraldBin();
  const dir = mkdtempSync(join(tmpdir(), "herald-compat-"));
  const configFile = join(dir, "herald.toml");
  writeFileSync(configFile, renderConfig(options));
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  // Unique per process, so concurrent runs in the same checkout do not overwrite each other.
  const logFile = join(ARTIFACTS_DIR, `${label}-${process.pid}.log`);
  const herald = new Herald(label, bin, configFile, dir, logFile);
  herald.ca = options.tls?.ca;
  await herald.start();
  return herald;
}

export class Herald {
  constructor(label, bin, configFile, dir, logFile) {
    this.label = label;
    this.bin = bin;
    this.configFile = configFile;
    this.dir = dir;
    this.logFile = logFile;
    this.stderrLines = [];
    this.clients = new Set();
    this.exited = null; // {code, signal} once exited
    this.stopping = false;
    this.failed = false; // a test against this herald failed: keep its log
  }

  async start() {
    const child = spawn(
      this.bin,
      ["--config", this.configFile, "--port", "0", "--log-format", "json"],
      { env: childEnv(), stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    const log = createWriteStream(this.logFile);
    this.log = log;
    const exit = onceEvent(child, "exit").then(([code, signal]) => {
      this.exited = { code, signal };
      return this.exited;
    });
    this.exitPromise = exit;
    // 'close' comes after 'exit', once stdout and stderr are drained: the log ends then.
    this.stdioClosed = onceEvent(child, "close");
    const spawnError = onceEvent(child, "error").then(([err]) => err);

    let ready;
    const readyPromise = new Promise((res) => (ready = res));
    let buffer = "";
    const onLine = (line) => {
      this.stderrLines.push(line);
      if (this.stderrLines.length > 2000) this.stderrLines.shift();
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.message === "herald listening" && typeof entry.addr === "string") {
        const m = /:(\d+)$/.exec(entry.addr);
        if (m) ready({ port: Number(m[1]), enginePath: entry.engine_path, scheme: entry.scheme ?? "http" });
      }
    };
    child.stderr.setEncoding("utf8");
    const keep = (chunk) => {
      if (!log.writableEnded) log.write(chunk);
    };
    child.stderr.on("data", (chunk) => {
      keep(chunk);
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        onLine(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
      }
    });
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", keep);

    let timer;
    const outcome = await Promise.race([
      readyPromise.then((r) => ({ ready: r })),
      exit.then((e) => ({ exited: e })),
      spawnError.then((err) => ({ error: err })),
      new Promise((res) => (timer = setTimeout(() => res({ timeout: true }), STARTUP_MS))),
    ]);
    clearTimeout(timer);
    if (!outcome.ready) {
      const why = outcome.error
        ? `could not be spawned (${outcome.error.message})`
        : outcome.exited
          ? `exited before listening (code ${outcome.exited.code}, signal ${outcome.exited.signal})`
          : `logged no "herald listening" line within ${STARTUP_MS} ms`;
      await this.kill();
      throw new Error(`herald [${this.label}] ${why}\n--- herald stderr ---\n${this.stderr()}`);
    }
    this.port = outcome.ready.port;
    this.enginePath = outcome.ready.enginePath;
    this.url = `${outcome.ready.scheme}://127.0.0.1:${this.port}`;
    await this.waitHealthy();
  }

  async waitHealthy() {
    const deadline = Date.now() + STARTUP_MS;
    let last = "no answer yet";
    while (Date.now() < deadline) {
      if (this.exited) break;
      try {
        const res = this.url.startsWith("https:")
          ? await httpsRequest(`${this.url}/health`, { ca: this.ca, timeoutMs: 2000 })
          : await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) });
        const body = await res.text();
        if (res.status === 200 && body === "ok") return;
        last = `HTTP ${res.status} ${JSON.stringify(body)}`;
      } catch (err) {
        last = err.message;
      }
      await delay(50); // poll interval of a bounded poll
    }
    await this.kill();
    throw new Error(
      `herald [${this.label}] did not answer GET /health with 200 "ok" within ${STARTUP_MS} ms ` +
        `(last: ${last})\n--- herald stderr ---\n${this.stderr()}`,
    );
  }

  /** Everything herald logged so far (the tail, for failure messages). */
  stderr(lines = 200) {
    return this.stderrLines.slice(-lines).join("\n");
  }

  /** Remembers a client so closeClients() closes it. */
  track(socket) {
    this.clients.add(socket);
    return socket;
  }

  /** Closes every client opened through this herald (afterEach). */
  closeClients() {
    for (const socket of this.clients) closeSocket(socket);
    this.clients.clear();
  }

  /** For afterEach: closes clients and, when the test failed, prints herald's log tail. */
  afterEach(t) {
    this.closeClients();
    if (this.exited && !this.stopping) {
      this.failed = true;
      t?.diagnostic(
        `herald [${this.label}] exited during the test (code ${this.exited.code}, signal ${this.exited.signal}); ` +
          "a \"shutdown signal received\" line in its log means a signal came from outside this suite",
      );
    }
    if (t && t.passed === false) {
      this.failed = true;
      t.diagnostic(`herald [${this.label}] stderr (full log in ${this.logFile}):\n${this.stderr(60)}`);
    }
  }

  async kill() {
    if (this.exited || !this.child) return;
    this.child.kill("SIGKILL");
    await this.exitPromise;
  }

  /** SIGTERM, then await the exit (bounded). Fails if herald does not exit in time. */
  async stop() {
    this.closeClients();
    this.stopping = true;
    let clean = false;
    try {
      if (!this.child || this.exited) return;
      this.child.kill("SIGTERM");
      let timer;
      const exited = await Promise.race([
        this.exitPromise.then(() => true),
        new Promise((res) => (timer = setTimeout(() => res(false), STOP_MS))),
      ]);
      clearTimeout(timer);
      if (!exited) {
        await this.kill();
        throw new Error(
          `herald [${this.label}] did not exit within ${STOP_MS} ms of SIGTERM\n` +
            `--- herald stderr ---\n${this.stderr()}`,
        );
      }
      clean = true;
    } finally {
      // The last lines may still be in the pipes when 'exit' fires.
      if (this.exited && this.stdioClosed) {
        let timer;
        await Promise.race([
          this.stdioClosed,
          new Promise((res) => (timer = setTimeout(res, STOP_MS))),
        ]);
        clearTimeout(timer);
      }
      this.log?.end();
      // Logs are kept only where something went wrong.
      if (clean && !this.failed) rmSync(this.logFile, { force: true });
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Clients.

  /**
   * A v4 socket on /public (not awaited). `token` goes in auth.token unless told otherwise.
   * `url` replaces this herald's base URL (e.g. an nginx in front of it) for this and the other
   * client methods.
   */
  publicV4({ token, auth, query, extraHeaders, transports, path, url, namespace = "/public", ...rest } = {}) {
    const opts = {
      path: path ?? this.enginePath,
      forceNew: true,
      reconnection: false,
      timeout: WAIT_MS,
      ...rest,
    };
    if (auth !== undefined) opts.auth = auth;
    else if (token !== undefined) opts.auth = { token };
    if (query !== undefined) opts.query = query;
    if (extraHeaders !== undefined) opts.extraHeaders = extraHeaders;
    if (transports !== undefined) opts.transports = transports;
    return this.track(ioV4((url ?? this.url) + namespace, opts));
  }

  /**
   * A v4 socket on /private (not awaited). Presents `auth: {key}` with the private key unless
   * `key` is given (`key: undefined` presents no key) or `auth` replaces the whole payload.
   */
  privateV4(options = {}) {
    const { auth, extraHeaders, transports, path, url, ...rest } = options;
    delete rest.key;
    const key = Object.hasOwn(options, "key") ? options.key : PRIVATE_KEY;
    const opts = {
      path: path ?? this.enginePath,
      forceNew: true,
      reconnection: false,
      timeout: WAIT_MS,
      ...rest,
    };
    if (auth !== undefined) opts.auth = auth;
    else if (key !== undefined) opts.auth = { key };
    if (extraHeaders !== undefined) opts.extraHeaders = extraHeaders;
    if (transports !== undefined) opts.transports = transports;
    return this.track(ioV4((url ?? this.url) + "/private", opts));
  }

  /** A v2 socket on /public with the token in the socket query (not awaited). */
  publicV2({ token, query, transports, path, url, ...rest } = {}) {
    const opts = {
      path: path ?? this.enginePath,
      forceNew: true, // v2 caches managers per URL
      reconnection: false,
      timeout: WAIT_MS,
      ...rest,
    };
    if (query !== undefined) opts.query = query;
    else if (token !== undefined) opts.query = { token };
    if (transports !== undefined) opts.transports = transports;
    return this.track(ioV2((url ?? this.url) + "/public", opts));
  }

  /** A connected v4 /public socket (rejects with the connect_error message otherwise). */
  async connectPublic(options) {
    const socket = this.publicV4(options);
    await connected(socket, "v4 /public");
    return socket;
  }

  /** A connected v4 /private socket. */
  async connectPrivate(options) {
    const socket = this.privateV4(options);
    await connected(socket, "v4 /private");
    return socket;
  }

  /** A connected v2 /public socket. */
  async connectPublicV2(options) {
    const socket = this.publicV2(options);
    await connected(socket, "v2 /public");
    return socket;
  }

  /** A connected public socket of a new user with the given claims, registered to `register`. */
  async user({ sub = uid("user"), workspaces, groups, register = [], client = "v4", ...options } = {}) {
    const token = mintToken({ sub, workspaces, groups });
    const socket =
      client === "v2"
        ? await this.connectPublicV2({ token, ...options })
        : await this.connectPublic({ token, ...options });
    for (const workspace of register) {
      const reply = await ack(socket, "register", [{ workspace }]);
      if (!reply || reply.ok !== true) {
        throw new Error(`register ${workspace} for ${sub} failed: ${JSON.stringify(reply)}`);
      }
    }
    socket.sub = sub;
    return socket;
  }

  // -------------------------------------------------------------------------------------------
  // HTTP.

  async http(method, path, { body, headers = {}, key } = {}) {
    const h = { ...headers };
    if (key !== undefined) h.authorization = `Bearer ${key}`;
    let payload = body;
    if (body !== undefined && typeof body !== "string" && !(body instanceof Uint8Array)) {
      payload = JSON.stringify(body);
    }
    if (payload !== undefined && !h["content-type"]) h["content-type"] = "application/json";
    const res = await fetch(this.url + path, {
      method,
      headers: h,
      body: payload,
      signal: AbortSignal.timeout(WAIT_MS),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json, headers: res.headers };
  }

  /** POST /api/v1/publish with the private key. */
  publishHttp(body, { key = PRIVATE_KEY, headers } = {}) {
    return this.http("POST", "/api/v1/publish", { body, key, headers });
  }

  /** POST /api/v1/access with the private key. */
  accessHttp(body, { key = PRIVATE_KEY, headers } = {}) {
    return this.http("POST", "/api/v1/access", { body, key, headers });
  }
}

/** The value of a sample in a node's /metrics (exact series name and labels); NaN when absent. */
export async function metric(node, series) {
  const res = await node.http("GET", "/metrics", { key: PRIVATE_KEY });
  assert.equal(res.status, 200, res.text);
  const line = res.text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

/**
 * An HTTPS request trusting `ca` (PEM), for herald's native TLS: resolves with
 * { status, headers, text() } like fetch's response; rejects on a TLS or connection error.
 */
export function httpsRequest(url, { method = "GET", headers = {}, body, ca, timeoutMs = WAIT_MS } = {}) {
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequestRaw(url, { method, headers, ca, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolvePromise({ status: res.statusCode, headers: res.headers, text: async () => text });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** Closes a v4 or v2 socket and its manager's engine. */
export function closeSocket(socket) {
  try {
    socket.removeAllListeners?.();
    // Keep a no-op error listener: a v2 socket emits "error" on late failures.
    socket.on?.("error", () => {});
    if (typeof socket.disconnect === "function") socket.disconnect();
    else socket.close?.();
    socket.io?.engine?.close?.();
  } catch {
    // already closed
  }
}

// ---------------------------------------------------------------------------------------------
// Tokens.

const base64url = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");

/**
 * Mints a browser JWT. Defaults: HS256 with the configured secret, exp in one hour.
 * `omit: ["exp"]` / `["sub"]` leaves a claim out; `alg: "none"` makes an unsigned token.
 */
export function mintToken({
  sub,
  workspaces,
  groups,
  secret = JWT_SECRET,
  algorithm = "HS256",
  expiresInS = 3600,
  exp,
  iss,
  aud,
  omit = [],
  extra = {},
} = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { ...extra, iat: now };
  if (sub !== undefined) claims.sub = sub;
  if (workspaces !== undefined) claims.workspaces = workspaces;
  if (groups !== undefined) claims.groups = groups;
  claims.exp = exp ?? now + expiresInS;
  if (iss !== undefined) claims.iss = iss;
  if (aud !== undefined) claims.aud = aud;
  for (const name of omit) delete claims[name];
  if (algorithm === "none") {
    return `${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims)}.`;
  }
  return jwt.sign(claims, secret, { algorithm, noTimestamp: true });
}

// ---------------------------------------------------------------------------------------------
// Waiting.

/**
 * Resolves with the array of arguments of the next `event` on `emitter`, or rejects after `ms`
 * with a message naming what did not happen.
 */
export function once(emitter, event, ms = WAIT_MS, what = "") {
  return new Promise((resolve, reject) => {
    const listener = (...args) => {
      clearTimeout(timer);
      resolve(args);
    };
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${ms} ms waiting for "${event}"${what ? ` (${what})` : ""}`));
    }, ms);
    emitter.on(event, listener);
  });
}

/**
 * Bounded poll: resolves once `condition()` is true, checking every 50 ms; rejects after `ms`
 * with a message naming what did not happen.
 */
export async function eventually(condition, ms = WAIT_MS, what = "condition") {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(50); // poll interval of a bounded poll
  }
}

/** Awaits `check()` until it returns a truthy value, every 100 ms, for at most `ms`. */
export async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(100); // poll interval of a bounded poll
  }
}

/** Waits for `connect`; rejects with the connect_error / error message otherwise. */
export function connected(socket, what = "socket") {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
      socket.off("error", onError);
    };
    const onConnect = () => {
      cleanup();
      resolve(socket);
    };
    const onError = (err) => {
      cleanup();
      const msg = err && typeof err === "object" ? err.message : err;
      reject(new Error(`${what} was refused: ${JSON.stringify(msg)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what} did not connect within ${WAIT_MS} ms`));
    }, WAIT_MS);
    if (socket.connected) return onConnect();
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
    socket.on("error", onError);
  });
}

/**
 * Waits for a handshake refusal and resolves with the error object: `connect_error` on a v4
 * socket, `error` (or `connect_error`) on a v2 socket. Rejects if the socket connects instead.
 */
export function refused(socket, what = "socket") {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
      socket.off("error", onError);
    };
    const onConnect = () => {
      cleanup();
      reject(new Error(`${what} connected, but a refusal was expected`));
    };
    const onError = (err) => {
      cleanup();
      resolve(err);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: neither a refusal nor a connection within ${WAIT_MS} ms`));
    }, WAIT_MS);
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
    socket.on("error", onError);
  });
}

/** Emits with an ack callback (works for v4 and v2) and resolves with the ack's first argument. */
/**
 * A `register` ack without its `offset` and `epoch`, after checking their types: what tests
 * that are not about the event log compare.
 */
export function withoutPosition(reply) {
  if (reply?.ok !== true || !("workspace" in reply)) return reply;
  const { offset, epoch, ...rest } = reply;
  assert.ok(Number.isSafeInteger(offset) && offset >= 0, `register ack offset: ${JSON.stringify(reply)}`);
  assert.ok(typeof epoch === "string" && epoch.length > 0, `register ack epoch: ${JSON.stringify(reply)}`);
  return rest;
}

export function ack(socket, event, args = [], ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ack for "${event}" ${JSON.stringify(args).slice(0, 200)} within ${ms} ms`)),
      ms,
    );
    socket.emit(event, ...args, (reply) => {
      clearTimeout(timer);
      resolve(reply);
    });
  });
}

/** Publishes over /private and asserts the ack is ok; resolves with the ack. */
export async function publish(backend, body) {
  const reply = await ack(backend, "publish", [body]);
  if (!reply || reply.ok !== true) {
    throw new Error(`publish ${JSON.stringify(body).slice(0, 300)} was refused: ${JSON.stringify(reply)}`);
  }
  return reply;
}

/** Records every arrival of `event` on `socket`: `.events` is an array of argument arrays. */
export function record(socket, event) {
  const rec = { events: [] };
  socket.on(event, (...args) => rec.events.push(args));
  return rec;
}

/**
 * Proves that every socket in `sockets` has received everything published before now: publishes
 * a marker event to each socket's user room and awaits it there. Only after this may a test
 * assert that some earlier event was NOT delivered.
 */
export async function flush(backend, sockets) {
  const event = uid("marker");
  const waits = sockets.map((s) => once(s, event, WAIT_MS, `marker for ${s.sub ?? "socket"}`));
  const users = [...new Set(sockets.map((s) => s.sub))];
  if (users.some((u) => u === undefined)) throw new Error("flush needs sockets made by Herald.user()");
  await publish(backend, { event, users, data: "marker" });
  await Promise.all(waits);
}
