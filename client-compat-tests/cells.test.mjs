// Pydio Cells' web UI door, `/ws/event` ([cells] enabled): a plain WebSocket speaking the UI's
// JSON protocol. The client is cells-ui.mjs, which behaves as the unmodified UI does (a subscribe
// on every open, a re-subscribe 500 ms after an idm frame, reconnection 1.5-3 s after any close,
// x1.6 per failed attempt), against the real herald: node events rendered per workspace (paths
// under the slug, MetaStore as JSON text, nested and multi-root workspaces, moves across a root,
// batching), tasks, activities and idm routing, no leak between workspaces or to Socket.IO
// sockets, session changes, the unsubscribed timeout and the UI's reconnection loop, token expiry,
// access changes, hostile input and bad publishes, the connection limit and origins, a slow
// consumer, a shutdown, two nodes on a Redis, and Chromium's own WebSocket. The client's own
// behaviour is checked first against a WebSocket server of the test's own.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { once as onceEvent } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";

import { WebSocketServer } from "ws";

import {
  PRIVATE_KEY,
  WAIT_MS,
  ack,
  connected,
  eventually,
  flush,
  freePort,
  metric,
  mintToken,
  once,
  record,
  startHerald,
  uid,
  until,
} from "./harness.mjs";
import { CellsUI, UI_IDM_RELOAD_MS, UI_RECONNECT } from "./cells-ui.mjs";
import { UPGRADE_HEADERS, exchangeUntilClose } from "./raw-http.mjs";
import { startRedis } from "./redis.mjs";
import { launchChromium, startStaticServer } from "./browser.mjs";

const nowS = () => Math.floor(Date.now() / 1000);
/** A MetaStore value: JSON text. */
const json = (value) => JSON.stringify(value);

// ---------------------------------------------------------------------------------------------
// Workspaces, users and tokens.

/** A workspace of the test's own: {id, slug, roots: [{uuid, path, key?}]}, one root unless given. */
function workspace(roots) {
  return { id: uid("ws"), slug: uid("slug"), roots: roots ?? [{ uuid: uid("root"), path: uid("ds") }] };
}

/** The path of a workspace's root `i` in the tree. */
const rootPath = (ws, i = 0) => ws.roots[i].path;

/** A JWT with the Cells claims (login, profile, roles, workspace_roots) besides sub and exp. */
function cellsToken({ sub, login, profile, roles, workspaces, exp, expiresInS, secret, algorithm }) {
  const extra = { workspace_roots: workspaces };
  if (login !== undefined) extra.login = login;
  if (profile !== undefined) extra.profile = profile;
  if (roles !== undefined) extra.roles = roles;
  return mintToken({ sub, exp, expiresInS, secret, algorithm, extra });
}

/** A user of the test's own; `user.token(overrides)` mints a token of theirs. */
function cellsUser({ sub = uid("sub"), login = uid("login"), profile = "standard", roles = [], workspaces = [] } = {}) {
  const user = { sub, login, profile, roles, workspaces };
  user.token = (overrides = {}) => cellsToken({ ...user, ...overrides });
  return user;
}

// ---------------------------------------------------------------------------------------------
// What backends publish, and predicates on frames.

/** A LEAF node at `path` with its name in MetaStore (JSON text), plus `fields`. */
function leaf(path, { uuid = randomUUID(), ...fields } = {}) {
  return { Uuid: uuid, Path: path, Type: "LEAF", MetaStore: { name: json(path.split("/").pop()) }, ...fields };
}

/** A DELETE of a file `name` under the workspace's first root (DELETE is never held by the batcher). */
function deletion(ws, uuid, name = `${uuid}.txt`) {
  return { Type: "DELETE", Source: leaf(`${rootPath(ws)}/${name}`, { uuid }) };
}

/** A jobs.TaskChangeEvent of `owner` with task id `id`. */
function taskData(owner, id, { statusMessage = "Compressing" } = {}) {
  return {
    TaskUpdated: {
      ID: id,
      JobID: `job-${id}`,
      Status: "Running",
      StatusMessage: statusMessage,
      TriggerOwner: owner,
      HasProgress: true,
      Progress: 0.5,
    },
    Job: { ID: `job-${id}`, Label: "Compress selection", Owner: owner },
    NanoStamp: String(Date.now() * 1000000),
  };
}

/** An activity.PostActivityEvent for `owner` about something `actor` did. */
function activityData(owner, actor, { box = "inbox", ownerType = "USER" } = {}) {
  const data = {
    OwnerId: owner,
    BoxName: box,
    Activity: {
      "@context": "https://www.w3.org/ns/activitystreams",
      type: "Update",
      id: uid("activity"),
      actor: { type: "Person", id: actor, name: actor },
      object: { type: "Document", id: randomUUID(), name: "pydiods1/folder/report.docx" },
      origin: { type: "Folder", name: "pydiods1/folder/sub" },
      target: { type: "Folder", name: "/a/b/c" },
    },
  };
  if (ownerType !== null) data.OwnerType = ownerType; // null: left out (protojson's NODE)
  return data;
}

const isTask = (id) => (f) => f?.TaskUpdated?.ID === id;
const isError = (code) => (f) => f?.["@type"] === "error" && f.code === code;
const isIdm = (f) => f?.["@type"] === "idm";
/** A node frame about node `uuid` (its Source or its Target). */
const aboutNode = (uuid) => (f) => f?.Target?.Uuid === uuid || f?.Source?.Uuid === uuid;
/** The workspace id a node frame is rendered for (JSON text in the node's MetaStore). */
const frameWorkspace = (f) => (f?.Type === "DELETE" ? f.Source : f?.Target)?.MetaStore?.EventWorkspaceId;
/** A node frame about `uuid` rendered for workspace `ws`. */
const aboutNodeIn = (uuid, ws) => (f) => aboutNode(uuid)(f) && frameWorkspace(f) === json(ws.id);
/** The helpers' own tasks (readiness probes and markers). */
const isHelperTask = (f) => /^(ready|marker)-/.test(f?.TaskUpdated?.ID ?? "");
/** Every frame a client got but the helpers' own tasks. */
const content = (c) => c.frames.filter((f) => !isHelperTask(f));

/** Asserts an error frame: exactly {"@type":"error","code","error"} with this code. */
function assertErrorFrame(frame, code, what) {
  const shown = JSON.stringify(frame);
  assert.equal(frame?.["@type"], "error", `${what}: not an error frame: ${shown}`);
  assert.deepEqual(Object.keys(frame).sort(), ["@type", "code", "error"], `${what}: the keys of ${shown}`);
  assert.equal(frame.code, code, `${what}: ${shown}`);
  assert.ok(typeof frame.error === "string" && frame.error.length > 0, `${what}: no text for people in ${shown}`);
}

/** Resolves {opened: true} once `c` opens, or {opened: false, close} if it closes first; opens it. */
function attempt(c) {
  return new Promise((resolve) => {
    c.once("open", () => resolve({ opened: true }));
    c.once("close", (close) => resolve({ opened: false, close }));
    c.open();
  });
}

// ---------------------------------------------------------------------------------------------
// One herald's /ws/event door, as tests use it.

class CellsDoor {
  constructor(herald) {
    this.herald = herald;
    this.clients = [];
  }

  get url() {
    return `${this.herald.url.replace(/^http/, "ws")}/ws/event`;
  }

  /**
   * A UI-like client (not opened) of `user`: its token provider mints the user's token unless
   * `token` is given; the active workspace is the user's first unless `workspace` is given.
   */
  client({ user, token, workspace: active, label, ...options } = {}) {
    const provider = token ?? (user ? () => user.token() : () => undefined);
    const c = new CellsUI({
      url: this.url,
      token: provider,
      workspace: active ?? user?.workspaces[0],
      label: label ?? `cells session of ${user?.login ?? "nobody"}`,
      ...options,
    });
    c.user = user;
    this.clients.push(c);
    return c;
  }

  /** A subscribed session of `user` (no reconnection unless told), proven by a task marker. */
  async session(user, options = {}) {
    const c = this.client({ user, reconnect: false, ...options });
    c.open();
    await this.subscribed(c);
    return c;
  }

  /** POST /api/v1/publish; asserts 202. */
  async publish(body, what = body.event) {
    const res = await this.herald.publishHttp(body);
    assert.equal(res.status, 202, `publish ${what}: ${res.status} ${res.text}`);
    return res.json;
  }

  node(data, extra = {}) {
    return this.publish({ event: "cells:node", data, ...extra }, `cells:node ${data.Type ?? "(no Type)"}`);
  }

  task(owner, id, extra = {}) {
    return this.publish({ event: "cells:task", data: taskData(owner, id), ...extra }, `cells:task of ${owner}`);
  }

  /**
   * Bounded poll: publishes a probe made by `probe()` ({send, match}) every 250 ms until `c`
   * receives one, for at most WAIT_MS.
   */
  async untilDelivered(c, probe, what) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const { send, match } = probe();
      const arrived = c.waitFrame(match, 250, what).then(
        () => true,
        () => false,
      );
      await send();
      if (await arrived) return;
      if (Date.now() >= deadline) {
        const closes = JSON.stringify(c.closes.map(({ code, reason }) => [code, reason]));
        throw new Error(
          `timed out after ${WAIT_MS} ms waiting for ${what}; closes: ${closes}; ` +
            `frames: ${JSON.stringify(c.frames).slice(-1500)}`,
        );
      }
    }
  }

  /** Resolves once `c` is subscribed as `login`: a task of that login reaches it. */
  subscribed(c, login = c.user.login, what = c.label) {
    return this.untilDelivered(
      c,
      () => {
        const id = uid("ready");
        return { send: () => this.task(login, id), match: isTask(id) };
      },
      `${what} to be subscribed (a task of ${login} to reach it)`,
    );
  }

  /**
   * Proves each session has received everything published before now: a task marker per login,
   * awaited on each. Only after this may a test assert that a session did NOT get something.
   */
  async flush(sessions, what = "") {
    const ids = new Map();
    for (const c of sessions) if (!ids.has(c.user.login)) ids.set(c.user.login, uid("marker"));
    const waits = sessions.map((c) =>
      c.waitFrame(isTask(ids.get(c.user.login)), WAIT_MS, `the marker task of ${c.user.login}${what ? ` (${what})` : ""}`),
    );
    for (const [login, id] of ids) await this.task(login, id);
    await Promise.all(waits);
  }

  /**
   * The same for a session that receives no events (unsubscribed): a frame that is not JSON, and
   * its bad_message answer, which comes after anything queued for the session before it.
   */
  async ping(c) {
    const answer = c.nextFrame(isError("bad_message"), WAIT_MS, "the bad_message answer to a ping");
    c.send("ping (not JSON)");
    await answer;
  }

  /** afterEach: drops every client; fails the test if the UI would have thrown on a frame. */
  afterEach(t) {
    const problems = [];
    for (const c of this.clients) {
      c.terminate();
      if (c.errors.length > 0) problems.push(`${c.label}: ${c.errors.join("\n  ")}`);
    }
    this.clients = [];
    this.herald.afterEach(t);
    if (problems.length > 0) {
      throw new Error(`the UI would have thrown on frames it received:\n${problems.join("\n")}`);
    }
  }
}

// =============================================================================================
// The client itself, against a WebSocket server of the test's own: it must behave as the UI does
// before it can tell anything about herald.

