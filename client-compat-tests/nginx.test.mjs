// herald behind a real nginx running the shipped deploy/nginx/herald.conf (only the upstream
// servers and the listen address substituted): socket.io-client 4.8.4 and 2.5.0 over WebSocket,
// long-polling and the upgrade; sticky long-polling over two nodes with ip_hash; and
// private.authorized_hosts judged on the X-Forwarded-For that nginx sets, believed only from
// trusted_proxies.
//
// Source addresses: Linux routes all of 127.0.0.0/8 to loopback, so a client binds 127.0.0.2
// (the authorized backend) or 127.0.0.3 (any other host) and nginx, connecting to herald from
// 127.0.0.1, reports that address in X-Forwarded-For.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Agent } from "node:http";

import {
  PRIVATE_KEY,
  ack,
  eventually,
  mintToken,
  once,
  publish,
  refused,
  uid,
  startHerald,
  withoutPosition,
} from "./harness.mjs";
import { nginxBin, requestUrl, shippedConfig, startNginx } from "./nginx.mjs";
import { CellsUI } from "./cells-ui.mjs";

const BACKEND = "127.0.0.2"; // in authorized_hosts
const STRANGER = "127.0.0.3"; // anywhere else

/** socket.io-client options that make every request (polling and WebSocket) leave from `ip`. */
const from = (ip) => ({ agent: new Agent({ localAddress: ip }) });

/** Prints nginx's log next to herald's when a test failed. */
function afterEachBoth(t, herald, nginx) {
  herald?.afterEach(t);
  if (t.passed === false && nginx) t.diagnostic(`nginx [${nginx.label}] log:\n${nginx.log()}`);
}

/** Waits until a v4 socket's engine runs on `name` ("websocket" after an upgrade). */
function onTransport(socket, name) {
  return eventually(
    () => socket.io.engine?.transport?.name === name,
    5000,
    `the socket's transport to be ${name} (it is ${socket.io.engine?.transport?.name})`,
  );
}

describe("the shipped deploy/nginx/herald.conf", () => {
  // A missing nginx fails here by name (the suites below then fail in their before hooks).
  test("nginx is installed (Debian package nginx, or NGINX_BIN)", () => {
    nginxBin();
  });

  test("keeps the Engine.IO timeouts above ping_interval + ping_timeout (25 s + 20 s)", () => {
    const engine = /location \/socket\.io\/ \{([\s\S]*?)\n {4}\}/.exec(shippedConfig());
    assert.ok(engine, "no `location /socket.io/ { ... }` in the shipped config");
    for (const directive of ["proxy_read_timeout", "proxy_send_timeout"]) {
      const m = new RegExp(`^\\s*${directive}\\s+(\\d+)s;`, "m").exec(engine[1]);
      assert.ok(m, `${directive} is not set in seconds in the Engine.IO location`);
      assert.ok(Number(m[1]) > 45, `${directive} ${m[1]}s is not above 45 s`);
    }
    assert.match(engine[1], /^\s*proxy_buffering off;/m, "proxy_buffering off in the Engine.IO location");
  });
});

