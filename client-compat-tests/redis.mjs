// A redis-server of a test's own: on a free loopback port, persisting nothing, killed by PID in
// the test's after hook. It can be killed and started again on the same port: a Redis outage.
// Also a Redis Cluster of the test's own (startRedisCluster: masters only, each in a temp dir of
// its own, so a killed node started again rejoins from its nodes.conf), and `emit`, which
// publishes with the real npm @socket.io/redis-emitter (js-fixtures/emit.mjs) to either.

import { execFile, spawn } from "node:child_process";
import { once as onceEvent } from "node:events";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import assert from "node:assert/strict";

import { ack, freePort, record, until } from "./harness.mjs";

const execFileAsync = promisify(execFile);

const EMIT = fileURLToPath(new URL("../js-fixtures/emit.mjs", import.meta.url));

/** How long `redis-cli --cluster create` may take, and then the cluster to report itself ok. */
const CREATE_MS = 30_000;
const HEALTHY_MS = 20_000;

/** The redis-server binary (REDIS_SERVER_BIN overrides). */
export function redisServerBin() {
  return process.env.REDIS_SERVER_BIN || "redis-server";
}

/** The redis-cli binary (REDIS_CLI_BIN overrides). */
export function redisCliBin() {
  return process.env.REDIS_CLI_BIN || "redis-cli";
}

/**
 * Runs js-fixtures/emit.mjs (the real npm @socket.io/redis-emitter) against `redisUrl`, in the
 * /public namespace; `args` are emit.mjs's other options (with "--cluster", `redisUrl` is a
 * comma-separated list of Redis Cluster seeds). Resolves with what it printed.
 */
export async function emit(redisUrl, args) {
  const { stdout } = await execFileAsync(process.execPath, [EMIT, "--redis", redisUrl, "--nsp", "/public", ...args], {
    timeout: 10_000,
  });
  return stdout;
}

/**
 * Emits `emitted` to `workspace:<ws>` with the npm redis-emitter (`emitArgs`: `["--cluster"]` on a
 * Redis Cluster) until `socket` receives one, for at most 10 s: after an outage the node taking
 * the emitter's publishes in subscribes again by itself.
 */
export async function emitUntilDelivered(redisUrl, emitArgs, socket, ws, what) {
  const emitted = record(socket, "emitted");
  await until(
    async () => {
      await emit(redisUrl, [...emitArgs, "--to", `workspace:${ws}`, "--event", "emitted", "--json", '"after"']);
      await delay(200); // poll interval: an emit's delivery, if one was taken in
      return emitted.events.length > 0;
    },
    10_000,
    what,
  );
}

/**
 * While the Redis herald's keys live on is away: a publish that needs it is refused at once with
 * 503 `unavailable` over HTTP and an `unavailable` ack on /private, every node is alive but not
 * ready, and `browser` stays connected.
 */
export async function assertCleanOutage(nodes, backend, browser, ws) {
  const started = Date.now();
  const refused = await nodes[0].publishHttp({ event: "news", workspace: ws, data: "during" });
  assert.equal(refused.status, 503, refused.text);
  assert.equal(refused.json?.code, "unavailable", refused.text);
  assert.ok(Date.now() - started < 5000, `the refusal took ${Date.now() - started} ms`);
  const reply = await ack(backend, "publish", [{ event: "news", workspace: ws, data: "during" }]);
  assert.deepEqual([reply.ok, reply.error], [false, "unavailable"], JSON.stringify(reply));
  for (const node of nodes) {
    assert.equal(node.exited, null, `${node.label} exited during the outage`);
    assert.equal((await node.http("GET", "/health")).status, 200, `${node.label} died`);
    assert.equal((await node.http("GET", "/ready")).status, 503, `${node.label} ready while Redis is away`);
  }
  assert.ok(browser.connected, "the browser was dropped during the outage");
}

/**
 * Runs redis-cli against the server on `port` and resolves with its output. A reply that is an
 * error is output too (redis-cli exits 0); no answer at all rejects.
 */
export async function redisCli(port, ...args) {
  const { stdout } = await execFileAsync(redisCliBin(), ["-h", "127.0.0.1", "-p", String(port), ...args], {
    timeout: 5000,
  });
  return stdout;
}

/** Resolves whether something accepts TCP connections on the port. */
function accepting(port) {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.connect(port, "127.0.0.1");
  });
}