describe("the UI-like client (cells-ui.mjs) against a WebSocket server of the test's own", () => {
  let server;
  let url;
  const conns = [];
  const clients = [];
  before(async () => {
    server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await onceEvent(server, "listening");
    url = `ws://127.0.0.1:${server.address().port}/ws/event`;
    server.on("connection", (socket) => {
      const conn = { socket, texts: [], messages: [] };
      socket.on("message", (data) => {
        conn.texts.push(data.toString());
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
    server.removeAllListeners("client_message");
  });
  after(async () => {
    server?.close();
  });

  const client = (options) => {
    const c = new CellsUI({ url, ...options });
    clients.push(c);
    return c;
  };
  /** The next message a connection receives from the client. */
  const nextMessage = (what) =>
    once(server, "client_message", WAIT_MS, what).then(([conn]) => conn);

  test("the defaults are the UI's: 1.5-3 s, x1.6, 60 s cap, 4 s connect timeout, 10 retries, idm reload after 500 ms", () => {
    assert.deepEqual({ ...UI_RECONNECT }, {
      minDelayMs: 1500,
      maxDelayMs: 3000,
      growFactor: 1.6,
      capMs: 60000,
      connectTimeoutMs: 4000,
      maxRetries: 10,
    });
    assert.equal(UI_IDM_RELOAD_MS, 500);
    for (let i = 0; i < 200; i += 1) {
      const { baseDelayMs } = new CellsUI({ url });
      assert.ok(baseDelayMs >= 1500 && baseDelayMs <= 3000, `a first delay of ${baseDelayMs} ms`);
    }
  });

  test("a subscribe on every open, with the token it has then; none yet: retries, then {\"@type\":\"subscribe\"}", async () => {
    const tokens = [undefined, undefined, "token-1", "token-2"];
    let calls = 0;
    const c = client({
      token: () => tokens[Math.min(calls++, tokens.length - 1)],
      noTokenRetries: 1,
      noTokenRetryMs: 50,
      reconnect: { minDelayMs: 20, maxDelayMs: 40 },
    });
    // Each connection is closed by the server as soon as the client subscribed on it.
    server.on("client_message", (conn) => conn.socket.close(1011, "try again"));
    const first = nextMessage("the first subscribe");
    c.open();
    const conn1 = await first;
    assert.deepEqual(conn1.texts, ['{"@type":"subscribe"}'], "without a token the jwt key is left out");
    assert.equal(calls, 2, "the token was asked for twice (one retry) before subscribing without one");
    const conn2 = await nextMessage("the subscribe after the first reconnection");
    assert.deepEqual(conn2.messages, [{ "@type": "subscribe", jwt: "token-1" }]);
    const conn3 = await nextMessage("the subscribe after the second reconnection");
    assert.deepEqual(conn3.messages, [{ "@type": "subscribe", jwt: "token-2" }]);
    // Each open reset the failures: every delay is the client's first delay, within [20, 40] ms.
    assert.ok(c.baseDelayMs >= 20 && c.baseDelayMs <= 40, `base ${c.baseDelayMs}`);
    for (const s of c.scheduled.slice(0, 2)) assert.equal(s.delayMs, c.baseDelayMs, JSON.stringify(c.scheduled));
    for (const [i, close] of c.closes.slice(0, 2).entries()) {
      const gap = c.opens[i + 1] - close.at;
      assert.ok(gap >= c.baseDelayMs - 2, `reopened ${gap} ms after close ${i}, before its delay ${c.baseDelayMs}`);
    }
  });

  test("dispatch: dump ignored, @type events, tasks, node events of the active workspace with the slug stripped", async () => {
    const active = { id: "ws-active", slug: "my-files" };
    const c = client({ workspace: active, reconnect: false, autoSubscribe: false });
    const got = { dump: 0, idm: [], tasks: [], nodes: [], ignored: [], skipped: [] };
    c.on("dump", () => (got.dump += 1));
    c.on("websocket_event:idm", (f) => got.idm.push(f));
    c.on("task_message", (f) => got.tasks.push(f));
    c.on("node_event", (e) => got.nodes.push(e));
    c.on("ignored", (f) => got.ignored.push(f));
    c.on("skipped", (f) => got.skipped.push(f));
    const connected = once(server, "conn", WAIT_MS, "the connection");
    c.open();
    const [conn] = await connected;
    await eventually(() => c.isOpen, WAIT_MS, "the client to be open");
    const metas = (ws, more = {}) => ({ EventWorkspaceId: json(ws), ...more });
    const frames = [
      "dump",
      { "@type": "idm" },
      taskData("alice", "t1"),
      { Target: { Uuid: "n1", Path: "my-files/a/b.txt", MetaStore: metas("ws-active", { name: json("b.txt"), bookmark: "true" }) } },
      { Target: { Uuid: "n2", Path: "other/x.txt", MetaStore: metas("ws-other") } },
      { Target: { Uuid: "n3", Path: "my-files", MetaStore: metas("ws-active", { ws_root: "true" }) } },
      {
        Type: "UPDATE_PATH",
        Source: { Uuid: "n4", Path: "my-files/old.txt", MetaStore: metas("ws-active") },
        Target: { Uuid: "n4", Path: "my-files/new.txt", MetaStore: metas("ws-active") },
      },
      { Type: "DELETE", Source: { Uuid: "n5", Path: "my-files/gone.txt", MetaStore: metas("ws-active") } },
    ];
    for (const f of frames) conn.socket.send(JSON.stringify(f));
    await c.waitFrame(aboutNode("n5"), WAIT_MS, "the last frame");
    assert.equal(got.dump, 1);
    assert.deepEqual(got.idm, [{ "@type": "idm" }]);
    assert.deepEqual(got.tasks, [frames[2]]);
    assert.deepEqual(
      got.nodes.map(({ type, path, originalPath, metas: m }) => ({ type, path, originalPath, metas: m })),
      [
        { type: "CREATE", path: "/a/b.txt", originalPath: "/a/b.txt", metas: { EventWorkspaceId: "ws-active", name: "b.txt", bookmark: true } },
        { type: "UPDATE_PATH", path: "/new.txt", originalPath: "/old.txt", metas: { EventWorkspaceId: "ws-active" } },
        { type: "DELETE", path: "/gone.txt", originalPath: "/gone.txt", metas: { EventWorkspaceId: "ws-active" } },
      ],
    );
    assert.equal(got.ignored.length, 1, "the other workspace's event is ignored");
    assert.equal(got.skipped.length, 1, "a CREATE of the workspace root itself is skipped");
    assert.deepEqual(c.errors, []);

    // What the UI throws on is recorded.
    conn.socket.send(JSON.stringify({ Target: { Uuid: "n6", Path: "my-files/c", MetaStore: metas("ws-active", { name: "c" }) } }));
    conn.socket.send(JSON.stringify({ Target: { Uuid: "n7", Path: "my-files/d", MetaStore: { name: json("d") } } }));
    await eventually(() => c.errors.length === 2, WAIT_MS, "two errors");
    assert.match(c.errors[0], /MetaStore\.name is not JSON text/);
    assert.match(c.errors[1], /no EventWorkspaceId/);
    c.errors.length = 0;
  });

  test("an idm frame: one subscribe 500 ms after the last of a burst, with the token it has then", async () => {
    let token = "before";
    const c = client({ token: () => token, reconnect: false });
    const firstSubscribe = nextMessage("the subscribe at open");
    c.open();
    const conn = await firstSubscribe;
    const firstIdm = c.waitFrame(isIdm, WAIT_MS, "the first idm");
    conn.socket.send('{"@type":"idm"}');
    await firstIdm;
    token = "after";
    const secondIdm = c.nextFrame(isIdm, WAIT_MS, "the second idm");
    conn.socket.send('{"@type":"idm"}');
    await secondIdm;
    const lastIdmAt = c.arrivals.at(-1).at;
    const resubscribe = await c.waitSubscribe(WAIT_MS, "the re-subscribe after the idm frames");
    assert.deepEqual(resubscribe.message, { "@type": "subscribe", jwt: "after" });
    const after = resubscribe.at - lastIdmAt;
    assert.ok(after >= UI_IDM_RELOAD_MS - 5 && after < UI_IDM_RELOAD_MS + 500, `re-subscribed ${after} ms after the last idm`);
    // Bounded poll on the clock: past the first idm's own 500 ms, there is still only one.
    await eventually(() => Date.now() > resubscribe.at + UI_IDM_RELOAD_MS + 100, WAIT_MS, "600 ms after the re-subscribe");
    assert.equal(c.subscribes.length, 2, JSON.stringify(c.subscribes));
  });

  test("failed attempts: delays grow x1.6 from the client's base, then it gives up; a silent server times out", async () => {
    const port = await freePort(); // nothing listens there
    const c = client({
      url: `ws://127.0.0.1:${port}/ws/event`,
      reconnect: { minDelayMs: 20, maxDelayMs: 40, maxRetries: 3 },
    });
    const gaveUp = once(c, "give_up", WAIT_MS, "the client to give up");
    c.open();
    await gaveUp;
    const base = c.baseDelayMs;
    assert.deepEqual(
      c.scheduled.map(({ delayMs, failures }) => [Math.round(delayMs * 1000), failures]),
      [1, 2, 3].map((n) => [Math.round(base * 1.6 ** n * 1000), n]),
      `delays after 1, 2 and 3 failed attempts from a base of ${base} ms`,
    );
    assert.equal(c.closes.length, 4, "four attempts: the first and three retries");
    assert.ok(c.closes.every((close) => !close.opened));
    for (let i = 1; i < c.closes.length; i += 1) {
      const gap = c.closes[i].at - c.closes[i - 1].at;
      assert.ok(gap >= c.scheduled[i - 1].delayMs - 2, `attempt ${i + 1} came ${gap} ms after the previous one`);
    }

    // A server that accepts TCP but never answers the upgrade: dropped after connectTimeoutMs.
    const silent = createServer(() => {});
    silent.listen(0, "127.0.0.1");
    await onceEvent(silent, "listening");
    try {
      const s = client({
        url: `ws://127.0.0.1:${silent.address().port}/ws/event`,
        reconnect: { minDelayMs: 20, maxDelayMs: 40, connectTimeoutMs: 200, maxRetries: 0 },
      });
      const started = Date.now();
      const silentGaveUp = once(s, "give_up", WAIT_MS, "the client to give up on the silent server");
      s.open();
      await silentGaveUp;
      const took = s.closes[0].at - started;
      assert.ok(took >= 190 && took < 2000, `the attempt was dropped after ${took} ms`);
    } finally {
      silent.close();
    }
  });

  test("close() is the UI's: 1000 Closing, and no reconnection", async () => {
    const c = client({ token: () => "t", reconnect: { minDelayMs: 1, maxDelayMs: 2 } });
    const subscribed = nextMessage("the subscribe");
    c.open();
    const conn = await subscribed;
    const closed = onceEvent(conn.socket, "close");
    c.close();
    const [code, reason] = await closed;
    assert.deepEqual([code, reason.toString()], [1000, "Closing"]);
    await eventually(() => c.closes.length === 1, WAIT_MS, "the client to see its close");
    assert.deepEqual(c.scheduled, [], "a reconnection was scheduled after close()");
  });
});

// =============================================================================================
// One herald with [cells] enabled (expiry_grace 1 s), shared by the tests that need no other
// setting.

describe("Pydio Cells /ws/event", () => {
  let herald;
  let door;
  let backend;
  before(async () => {
    herald = await startHerald("cells", { cells: { expiryGrace: "1s" } });
    door = new CellsDoor(herald);
  });
  afterEach((t) => door.afterEach(t));
  after(() => herald?.stop());

  const privateSocket = async () => (backend = await herald.connectPrivate());

  test("node events: the exact frames, paths under the slug, MetaStore JSON text, CREATE and DELETE shapes", async () => {
    const ws = workspace();
    const root = rootPath(ws);
    const S = ws.slug;
    const E = json(ws.id);
    const c = await door.session(cellsUser({ workspaces: [ws] }));
    const u = Array.from({ length: 6 }, () => randomUUID());
    const shares = json([{ UUID: "s1", Label: "a share" }]);
    const published = [
      // No Type: a CREATE. Its Source, pydio: metas and the leading / go; int64s become strings.
      {
        Source: leaf(`${root}/tmp/a.txt`, { uuid: u[0] }),
        Target: {
          Uuid: u[0],
          Path: `/${root}/dir/a.txt`,
          Type: "LEAF",
          Size: 12,
          MTime: 1700000000,
          Etag: "e1",
          Mode: 420,
          MetaStore: { name: json("a.txt"), mime: json("text/plain"), "pydio:secret": json("x"), "pydio:meta-policies": "[]" },
        },
      },
      // A CREATE named as such: no Type on the wire either.
      { Type: "CREATE", Target: { Uuid: u[1], Path: `${root}/folder`, Type: "COLLECTION", MetaStore: { name: json("folder") } } },
      // A DELETE carries its Source only; a node without MetaStore gets one for EventWorkspaceId.
      { Type: "DELETE", Source: { Uuid: u[2], Path: `${root}/dir/c.txt`, Type: "LEAF" }, Target: { Uuid: u[2], Path: `${root}/dir/c.txt` } },
      // The contract's UPDATE_PATH example.
      {
        Type: "UPDATE_PATH",
        Source: { Uuid: u[3], Path: `${root}/a.txt`, Type: "LEAF", MetaStore: { name: json("a.txt") } },
        Target: { Uuid: u[3], Path: `${root}/b.txt`, Type: "LEAF", Size: 12, MetaStore: { name: json("b.txt"), "pydio:secret": json("x") } },
      },
      {
        Type: "UPDATE_CONTENT",
        Source: { Uuid: u[4], Path: `${root}/d.bin`, Type: "LEAF", Size: 1024, MetaStore: { name: json("d.bin") } },
        Target: { Uuid: u[4], Path: `${root}/d.bin`, Type: "LEAF", Size: 2048, MTime: 1700000100, Etag: "e5", MetaStore: { name: json("d.bin") } },
      },
      // MetaStore values of every JSON kind pass as they are.
      {
        Type: "UPDATE_META",
        Target: {
          Uuid: u[5],
          Path: `${root}/e`,
          Type: "COLLECTION",
          MetaStore: { name: json("e"), bookmark: "true", content_lock: json("alice"), workspaces_shares: shares, user_subscriptions: '{"changes":true}', num: "42", nothing: "null" },
        },
      },
    ];
    const expected = [
      { Target: { Uuid: u[0], Path: `${S}/dir/a.txt`, Type: "LEAF", Size: "12", MTime: "1700000000", Etag: "e1", Mode: 420, MetaStore: { name: json("a.txt"), mime: json("text/plain"), EventWorkspaceId: E } } },
      { Target: { Uuid: u[1], Path: `${S}/folder`, Type: "COLLECTION", MetaStore: { name: json("folder"), EventWorkspaceId: E } } },
      { Type: "DELETE", Source: { Uuid: u[2], Path: `${S}/dir/c.txt`, Type: "LEAF", MetaStore: { EventWorkspaceId: E } } },
      {
        Type: "UPDATE_PATH",
        Source: { Uuid: u[3], Path: `${S}/a.txt`, Type: "LEAF", MetaStore: { name: json("a.txt"), EventWorkspaceId: E } },
        Target: { Uuid: u[3], Path: `${S}/b.txt`, Type: "LEAF", Size: "12", MetaStore: { name: json("b.txt"), EventWorkspaceId: E } },
      },
      {
        Type: "UPDATE_CONTENT",
        Source: { Uuid: u[4], Path: `${S}/d.bin`, Type: "LEAF", Size: "1024", MetaStore: { name: json("d.bin"), EventWorkspaceId: E } },
        Target: { Uuid: u[4], Path: `${S}/d.bin`, Type: "LEAF", Size: "2048", MTime: "1700000100", Etag: "e5", MetaStore: { name: json("d.bin"), EventWorkspaceId: E } },
      },
      {
        Type: "UPDATE_META",
        Target: {
          Uuid: u[5],
          Path: `${S}/e`,
          Type: "COLLECTION",
          MetaStore: { name: json("e"), bookmark: "true", content_lock: json("alice"), workspaces_shares: shares, user_subscriptions: '{"changes":true}', num: "42", nothing: "null", EventWorkspaceId: E },
        },
      },
    ];
    const arrivals = u.map((uuid, i) => c.waitFrame(aboutNode(uuid), WAIT_MS, `the frame of published event ${i}`));
    for (const data of published) await door.node(data);
    const frames = await Promise.all(arrivals);
    for (const [i, frame] of frames.entries()) {
      assert.deepEqual(frame, expected[i], `the frame of published event ${i} (${published[i].Type ?? "no Type"})`);
    }
    await door.flush([c]);
    for (const [i, uuid] of u.entries()) assert.equal(c.matching(aboutNode(uuid)).length, 1, `frames of published event ${i}`);

    // What the UI made of them.
    const seen = Object.fromEntries(c.nodeEvents.map((e) => [e.node.Uuid, [e.type, e.path, e.originalPath]]));
    assert.deepEqual(seen, {
      [u[0]]: ["CREATE", "/dir/a.txt", "/dir/a.txt"],
      [u[1]]: ["CREATE", "/folder", "/folder"],
      [u[2]]: ["DELETE", "/dir/c.txt", "/dir/c.txt"],
      [u[3]]: ["UPDATE_PATH", "/b.txt", "/a.txt"],
      [u[4]]: ["UPDATE_CONTENT", "/d.bin", "/d.bin"],
      [u[5]]: ["UPDATE_META", "/e", "/e"],
    });
    const metas = c.nodeEvents.find((e) => e.node.Uuid === u[5]).metas;
    assert.deepEqual(metas, {
      name: "e",
      bookmark: true,
      content_lock: "alice",
      workspaces_shares: [{ UUID: "s1", Label: "a share" }],
      user_subscriptions: { changes: true },
      num: 42,
      nothing: null,
      EventWorkspaceId: ws.id,
    });
  });

  test("one frame per workspace that sees the node: nested roots, several roots with keys, the root itself", async () => {
    const ds = uid("ds");
    const login = uid("login");
    const outer = workspace([{ uuid: uid("root"), path: ds }]);
    const inner = workspace([{ uuid: uid("root"), path: `${ds}/shared` }]);
    const multi = workspace([
      { uuid: uid("root"), path: uid("dsm"), key: "datasource" },
      { uuid: uid("root"), path: `personal/${login}`, key: "my-files" },
    ]);
    const user = cellsUser({ login, workspaces: [outer, inner, multi] });
    const c = await door.session(user, { workspace: inner }); // the UI shows the inner workspace
    const [shared, lookalike, home, dsm] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const rootUuid = outer.roots[0].uuid;

    const expectations = [
      [aboutNodeIn(shared, outer), { Type: "DELETE", Source: { Uuid: shared, Path: `${outer.slug}/shared/f.txt`, Type: "LEAF", MetaStore: { name: json("f.txt"), EventWorkspaceId: json(outer.id) } } }],
      [aboutNodeIn(shared, inner), { Type: "DELETE", Source: { Uuid: shared, Path: `${inner.slug}/f.txt`, Type: "LEAF", MetaStore: { name: json("f.txt"), EventWorkspaceId: json(inner.id) } } }],
      [aboutNodeIn(lookalike, outer), { Type: "DELETE", Source: { Uuid: lookalike, Path: `${outer.slug}/shared-not/g.txt`, Type: "LEAF", MetaStore: { name: json("g.txt"), EventWorkspaceId: json(outer.id) } } }],
      [aboutNodeIn(home, multi), { Type: "DELETE", Source: { Uuid: home, Path: `${multi.slug}/my-files/doc.txt`, Type: "LEAF", MetaStore: { name: json("doc.txt"), EventWorkspaceId: json(multi.id) } } }],
      [aboutNodeIn(dsm, multi), { Type: "DELETE", Source: { Uuid: dsm, Path: `${multi.slug}/datasource/x.txt`, Type: "LEAF", MetaStore: { name: json("x.txt"), EventWorkspaceId: json(multi.id) } } }],
      [aboutNodeIn(rootUuid, outer), { Type: "UPDATE_META", Target: { Uuid: rootUuid, Path: outer.slug, Type: "COLLECTION", MetaStore: { name: json(ds), ws_root: "true", EventWorkspaceId: json(outer.id) } } }],
    ];
    const arrivals = expectations.map(([match], i) => c.waitFrame(match, WAIT_MS, `expected frame ${i}`));
    await door.node({ Type: "DELETE", Source: leaf(`${ds}/shared/f.txt`, { uuid: shared }) });
    // A sibling whose name starts like the inner root: the outer workspace only.
    await door.node({ Type: "DELETE", Source: leaf(`${ds}/shared-not/g.txt`, { uuid: lookalike }) });
    await door.node({ Type: "DELETE", Source: leaf(`personal/${login}/doc.txt`, { uuid: home }) });
    await door.node({ Type: "DELETE", Source: leaf(`${rootPath(multi)}/x.txt`, { uuid: dsm }) });
    // The outer root itself (above the inner root: the outer workspace only).
    await door.node({ Type: "UPDATE_META", Target: { Uuid: rootUuid, Path: ds, Type: "COLLECTION", MetaStore: { name: json(ds) } } });
    const frames = await Promise.all(arrivals);
    for (const [i, frame] of frames.entries()) assert.deepEqual(frame, expectations[i][1], `expected frame ${i}`);
    await door.flush([c]);
    const counts = Object.fromEntries(
      [["shared", shared], ["lookalike", lookalike], ["home", home], ["dsm", dsm], ["root", rootUuid]].map(([name, uuid]) => [
        name,
        c.matching(aboutNode(uuid)).length,
      ]),
    );
    assert.deepEqual(counts, { shared: 2, lookalike: 1, home: 1, dsm: 1, root: 1 }, "frames per node");
    // The UI, showing the inner workspace, took the inner frame and ignored the others.
    assert.deepEqual(
      c.nodeEvents.map((e) => [e.type, e.path]),
      [["DELETE", "/f.txt"]],
    );
  });

  test("UPDATE_PATH across a workspace root: moved in arrives as CREATE, moved out as DELETE", async () => {
    const ds = uid("ds");
    const ws = workspace([{ uuid: uid("root"), path: `${ds}/in` }]);
    const E = json(ws.id);
    const c = await door.session(cellsUser({ workspaces: [ws] }));
    const [movedIn, movedOut, within, outside] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const move = (uuid, from, to) => ({ Type: "UPDATE_PATH", Source: leaf(from, { uuid }), Target: leaf(to, { uuid }) });
    const arrivals = [movedIn, movedOut, within].map((uuid) => c.waitFrame(aboutNode(uuid), WAIT_MS, `the frame of ${uuid}`));
    await door.node(move(movedIn, `${ds}/out/a.txt`, `${ds}/in/a.txt`));
    await door.node(move(movedOut, `${ds}/in/b.txt`, `${ds}/out/b.txt`));
    await door.node(move(within, `${ds}/in/c.txt`, `${ds}/in/sub/c.txt`));
    await door.node(move(outside, `${ds}/out/d.txt`, `${ds}/elsewhere/d.txt`));
    const frames = await Promise.all(arrivals);
    assert.deepEqual(frames, [
      { Target: { Uuid: movedIn, Path: `${ws.slug}/a.txt`, Type: "LEAF", MetaStore: { name: json("a.txt"), EventWorkspaceId: E } } },
      { Type: "DELETE", Source: { Uuid: movedOut, Path: `${ws.slug}/b.txt`, Type: "LEAF", MetaStore: { name: json("b.txt"), EventWorkspaceId: E } } },
      {
        Type: "UPDATE_PATH",
        Source: { Uuid: within, Path: `${ws.slug}/c.txt`, Type: "LEAF", MetaStore: { name: json("c.txt"), EventWorkspaceId: E } },
        Target: { Uuid: within, Path: `${ws.slug}/sub/c.txt`, Type: "LEAF", MetaStore: { name: json("c.txt"), EventWorkspaceId: E } },
      },
    ]);
    await door.flush([c]);
    assert.equal(c.matching(aboutNode(outside)).length, 0, "a move outside the workspace reached it");
    for (const uuid of [movedIn, movedOut, within]) assert.equal(c.matching(aboutNode(uuid)).length, 1);
    assert.deepEqual(
      c.nodeEvents.map((e) => [e.type, e.path, e.originalPath]),
      [
        ["CREATE", "/a.txt", "/a.txt"],
        ["DELETE", "/b.txt", "/b.txt"],
        ["UPDATE_PATH", "/sub/c.txt", "/c.txt"],
      ],
    );
  });

  test("no leak: workspace A's events reach neither B's Cells session nor B's Socket.IO socket, and the other way round", async (t) => {
    await privateSocket();
    const A = workspace();
    // B's root path starts with A's: a string-prefix test would mix them up.
    const B = workspace([{ uuid: uid("root"), path: `${rootPath(A)}-b` }]);
    const a = cellsUser({ workspaces: [A] });
    const b = cellsUser({ workspaces: [B] });
    const cA = await door.session(a);
    const cB = await door.session(b);
    const sioA = await herald.user({ workspaces: [A.id], register: [A.id] });
    const sioB = await herald.user({ workspaces: [B.id], register: [B.id] });
    const kinds = ["cells:node", "cells:idm", "cells:task", "cells:activity"];
    const recA = Object.fromEntries(kinds.map((k) => [k, record(sioA, k)]));
    const recB = Object.fromEntries(kinds.map((k) => [k, record(sioB, k)]));
    const plain = uid("plain");
    const plainA = record(sioA, plain);
    const plainB = record(sioB, plain);

    const [underA, underB, createdA, explicitA] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    await door.node(deletion(A, underA, "secret.txt"));
    await door.node(deletion(B, underB, "other.txt"));
    await door.node({ Target: leaf(`${rootPath(A)}/new.txt`, { uuid: createdA }) }); // held by the batcher
    // An idm about B, also naming B as a target: B's Socket.IO socket and B's Cells session.
    const idmB = { Type: "UPDATE", Workspace: { UUID: B.id, Slug: B.slug, Label: "B" } };
    await door.publish({ event: "cells:idm", workspace: B.id, data: idmB });
    // A plain Socket.IO event to both workspaces: no Cells session gets anything of it.
    await door.publish({ event: plain, workspaces: [A.id, B.id], data: "plain" });
    // A node event of A also naming A: A's Socket.IO socket gets it under its name, normalised.
    const explicit = {
      Type: "DELETE",
      Source: { Uuid: explicitA, Path: `${rootPath(A)}/x.txt`, Type: "LEAF", Size: 5, MetaStore: { name: json("x.txt"), "pydio:secret": json("s") } },
    };
    await door.node(explicit, { workspace: A.id });

    await cA.waitFrame(aboutNode(createdA), WAIT_MS, "A's CREATE (held by the batcher) on A's session");
    await door.flush([cA, cB]);
    await flush(backend, [sioA, sioB]);

    const describeFrame = (f) => (isIdm(f) ? "idm" : f?.Target?.Uuid ?? f?.Source?.Uuid ?? JSON.stringify(f));
    assert.deepEqual(content(cA).map(describeFrame).sort(), [underA, createdA, explicitA].sort(), "what A's Cells session got");
    assert.deepEqual(content(cB).map(describeFrame).sort(), [underB, "idm"].sort(), "what B's Cells session got");
    assert.deepEqual(cB.frames.find(isIdm), { "@type": "idm", ...idmB }, "the idm frame");

    assert.deepEqual(recB["cells:idm"].events.map(([data, meta]) => [data, meta.workspace]), [[idmB, B.id]], "cells:idm on B's socket");
    assert.deepEqual(recA["cells:idm"].events, [], "cells:idm on A's socket");
    const leakedToB = recB["cells:node"].events.filter(([data]) => [underA, createdA, explicitA].includes(data?.Source?.Uuid ?? data?.Target?.Uuid));
    assert.deepEqual(leakedToB, [], "A's node events on B's Socket.IO socket");
    for (const kind of ["cells:task", "cells:activity"]) {
      assert.deepEqual(recA[kind].events, [], `${kind} on A's socket`);
      assert.deepEqual(recB[kind].events, [], `${kind} on B's socket`);
    }
    assert.deepEqual([plainA.events.length, plainB.events.length], [1, 1], "the plain event on the Socket.IO sockets");
    const explicitOnA = recA["cells:node"].events.filter(([data]) => data?.Source?.Uuid === explicitA);
    assert.equal(explicitOnA.length, 1, `the explicitly targeted node event on A's socket: ${JSON.stringify(recA["cells:node"].events)}`);
    assert.deepEqual(
      explicitOnA[0][0],
      { Type: "DELETE", Source: { Uuid: explicitA, Path: `${rootPath(A)}/x.txt`, Type: "LEAF", Size: "5", MetaStore: { name: json("x.txt") } } },
      "the node event, normalised, on A's socket",
    );
    const derived = recA["cells:node"].events.filter(([data]) => data?.Source?.Uuid !== explicitA);
    if (derived.length > 0) t.diagnostic(`A's Socket.IO socket also got node events it was not named for: ${JSON.stringify(derived)}`);
  });

  test("a subscribe with another token replaces the session's workspaces", async () => {
    const [W1, W2] = [workspace(), workspace()];
    const user = cellsUser({ workspaces: [W1] });
    let token = user.token();
    const c = await door.session(user, { token: () => token });
    const witness = await door.session(cellsUser({ workspaces: [W1] }));
    const before = randomUUID();
    const arrival = c.waitFrame(aboutNode(before), WAIT_MS, "a W1 event before the change");
    await door.node(deletion(W1, before));
    await arrival;

    token = user.token({ workspaces: [W2] });
    await c.refresh();
    await door.untilDelivered(
      c,
      () => {
        const uuid = randomUUID();
        return { send: () => door.node(deletion(W2, uuid)), match: aboutNode(uuid) };
      },
      "a W2 event after the new subscribe",
    );
    const [old, fresh] = [randomUUID(), randomUUID()];
    await door.node(deletion(W1, old));
    await door.node(deletion(W2, fresh));
    await door.publish({ event: "cells:idm", data: { Type: "UPDATE", Workspace: { UUID: W1.id } } });
    await door.publish({ event: "cells:idm", data: { Type: "DELETE", Workspace: { UUID: W2.id } } });
    await door.flush([c, witness]);
    assert.equal(c.matching(aboutNode(old)).length, 0, "a W1 event after the subscribe without W1");
    assert.equal(c.matching(aboutNode(fresh)).length, 1, "the W2 event");
    assert.deepEqual(c.matching(isIdm).map((f) => f.Workspace.UUID), [W2.id], "idm frames about the workspaces");
    assert.equal(witness.matching(aboutNode(old)).length, 1, "the witness's W1 event");
    assert.deepEqual(witness.matching(isIdm).map((f) => f.Workspace.UUID), [W1.id]);
  });

  test("unsubscribe: nothing more reaches the session, the socket stays open", async () => {
    const W = workspace();
    const user = cellsUser({ workspaces: [W] });
    const c = await door.session(user);
    const witness = await door.session(cellsUser({ workspaces: [W] }));
    c.send({ "@type": "unsubscribe" });
    await door.ping(c); // the unsubscribe was handled before this answer
    const since = c.frames.length;
    const probe = randomUUID();
    const taskId = uid("task");
    await door.node(deletion(W, probe));
    await door.task(user.login, taskId);
    await door.publish({ event: "cells:idm", data: { User: { Login: user.login } } });
    await door.publish({ event: "cells:activity", data: { OwnerType: "USER", OwnerId: user.login, BoxName: "inbox", Activity: { id: uid("a"), actor: { id: "someone" } } } });
    await door.flush([witness]);
    await door.ping(c);
    assert.equal(witness.matching(aboutNode(probe)).length, 1, "the witness got the node event");
    assert.deepEqual(c.frames.slice(since).filter((f) => !isError("bad_message")(f)), [], "frames after unsubscribe");
    assert.equal(c.isOpen, true, "the socket was closed");
  });

  test("subscribe without a token: missing_token, the socket stays open; a valid subscribe then works", async () => {
    const W = workspace();
    const user = cellsUser({ workspaces: [W] });
    const c = door.client({ user, reconnect: false, autoSubscribe: false });
    await attempt(c);
    for (const frame of [{ "@type": "subscribe" }, { "@type": "subscribe", jwt: "" }]) {
      const answer = c.nextFrame((f) => f?.["@type"] === "error", WAIT_MS, `the answer to ${JSON.stringify(frame)}`);
      c.send(frame);
      assertErrorFrame(await answer, "missing_token", JSON.stringify(frame));
    }
    assert.equal(c.isOpen, true);
    await c.refresh();
    await door.subscribed(c);
  });

  test("a refused token: unauthorized, the session is unsubscribed; a valid subscribe then works", async () => {
    const W = workspace();
    const user = cellsUser({ workspaces: [W] });
    const c = await door.session(user);
    const witness = await door.session(cellsUser({ workspaces: [W] }));
    const refusedTokens = {
      "another secret": user.token({ secret: "not-the-secret-0123" }),
      "expired a minute ago": user.token({ exp: nowS() - 60 }),
      "not a JWT": "not-a-jwt",
      "alg none": user.token({ algorithm: "none" }),
    };
    for (const [name, jwt] of Object.entries(refusedTokens)) {
      const answer = c.nextFrame((f) => f?.["@type"] === "error", WAIT_MS, `the answer to a token (${name})`);
      c.send({ "@type": "subscribe", jwt });
      assertErrorFrame(await answer, "unauthorized", `a token (${name})`);
      const since = c.frames.length;
      const probe = randomUUID();
      await door.node(deletion(W, probe));
      await door.task(user.login, uid("task"));
      await door.flush([witness]);
      await door.ping(c);
      assert.equal(witness.matching(aboutNode(probe)).length, 1);
      assert.deepEqual(c.frames.slice(since).filter((f) => !isError("bad_message")(f)), [], `frames after a token (${name})`);
      assert.equal(c.isOpen, true, `the socket was closed after a token (${name})`);
      await c.refresh(); // a valid token again
      await door.subscribed(c, user.login, `the session after a token (${name})`);
    }
  });

  test("token expiry: idm 4 s before exp; the UI re-subscribes with a fresh token and goes on; without it, token_expired after exp + grace", async () => {
    const W = workspace();
    const exp = nowS() + 7;
    const good = cellsUser({ workspaces: [W] });
    const bad = cellsUser({ workspaces: [W] });
    const shortGood = good.token({ exp });
    const freshGood = good.token({ expiresInS: 3600 });
    // The UI asks for its token again when less than 5 s are left.
    const cGood = await door.session(good, { token: () => (Date.now() > (exp - 5) * 1000 ? freshGood : shortGood) });
    const cBad = await door.session(bad, { token: () => bad.token({ exp }), reloadOnIdm: false });
    const witness = await door.session(cellsUser({ workspaces: [W] }));
    const untilExp = exp * 1000 - Date.now();

    const [idmGood, idmBad] = await Promise.all([
      cGood.waitFrame(isIdm, untilExp + WAIT_MS, "the idm before exp (re-subscribing client)"),
      cBad.waitFrame(isIdm, untilExp + WAIT_MS, "the idm before exp (client that does not re-subscribe)"),
    ]);
    for (const [c, frame] of [[cGood, idmGood], [cBad, idmBad]]) {
      assert.deepEqual(frame, { "@type": "idm" }, `${c.label}: the idm frame`);
      const at = c.arrivals.find((a) => a.frame === frame).at;
      const before = exp * 1000 - at;
      assert.ok(before > 3000 && before <= 5000, `${c.label}: the idm came ${before} ms before exp, not about 4 s`);
    }
    const resubscribe = await cGood.waitSubscribe(WAIT_MS, "the UI's re-subscribe after the idm");
    assert.equal(resubscribe.message.jwt, freshGood, "the re-subscribe carries the fresh token");

    const expired = await cBad.waitFrame(isError("token_expired"), exp * 1000 + 1000 - Date.now() + WAIT_MS, "token_expired");
    const expiredAt = cBad.arrivals.find((a) => a.frame === expired).at;
    assertErrorFrame(expired, "token_expired", "the expiry");
    assert.ok(expiredAt >= exp * 1000 + 1000 - 250, `token_expired came ${expiredAt - exp * 1000} ms after exp, before exp + expiry_grace (1 s)`);
    assert.ok(expiredAt <= exp * 1000 + 1000 + 3000, `token_expired came ${expiredAt - exp * 1000} ms after exp`);

    // After the old exp (and the grace): the re-subscribed session and the witness still receive; the other nothing.
    const since = cBad.frames.length;
    const probe = randomUUID();
    await door.node(deletion(W, probe));
    await door.task(bad.login, uid("task"));
    await door.flush([cGood, witness]);
    await door.ping(cBad);
    assert.equal(cGood.matching(aboutNode(probe)).length, 1, "the re-subscribed session after the old exp");
    assert.equal(witness.matching(aboutNode(probe)).length, 1, "the witness");
    assert.deepEqual(cBad.frames.slice(since).filter((f) => !isError("bad_message")(f)), [], "frames after token_expired");
    assert.equal(cBad.isOpen, true, "the expired session's socket was closed");
    assert.deepEqual(cGood.matching((f) => f?.["@type"] === "error"), [], "error frames on the re-subscribed session");
    assert.equal(cGood.isOpen, true);
  });

  test("tasks reach their owner's sessions only; pydio.system.user's reach admin sessions", async () => {
    const W = workspace();
    const alice = cellsUser({ workspaces: [W] });
    const bob = cellsUser({ workspaces: [W] });
    const admin = cellsUser({ workspaces: [W], profile: "admin" });
    const [cAlice, cAlice2, cBob, cAdmin] = [
      await door.session(alice),
      await door.session(alice),
      await door.session(bob),
      await door.session(admin),
    ];
    const [forAlice, forSystem, forAdmin] = [uid("task"), uid("task"), uid("task")];
    const published = {
      [forAlice]: taskData(alice.login, forAlice),
      [forSystem]: taskData("pydio.system.user", forSystem),
      [forAdmin]: taskData(admin.login, forAdmin),
    };
    for (const data of Object.values(published)) await door.publish({ event: "cells:task", data });
    const sessions = { cAlice, cAlice2, cBob, cAdmin };
    await door.flush(Object.values(sessions));
    const got = Object.fromEntries(
      Object.entries(sessions).map(([name, c]) => [name, content(c).map((f) => f.TaskUpdated?.ID ?? JSON.stringify(f))]),
    );
    assert.deepEqual(got, { cAlice: [forAlice], cAlice2: [forAlice], cBob: [], cAdmin: [forSystem, forAdmin] });
    assert.deepEqual(cAlice.frames.find(isTask(forAlice)), published[forAlice], "the task frame is the data as published");
    assert.deepEqual(cAdmin.frames.find(isTask(forSystem)), published[forSystem]);
  });

  test("activities reach OwnerId's sessions, not the actor's own, names reduced to their last segment", async () => {
    const W = workspace();
    const alice = cellsUser({ workspaces: [W] });
    const bob = cellsUser({ workspaces: [W] });
    const cAlice = await door.session(alice);
    const cBob = await door.session(bob);
    const heard = [];
    cAlice.on("websocket_event:activity", (frame) => heard.push(frame));
    const toAlice = activityData(alice.login, bob.login);
    const ownAct = activityData(alice.login, alice.login); // alice's own action: not to her
    const outboxUser = activityData(alice.login, bob.login, { box: "outbox" }); // OwnerType USER is enough
    const toBob = activityData(bob.login, alice.login);
    for (const data of [toAlice, ownAct, outboxUser, toBob]) await door.publish({ event: "cells:activity", data });
    await door.flush([cAlice, cBob]);
    const ids = (c) => content(c).map((f) => f.Activity?.id ?? JSON.stringify(f));
    assert.deepEqual(ids(cAlice), [toAlice.Activity.id, outboxUser.Activity.id], "activities on alice's session");
    assert.deepEqual(ids(cBob), [toBob.Activity.id], "activities on bob's session");
    const reduced = (data) => ({
      "@type": "activity",
      ...data,
      Activity: {
        ...data.Activity,
        object: { ...data.Activity.object, name: "report.docx" },
        origin: { ...data.Activity.origin, name: "sub" },
        target: { ...data.Activity.target, name: "c" },
      },
    });
    // The UI listens to websocket_event:activity, which needs "@type": "activity" in the frame
    // (without it, the frame is taken for a node event, and the UI throws).
    assert.deepEqual(cAlice.errors, [], "the UI could not take the activity frames for activities");
    assert.equal(heard.length, 2, "websocket_event:activity fired on alice's session");
    assert.deepEqual(cAlice.frames.find((f) => f.Activity?.id === toAlice.Activity.id), reduced(toAlice), "the activity frame");
  });

  test("an activity neither in an inbox nor of OwnerType USER reaches nobody", async () => {
    const alice = cellsUser({ workspaces: [workspace()] });
    const cAlice = await door.session(alice);
    // OwnerType left out: NODE, the enum's zero, which protojson omits.
    const outboxNode = activityData(alice.login, uid("bob"), { box: "outbox", ownerType: null });
    const explicitNode = activityData(alice.login, uid("bob"), { box: "outbox", ownerType: "NODE" });
    const statuses = [];
    for (const data of [outboxNode, explicitNode]) {
      const res = await herald.publishHttp({ event: "cells:activity", data });
      statuses.push(`${res.status} ${res.text}`);
    }
    await door.flush([cAlice]);
    const got = content(cAlice).map((f) => f.Activity?.id);
    assert.deepEqual(
      { statuses, got },
      { statuses: [statuses[0].startsWith("202 ") ? statuses[0] : "202", statuses[1].startsWith("202 ") ? statuses[1] : "202"], got: [] },
      "publishes of a NODE outbox activity (OwnerType left out, then OwnerType NODE): accepted, delivered to nobody",
    );
  });

  test("an idm that concerns nobody (an ACL action, nothing else) is accepted and reaches nobody", async () => {
    const c = await door.session(cellsUser({ workspaces: [workspace()], roles: [uid("role")] }));
    const res = await herald.publishHttp({
      event: "cells:idm",
      data: { Acl: { RoleID: c.user.roles[0], Action: { Name: "action:access.gateway:share", Value: "true" } } },
    });
    assert.equal(res.status, 202, `${res.status} ${res.text}`);
    await door.flush([c]);
    assert.deepEqual(content(c), []);
  });

  test("idm events go to the first rule that applies: an ACL's role, a role, a login, a user uuid, a workspace", async () => {
    const W = workspace();
    const [roleX, roleY] = [uid("role"), uid("role")];
    const byRole = cellsUser({ workspaces: [workspace()], roles: ["ROOT_GROUP", roleX, roleY] });
    const byLogin = cellsUser({ workspaces: [workspace()] });
    const bySub = cellsUser({ workspaces: [workspace()] });
    const byWorkspace = cellsUser({ workspaces: [W] });
    const sessions = {
      role: await door.session(byRole),
      login: await door.session(byLogin),
      sub: await door.session(bySub),
      workspace: await door.session(byWorkspace),
    };
    const cases = [
      ["an ACL of a role", { Type: "UPDATE", Acl: { ID: "1", RoleID: roleX, NodeID: "n", Action: { Name: "read", Value: "1" } } }, ["role"]],
      ["an ACL parameter: goes on to the workspace", { Acl: { RoleID: roleX, Action: { Name: "parameter:core.conf:lang", Value: "\"fr\"" } }, Workspace: { UUID: W.id } }, ["workspace"]],
      ["an ACL action: goes on to the user", { Acl: { RoleID: roleX, Action: { Name: "action:access.gateway:share", Value: "true" } }, User: { Login: byLogin.login } }, ["login"]],
      ["a role", { Type: "UPDATE", Role: { Uuid: roleY, Label: "Y" } }, ["role"]],
      ["a role before a login", { Role: { Uuid: roleX }, User: { Login: byLogin.login } }, ["role"]],
      ["a role nobody has, before a login", { Role: { Uuid: uid("role") }, User: { Login: byLogin.login } }, []],
      ["a login before a uuid", { User: { Login: byLogin.login, Uuid: bySub.sub } }, ["login"]],
      ["a user uuid", { Type: "DELETE", User: { Uuid: bySub.sub } }, ["sub"]],
      ["a workspace", { Type: "CREATE", Workspace: { UUID: W.id, Slug: W.slug } }, ["workspace"]],
    ];
    const marks = cases.map(() => uid("idm"));
    for (const [i, [, data]] of cases.entries()) {
      await door.publish({ event: "cells:idm", data: { ...data, Attributes: { probe: marks[i] } } }, `cells:idm (${cases[i][0]})`);
    }
    await door.flush(Object.values(sessions));
    for (const [i, [name, data, expected]] of cases.entries()) {
      const receivers = Object.entries(sessions)
        .filter(([, c]) => c.matching((f) => isIdm(f) && f.Attributes?.probe === marks[i]).length > 0)
        .map(([who]) => who);
      assert.deepEqual(receivers, expected, `receivers of idm: ${name}`);
      for (const who of expected) {
        const frames = sessions[who].matching((f) => isIdm(f) && f.Attributes?.probe === marks[i]);
        assert.deepEqual(frames, [{ "@type": "idm", ...data, Attributes: { probe: marks[i] } }], `the frame of idm: ${name}`);
      }
    }
  });

  test("POST /api/v1/access: an idm frame at once to the user's sessions; a removed workspace stops before the re-subscribe", async () => {
    const [W1, W2] = [workspace(), workspace()];
    const user = cellsUser({ workspaces: [W1, W2] });
    let token = user.token();
    const raw = await door.session(user, { reloadOnIdm: false }); // never re-subscribes
    const ui = await door.session(user, { token: () => token }); // the UI: re-subscribes 500 ms after idm
    const other = await door.session(cellsUser({ workspaces: [W1, W2] }));
    const idms = [raw, ui].map((c) => c.waitFrame(isIdm, WAIT_MS, `${c.label}: the idm after the access change`));
    // The backend also issues tokens without W1 from now on.
    token = user.token({ workspaces: [W2] });
    const res = await herald.accessHttp({ user: user.sub, workspaces: [W2.id] });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json?.ok, true, res.text);
    for (const frame of await Promise.all(idms)) assert.deepEqual(frame, { "@type": "idm" });
    const [p1, p2] = [randomUUID(), randomUUID()];
    await door.node(deletion(W1, p1));
    await door.node(deletion(W2, p2));
    await door.flush([raw, other]);
    assert.equal(raw.matching(aboutNode(p1)).length, 0, "a W1 event after the access change");
    assert.equal(raw.matching(aboutNode(p2)).length, 1, "the W2 event");
    assert.equal(other.matching(isIdm).length, 0, "another user's session got an idm");
    assert.equal(other.matching(aboutNode(p1)).length, 1, "another user's W1 event");

    const resubscribe = await ui.waitSubscribe(WAIT_MS, "the UI's re-subscribe after the idm");
    assert.equal(resubscribe.message.jwt, token);
    await door.untilDelivered(
      ui,
      () => {
        const uuid = randomUUID();
        return { send: () => door.node(deletion(W2, uuid)), match: aboutNode(uuid) };
      },
      "a W2 event after the re-subscribe",
    );
    const p3 = randomUUID();
    await door.node(deletion(W1, p3));
    await door.flush([ui]);
    assert.equal(ui.matching(aboutNode(p3)).length, 0, "a W1 event after the re-subscribe");
  });

  test("UPDATE_USER_META reaches only the users it names, without its Source", async () => {
    const W = workspace();
    const alice = cellsUser({ workspaces: [W] });
    const bob = cellsUser({ workspaces: [W] });
    const cAlice = await door.session(alice);
    const cBob = await door.session(bob);
    const uuid = randomUUID();
    const node = (metas) => ({ Uuid: uuid, Path: `${rootPath(W)}/a.txt`, Type: "LEAF", MetaStore: { name: json("a.txt"), ...metas } });
    const arrival = cAlice.waitFrame(aboutNode(uuid), WAIT_MS, "the UPDATE_USER_META on alice's session");
    await door.node({ Type: "UPDATE_USER_META", Source: node({}), Target: node({ bookmark: "true" }) }, { user: alice.sub });
    assert.deepEqual(await arrival, {
      Type: "UPDATE_USER_META",
      Target: { Uuid: uuid, Path: `${W.slug}/a.txt`, Type: "LEAF", MetaStore: { name: json("a.txt"), bookmark: "true", EventWorkspaceId: json(W.id) } },
    });
    await door.flush([cAlice, cBob]);
    assert.equal(cBob.matching(aboutNode(uuid)).length, 0, "bob got alice's user meta");
    assert.equal(cAlice.matching(aboutNode(uuid)).length, 1);
  });

  test("batching: CREATE then UPDATE_CONTENT is one CREATE; a DELETE flushes a pending CREATE before it", async () => {
    const W = workspace();
    const E = json(W.id);
    const c = await door.session(cellsUser({ workspaces: [W] }));
    const root = rootPath(W);
    const [merged, deleted, metas] = [randomUUID(), randomUUID(), randomUUID()];
    await door.node({ Type: "CREATE", Target: { Uuid: merged, Path: `${root}/up.bin`, Type: "LEAF", Size: 1, Etag: "e1", MetaStore: { name: json("up.bin"), a: json(1) } } });
    await door.node({ Type: "UPDATE_CONTENT", Target: { Uuid: merged, Path: `${root}/up.bin`, Type: "LEAF", Size: 2, Etag: "e2", MTime: 1700000002, MetaStore: { a: json(2), b: json(3) } } });
    await door.node({ Type: "UPDATE_META", Target: { Uuid: metas, Path: `${root}/m`, Type: "COLLECTION", MetaStore: { name: json("m"), x: json("1") } } });
    await door.node({ Type: "UPDATE_META", Target: { Uuid: metas, Path: `${root}/m`, Type: "COLLECTION", MetaStore: { x: json("2"), y: json("3") } } });
    await door.node({ Target: leaf(`${root}/brief.txt`, { uuid: deleted }) });
    await door.node(deletion(W, deleted, "brief.txt"));
    const mergedFrame = await c.waitFrame(aboutNode(merged), WAIT_MS, "the merged CREATE");
    assert.deepEqual(mergedFrame, {
      Target: { Uuid: merged, Path: `${W.slug}/up.bin`, Type: "LEAF", Size: "2", Etag: "e2", MTime: "1700000002", MetaStore: { name: json("up.bin"), a: json(2), b: json(3), EventWorkspaceId: E } },
    });
    const metasFrame = await c.waitFrame(aboutNode(metas), WAIT_MS, "the merged UPDATE_META");
    assert.deepEqual(metasFrame, {
      Type: "UPDATE_META",
      Target: { Uuid: metas, Path: `${W.slug}/m`, Type: "COLLECTION", MetaStore: { name: json("m"), x: json("2"), y: json("3"), EventWorkspaceId: E } },
    });
    await c.waitFrame((f) => aboutNode(deleted)(f) && f.Type === "DELETE", WAIT_MS, "the DELETE");
    // Anything still pending for these nodes is flushed by a DELETE of each.
    await door.node(deletion(W, merged, "up.bin"));
    await door.node({ Type: "DELETE", Source: { Uuid: metas, Path: `${root}/m`, Type: "COLLECTION" } });
    await c.waitFrame((f) => aboutNode(metas)(f) && f.Type === "DELETE", WAIT_MS, "the closing DELETE");
    await door.flush([c]);
    const kinds = (uuid) => c.matching(aboutNode(uuid)).map((f) => f.Type ?? "CREATE");
    assert.deepEqual(kinds(merged), ["CREATE", "DELETE"], "frames of the created-then-updated node");
    assert.deepEqual(kinds(metas), ["UPDATE_META", "DELETE"], "frames of the node updated twice");
    assert.deepEqual(kinds(deleted), ["CREATE", "DELETE"], "the pending CREATE comes before its DELETE");
  });

  test("hostile frames: garbage is answered bad_message; a binary frame closes 1003, one over max_frame_bytes 1009; the others go on", async () => {
    const W = workspace();
    const witness = await door.session(cellsUser({ workspaces: [W] }));
    const stillDelivering = async (what) => {
      const uuid = randomUUID();
      const arrival = witness.waitFrame(aboutNode(uuid), WAIT_MS, `a node event on another session after ${what}`);
      await door.node(deletion(W, uuid));
      await arrival;
    };
    const hostile = await door.session(cellsUser({ workspaces: [W] }));
    const garbage = ["not json", "", "[]", "42", '"dump"', "null", "{}", '{"@type":"bogus"}', '{"@type":7}', '{"jwt":"x"}', '{"@type":"subscribe"', "\u00e9t\u00e9"];
    for (const text of garbage) {
      const answer = hostile.nextFrame((f) => f?.["@type"] === "error", WAIT_MS, `the answer to ${JSON.stringify(text)}`);
      hostile.send(text);
      assertErrorFrame(await answer, "bad_message", JSON.stringify(text));
    }
    assert.equal(hostile.isOpen, true, "garbage closed the socket");
    await stillDelivering("garbage");

    // Exactly max_frame_bytes (16384) is read (and answered); one byte more closes with 1009.
    const atMax = hostile.nextFrame(isError("bad_message"), WAIT_MS, "the answer to a frame of exactly max_frame_bytes");
    hostile.send("x".repeat(16384));
    await atMax;
    const tooBig = hostile.waitClose(WAIT_MS, "the close for a frame over max_frame_bytes");
    hostile.send("x".repeat(16385));
    const bigClose = await tooBig;
    assert.deepEqual([bigClose.code, bigClose.reason], [1009, "frame too large"], "the close for a frame over max_frame_bytes");
    await stillDelivering("a frame over max_frame_bytes");

    const binary = await door.session(cellsUser({ workspaces: [W] }));
    const closed = binary.waitClose(WAIT_MS, "the close for a binary frame");
    binary.send(Buffer.from('{"@type":"subscribe"}'));
    const close = await closed;
    assert.deepEqual([close.code, close.reason], [1003, "binary frames are not supported"]);
    await stillDelivering("a binary frame");
    assert.equal(witness.isOpen, true);
  });

  test("the login may come from the JWT's name claim", async () => {
    const W = workspace();
    const login = uid("login");
    const token = mintToken({ sub: uid("sub"), extra: { name: login, workspace_roots: [W] } });
    const c = door.client({ token: () => token, workspace: W, reconnect: false, label: "a session named by `name`" });
    c.user = { login };
    c.open();
    await door.subscribed(c, login);
    const uuid = randomUUID();
    const arrival = c.waitFrame(aboutNode(uuid), WAIT_MS, "a node event of its workspace");
    await door.node(deletion(W, uuid));
    await arrival;
  });

  test("a root without a key is named by the last segment of its path", async () => {
    const [ds1, ds2] = [uid("ds"), uid("ds")];
    const ws = workspace([
      { uuid: uid("root"), path: `${ds1}/alpha` },
      { uuid: uid("root"), path: `${ds2}/beta`, key: "b" },
    ]);
    const c = await door.session(cellsUser({ workspaces: [ws] }));
    const [inAlpha, inBeta] = [randomUUID(), randomUUID()];
    const arrivals = [inAlpha, inBeta].map((uuid) => c.waitFrame(aboutNode(uuid), WAIT_MS, `node ${uuid}`));
    await door.node({ Type: "DELETE", Source: leaf(`${ds1}/alpha/x.txt`, { uuid: inAlpha }) });
    await door.node({ Type: "DELETE", Source: leaf(`${ds2}/beta/y.txt`, { uuid: inBeta }) });
    const paths = (await Promise.all(arrivals)).map((f) => f.Source.Path);
    assert.deepEqual(paths, [`${ws.slug}/alpha/x.txt`, `${ws.slug}/b/y.txt`]);
  });

  test("a token with malformed workspace_roots is refused like any invalid token", async () => {
    const c = door.client({ reconnect: false, autoSubscribe: false, label: "malformed workspace_roots" });
    await attempt(c);
    const malformed = {
      "a slug with /": [{ id: uid("ws"), slug: "a/b", roots: [{ uuid: uid("root"), path: uid("ds") }] }],
      "a workspace without roots": [{ id: uid("ws"), slug: uid("slug"), roots: [] }],
      "not an array": { id: uid("ws") },
    };
    for (const [name, roots] of Object.entries(malformed)) {
      const answer = c.nextFrame((f) => f?.["@type"] === "error", WAIT_MS, `the answer to ${name}`);
      c.send({ "@type": "subscribe", jwt: mintToken({ sub: uid("sub"), extra: { login: uid("login"), workspace_roots: roots } }) });
      assertErrorFrame(await answer, "unauthorized", name);
    }
    assert.equal(c.isOpen, true);
  });

  test("a Cells token without a workspaces claim registers on Socket.IO to its workspace_roots ids", async () => {
    const [W, other] = [workspace(), workspace()];
    const user = cellsUser({ workspaces: [W] });
    const socket = await herald.connectPublic({ token: user.token() });
    const granted = await ack(socket, "register", [{ workspace: W.id }]);
    assert.equal(granted?.ok, true, JSON.stringify(granted));
    assert.deepEqual(await ack(socket, "register", [{ workspace: other.id }]), { ok: false, error: "forbidden" });
  });

  test("disconnect_user closes the user's Cells sessions 1008 disconnected; the UI reconnects and subscribes again", async () => {
    await privateSocket();
    const W = workspace();
    const user = cellsUser({ workspaces: [W] });
    const c = door.client({ user, reconnect: { minDelayMs: 50, maxDelayMs: 100 } });
    c.open();
    await door.subscribed(c);
    const other = await door.session(cellsUser({ workspaces: [W] }));
    const closed = c.waitClose(WAIT_MS, "the close of the disconnected user's session");
    const reply = await ack(backend, "disconnect_user", [{ user: user.sub, reason: "password changed" }]);
    assert.equal(reply?.ok, true, JSON.stringify(reply));
    const close = await closed;
    assert.deepEqual([close.code, close.reason], [1008, "disconnected"]);
    await c.waitOpen(WAIT_MS, "the UI's reconnection");
    await door.subscribed(c);
    assert.equal(c.subscribes.length, 2, "a subscribe on each open");
    await door.flush([other]);
    assert.deepEqual(other.closes, [], "another user's session was closed");
  });

  test("the path answers a request that is not a WebSocket upgrade with 400, and client pings with pongs", async () => {
    const res = await herald.http("GET", "/ws/event");
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json?.code, "bad_request", res.text);
    const c = await door.session(cellsUser({ workspaces: [workspace()] }));
    const pong = once(c.ws, "pong", WAIT_MS, "the pong to a client ping");
    c.ws.ping(Buffer.from("are you there"));
    const [data] = await pong;
    assert.equal(data.toString(), "are you there");
  });

  test("bad publishes of the Cells kinds: 400 bad_request naming the field", async () => {
    await privateSocket();
    const root = uid("ds");
    const cases = [
      ["cells:node", "data not an object", "a string", /data/],
      ["cells:node", "neither Source nor Target", { Type: "DELETE" }, /Source|Target/],
      ["cells:node", "Type READ", { Type: "READ", Target: leaf(`${root}/a`) }, /Type/],
      ["cells:node", "an unknown Type", { Type: "RENAME", Target: leaf(`${root}/a`) }, /Type/],
      ["cells:node", "a MetaStore value that is not JSON", { Target: { ...leaf(`${root}/a.txt`), MetaStore: { name: "a.txt" } } }, /MetaStore/],
      ["cells:node", "a MetaStore value that is not a string", { Target: { ...leaf(`${root}/a.txt`), MetaStore: { size: 5 } } }, /MetaStore/],
      ["cells:node", "Path not a string", { Target: { Uuid: "u1", Path: 5 } }, /Path/],
      ["cells:node", "a node without Path", { Target: { Uuid: "u1" } }, /Path/],
      ["cells:node", "a node without Uuid", { Target: { Path: `${root}/a` } }, /Uuid/],
      ["cells:node", "Size not an integer", { Target: { ...leaf(`${root}/a`), Size: "twelve" } }, /Size/],
      ["cells:node", "UPDATE_USER_META naming no user", { Type: "UPDATE_USER_META", Target: leaf(`${root}/a`) }, /user/i],
      ["cells:task", "no TaskUpdated", { Job: { ID: "j" } }, /TaskUpdated/],
      ["cells:task", "no Job", { TaskUpdated: { ID: "t", TriggerOwner: "alice" } }, /Job/],
      ["cells:task", "no TriggerOwner", { TaskUpdated: { ID: "t" }, Job: { ID: "j" } }, /TriggerOwner/],
      ["cells:task", "TriggerOwner not a string", { TaskUpdated: { ID: "t", TriggerOwner: 5 }, Job: { ID: "j" } }, /TriggerOwner/],
      ["cells:activity", "no OwnerId", { OwnerType: "USER", BoxName: "inbox", Activity: {} }, /OwnerId/],
      ["cells:activity", "Activity not an object", { OwnerType: "USER", OwnerId: "alice", BoxName: "inbox", Activity: "x" }, /Activity/],
      ["cells:idm", "data not an object", [1, 2], /data/],
      ["cells:idm", "User.Login not a string", { User: { Login: 5 } }, /Login/],
      ["cells:bogus", "another cells: name", { Type: "DELETE", Source: leaf(`${root}/a`) }, /cells/],
    ];
    const problems = [];
    for (const [event, name, data, field] of cases) {
      const res = await herald.publishHttp({ event, data });
      const ok = res.status === 400 && res.json?.code === "bad_request" && field.test(res.json?.message ?? "");
      if (!ok) problems.push(`${event}, ${name}: ${res.status} ${res.text} (expected 400 bad_request naming ${field})`);
    }
    const keyed = await herald.publishHttp({ event: "cells:node", coalesce_key: "k", data: { Type: "DELETE", Source: leaf(`${root}/a`) } });
    if (!(keyed.status === 400 && keyed.json?.code === "bad_request" && /coalesce_key/.test(keyed.json?.message ?? ""))) {
      problems.push(`cells:node with a coalesce_key: ${keyed.status} ${keyed.text} (expected 400 bad_request naming coalesce_key)`);
    }
    assert.deepEqual(problems, [], "bad publishes not refused as they should be");
    // The same on /private.
    const reply = await ack(backend, "publish", [{ event: "cells:node", data: { Type: "READ", Target: leaf(`${root}/a`) } }]);
    assert.equal(reply?.ok, false, JSON.stringify(reply));
    assert.equal(reply.error, "bad_request", JSON.stringify(reply));
    assert.match(reply.message, /Type/);
  });
});

// =============================================================================================
// unsubscribed_timeout 1 s, a queue of 8 frames, a low client rate and two sockets per user.

describe("Pydio Cells /ws/event: unsubscribed timeout, reconnection, rate, replaced sessions, slow consumers", () => {
  let herald;
  let door;
  before(async () => {
    herald = await startHerald("cells-strict", {
      cells: { unsubscribedTimeout: "1s", queue: 8 },
      limits: { events_per_second: 2, events_burst: 4, rate_limited_disconnect_after: 5, max_sockets_per_user: 2 },
    });
    door = new CellsDoor(herald);
  });
  afterEach((t) => door.afterEach(t));
  after(() => herald?.stop());

  test("a socket left unsubscribed for unsubscribed_timeout is closed 1008 not subscribed", async () => {
    const W = workspace();
    const timed = [];
    // Never subscribes.
    const never = door.client({ reconnect: false, autoSubscribe: false, label: "never subscribes" });
    const neverClosed = never.waitClose(WAIT_MS, "the close of the socket that never subscribed");
    await attempt(never);
    timed.push(["never subscribes", never.opens[0], neverClosed]);
    // Subscribes, then unsubscribes.
    const leaver = await door.session(cellsUser({ workspaces: [W] }), { label: "unsubscribes" });
    const leaverClosed = leaver.waitClose(WAIT_MS, "the close of the socket that unsubscribed");
    leaver.send({ "@type": "unsubscribe" });
    timed.push(["unsubscribes", Date.now(), leaverClosed]);
    // A refused token.
    const refusedUser = cellsUser({ workspaces: [W] });
    const refused = door.client({ user: refusedUser, token: () => refusedUser.token({ secret: "not-the-secret-0123" }), reconnect: false, label: "refused token" });
    const refusedClosed = refused.waitClose(WAIT_MS, "the close of the socket whose token was refused");
    await attempt(refused);
    const answer = await refused.waitFrame((f) => f?.["@type"] === "error", WAIT_MS, "the refusal");
    assertErrorFrame(answer, "unauthorized", "the refused token");
    timed.push(["refused token", refused.arrivals[0].at, refusedClosed]);
    // A subscribed session is not closed.
    const stays = await door.session(cellsUser({ workspaces: [W] }), { label: "subscribed" });

    for (const [name, since, closed] of timed) {
      const close = await closed;
      assert.deepEqual([close.code, close.reason], [1008, "not subscribed"], name);
      const after = close.at - since;
      assert.ok(after >= 800 && after < 3500, `${name}: closed ${after} ms after it was left unsubscribed`);
    }
    await eventually(() => Date.now() > stays.opens[0] + 1500, WAIT_MS, "1.5 s after the subscribed session opened");
    await door.flush([stays]);
    assert.deepEqual(stays.closes, [], "the subscribed session was closed");
    // Counted by reason (the label is the reason in snake case).
    const counted = await metric(herald, 'herald_cells_closes_total{reason="not_subscribed"}');
    assert.ok(counted >= 3, `herald_cells_closes_total{reason="not_subscribed"} is ${counted}`);
  });

  test("the UI's loop: no token at boot, closed after unsubscribed_timeout, reconnects 1.5-3 s later (the UI's delays), subscribes", async () => {
    const W = workspace();
    const user = cellsUser({ workspaces: [W] });
    let calls = 0;
    // The UI's default reconnection; no token at the first open, and no retries for one.
    const c = door.client({ user, token: () => (calls++ === 0 ? undefined : user.token()), noTokenRetries: 0 });
    const missing = c.waitFrame(isError("missing_token"), WAIT_MS, "missing_token for the boot subscribe");
    const closed = c.waitClose(WAIT_MS, "the close for not being subscribed");
    c.open();
    assertErrorFrame(await missing, "missing_token", "the boot subscribe");
    const close = await closed;
    assert.deepEqual([close.code, close.reason], [1008, "not subscribed"]);
    // The reconnection comes at least 1.5 s after the close: listening now misses nothing.
    const reopenedAt = await c.waitOpen(WAIT_MS, "the reconnection");
    const [scheduled] = c.scheduled;
    assert.ok(scheduled.delayMs >= 1500 && scheduled.delayMs <= 3000, `the first delay was ${scheduled.delayMs} ms`);
    const gap = reopenedAt - close.at;
    assert.ok(gap >= 1500 - 5 && gap <= 3000 + 1000, `reconnected ${gap} ms after the close`);
    await door.subscribed(c);
    assert.deepEqual(c.subscribes.map((s) => s.message), [{ "@type": "subscribe" }, { "@type": "subscribe", jwt: c.subscribes[1].message.jwt }]);
    assert.equal(typeof c.subscribes[1].message.jwt, "string");
    // Subscribed now: still open past the timeout.
    await eventually(() => Date.now() > c.subscribes[1].at + 1500, WAIT_MS, "1.5 s after the subscribe");
    await door.flush([c]);
    assert.equal(c.closes.length, 1, JSON.stringify(c.closes));
  });

  test("a flood of frames: rate_limited answers, then close 1008 rate limit; another session goes on", async () => {
    const W = workspace();
    const flooder = cellsUser({ workspaces: [W] });
    const f = await door.session(flooder);
    const witness = await door.session(cellsUser({ workspaces: [W] }));
    const closed = f.waitClose(WAIT_MS, "the flooder's close");
    const token = flooder.token();
    for (let i = 0; i < 40; i += 1) f.send({ "@type": "subscribe", jwt: token });
    const close = await closed;
    assert.deepEqual([close.code, close.reason], [1008, "rate limit"]);
    const limited = f.matching((x) => x?.["@type"] === "error");
    assert.ok(limited.length >= 1, `no rate_limited answer before the close: ${JSON.stringify(f.frames)}`);
    for (const frame of limited) assertErrorFrame(frame, "rate_limited", "an answer to the flood");
    const uuid = randomUUID();
    const arrival = witness.waitFrame(aboutNode(uuid), WAIT_MS, "a node event on the other session");
    await door.node(deletion(W, uuid));
    await arrival;
  });

  test("over max_sockets_per_user: the user's oldest session is closed 1008 replaced", async () => {
    const W = workspace();
    const user = cellsUser({ workspaces: [W] });
    const first = await door.session(user, { label: "first" });
    const closed = first.waitClose(WAIT_MS, "the close of the oldest session");
    const second = await door.session(user, { label: "second" });
    const third = await door.session(user, { label: "third" });
    const close = await closed;
    assert.deepEqual([close.code, close.reason], [1008, "replaced"]);
    await door.flush([second, third]);
    assert.deepEqual([second.closes, third.closes], [[], []]);
  });

  test("a session that stops reading is closed 1013 slow consumer once its queue is full; another session goes on", async (t) => {
    const W = workspace();
    const slowUser = cellsUser({ workspaces: [W] });
    const slow = await door.session(slowUser, { label: "slow" });
    const witness = await door.session(cellsUser({ workspaces: [W] }), { label: "witness" });
    slow.pause();
    // More than the kernel's socket buffers and the queue of 8 can hold: 40 frames of 700 kB.
    const big = "x".repeat(700 * 1024);
    const ids = [];
    for (let i = 0; i < 40; i += 1) {
      const id = uid("big");
      ids.push(id);
      await door.publish({ event: "cells:task", data: { ...taskData(slowUser.login, id), TaskUpdated: { ...taskData(slowUser.login, id).TaskUpdated, StatusMessage: big } } });
    }
    // The other session is served meanwhile.
    const uuid = randomUUID();
    const arrival = witness.waitFrame(aboutNode(uuid), WAIT_MS, "a node event on the other session while one is stuck");
    await door.node(deletion(W, uuid));
    await arrival;
    const closed = slow.waitClose(WAIT_MS * 3, "the slow session's end after it reads again");
    slow.resume();
    const close = await closed;
    const got = slow.matching((f) => ids.includes(f?.TaskUpdated?.ID)).length;
    t.diagnostic(`the slow session got ${got} of ${ids.length} big frames, then close ${close.code} ${JSON.stringify(close.reason)}`);
    assert.deepEqual([close.code, close.reason], [1013, "slow consumer"]);
    assert.ok(got < ids.length, "the slow session got every frame: it was never full");
    await door.flush([witness]);
  });
});

// =============================================================================================
// max_connections 2 and allowed_origins: refusals before the upgrade; a shutdown.

describe("Pydio Cells /ws/event: connection limit, allowed origins, shutdown", () => {
  const ORIGIN = "http://cells.allowed.test";
  let herald;
  let door;
  before(async () => {
    herald = await startHerald("cells-limits", {
      allowedOrigins: [ORIGIN],
      cells: {},
      limits: { max_connections: 2 },
      shutdown: { drain: "200ms" },
    });
    door = new CellsDoor(herald);
  });
  afterEach((t) => door.afterEach(t));
  after(() => herald?.stop());

  /** A raw upgrade request to /ws/event from `origin`; resolves with the refusal's answer. */
  const upgrade = (origin) =>
    exchangeUntilClose(herald.url, "/ws/event", { headers: { ...UPGRADE_HEADERS, origin }, untilWholeBody: true });
  const fromOrigin = (origin, options = {}) => door.client({ reconnect: false, wsOptions: { origin }, ...options });

  /** A socket from the listed origin, once one is admitted (slots of earlier tests free up), bounded. */
  async function admitted(user) {
    let c;
    await until(
      async () => {
        c = fromOrigin(ORIGIN, { user });
        return (await attempt(c)).opened;
      },
      WAIT_MS,
      "a Cells socket from the listed origin to be admitted",
    );
    return c;
  }

  test("an Origin not in allowed_origins gets 403 before the upgrade; the listed one is let in", async () => {
    const answer = await upgrade("http://evil.test");
    assert.equal(answer.status, 403, `the upgrade from another origin: ${answer.status} ${answer.body}`);
    assert.match(answer.body.toString(), /"code"\s*:\s*"forbidden_origin"/, "the body of the refusal");
    const evil = fromOrigin("http://evil.test");
    assert.equal((await attempt(evil)).opened, false, "a socket from another origin opened");
    assert.ok(evil.socketErrors.some((e) => /403/.test(e)), `the client's error: ${evil.socketErrors}`);
    const c = await admitted(cellsUser({ workspaces: [workspace()] }));
    await door.subscribed(c);
    // Counted: one open socket, subscribed (earlier sockets may still be leaving).
    await until(
      async () => {
        const status = await herald.http("GET", "/status", { key: PRIVATE_KEY });
        const gauge = await metric(herald, "herald_cells_connections");
        return JSON.stringify(status.json?.cells) === JSON.stringify({ connections: 1, subscribed: 1 }) && gauge === 1;
      },
      WAIT_MS,
      "/status cells {connections: 1, subscribed: 1} and herald_cells_connections 1",
    );
  });

  test("max_connections counts Cells sockets and Engine.IO sessions alike: beyond it, 503 before the upgrade", async () => {
    const user = cellsUser({ workspaces: [workspace()] });
    const c = await admitted(user);
    await door.subscribed(c);
    let sio;
    await until(
      async () => {
        sio = herald.publicV4({ token: mintToken({ sub: uid("u") }), transports: ["websocket"], extraHeaders: { origin: ORIGIN } });
        return connected(sio, "a Socket.IO socket beside the Cells socket").then(
          () => true,
          () => false,
        );
      },
      WAIT_MS,
      "a Socket.IO socket to be admitted beside the Cells socket",
    );

    const answer = await upgrade(ORIGIN);
    assert.equal(answer.status, 503, `the third upgrade: ${answer.status} ${answer.body}`);
    let body;
    try {
      body = JSON.parse(answer.body.toString());
    } catch {
      body = undefined;
    }
    assert.equal(body?.code, "server_full", `the body of the refusal: ${answer.body}`);
    const engine = await fetch(`${herald.url}${herald.enginePath}/?EIO=4&transport=polling`, {
      headers: { origin: ORIGIN },
      signal: AbortSignal.timeout(WAIT_MS),
    });
    await engine.text();
    assert.equal(engine.status, 503, "an Engine.IO handshake beyond max_connections");
    const third = fromOrigin(ORIGIN, { user });
    const outcome = await attempt(third);
    assert.equal(outcome.opened, false, "a third socket opened");
    assert.ok(third.socketErrors.some((e) => /503/.test(e)), `the client's error: ${third.socketErrors}`);

    // One leaves: a Cells socket gets in again.
    sio.disconnect();
    sio.io.engine?.close();
    await admitted(user);
  });

  test("a shutdown closes Cells sockets with 1001 server shutting down", async () => {
    const c = await admitted(cellsUser({ workspaces: [workspace()] }));
    await door.subscribed(c);
    const closed = c.waitClose(20000, "the close at shutdown");
    await herald.stop();
    const close = await closed;
    assert.deepEqual([close.code, close.reason], [1001, "server shutting down"]);
  });
});

// =============================================================================================
// auth.mode = "backend": the subscribe's token is sent to the application, whose answer carries
// the Cells fields.

describe("Pydio Cells /ws/event with auth.mode = \"backend\"", () => {
  let app;
  let herald;
  let door;
  /** token -> answer of the auth backend: {status, body}, or "drop" (the connection is cut). */
  const answers = new Map();
  before(async () => {
    app = createHttpServer((req, res) => {
      const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
      const answer = answers.get(token) ?? { status: 401, body: { error: "unknown token" } };
      if (answer === "drop") {
        req.socket.destroy();
        return;
      }
      res.writeHead(answer.status, { "content-type": "application/json" });
      res.end(JSON.stringify(answer.body));
    });
    app.listen(0, "127.0.0.1");
    await onceEvent(app, "listening");
    herald = await startHerald("cells-backend", {
      authBackend: { url: `http://127.0.0.1:${app.address().port}/auth`, timeout: "1s" },
      cells: {},
    });
    door = new CellsDoor(herald);
  });
  afterEach((t) => door.afterEach(t));
  after(async () => {
    await herald?.stop();
    app?.closeAllConnections();
    app?.close();
  });

  test("the backend's answer is the identity: its login, roles and workspace_roots", async () => {
    const W = workspace();
    const role = uid("role");
    const user = cellsUser({ workspaces: [W], roles: [role] });
    const token = uid("opaque-token");
    answers.set(token, {
      status: 200,
      body: { user: user.sub, login: user.login, profile: "standard", roles: [role], workspace_roots: [W] },
    });
    const c = await door.session(user, { token: () => token });
    const uuid = randomUUID();
    const arrivals = [
      c.waitFrame(aboutNode(uuid), WAIT_MS, "a node event of the workspace the backend listed"),
      c.waitFrame((f) => isIdm(f) && f.Role?.Uuid === role, WAIT_MS, "an idm about the backend's role"),
    ];
    await door.node(deletion(W, uuid, "a.txt"));
    await door.publish({ event: "cells:idm", data: { Type: "UPDATE", Role: { Uuid: role } } });
    const [node] = await Promise.all(arrivals);
    assert.equal(node.Source.Path, `${W.slug}/a.txt`);
  });

  test("disconnect_user forgets the backend's cached answer: the UI's reconnect with the same token is asked again, and refused", async () => {
    const W = workspace();
    const user = cellsUser({ workspaces: [W] });
    const token = uid("opaque-token");
    answers.set(token, {
      status: 200,
      body: { user: user.sub, login: user.login, workspace_roots: [W] },
    });
    const c = door.client({ user, token: () => token, reconnect: { minDelayMs: 50, maxDelayMs: 100 } });
    c.open();
    await door.subscribed(c);
    // The user logged out: the backend no longer accepts the token, but herald cached its answer.
    answers.set(token, { status: 401, body: { error: "logged out" } });
    const backend = await herald.connectPrivate();
    try {
      const closed = c.waitClose(WAIT_MS, "the close of the disconnected user's session");
      const refused = c.nextFrame(isError("unauthorized"), WAIT_MS, "the refusal of the subscribe after the reconnect");
      const reply = await ack(backend, "disconnect_user", [{ user: user.sub, reason: "logout" }]);
      assert.equal(reply?.ok, true, JSON.stringify(reply));
      const close = await closed;
      assert.deepEqual([close.code, close.reason], [1008, "disconnected"]);
      assertErrorFrame(await refused, "unauthorized", "the subscribe with the logged-out token");
    } finally {
      backend.close();
    }
  });

  /** A session of another user whom the backend lets read `roots`. */
  async function otherSession(roots) {
    const user = cellsUser({ workspaces: roots });
    const token = uid("opaque-token");
    answers.set(token, { status: 200, body: { user: user.sub, login: user.login, workspace_roots: roots } });
    return door.session(user, { token: () => token });
  }

  test("an access change without a list asks the backend again: the workspace it no longer lists stops at once, the session is counted and told", async () => {
    const [W1, W2] = [workspace(), workspace()];
    const user = cellsUser({ workspaces: [W1, W2] });
    const token = uid("opaque-token");
    const answer = (roots) => ({ status: 200, body: { user: user.sub, login: user.login, workspace_roots: roots } });
    answers.set(token, answer([W1, W2]));
    const c = await door.session(user, { token: () => token, reloadOnIdm: false });
    const other = await otherSession([W1]);
    // The backend takes W1 away; herald's cached answer still lists it.
    answers.set(token, answer([W2]));
    const told = c.waitFrame(isIdm, WAIT_MS, "the idm of the access change");
    const res = await herald.accessHttp({ user: user.sub });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { ok: true, sockets: 1, revoked: 1, disconnected: 0 }, res.text);
    assert.deepEqual(await told, { "@type": "idm" });
    const [p1, p2] = [randomUUID(), randomUUID()];
    await door.node(deletion(W1, p1));
    await door.node(deletion(W2, p2));
    await door.flush([c, other]);
    assert.equal(c.matching(aboutNode(p1)).length, 0, "a W1 event after the backend took W1 away");
    assert.equal(c.matching(aboutNode(p2)).length, 1, "the W2 event");
    assert.equal(other.matching(aboutNode(p1)).length, 1, "another user's W1 event");
  });

  test("an access change whose credentials the backend now refuses closes the Cells session 1008; others stay", async () => {
    const W = workspace();
    const user = cellsUser({ workspaces: [W] });
    const token = uid("opaque-token");
    answers.set(token, { status: 200, body: { user: user.sub, login: user.login, workspace_roots: [W] } });
    const c = await door.session(user, { token: () => token, reloadOnIdm: false });
    const other = await otherSession([W]);
    answers.set(token, { status: 401, body: { error: "revoked" } });
    const closed = c.waitClose(WAIT_MS, "the close of the session the backend refused");
    const res = await herald.accessHttp({ user: user.sub });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { ok: true, sockets: 1, revoked: 0, disconnected: 1 }, res.text);
    const close = await closed;
    assert.deepEqual([close.code, close.reason], [1008, "disconnected"]);
    await door.flush([other]);
    assert.deepEqual(other.closes, [], "another user's session was closed");
  });

  test("a token the backend refuses: unauthorized; a backend that cannot be asked: auth_unavailable; the socket stays open", async () => {
    const c = door.client({ reconnect: false, autoSubscribe: false, label: "backend refusals" });
    await attempt(c);
    const refused = uid("refused-token");
    answers.set(refused, { status: 401, body: { error: "no" } });
    const dropped = uid("dropped-token");
    answers.set(dropped, "drop");
    for (const [jwt, code] of [[refused, "unauthorized"], [dropped, "auth_unavailable"]]) {
      const answer = c.nextFrame((f) => f?.["@type"] === "error", WAIT_MS, `the answer for ${code}`);
      c.send({ "@type": "subscribe", jwt });
      assertErrorFrame(await answer, code, `a subscribe expecting ${code}`);
    }
    assert.equal(c.isOpen, true);
  });
});

