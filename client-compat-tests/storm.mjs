// A reconnect storm against one herald with a small handshake budget: N real socket.io-client
// 4.x sockets connect at once, from several worker processes (each at most a few thousand
// sockets), with socket.io-client's default reconnection backoff. herald answers what it cannot
// take now with a fast 503; the clients retry until every one is in.
//
//   node storm.mjs                 full run: 15000 clients, handshake budget 32, figures on stdout
//   node storm.mjs --smoke         a few hundred clients in seconds (storm.test.mjs runs this)
//   node storm.mjs --clients N --budget B --workers W --deadline-s S
//
// Loopback only; stops by itself at the deadline (the exit code says whether everyone got in).
// Run from any directory; HERALD_BIN selects the binary as in the test suite.

import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";

import { io } from "socket.io-client";

import { PRIVATE_KEY, mintToken, startHerald, uid } from "./harness.mjs";

const SELF = fileURLToPath(import.meta.url);

/** Sizes of a full run and of the smoke run. */
export const FULL = { clients: 15000, budget: 32, workers: 4, deadlineS: 240 };
export const SMOKE = { clients: 300, budget: 4, workers: 1, deadlineS: 60 };

/** herald's resident memory in KiB (VmRSS), or undefined once it is gone. */
function rssKib(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The counters of herald_limit_refusals_total and the gauges the storm is about. */
async function scrape(herald) {
  const res = await herald.http("GET", "/metrics", { key: PRIVATE_KEY });
  const value = (re) => {
    const m = re.exec(res.text);
    return m ? Number(m[1]) : 0;
  };
  return {
    overloaded: value(/^herald_limit_refusals_total\{limit="max_handshakes_in_flight"\} (\d+)$/m),
    full: value(/^herald_limit_refusals_total\{limit="max_connections"\} (\d+)$/m),
    sessions: value(/^herald_engine_sessions (\d+)$/m),
    inFlight: value(/^herald_handshakes_in_flight (\d+)$/m),
    handshakesOk: value(/^herald_handshakes_total\{namespace="public",outcome="ok"\} (\d+)$/m),
  };
}

/**
 * Runs a storm and resolves with its figures. `options`: {clients, budget, workers, deadlineS,
 * log}. Never throws for a storm that did not complete: the figures say so (`allIn`).
 */
export async function storm({ clients, budget, workers, deadlineS, log = () => {} }) {
  const herald = await startHerald(uid("storm"), {
    limits: {
      max_handshakes_in_flight: budget,
      max_connections: Math.max(clients + 100, 1000),
      max_sockets_per_user: 1000,
    },
  });
  const pid = herald.child.pid;
  const baseRss = rssKib(pid);
  let peakRss = baseRss;
  const sampler = setInterval(() => {
    const rss = rssKib(pid);
    if (rss !== undefined && rss > peakRss) peakRss = rss;
  }, 200);

  const perWorker = Math.ceil(clients / workers);
  const started = Date.now();
  const deadline = started + deadlineS * 1000;
  const children = [];
  const results = [];
  try {
    for (let w = 0; w < workers; w += 1) {
      const count = Math.min(perWorker, clients - w * perWorker);
      if (count <= 0) break;
      const child = fork(SELF, ["--worker"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      children.push(child);
      results.push(
        new Promise((resolve) => {
          let last = { connected: 0, refusedAttempts: 0, fatal: 0, timeouts: 0, lastConnectMs: 0 };
          child.on("message", (m) => {
            last = m;
            if (m.done) resolve(m);
          });
          child.on("exit", () => resolve({ ...last, exited: true }));
        }),
      );
      child.send({
        url: herald.url,
        path: herald.enginePath,
        count,
        deadline,
        started,
        // A quarter starts on long-polling (the default), the rest on WebSocket only: both
        // handshake requests meet the budget.
        pollingShare: 0.25,
        users: Array.from({ length: Math.min(count, 500) }, () => uid("storm-user")),
      });
    }
    const progress = setInterval(async () => {
      try {
        const m = await scrape(herald);
        log(`storm: ${Math.round((Date.now() - started) / 1000)} s, sessions ${m.sessions}, in flight ${m.inFlight}, ` +
          `503 overloaded ${m.overloaded}, admitted ${m.handshakesOk}, rss ${Math.round((rssKib(pid) ?? 0) / 1024)} MiB`);
      } catch {
        // herald busy: the next tick reports
      }
    }, 5000);
    const done = await Promise.all(results);
    clearInterval(progress);
    const metrics = await scrape(herald);
    const connected = done.reduce((n, r) => n + r.connected, 0);
    const figures = {
      clients,
      budget,
      workers: children.length,
      connected,
      allIn: connected === clients,
      fatal: done.reduce((n, r) => n + r.fatal, 0),
      clientRefusedAttempts: done.reduce((n, r) => n + r.refusedAttempts, 0),
      clientTimeouts: done.reduce((n, r) => n + r.timeouts, 0),
      allInAfterS: Math.max(...done.map((r) => r.lastConnectMs)) / 1000,
      serverOverloaded503: metrics.overloaded,
      serverFull503: metrics.full,
      sessionsAtEnd: metrics.sessions,
      handshakesInFlightAtEnd: metrics.inFlight,
      rssBaseMiB: Math.round(baseRss / 1024),
      rssPeakMiB: Math.round(peakRss / 1024),
      rssEndMiB: Math.round((rssKib(pid) ?? 0) / 1024),
    };
    return figures;
  } finally {
    clearInterval(sampler);
    for (const child of children) child.kill("SIGTERM");
    await herald.stop().catch(() => herald.kill());
  }
}

/** Worker: opens `count` sockets at once, reports progress and its final counts. */
async function worker({ url, path, count, deadline, started, pollingShare, users }) {
  const stats = { connected: 0, refusedAttempts: 0, fatal: 0, timeouts: 0, lastConnectMs: 0 };
  const sockets = [];
  for (let i = 0; i < count; i += 1) {
    const socket = io(`${url}/public`, {
      path,
      forceNew: true,
      auth: { token: mintToken({ sub: users[i % users.length] }) },
      transports: i < count * pollingShare ? ["polling", "websocket"] : ["websocket"],
      // socket.io-client's defaults, spelled out: retried forever with a randomized backoff.
      reconnection: true,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 5000,
      randomizationFactor: 0.5,
    });
    socket.once("connect", () => {
      stats.connected += 1;
      stats.lastConnectMs = Math.max(stats.lastConnectMs, Date.now() - started);
    });
    socket.on("connect_error", (err) => {
      if (err.message === "timeout") stats.timeouts += 1;
      else if (err.type === "TransportError" || /poll error|websocket error/.test(err.message)) stats.refusedAttempts += 1;
      // A refusal by the namespace (unauthorized, ...) is final for socket.io-client.
      else stats.fatal += 1;
    });
    sockets.push(socket);
  }
  while (stats.connected + stats.fatal < count && Date.now() < deadline) {
    process.send({ ...stats });
    await delay(500); // progress report period; the loop is bounded by the deadline
  }
  process.send({ ...stats, done: true });
  await delay(60000); // the parent ends this process (SIGTERM) once everyone reported
}

function parseArgs(argv) {
  const opts = argv.includes("--smoke") ? { ...SMOKE } : { ...FULL };
  const num = (name, key) => {
    const i = argv.indexOf(name);
    if (i >= 0) opts[key] = Number(argv[i + 1]);
  };
  num("--clients", "clients");
  num("--budget", "budget");
  num("--workers", "workers");
  num("--deadline-s", "deadlineS");
  return opts;
}

if (process.argv[1] === SELF) {
  if (process.argv.includes("--worker")) {
    process.once("message", (m) => worker(m).then(() => process.exit(0)));
  } else {
    const figures = await storm({ ...parseArgs(process.argv), log: (l) => console.error(l) });
    console.log(JSON.stringify(figures, null, 2));
    process.exit(figures.allIn && figures.fatal === 0 ? 0 : 1);
  }
}