describe("behind nginx, trusted_proxies = [\"127.0.0.1\"], authorized_hosts = [\"127.0.0.2\"]", () => {
  let herald;
  let nginx;
  before(async () => {
    herald = await startHerald("nginx", {
      trustedProxies: ["127.0.0.1"],
      authorizedHosts: [BACKEND],
      cells: {},
    });
    nginx = await startNginx("nginx", { upstreams: [`127.0.0.1:${herald.port}`] });
  });
  afterEach((t) => afterEachBoth(t, herald, nginx));
  after(async () => {
    await nginx?.stop();
    await herald?.stop();
  });

  for (const transports of [["websocket"], ["polling"], undefined]) {
    const name = transports ? `${transports[0]} only` : "default transports, upgraded";
    test(`v4 through nginx (${name}): connect, register, receive a published event`, async () => {
      const ws = uid("ws");
      const user = await herald.user({ workspaces: [ws], url: nginx.url, transports });
      assert.deepEqual(withoutPosition(await ack(user, "register", [{ workspace: ws }])), {
        ok: true,
        workspace: ws,
      });
      await onTransport(user, transports ? transports[0] : "websocket");
      const backend = await herald.connectPrivate({ url: nginx.url, transports, ...from(BACKEND) });
      await onTransport(backend, transports ? transports[0] : "websocket");

      const event = uid("ev");
      const arrival = once(user, event, 5000, "the event published through nginx");
      const reply = await publish(backend, { event, workspace: ws, data: { text: "through nginx" } });
      const [data, meta] = await arrival;
      assert.deepEqual(data, { text: "through nginx" });
      assert.equal(meta.id, reply.id);
      assert.equal(meta.workspace, ws);
    });
  }

  test("the Pydio Cells door through nginx: the UI's WebSocket subscribes and receives a task", async () => {
    const login = uid("login");
    const token = mintToken({ sub: uid("sub"), extra: { login } });
    const ui = new CellsUI({
      url: `${nginx.url.replace(/^http/, "ws")}/ws/event`,
      token: () => token,
      reconnect: false,
      label: "cells UI through nginx",
    });
    try {
      ui.open();
      await ui.waitSubscribe(5000, "the UI's subscribe through nginx");
      // Subscribed once a task of its login reaches it: publish until one does (bounded).
      const deadline = Date.now() + 5000;
      for (let n = 0; ; n += 1) {
        const id = uid("task");
        const arrived = ui.waitFrame((f) => f?.TaskUpdated?.ID === id, 250, "a task").then(
          () => true,
          () => false,
        );
        const res = await nginx.request("POST", "/api/v1/publish", {
          body: {
            event: "cells:task",
            data: { TaskUpdated: { ID: id, TriggerOwner: login, Status: "Running" }, Job: { ID: "job" } },
          },
          headers: { authorization: `Bearer ${PRIVATE_KEY}` },
          localAddress: BACKEND,
        });
        assert.equal(res.status, 202, res.text);
        if (await arrived) break;
        assert.ok(Date.now() < deadline, `no task reached the UI through nginx after ${n + 1} publishes`);
      }
      assert.deepEqual(ui.errors, [], "what the UI would have thrown on");
    } finally {
      ui.terminate();
    }
  });

  test("v2 through nginx (default transports): connect, register, receive", async () => {
    const ws = uid("ws");
    const user = await herald.user({ client: "v2", workspaces: [ws], register: [ws], url: nginx.url });
    await onTransport(user, "websocket");
    const backend = await herald.connectPrivate({ url: nginx.url, ...from(BACKEND) });
    const event = uid("ev");
    const arrival = once(user, event, 5000, "the event on the v2 socket through nginx");
    await publish(backend, { event, workspace: ws, data: [1, "two"] });
    const [data, meta] = await arrival;
    assert.deepEqual(data, [1, "two"]);
    assert.equal(meta.workspace, ws);
  });

  for (const transports of [["websocket"], ["polling"]]) {
    test(`/private through nginx (${transports[0]}): admitted from 127.0.0.2, refused from 127.0.0.3 even with a forged X-Forwarded-For`, async () => {
      const ok = await herald.connectPrivate({ url: nginx.url, transports, ...from(BACKEND) });
      assert.equal(ok.connected, true);

      const stranger = herald.privateV4({ url: nginx.url, transports, ...from(STRANGER) });
      assert.equal((await refused(stranger, "/private from 127.0.0.3 through nginx")).message, "unauthorized");

      // nginx appends 127.0.0.3 to the forged list; herald takes the right-most untrusted entry.
      const forged = herald.privateV4({
        url: nginx.url,
        transports,
        extraHeaders: { "X-Forwarded-For": BACKEND },
        ...from(STRANGER),
      });
      assert.equal(
        (await refused(forged, "/private from 127.0.0.3 claiming 127.0.0.2 through nginx")).message,
        "unauthorized",
      );
    });
  }

  test("POST /api/v1/publish through nginx: 202 from 127.0.0.2 (and delivered), 401 from 127.0.0.3, forged or not", async () => {
    const ws = uid("ws");
    const user = await herald.user({ workspaces: [ws], register: [ws], url: nginx.url });
    const event = uid("ev");
    const arrival = once(user, event, 5000, "the event published with POST through nginx");
    const body = { event, workspace: ws, data: "posted" };
    const headers = { authorization: `Bearer ${PRIVATE_KEY}` };

    const res = await nginx.request("POST", "/api/v1/publish", { body, headers, localAddress: BACKEND });
    assert.equal(res.status, 202, `from 127.0.0.2: HTTP ${res.status} ${res.text}`);
    const [data, meta] = await arrival;
    assert.equal(data, "posted");
    assert.equal(meta.id, res.json.id);

    const stranger = await nginx.request("POST", "/api/v1/publish", { body, headers, localAddress: STRANGER });
    assert.equal(stranger.status, 401, `from 127.0.0.3: HTTP ${stranger.status} ${stranger.text}`);
    assert.equal(stranger.json?.code, "unauthorized");
    const forged = await nginx.request("POST", "/api/v1/publish", {
      body,
      headers: { ...headers, "x-forwarded-for": BACKEND },
      localAddress: STRANGER,
    });
    assert.equal(forged.status, 401, `from 127.0.0.3 claiming 127.0.0.2: HTTP ${forged.status} ${forged.text}`);
  });

  test("GET /health and /status through nginx", async () => {
    const health = await nginx.request("GET", "/health");
    assert.equal(health.status, 200);
    assert.equal(health.text, "ok");
    const status = await nginx.request("GET", "/status", {
      headers: { authorization: `Bearer ${PRIVATE_KEY}` },
    });
    assert.equal(status.status, 200, status.text);
    assert.equal(status.json?.status, "ON");
    assert.equal((await nginx.request("GET", "/status")).status, 401);
  });

  test("directly to herald, a forged X-Forwarded-For from an untrusted peer is ignored", async () => {
    // 127.0.0.3 is not in trusted_proxies: its header does not count, its own address does.
    const forged = herald.privateV4({ extraHeaders: { "X-Forwarded-For": BACKEND }, ...from(STRANGER) });
    assert.equal((await refused(forged, "/private from 127.0.0.3 claiming 127.0.0.2")).message, "unauthorized");
    const res = await requestUrl(`${herald.url}/api/v1/publish`, {
      method: "POST",
      body: { event: uid("ev"), user: uid("u") },
      headers: { authorization: `Bearer ${PRIVATE_KEY}`, "x-forwarded-for": BACKEND },
      localAddress: STRANGER,
    });
    assert.equal(res.status, 401, `HTTP ${res.status} ${res.text}`);
    // The authorized host itself, with no proxy in between, is admitted.
    const direct = await herald.connectPrivate(from(BACKEND));
    assert.equal(direct.connected, true);
  });
});

