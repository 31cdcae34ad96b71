#!/usr/bin/env node
// Reference server: herald's wire contract (docs/protocol.md) implemented with the npm
// `socket.io` server, the way a team would build it without herald.
//
// It serves two purposes:
//   1. the benchmark baseline: "what you would otherwise run", tuned as a production deployment
//      would be: ws's native add-ons installed, which socket.io's `ws` loads by itself
//      (`bufferutil` unmasks client frames; `utf-8-validate` is installed as ws recommends, but
//      on Node >= 18.14 ws validates UTF-8 with the built-in buffer.isUtf8 instead);
//   2. an executable reference of the contract: same namespaces, events, acks, error codes and
//      HTTP API as herald, so the same clients and load generators run against both.
//
// Scope: JWT auth with HS256 only (no iss/aud, no backend auth mode), no trusted proxies, no
// allowed_origins, no status_public, fixed namespaces /public and /private.
// Where npm socket.io itself behaves differently from herald, see docs/protocol.md
// ("Differences from the npm socket.io server") and docs/benchmarks.md.
//
//   node reference-server.js --port 0 --jwt-secret S --private-key K
//
// Options (flag, else environment variable with herald's name, else default):
//   --port              HERALD_PUBLIC__PORT              8090 (0 = any free port)
//   --host              HERALD_PUBLIC__HOST              127.0.0.1
//   --path              HERALD_ENGINE_PATH               /socket.io
//   --jwt-secret        HERALD_AUTH__JWT__SECRET         required
//   --private-key       HERALD_PRIVATE__KEY              required
//   --authorized-hosts  HERALD_PRIVATE__AUTHORIZED_HOSTS 127.0.0.1,::1 (IPs or CIDRs, comma list)
// Once listening it prints one JSON line on stdout: {"event":"listening","port":N}.
"use strict";

const http = require("node:http");
const crypto = require("node:crypto");
const net = require("node:net");
const { parseArgs } = require("node:util");
const { Server } = require("socket.io");
const jwt = require("jsonwebtoken");

try {
  require("bufferutil"); // what ws will load; a baseline without it would not be a tuned one
} catch (error) {
  console.error(`reference-server: warning: bufferutil does not load (${error.message})`);
}

// ---------------------------------------------------------------------------------------------
// Configuration.

function usage(problem) {
  console.error(`reference-server: ${problem}\nusage: reference-server.js --jwt-secret S --private-key K ` +
    "[--port N] [--host H] [--path /socket.io] [--authorized-hosts 127.0.0.1,::1]");
  process.exit(2);
}
const OPTIONS = ["port", "host", "path", "jwt-secret", "private-key", "authorized-hosts"];
let flags;
try {
  flags = parseArgs({ options: Object.fromEntries(OPTIONS.map((o) => [o, { type: "string" }])) }).values;
} catch (error) {
  usage(error.message);
}
const env = process.env;
const cfg = {
  port: Number(flags.port ?? env.HERALD_PUBLIC__PORT ?? 8090),
  host: flags.host ?? env.HERALD_PUBLIC__HOST ?? "127.0.0.1",
  enginePath: (flags.path ?? env.HERALD_ENGINE_PATH ?? "/socket.io").replace(/\/+$/, ""),
  jwtSecret: flags["jwt-secret"] ?? env.HERALD_AUTH__JWT__SECRET,
  privateKey: flags["private-key"] ?? env.HERALD_PRIVATE__KEY,
  authorizedHosts: (flags["authorized-hosts"] ?? env.HERALD_PRIVATE__AUTHORIZED_HOSTS ?? "127.0.0.1,::1")
    .split(",").map((h) => h.trim()).filter(Boolean),
};
if (!cfg.jwtSecret || !cfg.privateKey) usage("the JWT secret and the private key are required");
if (!Number.isInteger(cfg.port) || cfg.port < 0 || cfg.port > 65535) usage(`bad port ${cfg.port}`);

const PUBLIC_NS = "/public";
const PRIVATE_NS = "/private";
const MAX_ID_BYTES = 256;
const MAX_EVENT_BYTES = 128;
const MAX_TARGETS = 1000;
const MAX_BODY_BYTES = 1024 * 1024;
const RESERVED_EVENTS = new Set(["connect", "connect_error", "disconnect", "disconnecting",
  "newListener", "removeListener"]);
const CONTROL = /\p{Cc}/u; // Rust's char::is_control: U+0000..U+001F and U+007F..U+009F

// ---------------------------------------------------------------------------------------------
// Small helpers: ids, bearer tokens, the private key, authorized hosts.

