// Token expiry in JWT mode, seen by real clients: `token_expiring` {exp} comes
// `auth.jwt.expiry_warning` before the token's exp; `refresh` {token} with a new token for the
// same user keeps the socket past the old exp; without one the socket gets `session_invalid`
// {reason: "token_expired"} at exp and the server disconnects it ("io server disconnect", so
// socket.io-client does not reconnect by itself). Tokens here expire a few seconds out, with
// expiry_warning = 2 s.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { WAIT_MS, ack, connected, eventually, flush, mintToken, once, publish, record, startHerald, uid, withoutPosition } from "./harness.mjs";

const WARNING_S = 2;
/** Token lifetime: exp is 3 to 4 s out (whole seconds), so the warning comes 1 to 2 s after connecting. */
const LIFETIME_S = 4;

/** Longest wait for something that comes at or before a short-lived token's exp. */
const EXPIRY_WAIT_MS = LIFETIME_S * 1000 + WAIT_MS;

const nowS = () => Math.floor(Date.now() / 1000);
/** Milliseconds from now until `exp` (seconds) has passed, plus `WAIT_MS` of slack. */
const untilPast = (exp) => Math.max(0, exp * 1000 - Date.now()) + WAIT_MS;

describe("token expiry and refresh", () => {
  let herald;
  let backend;
  before(async () => {
    herald = await startHerald("expiry", { expiryWarning: `${WARNING_S}s` });
  });
  afterEach((t) => herald.afterEach(t));
  after(() => herald?.stop());

  const privateSocket = async () => (backend = await herald.connectPrivate());

  /**
   * A v4 (or v2) socket of a new user whose token expires `LIFETIME_S` from now. Listeners are
   * attached (by `listen(socket)`) before the handshake, so a warning sent right after connecting
   * is not missed. Resolves with {socket, sub, exp}.
   */
  async function shortLived({ workspaces, client = "v4", listen = () => {}, ...options } = {}) {
    const sub = uid("alice");
    const exp = nowS() + LIFETIME_S;
    const token = mintToken({ sub, workspaces, exp });
    const socket = client === "v2" ? herald.publicV2({ token, ...options }) : herald.publicV4({ token, ...options });
    socket.sub = sub;
    listen(socket);
    await connected(socket, `${client} /public with a short-lived token`);
    return { socket, sub, exp };
  }

  /** Records token_expiring, session_invalid and disconnect on `socket`, in arrival order. */
  function lifecycle(socket) {
    const log = [];
    socket.on("token_expiring", (...args) => log.push(["token_expiring", ...args]));
    socket.on("session_invalid", (...args) => log.push(["session_invalid", ...args]));
    socket.on("disconnect", (reason) => log.push(["disconnect", reason]));
    return log;
  }

  test("token_expiring, then refresh: still connected and receiving past the old exp", async () => {
    await privateSocket();
    const ws = uid("ws");
    let log;
    let warning;
    const { socket, sub, exp } = await shortLived({
      workspaces: [ws],
      listen: (s) => {
        log = lifecycle(s);
        warning = once(s, "token_expiring", EXPIRY_WAIT_MS, "token_expiring before exp");
      },
    });
    assert.deepEqual(withoutPosition(await ack(socket, "register", [{ workspace: ws }])), { ok: true, workspace: ws });

    assert.deepEqual(await warning, [{ exp }], "token_expiring arguments");
    assert.ok(Date.now() < exp * 1000, `token_expiring came at ${Date.now()}, not before exp ${exp}`);
    const fresh = nowS() + 3600;
    const reply = await ack(socket, "refresh", [{ token: mintToken({ sub, workspaces: [ws], exp: fresh }) }]);
    assert.deepEqual(reply, { ok: true, exp: fresh, revoked: 0 }, "refresh ack");

    // Bounded poll on the clock: the old exp is at least a second in the past.
    await eventually(() => Date.now() >= exp * 1000 + 1000, untilPast(exp + 1), `the old exp ${exp} to pass`);
    const event = uid("after-old-exp");
    const arrival = once(socket, event, undefined, "a workspace event published after the old exp");
    const { id } = await publish(backend, { event, workspace: ws, data: "still here" });
    const [data, meta] = await arrival;
    assert.deepEqual([data, meta.id, meta.workspace], ["still here", id, ws], "the event after the old exp");
    await flush(backend, [socket]);
    assert.equal(socket.connected, true, "the refreshed socket is still connected");
    assert.deepEqual(log, [["token_expiring", { exp }]], "lifecycle events of the refreshed socket");
  });

  test("no refresh: session_invalid {reason: token_expired} at exp, io server disconnect, no reconnection", async () => {
    // Reconnection on, after 1 ms: a reconnection would start with a 1 ms timer at the disconnect.
    const reconnecting = { reconnection: true, reconnectionDelay: 1, randomizationFactor: 0 };
    let log;
    let gone;
    let attempts;
    const { socket, exp } = await shortLived({
      ...reconnecting,
      listen: (s) => {
        log = lifecycle(s);
        gone = once(s, "disconnect", EXPIRY_WAIT_MS, "the server disconnect at exp");
        attempts = record(s.io, "reconnect_attempt");
      },
    });
    // A control socket with the same options and a long-lived token.
    const control = await herald.connectPublic({ token: mintToken({ sub: uid("control") }), ...reconnecting });

    const [reason] = await gone;
    const at = Date.now();
    assert.equal(reason, "io server disconnect");
    assert.deepEqual(
      log,
      [
        ["token_expiring", { exp }],
        ["session_invalid", { reason: "token_expired" }],
        ["disconnect", "io server disconnect"],
      ],
      "lifecycle events without a refresh",
    );
    assert.ok(at >= exp * 1000, `disconnected at ${at}, before exp ${exp * 1000}`);
    assert.equal(socket.active, false, "socket.active: the client means to reconnect");

    // The control loses its connection after the disconnect above and does reconnect: its
    // reconnect_attempt (a 1 ms timer armed later than any the expired socket could have armed)
    // is the marker after which the expired socket's attempt would have been seen.
    const controlAttempt = once(control.io, "reconnect_attempt", undefined, "the control socket's reconnect_attempt");
    control.io.engine.close();
    await controlAttempt;
    assert.deepEqual(attempts.events, [], "the expired socket tried to reconnect");
    assert.equal(socket.connected, false, "the expired socket is connected again");
  });

  test("refused refreshes: another sub is forbidden, bad tokens unauthorized; none extends the session", async () => {
    await privateSocket();
    const ws = uid("ws");
    let log;
    let gone;
    const { socket, sub, exp } = await shortLived({
      listen: (s) => {
        log = lifecycle(s);
        gone = once(s, "disconnect", EXPIRY_WAIT_MS, "the server disconnect at exp");
      },
    });
    const long = nowS() + 3600;
    const cases = [
      ["a token of another sub", { token: mintToken({ sub: uid("mallory"), workspaces: [ws], exp: long }) },
        { ok: false, error: "forbidden" }],
      ["a token signed with another secret", { token: mintToken({ sub, exp: long, secret: "not-the-secret-0123" }) },
        { ok: false, error: "unauthorized" }],
      ["an expired token", { token: mintToken({ sub, exp: nowS() - 60 }) }, { ok: false, error: "unauthorized" }],
      ["garbage", { token: "garbage" }, { ok: false, error: "unauthorized" }],
    ];
    for (const [name, arg, expected] of cases) {
      assert.deepEqual(await ack(socket, "refresh", [arg]), expected, `refresh with ${name}`);
    }
    for (const bad of [{}, "a string", { token: 5 }]) {
      const reply = await ack(socket, "refresh", [bad]);
      assert.deepEqual(Object.keys(reply ?? {}).sort(), ["error", "message", "ok"], `refresh ${JSON.stringify(bad)}: ${JSON.stringify(reply)}`);
      assert.equal(reply.error, "bad_request", `refresh ${JSON.stringify(bad)}`);
    }
    // The other user's workspaces were not taken over.
    assert.deepEqual(await ack(socket, "register", [{ workspace: ws }]), { ok: false, error: "forbidden" });
    assert.ok(Date.now() < exp * 1000, "the refusals took until exp: the rest of this test proves nothing");

    const [reason] = await gone;
    assert.equal(reason, "io server disconnect");
    assert.ok(Date.now() >= exp * 1000, `disconnected at ${Date.now()}, before exp ${exp * 1000}`);
    assert.deepEqual(
      log,
      [
        ["token_expiring", { exp }],
        ["session_invalid", { reason: "token_expired" }],
        ["disconnect", "io server disconnect"],
      ],
      "lifecycle events after refused refreshes",
    );
  });

  test("a refresh whose token no longer lists a registered workspace revokes it", async () => {
    await privateSocket();
    const [ws1, ws2] = [uid("ws1"), uid("ws2")];
    const sub = uid("alice");
    const socket = await herald.user({ sub, workspaces: [ws1, ws2], register: [ws1, ws2] });
    const revoked = record(socket, "access_revoked");
    const announced = once(socket, "access_revoked", undefined, "access_revoked after the refresh");
    const exp = nowS() + 7200;
    const reply = await ack(socket, "refresh", [{ token: mintToken({ sub, workspaces: [ws2], exp }) }]);
    assert.deepEqual(reply, { ok: true, exp, revoked: 1 }, "refresh ack");
    assert.deepEqual(await announced, [{ workspace: ws1 }], "access_revoked arguments");

    const event = uid("probe");
    const rec = record(socket, event);
    await publish(backend, { event, workspace: ws1, data: ws1 });
    await publish(backend, { event, workspace: ws2, data: ws2 });
    await flush(backend, [socket]);
    assert.deepEqual(rec.events.map(([data]) => data), [ws2], "workspaces reaching the socket after the refresh");
    assert.equal(revoked.events.length, 1, `${revoked.events.length} access_revoked`);
    assert.deepEqual(await ack(socket, "register", [{ workspace: ws1 }]), { ok: false, error: "forbidden" });
  });

  test("socket.io-client 2.x: token_expiring, then session_invalid and io server disconnect at exp", async () => {
    let log;
    let gone;
    const { socket, exp } = await shortLived({
      client: "v2",
      listen: (s) => {
        log = lifecycle(s);
        gone = once(s, "disconnect", EXPIRY_WAIT_MS, "the v2 server disconnect at exp");
      },
    });
    const [reason] = await gone;
    assert.equal(reason, "io server disconnect");
    assert.ok(Date.now() >= exp * 1000, `disconnected at ${Date.now()}, before exp ${exp * 1000}`);
    assert.deepEqual(log, [
      ["token_expiring", { exp }],
      ["session_invalid", { reason: "token_expired" }],
      ["disconnect", "io server disconnect"],
    ]);
    assert.equal(socket.connected, false);
  });

  test("socket.io-client 2.x: refresh keeps the socket past the old exp", async () => {
    await privateSocket();
    let warning;
    let invalid;
    const { socket, sub, exp } = await shortLived({
      client: "v2",
      listen: (s) => {
        warning = once(s, "token_expiring", EXPIRY_WAIT_MS, "v2 token_expiring");
        invalid = record(s, "session_invalid");
      },
    });
    assert.deepEqual(await warning, [{ exp }]);
    const fresh = nowS() + 3600;
    assert.deepEqual(await ack(socket, "refresh", [{ token: mintToken({ sub, exp: fresh }) }]), { ok: true, exp: fresh, revoked: 0 });
    await eventually(() => Date.now() >= exp * 1000 + 1000, untilPast(exp + 1), `the old exp ${exp} to pass`);
    const event = uid("after-old-exp");
    const arrival = once(socket, event, undefined, "v2: an event published after the old exp");
    await publish(backend, { event, user: sub, data: 1 });
    await arrival;
    assert.equal(socket.connected, true);
    assert.deepEqual(invalid.events, []);
  });
});
