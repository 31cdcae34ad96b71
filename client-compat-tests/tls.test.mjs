// Native TLS ([tls] cert/key): the real socket.io-client 4.8 over wss:// and over https
// long-polling, trusting a self-signed certificate generated for this run (certs.mjs); backends
// publishing over https; a client that does not trust the certificate, or does not speak TLS,
// is refused without harm; a missing certificate file stops herald at startup, naming the file.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  PRIVATE_KEY,
  ack,
  eventually,
  httpsRequest,
  once,
  refused,
  startHerald,
  uid,
  withoutPosition,
} from "./harness.mjs";
import { selfSignedCert } from "./certs.mjs";

describe("native TLS", () => {
  let cert;
  let herald;
  before(async () => {
    cert = selfSignedCert();
    herald = await startHerald("tls", { tls: cert });
  });
  afterEach((t) => herald?.afterEach(t));
  after(async () => {
    await herald?.stop();
    cert?.remove();
  });

  /** POST /api/v1/publish over https with the private key; resolves with the response. */
  async function publishHttps(body) {
    const res = await httpsRequest(`${herald.url}/api/v1/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${PRIVATE_KEY}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      ca: cert.ca,
    });
    return { status: res.status, text: await res.text() };
  }

  test("herald announces and serves https", async () => {
    assert.match(herald.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await httpsRequest(`${herald.url}/health`, { ca: cert.ca });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok");
  });

  for (const transports of [["websocket"], ["polling"]]) {
    test(`socket.io-client over ${transports[0] === "websocket" ? "wss" : "https long-polling"} registers and receives`, async () => {
      const ws = uid("ws");
      const socket = await herald.user({ workspaces: [ws], register: [ws], ca: cert.ca, transports });
      assert.equal(socket.io.engine.transport.name, transports[0]);
      const event = uid("tls");
      const arrival = once(socket, event, undefined, "an event published over https");
      const res = await publishHttps({ event, workspace: ws, data: { secure: true } });
      assert.equal(res.status, 202, res.text);
      const [data, meta] = await arrival;
      assert.deepEqual(data, { secure: true });
      assert.equal(meta.workspace, ws);
    });
  }

  test("default transports: polling over https, then the upgrade to wss", async () => {
    const ws = uid("ws");
    const socket = await herald.user({ workspaces: [ws], register: [ws], ca: cert.ca });
    await eventually(() => socket.io.engine.transport.name === "websocket", 5000, "the upgrade to wss");
    const backend = await herald.connectPrivate({ ca: cert.ca, transports: ["websocket"] });
    const event = uid("upgraded");
    const arrival = once(socket, event, undefined, "an event over the upgraded socket");
    const reply = await ack(backend, "publish", [{ event, workspace: ws, data: 1 }]);
    assert.equal(reply?.ok, true, JSON.stringify(reply));
    assert.deepEqual((await arrival)[0], 1);
    // A second register round trip over the upgraded transport.
    const again = await ack(socket, "register", [{ workspace: ws }]);
    assert.deepEqual(withoutPosition(again), { ok: true, workspace: ws });
  });

  test("a client that does not trust the certificate is refused by its own TLS check", async () => {
    const socket = herald.publicV4({ token: "unused", transports: ["websocket"] });
    const err = await refused(socket, "an untrusting client");
    assert.match(String(err?.message ?? err), /websocket error|self[- ]signed|certificate/i);
  });

  test("plain http on the TLS port is dropped; herald keeps serving https", async () => {
    const plain = herald.url.replace(/^https:/, "http:");
    await assert.rejects(
      fetch(`${plain}/health`, { signal: AbortSignal.timeout(5000) }),
      (err) => {
        // undici: "fetch failed" caused by the closed socket, never a timeout.
        assert.notEqual(err.name, "TimeoutError", "herald kept a plain-http connection open");
        return true;
      },
    );
    const plainSocket = herald.publicV4({ url: plain, token: "unused", transports: ["polling"] });
    await refused(plainSocket, "socket.io-client speaking plain http to the TLS port");
    assert.equal(herald.exited, null, "herald exited");
    const res = await httpsRequest(`${herald.url}/health`, { ca: cert.ca });
    assert.equal(res.status, 200);
    const ws = uid("ws");
    await herald.user({ workspaces: [ws], register: [ws], ca: cert.ca, transports: ["websocket"] });
  });
});

describe("native TLS misconfigured", () => {
  test("a missing certificate file stops herald at startup, naming the file", async () => {
    const cert = selfSignedCert();
    try {
      const missing = `${cert.cert}.missing`;
      await assert.rejects(startHerald("tls-missing", { tls: { cert: missing, key: cert.key } }), (err) => {
        assert.match(err.message, /exited before listening/, err.message);
        assert.ok(err.message.includes(missing), `the error does not name ${missing}:\n${err.message}`);
        return true;
      });
    } finally {
      cert.remove();
    }
  });
});