/** Why `raw` is not a valid workspace/user/group id, or null when it is one. */
function idError(raw) {
  if (typeof raw !== "string") return "must be a string";
  if (raw.length === 0) return "must not be empty";
  if (Buffer.byteLength(raw) > MAX_ID_BYTES) return `must be at most ${MAX_ID_BYTES} bytes`;
  if (CONTROL.test(raw)) return "must not contain control characters";
  return null;
}

/** The token of an `Authorization: Bearer <token>` header value, or undefined. */
function bearer(value) {
  const m = /^bearer (.+)$/is.exec(value ?? "");
  return m && m[1].trim() ? m[1].trim() : undefined;
}

const keyDigest = crypto.createHash("sha256").update(cfg.privateKey).digest();
/** Constant-time key check: compares SHA-256 digests, equal-length whatever was presented. */
function keyMatches(presented) {
  if (typeof presented !== "string") return false;
  return crypto.timingSafeEqual(crypto.createHash("sha256").update(presented).digest(), keyDigest);
}

const unmapIPv4 = (ip) => String(ip ?? "").replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "");
const allowedHosts = new net.BlockList();
for (const entry of cfg.authorizedHosts) {
  const [mask, bits] = entry.split("/");
  const ip = bits === undefined ? unmapIPv4(mask) : mask;
  const type = net.isIPv6(ip) ? "ipv6" : "ipv4";
  if (bits === undefined) allowedHosts.addAddress(ip, type);
  else allowedHosts.addSubnet(ip, Number(bits), type);
}
/** Whether a peer address is an authorized host; ::ffff:a.b.c.d counts as a.b.c.d. */
function hostAllowed(address) {
  const ip = unmapIPv4(address);
  return net.isIP(ip) !== 0 && allowedHosts.check(ip, net.isIPv6(ip) ? "ipv6" : "ipv4");
}

const hasBinary = (v) => Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v) ||
  (v !== null && typeof v === "object" && Object.values(v).some(hasBinary));

// ---------------------------------------------------------------------------------------------
// Publishing, shared by the /private `publish` event and POST /api/v1/publish.

class PublishError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}
const badRequest = (message) => new PublishError("bad_request", message);
const PUBLISH_FIELDS = ["event", "data", "workspace", "workspaces", "user", "users", "group"];

/** Validates a publish request as herald does; returns {event, data, targets} or throws. */
function parsePublish(body) {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest("expected a JSON object argument");
  }
  if (hasBinary(body)) throw badRequest("binary attachments are not supported");
  for (const field of Object.keys(body)) {
    if (!PUBLISH_FIELDS.includes(field)) {
      throw badRequest(`unknown field \`${field}\`, expected one of ${PUBLISH_FIELDS.join(", ")}`);
    }
  }
  const one = (field) => { // optional single id; null counts as absent
    const v = body[field];
    if (v === undefined || v === null) return [];
    const error = idError(v);
    if (error) throw badRequest(`\`${field}\` ${error}`);
    return [v];
  };
  const list = (field) => { // optional list of ids
    const v = body[field];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw badRequest(`\`${field}\` must be an array of strings`);
    for (const item of v) {
      const error = idError(item);
      if (error) throw badRequest(`\`${field}\` item ${error}`);
    }
    return v;
  };
  const { event } = body;
  if (event === undefined) throw badRequest("missing field `event`");
  if (typeof event !== "string") throw badRequest("`event` must be a string");
  const [workspaceList, userList] = [list("workspaces"), list("users")];
  const workspaces = [...one("workspace"), ...workspaceList];
  const users = [...one("user"), ...userList];
  const groups = one("group");
  if (event.length === 0 || Buffer.byteLength(event) > MAX_EVENT_BYTES || CONTROL.test(event)) {
    throw new PublishError("invalid_event",
      `\`event\` must be 1 to ${MAX_EVENT_BYTES} bytes without control characters`);
  }
  if (RESERVED_EVENTS.has(event)) {
    throw new PublishError("reserved_event", `\`event\` ${JSON.stringify(event)} is reserved by Socket.IO`);
  }
  const tooMany = new PublishError("too_many_targets", `at most ${MAX_TARGETS} targets per publish`);
  if (workspaceList.length + userList.length > MAX_TARGETS) throw tooMany; // bound before dedup, as herald
  const targets = { workspaces: [...new Set(workspaces)], users: [...new Set(users)], groups };
  const count = targets.workspaces.length + targets.users.length + targets.groups.length;
  if (count === 0) {
    throw new PublishError("no_target", "name at least one target: workspace, workspaces, user, users or group");
  }
  if (count > MAX_TARGETS) throw tooMany;
  return { event, data: body.data === undefined ? null : body.data, targets };
}

