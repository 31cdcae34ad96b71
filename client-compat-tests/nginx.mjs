// A real nginx (Debian's /usr/sbin/nginx) in front of herald, running the shipped
// deploy/nginx/herald.conf. The test's copy differs from the shipped file only in the upstream
// servers and the listen address; nginx runs in the foreground on a free loopback port and writes
// only in its own temp dir. Missing nginx is a failure, never a skip.

import { spawn } from "node:child_process";
import { once as onceEvent } from "node:events";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";

import { freePort } from "./harness.mjs";

const SUITE_DIR = dirname(fileURLToPath(import.meta.url));
/** The shipped config this suite tests. */
export const SHIPPED_CONF = resolve(SUITE_DIR, "..", "deploy", "nginx", "herald.conf");

const STARTUP_MS = 10000;
const STOP_MS = 10000;
const BIND_TRIES = 3;

/** Path of nginx: $NGINX_BIN, else Debian's /usr/sbin/nginx. Throws a clear error when missing. */
export function nginxBin() {
  const bin = process.env.NGINX_BIN ? resolve(process.env.NGINX_BIN) : "/usr/sbin/nginx";
  if (!existsSync(bin)) {
    throw new Error(
      `nginx not found at ${bin}: install the Debian package (apt-get install nginx; ` +
        `scripts/install-deps.sh does it), or point NGINX_BIN at an nginx binary. The nginx tests fail rather than skip.`,
    );
  }
  return bin;
}

/** The shipped config's text. */
export function shippedConfig() {
  return readFileSync(SHIPPED_CONF, "utf8");
}

/**
 * The shipped config with its upstream servers replaced by `upstreams` ("host:port") and its
 * `listen 80;` by `listen <listen>;`. Throws when the shipped file no longer has the shape this
 * substitution expects, so a changed file is noticed instead of silently tested half-rewritten.
 */
export function renderNginxConfig(shipped, { upstreams, listen }) {
  const block = /^upstream herald \{\n([\s\S]*?)^\}/m.exec(shipped);
  if (!block) throw new Error(`${SHIPPED_CONF}: no "upstream herald { ... }" block at the start of a line`);
  const servers = block[1].match(/^\s*server\s+[^;]+;\s*$/gm) ?? [];
  if (servers.length === 0) throw new Error(`${SHIPPED_CONF}: the upstream block has no server line`);
  let first = true;
  const body = block[1].replace(/^(\s*)server\s+[^;]+;[ \t]*\n/gm, (_line, indent) => {
    if (!first) return "";
    first = false;
    return upstreams.map((u) => `${indent}server ${u};\n`).join("");
  });
  let conf = shipped.slice(0, block.index) + `upstream herald {\n${body}}` +
    shipped.slice(block.index + block[0].length);

  const listens = conf.match(/^\s*listen\s+[^;]+;/gm) ?? [];
  if (listens.length !== 1 || !/^\s*listen\s+80;$/.test(listens[0])) {
    throw new Error(`${SHIPPED_CONF}: expected exactly one "listen 80;", found ${JSON.stringify(listens)}`);
  }
  conf = conf.replace(/^(\s*)listen\s+80;/m, `$1listen ${listen};`);
  return conf;
}

/**
 * Starts nginx with the shipped config in front of `upstreams` (["127.0.0.1:<port>", ...]) and
 * waits until it answers GET /health through herald. `transform(conf)` may alter the rendered
 * config (for deliberately broken variants). Call `stop()` in an after hook.
 */
export async function startNginx(label, { upstreams, transform = (c) => c } = {}) {
  const bin = nginxBin();
  let lastError;
  for (let attempt = 1; attempt <= BIND_TRIES; attempt += 1) {
    const port = await freePort();
    const nginx = new Nginx(label, bin, port, transform(renderNginxConfig(shippedConfig(), {
      upstreams,
      listen: `127.0.0.1:${port}`,
    })));
    try {
      await nginx.start();
      return nginx;
    } catch (err) {
      lastError = err;
      // Another process took the port between freePort() and nginx's bind: try another one.
      if (!/Address already in use/.test(err.message)) throw err;
    }
  }
  throw lastError;
}

export class Nginx {
  constructor(label, bin, port, siteConf) {
    this.label = label;
    this.bin = bin;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.dir = mkdtempSync(join(tmpdir(), "herald-nginx-"));
    // When the suite runs as root, nginx's workers run as an unprivileged user: they must be able
    // to enter the dir for their temp files. Nothing secret is written here.
    chmodSync(this.dir, 0o755);
    this.siteConf = siteConf;
    this.errorLog = join(this.dir, "error.log");
    this.stderrText = "";
    this.exited = null;
  }

