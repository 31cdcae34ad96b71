// `herald doctor <URL>`: the real binary checks a real herald, directly, through a real nginx
// (the shipped config, and a broken copy without the WebSocket headers) and over TLS (nginx
// with `ssl` and a certificate from a CA the test makes with the openssl CLI). Each test asserts
// the exit code and which step passed or failed, with the words that explain it.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { once as onceEvent } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { JWT_SECRET, freePort, heraldBin, mintToken, startHerald, uid } from "./harness.mjs";
import { startNginx } from "./nginx.mjs";

/** Bound of one doctor run (it bounds each of its steps by --timeout itself). */
const DOCTOR_MS = 60000;

/** The environment for doctor: ours without HERALD_* (they would configure it), plus `env`. */
function doctorEnv(env) {
  const out = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("HERALD_")) out[k] = v;
  return { ...out, ...env };
}

/**
 * Runs `herald doctor <args>` and returns {code, stdout, stderr, report} (`report`: the parsed
 * --json output when --json was given).
 */
async function doctor(args, { env = {} } = {}) {
  const child = spawn(heraldBin(), ["doctor", "--timeout", "10s", ...args], {
    env: doctorEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
  let timer;
  const outcome = await Promise.race([
    // "close", not "exit": stdout is read to its end.
    onceEvent(child, "close").then(([code]) => ({ code })),
    new Promise((res) => (timer = setTimeout(() => res({ timeout: true }), DOCTOR_MS))),
  ]);
  clearTimeout(timer);
  if (outcome.timeout) {
    child.kill("SIGKILL");
    throw new Error(`herald doctor ${args.join(" ")} did not exit within ${DOCTOR_MS} ms\n${stdout}${stderr}`);
  }
  let report;
  if (args.includes("--json")) {
    try {
      report = JSON.parse(stdout);
    } catch (err) {
      throw new Error(`herald doctor --json printed no JSON (${err.message}):\n${stdout}\n${stderr}`);
    }
  }
  return { code: outcome.code, stdout, stderr, report };
}

/** "url:pass dns:pass ..." of a --json report, for readable assertions. */
const trail = (report) => report.steps.map((s) => `${s.step}:${s.status}`).join(" ");

/** Asserts a --json run failed (exit 1) at `step`, with `pattern` in what it says. */
function assertFailedAt(run, step, pattern) {
  const why = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.code, 1, `doctor should exit 1:\n${why}`);
  assert.equal(run.report.ok, false, why);
  const last = run.report.steps.at(-1);
  assert.equal(`${last.step}:${last.status}`, `${step}:fail`, `steps: ${trail(run.report)}\n${why}`);
  assert.match(`${last.detail}\n${last.hint}`, pattern, why);
  assert.match(run.report.verdict, new RegExp(`^FAIL at step ${step}: `));
  return last;
}

/** Asserts a --json run passed every step (exit 0), with `expected` as its trail. */
function assertAllPassed(run, expected) {
  const why = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.code, 0, `doctor should exit 0:\n${why}`);
  assert.equal(run.report.ok, true, why);
  assert.equal(trail(run.report), expected, why);
  assert.match(run.report.verdict, /^OK: /);
}

const ALL_PLAIN = "url:pass dns:pass tcp:pass tls:skip polling:pass websocket:pass connect:pass register:pass";

