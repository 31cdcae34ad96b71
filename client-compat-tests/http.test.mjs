// The plain HTTP API: POST /api/v1/publish (202/400/401/413), GET /health, GET /status.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";

import { PRIVATE_KEY, UUID_RE, ack, flush, once, record, startHerald, uid } from "./harness.mjs";

const MIB = 1024 * 1024;

/** Asserts an error body: exactly {code, message}. */
function assertErrorBody(res, status, code, what) {
  assert.equal(res.status, status, `${what}: HTTP ${res.status} ${res.text.slice(0, 300)}`);
  assert.ok(res.json && typeof res.json === "object", `${what}: body is not JSON: ${res.text.slice(0, 300)}`);
  assert.deepEqual(Object.keys(res.json).sort(), ["code", "message"], `${what}: ${res.text.slice(0, 300)}`);
  assert.equal(res.json.code, code, `${what}: ${res.text.slice(0, 300)}`);
  assert.equal(typeof res.json.message, "string");
  assert.ok(res.json.message.length > 0, `${what}: empty message`);
}

describe("HTTP API", () => {
  let herald;
  before(async () => {
    herald = await startHerald("http");
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  test("GET /health: 200 ok", async () => {
    const res = await herald.http("GET", "/health");
    assert.equal(res.status, 200);
    assert.equal(res.text, "ok");
  });

  describe("POST /api/v1/publish", () => {
    test("202 {id} and the event is delivered with that id", async () => {
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws], register: [ws] });
      const event = uid("http");
      const arrival = once(socket, event, undefined, "HTTP-published event");
      const res = await herald.publishHttp({ event, workspace: ws, data: { via: "http" } });
      assert.equal(res.status, 202, res.text);
      assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
      assert.deepEqual(Object.keys(res.json), ["id"]);
      assert.match(res.json.id, UUID_RE);
      const [data, meta] = await arrival;
      assert.deepEqual(data, { via: "http" });
      assert.equal(meta.id, res.json.id);
      assert.equal(meta.workspace, ws);
    });

    test("the Bearer scheme is case-insensitive", async () => {
      const res = await herald.http("POST", "/api/v1/publish", {
        body: { event: uid("e"), user: uid("u") },
        headers: { authorization: `bearer ${PRIVATE_KEY}` },
      });
      assert.equal(res.status, 202, res.text);
    });

    test("a body just under 1 MiB is accepted", async () => {
      const event = uid("big");
      const user = uid("u");
      const overhead = JSON.stringify({ event, user, data: "" }).length;
      const body = JSON.stringify({ event, user, data: "x".repeat(MIB - overhead - 16) });
      assert.ok(Buffer.byteLength(body) < MIB);
      const res = await herald.publishHttp(body);
      assert.equal(res.status, 202, res.text.slice(0, 300));
    });

    const many = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const badRequests = [
      ["bad_request", "a body that is not JSON", "this is not json"],
      ["bad_request", "truncated JSON", '{"event": "e", "workspace": "w"'],
      ["bad_request", "an empty body", ""],
      ["bad_request", "a JSON string", '"publish"'],
      ["bad_request", "a JSON array", [{ event: "e", workspace: "w" }]],
      ["bad_request", "JSON null", "null"],
      ["bad_request", "event not a string", { event: 1, workspace: "w" }],
      ["bad_request", "missing event", { workspace: "w" }],
      ["bad_request", "workspace not a string", { event: "e", workspace: 1 }],
      ["bad_request", "users not an array", { event: "e", users: "u" }],
      ["bad_request", "an unknown field", { event: "e", workspace: "w", priority: "high" }],
      ["bad_request", "an empty workspace id", { event: "e", workspace: "" }],
      ["bad_request", "a user id of 257 bytes", { event: "e", user: "u".repeat(257) }],
      ["bad_request", "a body that is not UTF-8", Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
      ["invalid_event", "an empty event", { event: "", workspace: "w" }],
      ["invalid_event", "an event of 129 bytes", { event: "e".repeat(129), workspace: "w" }],
      ...["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"].map((event) => [
        "reserved_event",
        `reserved event ${event}`,
        { event, workspace: "w" },
      ]),
      ["no_target", "no target", { event: "e", data: { a: 1 } }],
      ["no_target", "empty target lists", { event: "e", workspaces: [], users: [] }],
      ["too_many_targets", "1001 workspaces", { event: "e", workspaces: many(1001, "w") }],
      ["too_many_targets", "600 workspaces + 401 users", { event: "e", workspaces: many(600, "w"), users: many(401, "u") }],
    ];
    for (const [code, name, body] of badRequests) {
      test(`400 ${code}: ${name}`, async () => {
        const res = await herald.publishHttp(body instanceof Buffer ? new Uint8Array(body) : body);
        assertErrorBody(res, 400, code, name);
      });
    }

    test("a refused publish delivers nothing", async () => {
      const backend = await herald.connectPrivate();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws], register: [ws] });
      const event = uid("refused");
      const rec = record(socket, event);
      assertErrorBody(await herald.publishHttp({ event, workspace: ws, extra: 1 }), 400, "bad_request", "unknown field");
      await flush(backend, [socket]);
      assert.deepEqual(rec.events, []);
    });

    const unauthorized = [
      ["no Authorization header", {}],
      ["a wrong key", { authorization: `Bearer ${PRIVATE_KEY}x` }],
      ["an empty bearer", { authorization: "Bearer " }],
      ["the key without a scheme", { authorization: PRIVATE_KEY }],
      ["the key under Basic", { authorization: `Basic ${PRIVATE_KEY}` }],
      ["the key in another header", { "x-api-key": PRIVATE_KEY }],
    ];
    for (const [name, headers] of unauthorized) {
      test(`401: ${name}`, async () => {
        const backend = await herald.connectPrivate();
        const ws = uid("ws");
        const socket = await herald.user({ workspaces: [ws], register: [ws] });
        const event = uid("unauth");
        const rec = record(socket, event);
        const res = await herald.http("POST", "/api/v1/publish", {
          body: { event, workspace: ws, data: 1 },
          headers,
        });
        assertErrorBody(res, 401, "unauthorized", name);
        await flush(backend, [socket]);
        assert.deepEqual(rec.events, [], "an unauthorized publish was delivered");
      });
    }

    test("413 payload_too_large over 1 MiB", async () => {
      const event = uid("huge");
      const body = JSON.stringify({ event, user: uid("u"), data: "x".repeat(MIB) });
      assert.ok(Buffer.byteLength(body) > MIB);
      const res = await herald.publishHttp(body);
      assert.equal(res.status, 413, `HTTP ${res.status} ${res.text.slice(0, 300)}`);
      assert.equal(res.json?.code, "payload_too_large", res.text.slice(0, 300));
    });

    test("413 for a body of exactly 1 MiB + 1 byte", async () => {
      const event = uid("huge");
      const user = uid("u");
      const overhead = JSON.stringify({ event, user, data: "" }).length;
      const body = JSON.stringify({ event, user, data: "x".repeat(MIB + 1 - overhead) });
      assert.equal(Buffer.byteLength(body), MIB + 1);
      const res = await herald.publishHttp(body);
      assert.equal(res.status, 413, `HTTP ${res.status} ${res.text.slice(0, 300)}`);
      assert.equal(res.json?.code, "payload_too_large");
    });

    test("the server keeps serving after a 413", async () => {
      const res = await herald.publishHttp({ event: uid("e"), user: uid("u") });
      assert.equal(res.status, 202, res.text);
    });
  });

  describe("GET /status", () => {
    for (const [name, key] of [
      ["no key", undefined],
      ["a wrong key", "nope"],
    ]) {
      test(`401 with ${name}`, async () => {
        assertErrorBody(await herald.http("GET", "/status", { key }), 401, "unauthorized", name);
      });
    }

    test("with the key: ON, version, uptime, connections and workspaces", async () => {
      // A fresh herald, so the counts are this test's alone.
      const fresh = await startHerald("http-status");
      try {
        const empty = await fresh.http("GET", "/status", { key: PRIVATE_KEY });
        assert.equal(empty.status, 200, empty.text);
        assert.deepEqual(Object.keys(empty.json).sort(), [
          "busiest_workspaces", "connections", "events_per_second", "sessions", "status", "transports", "uptime_s", "version", "workspaces",
        ]);
        assert.equal(empty.json.sessions, 0);
        assert.equal(empty.json.status, "ON");
        assert.equal(typeof empty.json.version, "string");
        assert.ok(empty.json.version.length > 0);
        assert.ok(Number.isInteger(empty.json.uptime_s) && empty.json.uptime_s >= 0, `uptime_s ${empty.json.uptime_s}`);
        assert.deepEqual(empty.json.connections, { public: 0, private: 0 });
        assert.equal(empty.json.workspaces, 0);

        const [ws1, ws2, ws3] = [uid("ws1"), uid("ws2"), uid("ws3")];
        const a = await fresh.user({ workspaces: [ws1, ws2], register: [ws1, ws2] });
        const b = await fresh.user({ workspaces: [ws1], register: [ws1], transports: ["polling"] });
        await fresh.user({ workspaces: [ws3] }); // connected, registered nowhere
        await fresh.connectPrivate();
        const busy = await fresh.http("GET", "/status", { key: PRIVATE_KEY });
        assert.equal(busy.status, 200, busy.text);
        assert.deepEqual(busy.json.connections, { public: 3, private: 1 });
        assert.equal(busy.json.workspaces, 2, "workspace rooms with members: ws1 and ws2");

        // A workspace whose last member left is no longer counted.
        assert.deepEqual(await ack(a, "unregister", [ws2]), { ok: true });
        const left = await fresh.http("GET", "/status", { key: PRIVATE_KEY });
        assert.equal(left.json.workspaces, 1, `after the last member of ws2 left: ${left.text}`);

        // A disconnect is noticed by the server asynchronously: bounded poll.
        b.disconnect();
        const deadline = Date.now() + 5000;
        let last;
        while (Date.now() < deadline) {
          last = (await fresh.http("GET", "/status", { key: PRIVATE_KEY })).json;
          if (last.connections.public === 2) break;
          await delay(25); // poll interval of a bounded poll
        }
        assert.equal(last.connections.public, 2, `public connections after one client left: ${JSON.stringify(last)}`);
        assert.equal(last.workspaces, 1, "ws1 still has a member");
      } finally {
        await fresh.stop();
      }
    });
  });
});

