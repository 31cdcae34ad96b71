// A redis-server of a test's own: on a free loopback port, persisting nothing, killed by PID in
// the test's after hook. It can be killed and started again on the same port: a Redis outage.

import { spawn } from "node:child_process";
import { once as onceEvent } from "node:events";
import { Socket } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

import { freePort } from "./harness.mjs";

/** The redis-server binary (REDIS_SERVER_BIN overrides). */
export function redisServerBin() {
  return process.env.REDIS_SERVER_BIN || "redis-server";
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

/** Starts a redis-server on a free port. */
export async function startRedis() {
  const redis = new RedisServer(await freePort());
  await redis.start();
  return redis;
}

export class RedisServer {
  constructor(port) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}/0`;
    this.child = undefined;
  }

  async start() {
    const child = spawn(
      redisServerBin(),
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    let exited = false;
    child.once("exit", () => (exited = true));
    child.once("error", (error) => {
      exited = true;
      stderr += String(error);
    });
    this.child = child;
    let up = false;
    const deadline = Date.now() + 5000;
    while (!up && !exited && Date.now() < deadline) {
      up = await accepting(this.port);
      if (!up) await delay(20); // poll interval of a poll bounded by the deadline
    }
    if (!up) {
      throw new Error(`redis-server on port ${this.port} did not start: ${stderr.slice(0, 500) || "(no output)"}`);
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