describe("herald doctor against herald directly", () => {
  let herald;
  before(async () => {
    herald = await startHerald("doctor");
  });
  after(async () => {
    await herald?.stop();
  });

  test("a healthy herald: every step passes, exit 0, the token never printed", async () => {
    const ws = uid("ws");
    const token = mintToken({ sub: uid("alice"), workspaces: [ws] });
    const run = await doctor([herald.url, "--token", token, "--workspace", ws, "--json"]);
    assertAllPassed(run, ALL_PLAIN);
    assert.ok(!run.stdout.includes(token) && !run.stderr.includes(token), "the token was printed");

    // The text form: one line per step with its mark, then the verdict.
    const text = await doctor([herald.url, "--workspace", ws], { env: { HERALD_DOCTOR_TOKEN: token } });
    assert.equal(text.code, 0, text.stdout + text.stderr);
    for (const step of ["url", "dns", "tcp", "polling", "websocket", "connect", "register"]) {
      assert.match(text.stdout, new RegExp(`^PASS  ${step} `, "m"), text.stdout);
    }
    assert.match(text.stdout, /^SKIP  tls /m);
    assert.match(text.stdout, /^verdict: OK: /m);
    assert.ok(!text.stdout.includes(token), "the token was printed");
  });

  test("--token-file, and no token at all (transport checked, authentication skipped, exit 0)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-doctor-"));
    try {
      const file = join(dir, "token");
      writeFileSync(file, `${mintToken({ sub: uid("bob") })}\n`);
      const withFile = await doctor([herald.url, "--token-file", file, "--json"]);
      assertAllPassed(withFile, ALL_PLAIN.replace("register:pass", "register:skip"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const none = await doctor([herald.url, "--json"]);
    assertAllPassed(none, "url:pass dns:pass tcp:pass tls:skip polling:pass websocket:pass connect:skip");
    assert.match(none.report.verdict, /authentication not checked/);
  });

  test("a wrong engine path: the polling step fails with 404 and names the path", async () => {
    const run = await doctor([`${herald.url}/push`, "--json"]);
    assertFailedAt(run, "polling", /404[\s\S]*wrong engine path \/push/);
    const flag = await doctor([herald.url, "--path", "/sockets", "--json"]);
    assertFailedAt(flag, "polling", /wrong engine path \/sockets[\s\S]*Open-Xchange uses \/socket\.io\/appsuite/);
  });

  test("a closed port: the tcp step fails with connection refused", async () => {
    const port = await freePort();
    const run = await doctor([`http://127.0.0.1:${port}`, "--json"]);
    assertFailedAt(run, "tcp", new RegExp(`connection refused by 127\\.0\\.0\\.1:${port}`));
  });

  test("an unresolvable host: the dns step fails", async () => {
    const run = await doctor(["http://no-such-host.invalid:8090", "--json"]);
    assertFailedAt(run, "dns", /cannot resolve no-such-host\.invalid/);
  });

  test("https:// to herald's plain HTTP port: the tls step says it does not speak TLS", async () => {
    const run = await doctor([`https://127.0.0.1:${herald.port}`, "--json"]);
    assertFailedAt(run, "tls", /does not speak TLS on port/);
  });

  test("an expired token: the connect step fails, saying it expired", async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = mintToken({ sub: uid("carol"), exp: now - 600 });
    const run = await doctor([herald.url, "--token", token, "--json"]);
    assertFailedAt(run, "connect", /refused: "unauthorized": the token expired 10m/);
  });

  test("a token signed with another secret: refused; named 'bad signature' when doctor has the server's secret", async () => {
    const token = mintToken({ sub: uid("dave"), secret: "not-the-server-secret" });
    const blind = await doctor([herald.url, "--token", token, "--json"]);
    assertFailedAt(blind, "connect", /"unauthorized"[\s\S]*signature[\s\S]*auth\.jwt\.secret/);
    const informed = await doctor([herald.url, "--token", token, "--json"], {
      env: { HERALD_AUTH__JWT__SECRET: JWT_SECRET },
    });
    assertFailedAt(informed, "connect", /the token fails: bad signature/);
    assert.ok(!informed.stdout.includes(JWT_SECRET), "the secret was printed");
  });

  test("a workspace the token does not list: the register step fails with forbidden", async () => {
    const token = mintToken({ sub: uid("erin"), workspaces: [uid("ws")] });
    const run = await doctor([herald.url, "--token", token, "--workspace", uid("other"), "--json"]);
    assertFailedAt(run, "register", /refused: forbidden[\s\S]*`workspaces` claim \(1 listed\) does not list/);
  });

  test("--cells on a herald without the Cells door: cells_upgrade fails with 404, naming [cells] enabled", async () => {
    const run = await doctor([herald.url, "--cells", "--json"]);
    assertFailedAt(run, "cells_upgrade", /GET \/ws\/event \(Upgrade: websocket\) answered 404[\s\S]*`\[cells\] enabled = true`/);
    assert.equal(trail(run.report), `${CELLS_SKIPPED} cells_upgrade:fail`);
  });

  test("a namespace herald does not serve: the connect step names public.path", async () => {
    const token = mintToken({ sub: uid("frank") });
    const run = await doctor([herald.url, "--token", token, "--namespace", "/browsers", "--json"]);
    assertFailedAt(run, "connect", /Invalid namespace[\s\S]*public\.path/);
  });
});

