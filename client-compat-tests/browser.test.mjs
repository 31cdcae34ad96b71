// A real browser end to end: js-fixtures/browser/index.html in headless Debian Chromium
// (playwright-core), with socket.io-client's browser bundle served by the test, connects through
// the shipped nginx config to herald (default transports: long-polling across origins, then the
// WebSocket upgrade), registers a workspace and shows each published event in the DOM.
// A screenshot is saved to artifacts/browser-through-nginx.png.
// The HTML status page is opened the same way (artifacts/status-page.png): it shows ON, the live
// connection counts, and a hostile workspace id as plain text.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { PRIVATE_KEY, WAIT_MS, mintToken, startHerald, uid } from "./harness.mjs";
import { startNginx } from "./nginx.mjs";
import { chromiumBin, launchChromium, startStaticServer } from "./browser.mjs";

const ARTIFACTS_DIR = join(dirname(fileURLToPath(import.meta.url)), "artifacts");

/** Waits for a condition on the page; fails naming it, with the page's status and console. */
async function pageWaits(page, logs, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS });
  } catch {
    const status = await page.textContent("#status").catch((e) => `(unreadable: ${e.message})`);
    throw new Error(
      `timed out after ${WAIT_MS} ms waiting for ${what}; the page says: ${JSON.stringify(status)}\n` +
        `--- browser console ---\n${logs.join("\n")}`,
    );
  }
}

const stateIs = (state) => document.getElementById("status").dataset.state === state;

describe("the browser", () => {
  // A missing Chromium fails here by name (the suite below then fails in its before hook).
  test("Chromium is installed (Debian package chromium, or CHROMIUM_BIN)", () => {
    chromiumBin();
  });
});

describe("a real browser (headless Chromium) through nginx", () => {
  let site;
  let herald;
  let nginx;
  let chrome;
  let context;
  let logs = [];
  before(async () => {
    site = await startStaticServer();
    // The page's origin is not nginx's: long-polling needs herald's CORS headers for it.
    herald = await startHerald("browser", { allowedOrigins: [site.origin] });
    nginx = await startNginx("browser", { upstreams: [`127.0.0.1:${herald.port}`] });
    chrome = await launchChromium();
  });
  afterEach(async (t) => {
    herald?.afterEach(t);
    if (t.passed === false && nginx) t.diagnostic(`nginx [${nginx.label}] log:\n${nginx.log()}`);
    await context?.close();
    context = undefined;
    logs = [];
  });
  after(async () => {
    // Each step runs even if an earlier one throws; the first error is reported.
    const steps = [() => chrome?.close(), () => nginx?.stop(), () => herald?.stop(), () => site?.close()];
    const results = [];
    for (const step of steps) results.push(await Promise.allSettled([step()]));
    const failed = results.flat().find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  });

  async function openPage(query) {
    context = await chrome.browser.newContext({ viewport: { width: 960, height: 420 } });
    const page = await context.newPage();
    page.on("console", (m) => logs.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
    page.on("requestfailed", (r) => logs.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    await page.goto(`${site.origin}/index.html?${new URLSearchParams(query)}`, { timeout: WAIT_MS });
    return page;
  }

  test("the page connects through nginx, upgrades, registers and shows each published event", async () => {
    const ws = uid("ws");
    const token = mintToken({ sub: uid("user"), workspaces: [ws] });
    const page = await openPage({ url: nginx.url, token, workspace: ws });
    try {
      await pageWaits(page, logs, "the page to register", stateIs, "registered");
      await pageWaits(
        page,
        logs,
        "the upgrade to WebSocket through nginx",
        () => document.getElementById("transport").textContent === "websocket",
      );

      const published = [];
      for (const data of [{ from: "report.odt", to: "report-2026.odt" }, { progress: 100 }]) {
        const event = uid("file_renamed");
        const res = await herald.publishHttp({ event, workspace: ws, data });
        assert.equal(res.status, 202, res.text);
        published.push({ event, data, id: res.json.id });
        await pageWaits(
          page,
          logs,
          `event ${event} in the page's list`,
          (id) => document.querySelector(`#events li[data-id="${id}"]`) !== null,
          res.json.id,
        );
      }

      const shown = await page.$$eval("#events li", (items) =>
        items.map((li) => ({ event: li.dataset.event, id: li.dataset.id, text: li.textContent })),
      );
      assert.deepEqual(
        shown.map(({ event, id }) => ({ event, id })),
        published.map(({ event, id }) => ({ event, id })),
        "the page shows exactly the published events, in order",
      );
      for (const [i, { event, data }] of published.entries()) {
        assert.ok(shown[i].text.includes(event), `item ${i}: ${shown[i].text}`);
        assert.ok(shown[i].text.includes(JSON.stringify(data)), `item ${i}: ${shown[i].text}`);
        assert.ok(shown[i].text.includes(`workspace ${ws}`), `item ${i}: ${shown[i].text}`);
      }
      assert.equal(await page.textContent("#count"), "2");
    } finally {
      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS_DIR, "browser-through-nginx.png"), fullPage: true });
    }
  });

  test("a refused token shows connect_error \"unauthorized\" in the page", async () => {
    const token = mintToken({ sub: uid("user"), secret: "not-the-secret" });
    const page = await openPage({ url: nginx.url, token, workspace: uid("ws") });
    await pageWaits(page, logs, "the page to report the refusal", stateIs, "error");
    assert.equal(await page.textContent("#status"), "connect_error: unauthorized");
  });
});