describe("behind nginx without trusted_proxies (authorized_hosts = [\"127.0.0.2\"])", () => {
  let herald;
  let nginx;
  before(async () => {
    herald = await startHerald("nginx-untrusted", { authorizedHosts: [BACKEND] });
    nginx = await startNginx("nginx-untrusted", { upstreams: [`127.0.0.1:${herald.port}`] });
  });
  afterEach((t) => afterEachBoth(t, herald, nginx));
  after(async () => {
    await nginx?.stop();
    await herald?.stop();
  });

  test("nginx's X-Forwarded-For is not believed: the backend behind it is refused", async () => {
    const socket = herald.privateV4({ url: nginx.url, ...from(BACKEND) });
    assert.equal((await refused(socket, "/private from 127.0.0.2 through an untrusted nginx")).message, "unauthorized");
  });

  test("a forged X-Forwarded-For sent directly from 127.0.0.1 is ignored", async () => {
    const forged = herald.privateV4({ extraHeaders: { "X-Forwarded-For": BACKEND } });
    assert.equal((await refused(forged, "/private from 127.0.0.1 claiming 127.0.0.2")).message, "unauthorized");
    const res = await requestUrl(`${herald.url}/api/v1/publish`, {
      method: "POST",
      body: { event: uid("ev"), user: uid("u") },
      headers: { authorization: `Bearer ${PRIVATE_KEY}`, "x-forwarded-for": BACKEND },
    });
    assert.equal(res.status, 401, `HTTP ${res.status} ${res.text}`);
  });
});

describe("two herald nodes behind nginx (ip_hash)", () => {
  let nodes = [];
  let nginx;
  let roundRobin;
  before(async () => {
    nodes = [await startHerald("nginx-node-a"), await startHerald("nginx-node-b")];
    const upstreams = nodes.map((n) => `127.0.0.1:${n.port}`);
    nginx = await startNginx("nginx-two-nodes", { upstreams });
    // The same config without ip_hash: the control showing that stickiness is what makes it work.
    roundRobin = await startNginx("nginx-round-robin", {
      upstreams,
      transform: (conf) => {
        const out = conf.replace(/^\s*ip_hash;\n/m, "");
        assert.notEqual(out, conf, "no ip_hash line to remove");
        return out;
      },
    });
  });
  afterEach((t) => {
    for (const node of nodes) node.afterEach(t);
    if (t.passed === false) {
      for (const n of [nginx, roundRobin]) if (n) t.diagnostic(`nginx [${n.label}] log:\n${n.log()}`);
    }
  });
  after(async () => {
    await roundRobin?.stop();
    await nginx?.stop();
    for (const node of nodes) await node.stop();
  });

  for (const transports of [["polling"], undefined]) {
    const name = transports ? "polling only" : "default transports, upgraded";
    test(`long-polling sessions stay on their node (${name}); a publish to every node reaches them`, async () => {
      const ws = uid("ws");
      const users = [];
      for (let i = 0; i < 3; i += 1) {
        users.push(await nodes[0].user({ workspaces: [ws], register: [ws], url: nginx.url, transports }));
      }
      if (!transports) for (const u of users) await onTransport(u, "websocket");
      // herald nodes do not share events: the backend publishes to each node.
      const event = uid("ev");
      const arrivals = users.map((u, i) => once(u, event, 5000, `the event on user ${i}`));
      for (const node of nodes) {
        const res = await node.publishHttp({ event, workspace: ws, data: "to every node" });
        assert.equal(res.status, 202, res.text);
      }
      for (const [data] of await Promise.all(arrivals)) assert.equal(data, "to every node");
    });
  }

  test("control: without ip_hash, a polling session through two nodes breaks", async () => {
    const socket = nodes[0].publicV4({
      url: roundRobin.url,
      token: mintToken({ sub: uid("u") }),
      transports: ["polling"],
    });
    await refused(socket, "a polling socket through round-robin nginx");
  });
});
