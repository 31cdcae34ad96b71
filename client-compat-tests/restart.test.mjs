// A graceful rolling restart: two nodes in cluster mode (a redis-server of the test's own) behind
// a tiny TCP proxy standing in for the load balancer. Real socket.io-client 4.x sockets sit on
// node A; A gets SIGTERM while a backend keeps publishing through node B. A's sockets must leave
// spread over `shutdown.drain` (not in one instant), reconnect through the proxy to B, resume
// with `since` (connection state recovery on), and receive every event exactly once, in order.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect } from "node:net";
import { once as onceEvent } from "node:events";

import { io } from "socket.io-client";

import { eventually, flush, mintToken, publish, startHerald, uid } from "./harness.mjs";
import { startRedis } from "./redis.mjs";

const DRAIN_MS = 3000;

/** A TCP proxy on loopback whose upstream port can be switched (the load balancer). */
async function startProxy(upstreamPort) {
  const proxy = { upstream: upstreamPort, connections: new Set() };
  const server = createServer((client) => {
    const upstream = connect(proxy.upstream, "127.0.0.1");
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ]) {
      a.on("error", () => b.destroy());
      a.on("close", () => b.destroy());
      a.pipe(b);
    }
    proxy.connections.add(client);
    client.on("close", () => proxy.connections.delete(client));
  });
  server.listen(0, "127.0.0.1");
  await onceEvent(server, "listening");
  proxy.url = `http://127.0.0.1:${server.address().port}`;
  proxy.close = () => {
    for (const c of proxy.connections) c.destroy();
    server.close();
  };
  return proxy;
}

describe("graceful rolling restart", () => {
  let redis;
  let a;
  let b;
  let proxy;
  before(async () => {
    redis = await startRedis();
    const common = {
      cluster: { redisUrl: redis.url, prefix: uid("herald") },
      recovery: { enabled: true },
      shutdownTimeout: "10s",
      shutdown: { drain: `${DRAIN_MS}ms` },
    };
    a = await startHerald("restart-a", common);
    b = await startHerald("restart-b", common);
    proxy = await startProxy(a.port);
  });
  afterEach((t) => [a, b].forEach((node) => node.afterEach(t)));
  after(async () => {
    await Promise.all([a, b].map((node) => node?.stop()));
    proxy?.close();
    await redis?.stop();
  });

  test("SIGTERM drains sockets gradually to the other node; every event arrives once", async (t) => {
    const ws = uid("ws");
    const clients = [];
    for (let i = 0; i < 12; i += 1) {
      const sub = uid("user");
      // Through the proxy, and tracked by B (whose afterEach closes it): A's stop must not.
      const socket = b.track(
        io(`${proxy.url}/public`, {
          path: a.enginePath,
          forceNew: true,
          auth: { token: mintToken({ sub, workspaces: [ws] }) },
          transports: i % 4 === 0 ? ["polling", "websocket"] : ["websocket"],
          reconnection: true,
          reconnectionDelay: 100,
          reconnectionDelayMax: 500,
        }),
      );
      const client = { socket, sub, got: [], last: undefined, disconnects: [], connects: 0 };
      socket.sub = sub;
      socket.on("tick", (data, meta) => {
        client.got.push(data);
        client.last = { offset: meta.offset, epoch: meta.epoch };
      });
      socket.on("disconnect", (reason) => client.disconnects.push({ at: Date.now(), reason }));
      socket.on("connect", () => {
        client.connects += 1;
        if (socket.recovered) return; // back in its rooms with what it missed
        // A new session: (re-)register, resuming from the last event received.
        const since = client.last;
        socket.emit("register", { workspace: ws, ...(since ? { since } : {}) }, (reply) => {
          client.registered = reply;
        });
      });
      clients.push(client);
    }
    await eventually(() => clients.every((c) => c.registered?.ok === true), 10000, "every client registered on A");

    // A backend on B publishes a numbered tick every 20 ms through the whole restart.
    const backend = await b.connectPrivate();
    let n = 0;
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        n += 1;
        await publish(backend, { event: "tick", workspace: ws, data: n });
        await new Promise((r) => setTimeout(r, 20)); // the publishing pace, not a wait for a state
      }
    })();
    await eventually(() => clients.every((c) => c.got.length >= 5), 10000, "ticks flowing on A");

    // The restart: the load balancer sends new connections to B; A gets SIGTERM.
    proxy.upstream = b.port;
    const sigterm = Date.now();
    const stopped = a.stop();
    // Out of rotation at once: /ready says 503 (or the listener is already closed).
    let ready;
    const readyBy = Date.now() + 2000;
    do {
      ready = await fetch(`${a.url}/ready`).then((r) => r.status).catch(() => "refused");
    } while (ready === 200 && Date.now() < readyBy);
    assert.ok(ready === 503 || ready === "refused", `A's /ready still answered ${ready} 2 s after SIGTERM`);

    await eventually(
      () => clients.every((c) => c.disconnects.length >= 1 && c.socket.connected && c.registered?.ok),
      20000,
      "every client to leave A and be back (on B)",
    );
    await stopped;
    const aLasted = Date.now() - sigterm;
    publishing = false;
    await publisher;
    await flush(backend, clients.map((c) => c.socket));

    for (const c of clients) {
      assert.deepEqual(
        c.got,
        Array.from({ length: n }, (_, i) => i + 1),
        `${c.sub}: every tick once, in order (got ${c.got.length} of ${n})`,
      );
      assert.equal(c.disconnects.length, 1, `${c.sub} left once: ${JSON.stringify(c.disconnects)}`);
      assert.match(c.disconnects[0].reason, /^transport (close|error)$/, `${c.sub}: reconnects by itself`);
    }
    // Spread over the drain, not all at once: 12 sockets, one every 250 ms.
    const times = clients.map((c) => c.disconnects[0].at);
    const span = Math.max(...times) - Math.min(...times);
    t.diagnostic(`${n} ticks; disconnects spanned ${span} ms after SIGTERM + ${Math.min(...times) - sigterm} ms; A exited after ${aLasted} ms`);
    assert.ok(span >= DRAIN_MS * 0.5, `disconnects spanned ${span} ms of a ${DRAIN_MS} ms drain`);
    assert.ok(aLasted < 10000, `A took ${aLasted} ms to exit`);
  });
});