describe("the status page in a real browser (headless Chromium)", () => {
  let herald;
  let chrome;
  let context;
  before(async () => {
    herald = await startHerald("status-page");
    chrome = await launchChromium();
  });
  afterEach(async (t) => {
    herald?.afterEach(t);
    await context?.close();
    context = undefined;
  });
  after(async () => {
    const results = [];
    for (const step of [() => chrome?.close(), () => herald?.stop()]) results.push(await Promise.allSettled([step()]));
    const failed = results.flat().find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  });

  test("shows ON, the live connections by transport, and a hostile workspace id as text", async () => {
    const hostile = `<script>document.title="pwned"</script><img src=x onerror=alert(1)>${uid("ws")}`;
    await herald.user({ workspaces: [hostile], register: [hostile], transports: ["websocket"] });
    await herald.user({ workspaces: [hostile], register: [hostile], transports: ["polling"] });
    await herald.connectPrivate({ transports: ["websocket"] });

    // The guard of /status holds for browsers too: the key goes in a header.
    context = await chrome.browser.newContext({
      viewport: { width: 1100, height: 720 },
      extraHTTPHeaders: { authorization: `Bearer ${PRIVATE_KEY}` },
    });
    const page = await context.newPage();
    const problems = [];
    page.on("console", (m) => problems.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    try {
      const res = await page.goto(`${herald.url}/status?refresh=0`, { timeout: WAIT_MS });
      assert.equal(res.status(), 200);
      const headers = res.headers();
      assert.match(headers["content-type"], /^text\/html/);
      assert.match(headers["content-security-policy"], /default-src 'none'/);

      assert.equal((await page.textContent("#state")).trim(), "ON");
      assert.equal(await page.textContent("#connections-total"), "3");
      const row = async (ns) =>
        page.$$eval(`tr[data-namespace="${ns}"] td`, (cells) => cells.map((c) => c.textContent));
      assert.deepEqual(await row("public"), ["1", "1", "2"], "public: WebSocket, polling, total");
      assert.deepEqual(await row("private"), ["1", "0", "1"], "private: WebSocket, polling, total");

      // The hostile id is shown as text, and nothing of it became markup.
      const ids = await page.$$eval("#workspaces td.id", (cells) => cells.map((c) => c.textContent));
      assert.deepEqual(ids, [hostile]);
      assert.equal((await page.$$("body script, body img")).length, 0, "the workspace id became markup");
      assert.equal(await page.title(), "herald: ON");

      // The inline stylesheet is allowed by the page's CSP (its hash): ON is on green.
      const background = await page.$eval("#state", (el) => getComputedStyle(el).backgroundColor);
      assert.equal(background, "rgb(26, 127, 55)", "the stylesheet was blocked");
      assert.deepEqual(problems, [], "the page logged errors (a CSP violation?)");
    } finally {
      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS_DIR, "status-page.png"), fullPage: true });
    }
  });
});
