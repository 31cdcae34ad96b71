// A real browser for the suite: Debian's Chromium (/usr/bin/chromium) driven headless by
// playwright-core (which never downloads a browser of its own), and a small static HTTP server on
// loopback for the pages in ../js-fixtures/browser/ and the socket.io-client browser bundle.
// Missing Chromium is a failure, never a skip.

import { once as onceEvent } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const SUITE_DIR = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const PAGES_DIR = resolve(SUITE_DIR, "..", "js-fixtures", "browser");
/** socket.io-client's browser bundle, the same version as the Node client under test. */
const BUNDLE = join(dirname(require.resolve("socket.io-client/package.json")), "dist", "socket.io.min.js");

const STOP_MS = 10000;

/** Path of Chromium: $CHROMIUM_BIN, else Debian's /usr/bin/chromium. Throws a clear error when missing. */
export function chromiumBin() {
  const bin = process.env.CHROMIUM_BIN ? resolve(process.env.CHROMIUM_BIN) : "/usr/bin/chromium";
  if (!existsSync(bin)) {
    throw new Error(
      `Chromium not found at ${bin}: install the Debian package (apt-get install chromium; ` +
        `scripts/install-deps.sh does it), or point CHROMIUM_BIN at a Chromium binary. The browser ` +
        `tests fail rather than skip.`,
    );
  }
  return bin;
}

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8" };

/**
 * Serves GET /<page>.html from js-fixtures/browser/ and GET /socket.io.min.js (the bundle) on a
 * free 127.0.0.1 port; everything else is 404. `pages` adds generated pages, { "/name.html":
 * html }, looked up at each request (a test may add pages later). Resolves with { origin, close() }.
 */
export async function startStaticServer({ pages = {} } = {}) {
  if (!existsSync(BUNDLE)) throw new Error(`socket.io-client bundle not found at ${BUNDLE} (npm ci?)`);
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://localhost").pathname;
    if (req.method === "GET" && Object.hasOwn(pages, path)) {
      res.writeHead(200, { "content-type": TYPES[".html"], "cache-control": "no-store" });
      res.end(pages[path]);
      return;
    }
    let file;
    if (path === "/socket.io.min.js") file = BUNDLE;
    else if (/^\/[a-z0-9-]+\.html$/.test(path)) file = join(PAGES_DIR, path.slice(1));
    if (req.method !== "GET" || !file || !existsSync(file)) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const ext = file.slice(file.lastIndexOf("."));
    res.writeHead(200, { "content-type": TYPES[ext], "cache-control": "no-store" });
    res.end(readFileSync(file));
  });
  server.listen(0, "127.0.0.1");
  await onceEvent(server, "listening");
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await onceEvent(server, "close");
    },
  };
}

/**
 * Launches headless Chromium as a browser server (so its PID is known) and connects to it.
 * Resolves with { browser, pid, close() }; `close()` closes it, bounded, then kills the process.
 */
export async function launchChromium() {
  const executablePath = chromiumBin();
  const args = ["--disable-dev-shm-usage"];
  // Chromium refuses to run as root with its sandbox on (the suite runs as root in CI).
  if (process.getuid?.() === 0) args.push("--no-sandbox");
  const server = await chromium.launchServer({ executablePath, headless: true, args, timeout: 30000 });
  const pid = server.process().pid;
  let browser;
  try {
    browser = await chromium.connect(server.wsEndpoint(), { timeout: 10000 });
  } catch (err) {
    await server.kill();
    throw err;
  }
  return {
    browser,
    pid,
    close: async () => {
      let timer;
      const closed = await Promise.race([
        Promise.allSettled([browser.close(), server.close()]).then(() => true),
        new Promise((res) => (timer = setTimeout(() => res(false), STOP_MS))),
      ]);
      clearTimeout(timer);
      // Kills the browser process (by its PID) if closing did not end it.
      const child = server.process();
      if (!closed || (child.exitCode === null && child.signalCode === null)) await server.kill();
      if (!closed) throw new Error(`Chromium (pid ${pid}) did not close within ${STOP_MS} ms; killed`);
    },
  };
}