describe("status_public = true", () => {
  let herald;
  before(async () => {
    herald = await startHerald("http-status-public", { statusPublic: true });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  test("GET /status without a key: 200", async () => {
    const res = await herald.http("GET", "/status");
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.status, "ON");
    assert.deepEqual(res.json.connections, { public: 0, private: 0 });
  });

  test("POST /api/v1/publish still needs the key", async () => {
    assertErrorBody(
      await herald.http("POST", "/api/v1/publish", { body: { event: "e", user: "u" } }),
      401,
      "unauthorized",
      "publish without a key",
    );
  });
});

describe("host not authorized (authorized_hosts = [\"10.9.9.9\"])", () => {
  let herald;
  before(async () => {
    herald = await startHerald("http-hosts", { authorizedHosts: ["10.9.9.9"] });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  test("POST /api/v1/publish with the right key from 127.0.0.1: 401", async () => {
    assertErrorBody(
      await herald.publishHttp({ event: uid("e"), workspace: uid("ws") }),
      401,
      "unauthorized",
      "non-authorized host",
    );
  });

  test("X-Forwarded-For from an untrusted peer is ignored", async () => {
    const res = await herald.publishHttp({ event: uid("e"), user: uid("u") }, { headers: { "x-forwarded-for": "10.9.9.9" } });
    assertErrorBody(res, 401, "unauthorized", "spoofed X-Forwarded-For");
  });

  test("GET /status needs the key, not an authorized host", async () => {
    assertErrorBody(await herald.http("GET", "/status"), 401, "unauthorized", "status without key");
    const res = await herald.http("GET", "/status", { key: PRIVATE_KEY });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.status, "ON");
  });

  test("GET /health: 200 ok", async () => {
    const res = await herald.http("GET", "/health");
    assert.equal(res.status, 200);
    assert.equal(res.text, "ok");
  });
});
