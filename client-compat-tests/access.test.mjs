// Live access changes seen by real clients: a backend replaces a user's allowed workspaces with
// the `access` event on /private or with POST /api/v1/access. Each socket of that user that was
// registered to a workspace no longer allowed gets `access_revoked` {workspace}, stops receiving
// that workspace's events (its other workspaces keep flowing), and a new `register` of it is
// refused. socket.io-client 4.x and 2.x.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { ack, flush, once, publish, record, startHerald, uid, withoutPosition } from "./harness.mjs";

/** Asserts the arguments of one `access_revoked`: exactly ({workspace}). */
function assertRevoked(args, workspace, what) {
  assert.deepEqual(args, [{ workspace }], `${what}: access_revoked arguments`);
}

describe("live access changes", () => {
  let herald;
  let backend;
  before(async () => {
    herald = await startHerald("access");
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  const privateSocket = async () => (backend = await herald.connectPrivate());

  /** Sends `access` over /private; resolves with the ack. */
  const accessPrivate = (body) => ack(backend, "access", [body]);

  /** Sends POST /api/v1/access; asserts 200 and resolves with the body. */
  async function accessHttp(body) {
    const res = await herald.accessHttp(body);
    assert.equal(res.status, 200, `POST /api/v1/access: ${res.status} ${res.text}`);
    return res.json;
  }

  /**
   * Publishes one `event` to each workspace in `workspaces`, then flushes `sockets`; resolves with
   * the recorders (one per socket) of that event. After this, what a recorder lacks never comes.
   */
  async function probe(sockets, workspaces) {
    const event = uid("probe");
    const recs = sockets.map((s) => record(s, event));
    for (const workspace of workspaces) await publish(backend, { event, workspace, data: workspace });
    await flush(backend, sockets);
    return recs.map((rec) => rec.events.map(([data, meta]) => {
      assert.equal(meta.workspace, data, "meta.workspace is the workspace published to");
      return data;
    }));
  }

  for (const [door, change] of [
    ["/private access", (body) => accessPrivate(body)],
    ["POST /api/v1/access", (body) => accessHttp(body)],
  ]) {
    describe(`via ${door}`, () => {
      test("one of two workspaces revoked: access_revoked, that one stops, the other flows, register refused", async () => {
        await privateSocket();
        const [ws1, ws2] = [uid("ws1"), uid("ws2")];
        const alice = await herald.user({ workspaces: [ws1, ws2], register: [ws1, ws2] });
        const bob = await herald.user({ workspaces: [ws1], register: [ws1] });
        // Before: both workspaces reach alice.
        assert.deepEqual((await probe([alice], [ws1, ws2]))[0], [ws1, ws2], "before the change");

        const revoked = record(alice, "access_revoked");
        const bobRevoked = record(bob, "access_revoked");
        const announced = once(alice, "access_revoked", undefined, "access_revoked for ws1");
        const reply = await change({ user: alice.sub, workspaces: [ws2] });
        assert.deepEqual(reply, { ok: true, sockets: 1, revoked: 1, disconnected: 0 }, "access outcome");
        assertRevoked(await announced, ws1, "alice");

        const [aliceGot, bobGot] = await probe([alice, bob], [ws1, ws2]);
        assert.deepEqual(aliceGot, [ws2], "after the change alice receives ws2 only");
        assert.deepEqual(bobGot, [ws1], "bob, also in ws1, is untouched");
        assert.equal(revoked.events.length, 1, `alice got ${revoked.events.length} access_revoked`);
        assert.deepEqual(bobRevoked.events, [], "bob got an access_revoked");

        assert.deepEqual(await ack(alice, "register", [{ workspace: ws1 }]), { ok: false, error: "forbidden" },
          "register of the revoked workspace");
        assert.deepEqual(withoutPosition(await ack(alice, "register", [{ workspace: ws2 }])), { ok: true, workspace: ws2 },
          "register of the still allowed workspace");
        assert.deepEqual((await probe([alice], [ws1, ws2]))[0], [ws2], "the refused register let nothing in");
        assert.equal(alice.connected, true, "alice stayed connected");
      });

      test("every socket of the user follows; a newly granted workspace can be registered", async () => {
        await privateSocket();
        const [ws1, ws2, ws3] = [uid("ws1"), uid("ws2"), uid("ws3")];
        const sub = uid("alice");
        const tab1 = await herald.user({ sub, workspaces: [ws1, ws2], register: [ws1, ws2] });
        const tab2 = await herald.user({ sub, workspaces: [ws1, ws2], register: [ws1], transports: ["polling"] });
        const idle = await herald.user({ sub, workspaces: [ws1, ws2] });
        const tabs = [tab1, tab2, idle];
        const revoked = tabs.map((s) => record(s, "access_revoked"));
        assert.deepEqual(await ack(tab1, "register", [{ workspace: ws3 }]), { ok: false, error: "forbidden" }, "ws3 before");

        const announced = [
          once(tab1, "access_revoked", undefined, "access_revoked on tab 1"),
          once(tab2, "access_revoked", undefined, "access_revoked on tab 2"),
        ];
        const reply = await change({ user: sub, workspaces: [ws2, ws3] });
        assert.deepEqual(reply, { ok: true, sockets: 3, revoked: 2, disconnected: 0 }, "access outcome");
        for (const [i, p] of announced.entries()) assertRevoked(await p, ws1, `tab ${i + 1}`);

        const got = await probe(tabs, [ws1, ws2, ws3]);
        assert.deepEqual(got, [[ws2], [], []], "workspaces reaching tab 1, tab 2 and the idle tab");
        assert.deepEqual(revoked.map((r) => r.events.length), [1, 1, 0], "access_revoked per socket");

        assert.deepEqual(withoutPosition(await ack(idle, "register", [{ workspace: ws3 }])), { ok: true, workspace: ws3 },
          "register of the newly granted workspace");
        assert.deepEqual(await ack(tab2, "register", [{ workspace: ws1 }]), { ok: false, error: "forbidden" },
          "register of the revoked workspace on another socket");
        assert.deepEqual(await probe(tabs, [ws1, ws3]), [[], [], [ws3]], "after the new registers");
      });
    });
  }

  describe("socket.io-client 2.x", () => {
    for (const [name, transports] of [["default transports", undefined], ["polling only", ["polling"]]]) {
      test(`${name}: access_revoked, the other workspace flows, register refused`, async () => {
        await privateSocket();
        const [ws1, ws2] = [uid("ws1"), uid("ws2")];
        const alice = await herald.user({ client: "v2", workspaces: [ws1, ws2], register: [ws1, ws2], transports });
        const revoked = record(alice, "access_revoked");
        const announced = once(alice, "access_revoked", undefined, "v2 access_revoked for ws1");
        const reply = await accessPrivate({ user: alice.sub, workspaces: [ws2] });
        assert.deepEqual(reply, { ok: true, sockets: 1, revoked: 1, disconnected: 0 }, "access outcome");
        assertRevoked(await announced, ws1, "v2 alice");
        assert.deepEqual((await probe([alice], [ws1, ws2]))[0], [ws2], "after the change");
        assert.equal(revoked.events.length, 1, `v2 alice got ${revoked.events.length} access_revoked`);
        assert.deepEqual(await ack(alice, "register", [ws1]), { ok: false, error: "forbidden" }, "v2 register of ws1");
        assert.equal(alice.connected, true, "the v2 socket stayed connected");
      });
    }

    test("a user's v2 and v4 sockets both follow a change over HTTP", async () => {
      await privateSocket();
      const [ws1, ws2] = [uid("ws1"), uid("ws2")];
      const sub = uid("alice");
      const v2 = await herald.user({ sub, client: "v2", workspaces: [ws1, ws2], register: [ws1, ws2] });
      const v4 = await herald.user({ sub, workspaces: [ws1, ws2], register: [ws1, ws2] });
      const announced = [v2, v4].map((s, i) => once(s, "access_revoked", undefined, `access_revoked on socket ${i}`));
      const reply = await accessHttp({ user: sub, workspaces: [ws1] });
      assert.deepEqual(reply, { ok: true, sockets: 2, revoked: 2, disconnected: 0 }, "access outcome");
      for (const [i, p] of announced.entries()) assertRevoked(await p, ws2, `socket ${i}`);
      assert.deepEqual(await probe([v2, v4], [ws1, ws2]), [[ws1], [ws1]], "after the change");
    });
  });
});