/** Delivers to the union of the target rooms on /public, each socket once; returns the id. */
function publish(publicNs, { event, data, targets }) {
  const id = crypto.randomUUID();
  const ts = Date.now();
  // Workspace rooms first, each excluding the rooms already served, so a socket in several
  // targeted rooms gets the event once, tagged with the first workspace (publisher order).
  const served = [];
  for (const workspace of targets.workspaces) {
    const room = `workspace:${workspace}`;
    publicNs.to(room).except(served).emit(event, data, { id, workspace, ts });
    served.push(room);
  }
  const others = [...targets.users.map((u) => `user:${u}`), ...targets.groups.map((g) => `group:${g}`)];
  if (others.length > 0) publicNs.to(others).except(served).emit(event, data, { id, workspace: null, ts });
  return id;
}

/** Splits Socket.IO event arguments into (first payload argument, ack function or undefined). */
function splitArgs(args) {
  const ack = typeof args[args.length - 1] === "function" ? args[args.length - 1] : undefined;
  const payload = ack ? args.slice(0, -1) : args;
  return { arg: payload[0], ack: ack ?? (() => {}), hasArg: payload.length > 0 };
}
const errorAck = (error, message) => (message === undefined ? { ok: false, error } : { ok: false, error, message });

// ---------------------------------------------------------------------------------------------
// Servers.

const started = Date.now();
const httpServer = http.createServer(handleHttp);
const io = new Server(httpServer, { path: cfg.enginePath, allowEIO3: true, maxHttpBufferSize: 1e6 });
const publicNs = io.of(PUBLIC_NS);
const privateNs = io.of(PRIVATE_NS);

// /public handshake: a JWT from auth.token, ?token= or Authorization: Bearer.
publicNs.use((socket, next) => {
  const { auth, query, headers } = socket.handshake;
  const nonEmpty = (v) => (typeof v === "string" && v !== "" ? v : undefined);
  const token = nonEmpty(auth?.token) ?? nonEmpty(query?.token) ?? bearer(headers.authorization);
  try {
    if (!token) throw new Error("no token");
    const claims = jwt.verify(token, cfg.jwtSecret, { algorithms: ["HS256"], clockTolerance: 5 });
    if (typeof claims.exp !== "number" || idError(claims.sub)) throw new Error("bad exp/sub");
    const ids = (v) => { // optional claim: absent/null, or an array of valid ids
      if (v === undefined || v === null) return null;
      if (!Array.isArray(v) || v.some(idError)) throw new Error("bad claim");
      return v;
    };
    const workspaces = ids(claims.workspaces);
    socket.data.user = claims.sub;
    socket.data.groups = ids(claims.groups) ?? [];
    socket.data.workspaces = workspaces && new Set(workspaces); // null: no workspace at all
    next();
  } catch {
    next(new Error("unauthorized")); // the reason is never sent to the client
  }
});

/** The workspace id of a register/unregister argument, or an error message. */
function workspaceArg({ arg, hasArg }) {
  if (!hasArg) return { message: "expected a JSON argument" };
  let raw = arg;
  if (arg !== null && typeof arg === "object" && !Array.isArray(arg) && "workspace" in arg) {
    if (typeof arg.workspace !== "string") return { message: "`workspace` must be a string" };
    raw = arg.workspace;
  } else if (typeof arg !== "string") {
    return { message: 'expected {"workspace": "<id>"} or a workspace id string' };
  }
  const error = idError(raw);
  return error ? { message: `\`workspace\` ${error}` } : { workspace: raw };
}

publicNs.on("connection", (socket) => {
  socket.join([`user:${socket.data.user}`, ...socket.data.groups.map((g) => `group:${g}`)]);
  socket.on("register", (...args) => {
    const call = splitArgs(args);
    const { workspace, message } = workspaceArg(call);
    if (message) return call.ack(errorAck("bad_request", message));
    if (!socket.data.workspaces?.has(workspace)) return call.ack(errorAck("forbidden"));
    socket.join(`workspace:${workspace}`);
    call.ack({ ok: true, workspace });
  });
  socket.on("unregister", (...args) => {
    const call = splitArgs(args);
    const { workspace, message } = workspaceArg(call);
    if (message) return call.ack(errorAck("bad_request", message));
    socket.leave(`workspace:${workspace}`);
    call.ack({ ok: true });
  });
  answerUnknownEvents(socket, ["register", "unregister"]);
});

/** Acks events nobody handles with bad_request, when the client asked for an ack. */
function answerUnknownEvents(socket, known) {
  socket.onAny((event, ...args) => {
    const ack = args[args.length - 1];
    if (!known.includes(event) && typeof ack === "function") ack(errorAck("bad_request", "unknown event"));
  });
}