/** Resolves whether the port can be bound on 127.0.0.1 right now. */
function bindable(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * The deployments cluster mode runs on, for test files that run against each: a single
 * redis-server (`redis_mode` left at its default) and a three-master Redis Cluster. Each
 * `start()` resolves with something that has a `url` for herald and a `stop()`; `emitArgs` go to
 * `emit` (the emitter's client connects to a cluster with `--cluster`).
 */
export const REDIS_KINDS = [
  { name: "one Redis", mode: undefined, emitArgs: [], start: () => startRedis() },
  { name: "a Redis Cluster", mode: "cluster", emitArgs: ["--cluster"], start: () => startRedisCluster() },
];

/** Starts a redis-server on a free port. */
export async function startRedis() {
  const redis = new RedisServer(await freePort());
  await redis.start();
  return redis;
}

export class RedisServer {
  /**
   * `args` go to redis-server after the usual ones (port, loopback, no persistence); `url`
   * replaces `redis://127.0.0.1:<port>/0`.
   */
  constructor(port, { args = [], url = `redis://127.0.0.1:${port}/0` } = {}) {
    this.port = port;
    this.url = url;
    this.args = args;
    this.child = undefined;
  }

  /** Whether the server was started and has not exited since. */
  get running() {
    const child = this.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  async start() {
    const child = spawn(
      redisServerBin(),
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...this.args],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    // redis-server logs to stdout (why it could not bind, say) and to stderr (a bad argument):
    // both are kept for the error below, and neither pipe may fill up.
    let output = "";
    const keep = (chunk) => (output = (output + chunk).slice(-4000));
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    let exited = false;
    child.once("exit", () => (exited = true));
    child.once("error", (error) => {
      exited = true;
      output += String(error);
    });
    this.child = child;
    let up = false;
    const deadline = Date.now() + 5000;
    while (!up && !exited && Date.now() < deadline) {
      up = await accepting(this.port);
      if (!up) await delay(20); // poll interval of a poll bounded by the deadline
    }
    if (!up) {
      throw new Error(`redis-server on port ${this.port} did not start: ${output.slice(-1000) || "(no output)"}`);
    }
  }

  /** Kills the server (an outage, not a clean shutdown) and waits for its exit. */
  async stop() {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = onceEvent(child, "exit");
    child.kill("SIGKILL");
    await exited;
  }
}

/** Fails with a message saying what to install when `bin --version` cannot be run. */
async function requireBin(bin, variable) {
  try {
    await execFileAsync(bin, ["--version"], { timeout: 5000 });
  } catch (err) {
    const why = err.code === "ENOENT" ? "not found" : err.message;
    throw new Error(
      `${bin} cannot be run (${why}): a Redis Cluster needs redis-server and redis-cli ` +
        `(Debian's redis-server package brings both), or ${variable} pointing at one`,
    );
  }
}

/**
 * `count` distinct free ports whose cluster bus port (port + 10000, at most 65535) is free too,
 * and none of them another's bus port.
 */
async function clusterPorts(count) {
  const ports = [];
  for (let attempt = 1; ports.length < count; attempt += 1) {
    if (attempt > 500) {
      throw new Error(`found only ${ports.length} of ${count} free ports whose port + 10000 is free too`);
    }
    const port = await freePort();
    const bus = port + 10000;
    if (bus > 65535) continue;
    if (ports.some((p) => p === port || p + 10000 === port || p === bus)) continue;
    if (await bindable(bus)) ports.push(port);
  }
  return ports;
}

/** redis-cli's output without the colours it prints even into a pipe. */
const plain = (text) => String(text ?? "").replace(/\x1b\[[0-9;]*m/g, "");

/** The value of `cluster_state` in a CLUSTER INFO reply, or what came instead. */
function clusterState(info) {
  return /^cluster_state:(\w+)/m.exec(info)?.[1] ?? JSON.stringify(info.trim().slice(0, 200));
}

/**
 * Starts a Redis Cluster of `masters` masters (at least 3, no replicas) on free loopback ports,
 * created with `redis-cli --cluster create`, and waits until every node reports cluster_state:ok.
 * Returns a RedisCluster; call `stop()` in an after hook.
 */
export async function startRedisCluster({ masters = 3 } = {}) {
  if (masters < 3) throw new Error(`a Redis Cluster needs at least 3 masters, not ${masters}`);
  await requireBin(redisServerBin(), "REDIS_SERVER_BIN");
  await requireBin(redisCliBin(), "REDIS_CLI_BIN");
  const cluster = new RedisCluster(mkdtempSync(join(tmpdir(), "herald-redis-cluster-")));
  try {
    for (const port of await clusterPorts(masters)) {
      const dir = join(cluster.dir, String(port));
      mkdirSync(dir);
      const args = ["--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`];
      args.push("--cluster-node-timeout", "2000", "--dir", dir);
      cluster.nodes.push(new RedisServer(port, { args, url: `redis://127.0.0.1:${port}` }));
    }
    await Promise.all(cluster.nodes.map((node) => node.start()));
    await cluster.create();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

export class RedisCluster {
  constructor(dir) {
    this.dir = dir;
    /** RedisServer handles: `stop()` is an outage of that node, `start()` its return. */
    this.nodes = [];
    this.createOutput = "";
  }

  /** Seed URLs, one per node. */
  get urls() {
    return this.nodes.map((node) => node.url);
  }

  /** The seeds as herald's `redis_url` takes them in cluster mode: comma-separated. */
  get url() {
    return this.urls.join(",");
  }

  /** Joins the started nodes into one cluster, the slots shared out among them. */
  async create() {
    const addresses = this.nodes.map((node) => `127.0.0.1:${node.port}`);
    const args = ["--cluster", "create", ...addresses, "--cluster-replicas", "0", "--cluster-yes"];
    try {
      const { stdout, stderr } = await execFileAsync(redisCliBin(), args, { timeout: CREATE_MS });
      this.createOutput = plain(stdout + stderr);
    } catch (err) {
      const why = err.killed ? `did not finish within ${CREATE_MS} ms` : `failed (exit code ${err.code})`;
      throw new Error(`redis-cli ${args.join(" ")} ${why}:\n${plain(err.stdout)}${plain(err.stderr)}`);
    }
    try {
      await this.waitHealthy(HEALTHY_MS);
    } catch (err) {
      throw new Error(`${err.message}\n--- redis-cli --cluster create said ---\n${this.createOutput}`);
    }
  }

  /** Polls CLUSTER INFO on every running node until each reports cluster_state:ok. */
  async waitHealthy(ms = HEALTHY_MS) {
    const deadline = Date.now() + ms;
    for (;;) {
      const running = this.nodes.filter((node) => node.running);
      if (running.length === 0) throw new Error("no node of the Redis Cluster is running");
      const states = await Promise.all(
        running.map(async (node) => {
          try {
            return [node.port, clusterState(await redisCli(node.port, "CLUSTER", "INFO"))];
          } catch (err) {
            return [node.port, `no answer (${err.message.split("\n")[0]})`];
          }
        }),
      );
      if (states.every(([, state]) => state === "ok")) return;
      if (Date.now() >= deadline) {
        const seen = states.map(([port, state]) => `${port}: ${state}`).join(", ");
        throw new Error(`timed out after ${ms} ms waiting for cluster_state:ok on every running node (${seen})`);
      }
      await delay(100); // poll interval of a bounded poll
    }
  }

  /** The port of the master serving the hash slot of `key`, as a running node sees it. */
  async slotOwner(key) {
    const node = this.nodes.find((n) => n.running);
    if (!node) throw new Error("no node of the Redis Cluster is running");
    const slot = Number((await redisCli(node.port, "CLUSTER", "KEYSLOT", key)).trim());
    if (!Number.isInteger(slot)) throw new Error(`CLUSTER KEYSLOT ${JSON.stringify(key)} gave no slot`);
    const table = await redisCli(node.port, "CLUSTER", "NODES");
    for (const line of table.split("\n")) {
      // <id> <ip:port@bus-port> <flags> <master> <ping> <pong> <epoch> <link> <slot or from-to>...
      const [, address, flags, , , , , , ...slots] = line.trim().split(" ");
      if (!flags?.split(",").includes("master")) continue;
      for (const range of slots) {
        if (range.startsWith("[")) continue; // a slot being migrated or imported
        const [from, to = from] = range.split("-").map(Number);
        if (slot >= from && slot <= to) return Number(/:(\d+)@/.exec(address)[1]);
      }
    }
    throw new Error(`no master serves slot ${slot} (of ${JSON.stringify(key)}); CLUSTER NODES:\n${table}`);
  }

  /** Kills every node and removes their directories. */
  async stop() {
    await Promise.all(this.nodes.map((node) => node.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
