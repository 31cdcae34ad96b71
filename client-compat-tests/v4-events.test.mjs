// socket.io-client 4.x: the browser's events on /public (register, unregister, bad payloads,
// unknown events) and the order in which back-to-back calls take effect.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { ack, flush, once, publish, record, startHerald, uid, withoutPosition } from "./harness.mjs";

/** Asserts a bad_request ack: exactly ok/error/message, with a non-empty message. */
function assertBadRequest(reply, what) {
  assert.ok(reply && typeof reply === "object", `${what}: ack is not an object: ${JSON.stringify(reply)}`);
  assert.deepEqual(Object.keys(reply).sort(), ["error", "message", "ok"], `${what}: ${JSON.stringify(reply)}`);
  assert.equal(reply.ok, false, what);
  assert.equal(reply.error, "bad_request", `${what}: ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.message, "string", what);
  assert.ok(reply.message.length > 0, `${what}: empty message`);
}

describe("socket.io-client 4.x /public events", () => {
  let herald;
  let backend;
  before(async () => {
    herald = await startHerald("v4-events");
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  /** A fresh backend per test (afterEach closes every client). */
  const privateSocket = async () => (backend = await herald.connectPrivate());

  /** Publishes to `workspace` and reports whether `socket` got it (after a flush). */
  async function reached(socket, workspace) {
    const event = uid("probe");
    const rec = record(socket, event);
    await publish(backend, { event, workspace, data: workspace });
    await flush(backend, [socket]);
    assert.ok(rec.events.length <= 1, `delivered ${rec.events.length} times`);
    return rec.events.length === 1;
  }

  describe("register", () => {
    test('{"workspace": id} listed in the token is accepted and delivers', async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws, uid("other")] });
      assert.deepEqual(withoutPosition(await ack(socket, "register", [{ workspace: ws }])), { ok: true, workspace: ws });
      assert.equal(await reached(socket, ws), true);
    });

    test("a bare string id is accepted and delivers", async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws] });
      assert.deepEqual(withoutPosition(await ack(socket, "register", [ws])), { ok: true, workspace: ws });
      assert.equal(await reached(socket, ws), true);
    });

    test("an id of exactly 256 bytes is accepted", async () => {
      await privateSocket();
      const ws = "w".repeat(200) + uid("").slice(0, 56).padEnd(56, "x");
      assert.equal(Buffer.byteLength(ws), 256);
      const socket = await herald.user({ workspaces: [ws] });
      assert.deepEqual(withoutPosition(await ack(socket, "register", [{ workspace: ws }])), { ok: true, workspace: ws });
      assert.equal(await reached(socket, ws), true);
    });

    test("unicode ids round-trip", async () => {
      await privateSocket();
      const ws = `espace-é-日本-🚀-${uid("ws")}`;
      const socket = await herald.user({ workspaces: [ws] });
      assert.deepEqual(withoutPosition(await ack(socket, "register", [{ workspace: ws }])), { ok: true, workspace: ws });
      assert.equal(await reached(socket, ws), true);
    });

    test("a workspace not in the token's claim is forbidden and not joined", async () => {
      await privateSocket();
      const mine = uid("ws");
      const theirs = uid("ws");
      const socket = await herald.user({ workspaces: [mine] });
      assert.deepEqual(await ack(socket, "register", [{ workspace: theirs }]), { ok: false, error: "forbidden" });
      assert.equal(await reached(socket, theirs), false);
      assert.equal(socket.connected, true);
    });

    test("no workspaces claim at all: forbidden", async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({});
      assert.deepEqual(await ack(socket, "register", [{ workspace: ws }]), { ok: false, error: "forbidden" });
      assert.equal(await reached(socket, ws), false);
    });

    test("empty workspaces claim: forbidden", async () => {
      const socket = await herald.user({ workspaces: [] });
      assert.deepEqual(await ack(socket, "register", [uid("ws")]), { ok: false, error: "forbidden" });
    });

    test("claims are compared exactly (no prefix or case folding)", async () => {
      const ws = uid("Ws");
      const socket = await herald.user({ workspaces: [ws] });
      for (const other of [ws.toLowerCase(), ws.slice(0, -1), `${ws} `, ` ${ws}`]) {
        assert.deepEqual(
          await ack(socket, "register", [{ workspace: other }]),
          { ok: false, error: "forbidden" },
          `register ${JSON.stringify(other)}`,
        );
      }
    });
  });

  describe("unregister", () => {
    test("leaves the workspace: later publishes do not reach the socket", async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws], register: [ws] });
      assert.equal(await reached(socket, ws), true);
      assert.deepEqual(await ack(socket, "unregister", [{ workspace: ws }]), { ok: true });
      assert.equal(await reached(socket, ws), false);
      assert.equal(socket.connected, true);
    });

    test("a bare string id is accepted", async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws], register: [ws] });
      assert.deepEqual(await ack(socket, "unregister", [ws]), { ok: true });
      assert.equal(await reached(socket, ws), false);
    });

    test("leaves only the named workspace", async () => {
      await privateSocket();
      const [a, b] = [uid("ws"), uid("ws")];
      const socket = await herald.user({ workspaces: [a, b], register: [a, b] });
      assert.deepEqual(await ack(socket, "unregister", [{ workspace: a }]), { ok: true });
      assert.equal(await reached(socket, a), false);
      assert.equal(await reached(socket, b), true);
    });

    test("a workspace never registered: ok", async () => {
      const socket = await herald.user({});
      assert.deepEqual(await ack(socket, "unregister", [{ workspace: uid("ws") }]), { ok: true });
    });

    test("leaving does not remove the user's own room", async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws], register: [ws] });
      await ack(socket, "unregister", [{ workspace: ws }]);
      const event = uid("to-user");
      const arrival = once(socket, event, undefined, "user-targeted event after unregister");
      await publish(backend, { event, user: socket.sub, data: "still here" });
      const [data, meta] = await arrival;
      assert.equal(data, "still here");
      assert.equal(meta.workspace, null);
    });
  });

  describe("bad payloads: bad_request ack, socket stays connected", () => {
    const badArgs = [
      ["a number", [42]],
      ["null", [null]],
      ["an empty object", [{}]],
      ['{"workspace": 3}', [{ workspace: 3 }]],
      ['{"workspace": null}', [{ workspace: null }]],
      ['{"workspace": ["a"]}', [{ workspace: ["a"] }]],
      ["an empty string", [""]],
      ['{"workspace": ""}', [{ workspace: "" }]],
      ["an id of 257 ASCII bytes", [{ workspace: "x".repeat(257) }]],
      ["an id of 257 bytes in 129 characters", [{ workspace: "é".repeat(128) + "x" }]],
      ["an id with a control character", [{ workspace: "a\nb" }]],
      ["an array", [["ws"]]],
      ["a boolean", [true]],
      ["no argument", []],
    ];
    for (const event of ["register", "unregister"]) {
      for (const [name, args] of badArgs) {
        test(`${event} with ${name}`, async () => {
          await privateSocket();
          const ws = uid("ws");
          const socket = await herald.user({ workspaces: [ws] });
          assertBadRequest(await ack(socket, event, args), `${event}(${name})`);
          // Still connected and working: a later call succeeds and delivers.
          assert.equal(socket.connected, true);
          assert.deepEqual(withoutPosition(await ack(socket, "register", [{ workspace: ws }])), { ok: true, workspace: ws });
          assert.equal(await reached(socket, ws), true);
        });
      }
    }

    test("every bad payload on one socket, then a successful register", async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws] });
      for (const [name, args] of badArgs) {
        assertBadRequest(await ack(socket, "register", args), `register(${name})`);
      }
      assert.equal(socket.connected, true);
      assert.deepEqual(withoutPosition(await ack(socket, "register", [ws])), { ok: true, workspace: ws });
      assert.equal(await reached(socket, ws), true);
    });
  });

  describe("unknown events", () => {
    test("with an ack: bad_request \"unknown event\"", async () => {
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws] });
      for (const [event, args] of [
        ["subscribe", [{ workspace: ws }]],
        ["publish", [{ event: "x", workspace: ws }]],
        ["disconnect_user", [{ user: socket.sub }]],
        ["no-args", []],
      ]) {
        assert.deepEqual(
          await ack(socket, event, args),
          { ok: false, error: "bad_request", message: "unknown event" },
          `unknown event ${event}`,
        );
      }
      assert.deepEqual(withoutPosition(await ack(socket, "register", [ws])), { ok: true, workspace: ws });
    });

    test("without an ack: ignored, socket stays connected", async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws] });
      socket.emit("what-is-this", { a: 1 });
      socket.emit("another", 1, 2, 3);
      assert.deepEqual(withoutPosition(await ack(socket, "register", [ws])), { ok: true, workspace: ws });
      assert.equal(await reached(socket, ws), true);
      assert.equal(socket.connected, true);
    });

    test("a browser cannot publish: its publish attempt reaches nobody", async () => {
      await privateSocket();
      const ws = uid("ws");
      const victim = await herald.user({ workspaces: [ws], register: [ws] });
      const attacker = await herald.user({ workspaces: [ws], register: [ws] });
      const event = uid("forged");
      const rec = record(victim, event);
      const reply = await ack(attacker, "publish", [{ event, workspace: ws, data: "forged" }]);
      assert.equal(reply.ok, false);
      await flush(backend, [victim]);
      assert.equal(rec.events.length, 0);
    });
  });

  describe("ordering of back-to-back calls (no await in between)", () => {
    test("register then unregister: ends unregistered", async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws] });
      const [r1, r2] = await Promise.all([
        ack(socket, "register", [{ workspace: ws }]),
        ack(socket, "unregister", [{ workspace: ws }]),
      ]);
      assert.deepEqual(withoutPosition(r1), { ok: true, workspace: ws });
      assert.deepEqual(r2, { ok: true });
      assert.equal(await reached(socket, ws), false);
    });

    test("unregister then register: ends registered", async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws] });
      const [r1, r2] = await Promise.all([
        ack(socket, "unregister", [{ workspace: ws }]),
        ack(socket, "register", [{ workspace: ws }]),
      ]);
      assert.deepEqual(r1, { ok: true });
      assert.deepEqual(withoutPosition(r2), { ok: true, workspace: ws });
      assert.equal(await reached(socket, ws), true);
    });

    test("30 register/unregister pairs in a burst: every workspace ends unregistered", async () => {
      await privateSocket();
      const workspaces = Array.from({ length: 30 }, () => uid("ws"));
      const socket = await herald.user({ workspaces });
      const acks = [];
      for (const workspace of workspaces) {
        acks.push(ack(socket, "register", [{ workspace }]));
        acks.push(ack(socket, "unregister", [workspace]));
      }
      const replies = await Promise.all(acks);
      replies.forEach((reply, i) => {
        const workspace = workspaces[Math.floor(i / 2)];
        assert.deepEqual(withoutPosition(reply), i % 2 === 0 ? { ok: true, workspace } : { ok: true }, `ack ${i}`);
      });
      const event = uid("burst");
      const rec = record(socket, event);
      await publish(backend, { event, workspaces, data: null });
      await flush(backend, [socket]);
      assert.deepEqual(rec.events, [], "a workspace stayed registered after register+unregister");
    });

    test("register, unregister, register in a burst: ends registered, one copy", async () => {
      await privateSocket();
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws] });
      await Promise.all([
        ack(socket, "register", [ws]),
        ack(socket, "unregister", [ws]),
        ack(socket, "register", [ws]),
      ]);
      assert.equal(await reached(socket, ws), true);
    });

    test("acks come back in the order the calls were sent", async () => {
      const workspaces = Array.from({ length: 10 }, () => uid("ws"));
      const socket = await herald.user({ workspaces });
      const order = [];
      await Promise.all(
        workspaces.map((workspace, i) =>
          ack(socket, "register", [{ workspace }]).then((reply) => {
            assert.equal(reply.workspace, workspace);
            order.push(i);
          }),
        ),
      );
      assert.deepEqual(order, workspaces.map((_, i) => i));
    });
  });
});