// /private handshake: the private key (auth.key or Authorization: Bearer) AND an authorized host.
privateNs.use((socket, next) => {
  const { auth, headers, address } = socket.handshake;
  const key = typeof auth?.key === "string" ? auth.key : bearer(headers.authorization);
  const keyOk = keyMatches(key); // always computed, whatever the host
  next(keyOk && hostAllowed(address) ? undefined : new Error("unauthorized"));
});

privateNs.on("connection", (socket) => {
  socket.on("publish", (...args) => {
    const { arg, ack } = splitArgs(args);
    try {
      ack({ ok: true, id: publish(publicNs, parsePublish(arg)) });
    } catch (error) {
      if (!(error instanceof PublishError)) throw error;
      ack(errorAck(error.code, error.message));
    }
  });
  socket.on("disconnect_user", async (...args) => {
    const { arg, ack } = splitArgs(args);
    const valid = arg !== null && typeof arg === "object" && !Array.isArray(arg) &&
      Object.keys(arg).every((k) => k === "user" || k === "reason") && !idError(arg.user) &&
      (arg.reason === undefined || arg.reason === null || typeof arg.reason === "string");
    if (!valid) return ack(errorAck("bad_request", 'expected {"user": "<id>", "reason"?: "..."}'));
    const sockets = await publicNs.in(`user:${arg.user}`).fetchSockets();
    for (const s of sockets) {
      s.emit("session_invalid", { reason: arg.reason ?? "logout" });
      s.disconnect(true);
    }
    ack({ ok: true, sockets: sockets.length });
  });
  answerUnknownEvents(socket, ["publish", "disconnect_user"]);
});

// ---------------------------------------------------------------------------------------------
// HTTP API. socket.io wraps this handler: requests under the engine path go to socket.io and
// never reach it (the check below only makes that explicit).

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}
const apiError = (res, status, code, message, headers) => sendJson(res, status, { code, message }, headers);
const unauthorized = (res) => apiError(res, 401, "unauthorized", "unauthorized");

function handleHttp(req, res) {
  const pathname = req.url.split("?")[0];
  if (pathname.startsWith(`${cfg.enginePath}/`)) return; // socket.io's
  const route = `${req.method === "HEAD" ? "GET" : req.method} ${pathname}`;
  if (route === "GET /health") {
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    return res.end("ok");
  }
  if (route === "GET /status") {
    if (!keyMatches(bearer(req.headers.authorization))) return unauthorized(res);
    let workspaces = 0;
    for (const room of publicNs.adapter.rooms.keys()) if (room.startsWith("workspace:")) workspaces += 1;
    return sendJson(res, 200, {
      status: "ON", version: "reference", uptime_s: Math.floor((Date.now() - started) / 1000),
      connections: { public: publicNs.sockets.size, private: privateNs.sockets.size }, workspaces,
    });
  }
  if (route === "POST /api/v1/publish") return httpPublish(req, res);
  apiError(res, 404, "not_found", "not found");
}

function httpPublish(req, res) {
  const keyOk = keyMatches(bearer(req.headers.authorization));
  if (!keyOk || !hostAllowed(req.socket.remoteAddress)) return unauthorized(res);
  const tooLarge = () => {
    req.resume(); // discard the rest; the connection closes after the answer
    apiError(res, 413, "payload_too_large", `request body over ${MAX_BODY_BYTES} bytes`, { connection: "close" });
  };
  if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES) return tooLarge();
  const chunks = [];
  let size = 0;
  const onData = (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      req.off("data", onData).off("end", onEnd);
      tooLarge();
    } else {
      chunks.push(chunk);
    }
  };
  const onEnd = () => {
    let body;
    try {
      body = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(Buffer.concat(chunks)));
    } catch (error) {
      const message = error instanceof TypeError ? "the body must be UTF-8 JSON" : error.message;
      return apiError(res, 400, "bad_request", message);
    }
    try {
      sendJson(res, 202, { id: publish(publicNs, parsePublish(body)) });
    } catch (error) {
      if (!(error instanceof PublishError)) throw error;
      apiError(res, 400, error.code, error.message);
    }
  };
  req.on("data", onData).on("end", onEnd);
  req.on("error", () => res.destroy());
}

// ---------------------------------------------------------------------------------------------
// Start and stop.

httpServer.listen(cfg.port, cfg.host, () => {
  process.stdout.write(`${JSON.stringify({ event: "listening", port: httpServer.address().port })}\n`);
});
httpServer.on("error", (error) => {
  console.error(`reference-server: ${error.message}`);
  process.exit(1);
});

function shutdown() {
  io.close(() => process.exit(0)); // disconnects every socket, then closes the HTTP server
  setTimeout(() => process.exit(0), 2000).unref(); // do not wait on lingering keep-alive clients
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