  /** The main config: a bare http {} that includes the (rewritten) shipped file. */
  mainConf() {
    const d = this.dir;
    return [
      "worker_processes 1;",
      "events { worker_connections 256; }",
      "http {",
      `  access_log ${join(d, "access.log")};`,
      `  client_body_temp_path ${join(d, "client_body")};`,
      `  proxy_temp_path ${join(d, "proxy")};`,
      `  fastcgi_temp_path ${join(d, "fastcgi")};`,
      `  uwsgi_temp_path ${join(d, "uwsgi")};`,
      `  scgi_temp_path ${join(d, "scgi")};`,
      `  include ${join(d, "herald.conf")};`,
      "}",
      "",
    ].join("\n");
  }

  async start() {
    writeFileSync(join(this.dir, "herald.conf"), this.siteConf);
    writeFileSync(join(this.dir, "nginx.conf"), this.mainConf());
    const globals = `daemon off; pid ${join(this.dir, "nginx.pid")}; error_log ${this.errorLog} info;`;
    // Its own process group, so that the fallback kill reaches the workers too.
    const child = spawn(
      this.bin,
      ["-p", this.dir, "-c", join(this.dir, "nginx.conf"), "-e", this.errorLog, "-g", globals],
      { stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    this.child = child;
    this.exitPromise = onceEvent(child, "exit").then(([code, signal]) => {
      this.exited = { code, signal };
      return this.exited;
    });
    const spawnError = onceEvent(child, "error").then(([err]) => err);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (c) => (this.stderrText += c));
    child.stdout.resume();
    // Should node die without running the after hooks, do not leave nginx behind.
    this.onProcessExit = () => this.killGroup();
    process.on("exit", this.onProcessExit);

    const spawned = await Promise.race([
      onceEvent(child, "spawn").then(() => null),
      spawnError,
    ]);
    if (spawned) throw new Error(`nginx [${this.label}] could not be spawned: ${spawned.message}`);

    const deadline = Date.now() + STARTUP_MS;
    let last = "no answer yet";
    while (Date.now() < deadline && !this.exited) {
      try {
        const res = await this.request("GET", "/health");
        if (res.status === 200 && res.text === "ok") return;
        last = `HTTP ${res.status} ${JSON.stringify(res.text.slice(0, 200))}`;
      } catch (err) {
        last = err.message;
      }
      await delay(50); // poll interval of a bounded poll
    }
    const why = this.exited
      ? `exited at startup (code ${this.exited.code}, signal ${this.exited.signal})`
      : `did not answer GET /health with 200 "ok" through herald within ${STARTUP_MS} ms (last: ${last})`;
    const log = this.log();
    await this.stop();
    throw new Error(`nginx [${this.label}] on port ${this.port} ${why}\n--- nginx log ---\n${log}`);
  }

  /** nginx's stderr and error log (for failure messages). */
  log() {
    let text = this.stderrText;
    try {
      text += readFileSync(this.errorLog, "utf8");
    } catch {
      // not written yet
    }
    return text.split("\n").slice(-60).join("\n");
  }

  killGroup() {
    if (this.exited || !this.child) return;
    try {
      process.kill(-this.child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  /** SIGTERM (fast shutdown), awaited with a bound; SIGKILL to its process group after that. */
  async stop() {
    try {
      if (this.child && !this.exited) {
        this.child.kill("SIGTERM");
        let timer;
        const exited = await Promise.race([
          this.exitPromise.then(() => true),
          new Promise((res) => (timer = setTimeout(() => res(false), STOP_MS))),
        ]);
        clearTimeout(timer);
        if (!exited) {
          this.killGroup();
          await this.exitPromise;
          throw new Error(`nginx [${this.label}] did not exit within ${STOP_MS} ms of SIGTERM\n${this.log()}`);
        }
      }
    } finally {
      if (this.onProcessExit) process.off("exit", this.onProcessExit);
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /**
   * An HTTP request to nginx. `localAddress` picks the client's source address (any 127.x works
   * on Linux loopback), which nginx passes on in X-Forwarded-For.
   */
  request(method, path, { headers = {}, body, localAddress, ms = 5000 } = {}) {
    return requestUrl(this.url + path, { method, headers, body, localAddress, ms });
  }
}

/** A plain node:http request (fetch cannot choose its source address); bounded by `ms`. */
export function requestUrl(url, { method = "GET", headers = {}, body, localAddress, ms = 5000 } = {}) {
  return new Promise((resolvePromise, reject) => {
    const h = { ...headers };
    let payload = body;
    if (body !== undefined && typeof body !== "string") {
      payload = JSON.stringify(body);
      h["content-type"] ??= "application/json";
    }
    const req = httpRequest(url, { method, headers: h, localAddress, timeout: ms }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => {
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolvePromise({ status: res.statusCode, text, json, headers: res.headers });
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url}: no answer within ${ms} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}