// =============================================================================================
// Two nodes on a redis-server of the test's own.

describe("Pydio Cells /ws/event on two nodes sharing a Redis", () => {
  let redis;
  const nodes = [];
  const doors = [];
  before(async () => {
    redis = await startRedis();
    const cluster = { redisUrl: redis.url, prefix: uid("herald") };
    for (const n of [1, 2]) {
      const node = await startHerald(`cells-cluster-${n}`, { cluster, cells: {} });
      nodes.push(node);
      doors.push(new CellsDoor(node));
    }
  });
  afterEach((t) => {
    const errors = [];
    for (const door of doors) {
      try {
        door.afterEach(t);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  });
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  test("publishes on node A reach a Cells session on node B; a cells:idm to a workspace reaches Socket.IO on A and Cells on B", async () => {
    const [A, B] = doors;
    const W = workspace();
    const user = cellsUser({ workspaces: [W] });
    const c = B.client({ user, reconnect: false });
    c.open();
    await A.subscribed(c, user.login, "the session on node B, for tasks published on node A");
    const sio = await nodes[0].user({ workspaces: [W.id], register: [W.id] });
    const sioIdm = record(sio, "cells:idm");
    const E = json(W.id);

    const [gone, created] = [randomUUID(), randomUUID()];
    const arrivals = [gone, created].map((uuid) => c.waitFrame(aboutNode(uuid), WAIT_MS, `node ${uuid} on node B`));
    await A.node(deletion(W, gone, "gone.txt"));
    await A.node({ Target: leaf(`${rootPath(W)}/new.txt`, { uuid: created, Size: 3 }) });
    assert.deepEqual(await Promise.all(arrivals), [
      { Type: "DELETE", Source: { Uuid: gone, Path: `${W.slug}/gone.txt`, Type: "LEAF", MetaStore: { name: json("gone.txt"), EventWorkspaceId: E } } },
      { Target: { Uuid: created, Path: `${W.slug}/new.txt`, Type: "LEAF", Size: "3", MetaStore: { name: json("new.txt"), EventWorkspaceId: E } } },
    ]);

    const idm = { Type: "UPDATE", Workspace: { UUID: W.id, Label: "renamed" } };
    const idmArrival = c.waitFrame((f) => isIdm(f) && f.Workspace?.Label === "renamed", WAIT_MS, "the cells:idm on node B");
    await A.publish({ event: "cells:idm", workspace: W.id, data: idm });
    assert.deepEqual(await idmArrival, { "@type": "idm", ...idm });
    await eventually(() => sioIdm.events.length === 1, WAIT_MS, "the cells:idm on the Socket.IO socket on node A");
    assert.deepEqual(sioIdm.events[0][0], idm);
    assert.equal(sioIdm.events[0][1].workspace, W.id);

    // An access change on node A: the session on node B is told at once.
    const told = c.waitFrame((f) => isIdm(f) && Object.keys(f).length === 1, WAIT_MS, "the idm of an access change made on node A");
    const res = await nodes[0].accessHttp({ user: user.sub, workspaces: [W.id] });
    assert.equal(res.status, 200, res.text);
    await told;

    await A.flush([c]);
    for (const uuid of [gone, created]) assert.equal(c.matching(aboutNode(uuid)).length, 1, `frames of ${uuid} on node B`);
    assert.equal(c.matching((f) => isIdm(f) && f.Workspace?.Label === "renamed").length, 1);
  });
});

// =============================================================================================
// Chromium's own WebSocket: a page that does what the UI does on open.

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>cells door</title>
<pre id="status">starting</pre>
<script>
  // What the Cells UI does: open ENDPOINT_WEBSOCKET, subscribe with its token on open, read JSON frames.
  const q = new URLSearchParams(location.search);
  window.received = [];
  window.closes = [];
  window.opened = false;
  window.failed = false;
  const ws = new WebSocket(q.get("url"));
  ws.onopen = () => {
    window.opened = true;
    ws.send(JSON.stringify({ "@type": "subscribe", jwt: q.get("token") }));
    document.getElementById("status").textContent = "subscribed";
  };
  ws.onmessage = (e) => window.received.push(JSON.parse(e.data));
  ws.onerror = () => { window.failed = true; };
  ws.onclose = (e) => {
    window.closes.push({ code: e.code, reason: e.reason });
    document.getElementById("status").textContent = "closed " + e.code;
  };
</script>
`;

describe("Pydio Cells /ws/event in a real browser (headless Chromium, its own WebSocket)", () => {
  let site;
  let otherSite;
  let herald;
  let door;
  let chrome;
  let context;
  let logs = [];
  before(async () => {
    site = await startStaticServer({ pages: { "/cells.html": PAGE } });
    otherSite = await startStaticServer({ pages: { "/cells.html": PAGE } });
    herald = await startHerald("cells-browser", { allowedOrigins: [site.origin], cells: {} });
    door = new CellsDoor(herald);
    chrome = await launchChromium();
  });
  afterEach(async (t) => {
    if (t.passed === false) t.diagnostic(`browser console:\n${logs.join("\n")}`);
    herald?.afterEach(t);
    await context?.close();
    context = undefined;
    logs = [];
  });
  after(async () => {
    const steps = [() => chrome?.close(), () => herald?.stop(), () => site?.close(), () => otherSite?.close()];
    const results = [];
    for (const step of steps) results.push(await Promise.allSettled([step()]));
    const failed = results.flat().find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  });

  async function openPage(origin, query) {
    context = await chrome.browser.newContext();
    const page = await context.newPage();
    page.on("console", (m) => logs.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(`${origin}/cells.html?${new URLSearchParams(query)}`, { timeout: WAIT_MS });
    return page;
  }

  /** Whether the page received a frame matching the task id or node uuid within `ms`. */
  const pageGot = (page, key, ms) =>
    page
      .waitForFunction(
        (k) => window.received.some((f) => f?.TaskUpdated?.ID === k || f?.Target?.Uuid === k || f?.Source?.Uuid === k),
        key,
        { timeout: ms },
      )
      .then(
        () => true,
        () => false,
      );

  test("a page from an allowed origin subscribes like the UI and receives a node frame and a task frame", async () => {
    const W = workspace();
    const user = cellsUser({ workspaces: [W] });
    const page = await openPage(site.origin, { url: door.url, token: user.token() });
    // Subscribed once a task of the user reaches the page (bounded poll).
    await until(
      async () => {
        const id = uid("ready");
        await door.task(user.login, id);
        return pageGot(page, id, 250);
      },
      WAIT_MS,
      `the page to be subscribed; console: ${logs.join(" | ")}`,
    );
    const uuid = randomUUID();
    const taskId = uid("task");
    await door.node({ Target: leaf(`${rootPath(W)}/from-browser.txt`, { uuid, Size: 7 }) });
    const task = taskData(user.login, taskId);
    await door.publish({ event: "cells:task", data: task });
    assert.ok(await pageGot(page, uuid, WAIT_MS), "the node frame did not reach the page");
    assert.ok(await pageGot(page, taskId, WAIT_MS), "the task frame did not reach the page");
    const received = await page.evaluate(() => window.received);
    assert.deepEqual(received.find((f) => f?.Target?.Uuid === uuid), {
      Target: { Uuid: uuid, Path: `${W.slug}/from-browser.txt`, Type: "LEAF", Size: "7", MetaStore: { name: json("from-browser.txt"), EventWorkspaceId: json(W.id) } },
    });
    assert.deepEqual(received.find((f) => f?.TaskUpdated?.ID === taskId), task);
    assert.deepEqual(await page.evaluate(() => window.closes), [], "the page's socket closed");
  });

  test("a page from an origin not in allowed_origins cannot open the socket", async () => {
    const user = cellsUser({ workspaces: [workspace()] });
    const page = await openPage(otherSite.origin, { url: door.url, token: user.token() });
    await page.waitForFunction(() => window.closes.length > 0, undefined, { timeout: WAIT_MS });
    const state = await page.evaluate(() => ({ opened: window.opened, failed: window.failed, closes: window.closes }));
    assert.deepEqual(state, { opened: false, failed: true, closes: [{ code: 1006, reason: "" }] });
  });
});