/** The steps before the Cells door's in a --cells run over plain HTTP. */
const CELLS_SKIPPED = "url:pass dns:pass tcp:pass tls:skip polling:skip websocket:skip connect:skip register:skip";

describe("herald doctor --cells against herald with [cells] enabled", () => {
  const PAGE = "https://cells.example.com";
  let herald;
  before(async () => {
    herald = await startHerald("doctor-cells", { cells: {}, allowedOrigins: [PAGE] });
  });
  after(async () => {
    await herald?.stop();
  });

  test("a valid token: both Cells steps pass, exit 0, the token never printed", async () => {
    const token = mintToken({ sub: uid("alice") });
    const run = await doctor([herald.url, "--cells", "--token", token, "--origin", PAGE, "--json"]);
    assertAllPassed(run, `${CELLS_SKIPPED} cells_upgrade:pass cells_subscribe:pass`);
    const [upgrade, subscribe] = run.report.steps.slice(-2);
    assert.match(upgrade.detail, /GET \/ws\/event \(Upgrade: websocket\): 101 Switching Protocols/);
    assert.match(subscribe.detail, /no refusal within 2 s: subscribed/);
    assert.match(run.report.verdict, /subscribe with the token/);
    assert.ok(!run.stdout.includes(token) && !run.stderr.includes(token), "the token was printed");

    // The text form, the path given to --cells, and without a token the subscribe is skipped.
    const text = await doctor([herald.url, "--cells", "/ws/event"]);
    assert.equal(text.code, 0, text.stdout + text.stderr);
    assert.match(text.stdout, /^PASS  cells_upgrade {4}GET \/ws\/event/m);
    assert.match(text.stdout, /^SKIP  cells_subscribe {2}no token given/m);
    assert.match(text.stdout, /^verdict: OK: .*subscribe not checked \(no token\)/m);
  });

  test("a token signed with another secret: cells_subscribe fails with unauthorized, named with the server's secret", async () => {
    const token = mintToken({ sub: uid("bob"), secret: "not-the-server-secret" });
    const blind = await doctor([herald.url, "--cells", "--token", token, "--json"]);
    assertFailedAt(blind, "cells_subscribe", /refused: "unauthorized"[\s\S]*signature/);
    assert.equal(trail(blind.report), `${CELLS_SKIPPED} cells_upgrade:pass cells_subscribe:fail`);
    const informed = await doctor([herald.url, "--cells", "--token", token, "--json"], {
      env: { HERALD_AUTH__JWT__SECRET: JWT_SECRET },
    });
    assertFailedAt(informed, "cells_subscribe", /"unauthorized": with the JWT configuration here, the token fails: bad signature/);
  });

  test("an origin not in allowed_origins: cells_upgrade fails with 403, origin explained", async () => {
    const run = await doctor([herald.url, "--cells", "--origin", "https://evil.example.com", "--json"]);
    assertFailedAt(run, "cells_upgrade", /403[\s\S]*herald refused the origin[\s\S]*https:\/\/evil\.example\.com\) to herald's allowed_origins/);
  });

  test("a URL naming another path than the door's, and --cells with a Socket.IO flag, are refused", async () => {
    const run = await doctor([`${herald.url}/events`, "--cells", "--json"]);
    assertFailedAt(run, "url", /not the Cells door's path \/ws\/event[\s\S]*--cells \/events/);
    const both = await doctor([herald.url, "--cells", "--workspace", "w"]);
    assert.equal(both.code, 2, both.stdout + both.stderr);
    assert.match(both.stderr, /cannot be used with/);
  });
});

describe("herald doctor with allowed_origins = [\"https://cells.example.com\"]", () => {
  let herald;
  before(async () => {
    herald = await startHerald("doctor-origins", { allowedOrigins: ["https://cells.example.com"] });
  });
  after(async () => {
    await herald?.stop();
  });

  test("--origin of another page: the polling step fails, origin refused; the listed origin passes", async () => {
    const refusedRun = await doctor([herald.url, "--origin", "https://evil.example.com", "--json"]);
    assertFailedAt(refusedRun, "polling", /403[\s\S]*refused the origin https:\/\/evil\.example\.com[\s\S]*allowed_origins/);
    const listed = await doctor([herald.url, "--origin", "https://cells.example.com", "--json"]);
    assertAllPassed(listed, "url:pass dns:pass tcp:pass tls:skip polling:pass websocket:pass connect:skip");
  });
});

describe("herald doctor through nginx", () => {
  let herald;
  before(async () => {
    herald = await startHerald("doctor-nginx", { trustedProxies: ["127.0.0.1"], cells: {} });
  });
  after(async () => {
    await herald?.stop();
  });

  test("the shipped deploy/nginx/herald.conf: every step passes, and so does --cells", async () => {
    const nginx = await startNginx("doctor-good", { upstreams: [`127.0.0.1:${herald.port}`] });
    try {
      const ws = uid("ws");
      const token = mintToken({ sub: uid("alice"), workspaces: [ws] });
      const run = await doctor([nginx.url, "--token", token, "--workspace", ws, "--json"]);
      assertAllPassed(run, ALL_PLAIN);
      const cells = await doctor([nginx.url, "--cells", "--token", token, "--json"]);
      assertAllPassed(cells, `${CELLS_SKIPPED} cells_upgrade:pass cells_subscribe:pass`);
    } finally {
      await nginx.stop();
    }
  });

  test("a config without the Upgrade/Connection headers: the websocket and cells_upgrade steps fail, the proxy named", async () => {
    const strip = (conf) => {
      const broken = conf
        .replace(/^\s*proxy_set_header Upgrade \$http_upgrade;\n/gm, "")
        .replace(/^\s*proxy_set_header Connection \$connection_upgrade;\n/gm, "");
      assert.doesNotMatch(broken, /Upgrade \$http_upgrade|\$connection_upgrade;/, "the headers were not removed");
      return broken;
    };
    const nginx = await startNginx("doctor-broken", { upstreams: [`127.0.0.1:${herald.port}`], transform: strip });
    try {
      const token = mintToken({ sub: uid("bob") });
      const run = await doctor([nginx.url, "--token", token, "--json"]);
      // nginx passes herald's 101 on, herald (which never saw an upgrade request) closes.
      const failed = assertFailedAt(run, "websocket", /answered 101, then closed before the Engine\.IO probe|instead of 101/);
      assert.match(
        failed.hint,
        /the WebSocket upgrade is stripped by a proxy: clients will be stuck on long-polling; add proxy_http_version 1\.1 and the Upgrade\/Connection headers \(see deploy\/nginx\/herald\.conf\)/,
      );
      // Long-polling itself works through this proxy: the step before passed.
      assert.equal(trail(run.report), "url:pass dns:pass tcp:pass tls:skip polling:pass websocket:fail");

      // The Cells door gets a plain request: herald answers 400, nginx passes it on.
      const cells = await doctor([nginx.url, "--cells", "--token", token, "--json"]);
      const refusedUpgrade = assertFailedAt(cells, "cells_upgrade", /answered 400[\s\S]*without its upgrade headers/);
      assert.match(
        refusedUpgrade.hint,
        /a proxy does not pass WebSocket upgrades on \/ws\/event to herald[\s\S]*location = \/ws\/event \{[\s\S]*proxy_set_header Upgrade \$http_upgrade/,
      );
    } finally {
      await nginx.stop();
    }
  });

  test("herald down behind nginx: the polling step fails with 502, upstream down", async () => {
    const nowhere = await freePort();
    const nginx = await startNginxWithoutHealth(`127.0.0.1:${nowhere}`);
    try {
      const run = await doctor([nginx.url, "--json"]);
      assertFailedAt(run, "polling", /502[\s\S]*could not reach herald/);
    } finally {
      await nginx.stop();
    }
  });

  /** nginx in front of a dead upstream: startNginx waits for /health through herald, so the
   * health location is answered by nginx itself here. */
  async function startNginxWithoutHealth(upstream) {
    return startNginx("doctor-dead", {
      upstreams: [upstream],
      transform: (conf) => conf.replace(
        /location = \/health \{[\s\S]*?\n {4}\}/,
        'location = /health { return 200 "ok"; }',
      ),
    });
  }
});

describe("herald doctor over TLS (nginx with ssl, a CA made by the test)", () => {
  const run = promisify(execFile);
  let herald;
  let nginx;
  let dir;
  let tlsPort;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "herald-doctor-tls-"));
    const f = (name) => join(dir, name);
    const openssl = (args) => run("openssl", args, { timeout: 30000 });
    // A private CA, and a certificate for "localhost" only (no IP address) signed by it.
    await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f("ca.key"), "-out", f("ca.pem"),
      "-days", "2", "-subj", "/CN=herald doctor test CA"]);
    await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", f("server.key"), "-out", f("server.csr"),
      "-subj", "/CN=localhost"]);
    writeFileSync(f("ext.cnf"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n");
    await openssl(["x509", "-req", "-in", f("server.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
      "-CAcreateserial", "-out", f("server.pem"), "-days", "2", "-extfile", f("ext.cnf")]);

    // The same certificate, expired yesterday.
    await openssl(["x509", "-req", "-in", f("server.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
      "-CAcreateserial", "-out", f("expired.pem"), "-days", "-1", "-extfile", f("ext.cnf")]);

    herald = await startHerald("doctor-tls", { trustedProxies: ["127.0.0.1"] });
    ({ nginx, tlsPort } = await startTlsNginx("doctor-tls", f("server.pem")));
  });

  /** nginx in front of herald with a second, TLS listener (beside the plain one startNginx
   * checks /health on) serving `cert`. */
  async function startTlsNginx(label, cert) {
    const port = await freePort();
    const started = await startNginx(label, {
      upstreams: [`127.0.0.1:${herald.port}`],
      transform: (conf) => conf.replace(
        /^(\s*)listen (127\.0\.0\.1:\d+);$/m,
        `$1listen $2;\n$1listen 127.0.0.1:${port} ssl;\n` +
          `$1ssl_certificate ${cert};\n$1ssl_certificate_key ${join(dir, "server.key")};`,
      ),
    });
    return { nginx: started, tlsPort: port };
  }

  after(async () => {
    await nginx?.stop();
    await herald?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("a certificate from an unknown CA: the tls step fails, not trusted, suggests --ca", async () => {
    const res = await doctor([`https://localhost:${tlsPort}`, "--json"]);
    assertFailedAt(res, "tls", /not trusted[\s\S]*--ca FILE/);
  });

  test("with --ca: every step passes over https and wss", async () => {
    const ws = uid("ws");
    const token = mintToken({ sub: uid("alice"), workspaces: [ws] });
    for (const scheme of ["https", "wss"]) {
      const res = await doctor([`${scheme}://localhost:${tlsPort}`, "--ca", join(dir, "ca.pem"),
        "--token", token, "--workspace", ws, "--json"]);
      assertAllPassed(res, ALL_PLAIN.replace("tls:skip", "tls:pass"));
      assert.match(res.report.steps[3].detail, /TLSv1\.[23] .*trusted by the public roots or the --ca file/);
    }
  });

  test("a name the certificate does not cover: the tls step fails, wrong name", async () => {
    const res = await doctor([`https://127.0.0.1:${tlsPort}`, "--ca", join(dir, "ca.pem"), "--json"]);
    assertFailedAt(res, "tls", /not valid for the name 127\.0\.0\.1 \(wrong name\)/);
  });

  test("an expired certificate: the tls step fails, expired", async () => {
    const expired = await startTlsNginx("doctor-tls-expired", join(dir, "expired.pem"));
    try {
      const res = await doctor([`https://localhost:${expired.tlsPort}`, "--ca", join(dir, "ca.pem"), "--json"]);
      assertFailedAt(res, "tls", /certificate of localhost has expired[\s\S]*renew/);
    } finally {
      await expired.nginx.stop();
    }
  });
});
