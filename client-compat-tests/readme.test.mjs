// The Quick start examples of ../README.md, read from the README at test time and run against
// the real binary: the browser page in headless Chromium, the curl command with bash, the Node
// backend as a module of its own. Only the documented placeholders are replaced (the CDN URL,
// 127.0.0.1:8090, TOKEN, PRIVATE_KEY). What each example prints is compared with the README's
// comment next to it: the same keys, the same values, except where the README writes `…` (a
// value herald picks), which must then have the form this test knows for that key.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { EventEmitter, once as onceEvent } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { PRIVATE_KEY, UUID_RE, WAIT_MS, mintToken, once, startHerald } from "./harness.mjs";
import { launchChromium, startStaticServer } from "./browser.mjs";

const SUITE_DIR = dirname(fileURLToPath(import.meta.url));
const README = resolve(SUITE_DIR, "..", "README.md");

// ---------------------------------------------------------------------------------------------
// Reading the README.

/** The lines of the README section under `heading`, up to the next heading (not in a fence). */
function section(markdown, heading) {
  const lines = markdown.split("\n");
  const start = lines.indexOf(heading);
  assert.ok(start >= 0, `README.md has no "${heading}" heading`);
  let inFence = false;
  const body = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith("```")) inFence = !inFence;
    else if (!inFence && /^#{1,3} /.test(line)) break;
    body.push(line);
  }
  return body;
}

/** The body of the first ```lang fence in the README section under `heading`. */
function snippet(markdown, heading, lang) {
  let fence; // the open fence's language and lines, while inside one
  for (const line of section(markdown, heading)) {
    if (fence) {
      if (line === "```") {
        if (fence.lang === lang) return fence.lines.join("\n") + "\n";
        fence = undefined;
      } else fence.lines.push(line);
    } else if (line.startsWith("```")) {
      fence = { lang: line.slice(3).trim(), lines: [] };
    }
  }
  assert.fail(`README.md's "${heading}" section has no \`\`\`${lang} block`);
}

/** Replaces every `placeholder` in `text`; fails if the README no longer contains it. */
function substitute(text, placeholder, value, what) {
  const pattern = placeholder instanceof RegExp ? placeholder : new RegExp(escapeRegExp(placeholder), "g");
  assert.match(text, pattern, `${what} no longer contains the placeholder ${placeholder}`);
  return text.replace(pattern, () => value);
}

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Stands for the README's `…`: a value herald picks. */
const PICKED = Symbol("…");

/**
 * The README's comment on the line that contains `call`: the `//` comment after it, or the
 * comment line right below. Returns its alternatives (split on " or "), each parsed as the list
 * of arguments the call prints.
 */
function documented(code, call, what) {
  const lines = code.split("\n");
  const at = lines.findIndex((l) => l.includes(call));
  assert.ok(at >= 0, `${what} no longer contains ${call}`);
  const rest = lines[at].slice(lines[at].indexOf(call) + call.length);
  let comment = rest.includes("//") ? rest.slice(rest.indexOf("//") + 2) : undefined;
  if (comment === undefined && /^\s*\/\//.test(lines[at + 1] ?? "")) {
    comment = lines[at + 1].replace(/^\s*\/\//, "");
  }
  assert.ok(comment !== undefined, `${what}: ${call} has no comment saying what it prints`);
  return comment.split(/\s+or\s+/).map((alternative) => parseValues(alternative.trim(), what));
}

/**
 * Parses "{ok: true, id: …}, {…}" (JavaScript literals; `…` outside strings stands for a value
 * herald picks) into an array of values.
 */
function parseValues(text, what) {
  // Odd parts are string literals, left alone; `…` elsewhere becomes the PICKED marker.
  const code = text
    .split(/("(?:[^"\\]|\\.)*")/)
    .map((part, i) => (i % 2 === 1 ? part : part.replaceAll("…", "PICKED")))
    .join("");
  try {
    return new Function("PICKED", `"use strict"; return [${code}];`)(PICKED);
  } catch (err) {
    throw new Error(`${what}: the comment ${JSON.stringify(text)} is not a list of values (${err.message})`);
  }
}

/** The forms of the values the README leaves open with `…`, by key. */
const PICKED_FORMS = {
  id: (v) => typeof v === "string" && UUID_RE.test(v),
  // Milliseconds since the Unix epoch, and recent: the event was published during this test.
  ts: (v) => Number.isSafeInteger(v) && Math.abs(v - Date.now()) < 5 * 60 * 1000,
  epoch: (v) => typeof v === "string" && v.length > 0 && Buffer.byteLength(v) <= 64,
};

const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** Lists how `actual` differs from the README's `doc` (empty: it is what the README says). */
function differences(actual, doc, path = "") {
  if (doc === PICKED) {
    const key = path.split(".").pop();
    const form = PICKED_FORMS[key];
    if (!form) return [`${path}: the README writes … for a key this test knows no form of`];
    return form(actual) ? [] : [`${path}: ${JSON.stringify(actual)} is not a valid ${key}`];
  }
  if (isPlainObject(doc)) {
    if (!isPlainObject(actual)) return [`${path || "value"}: ${JSON.stringify(actual)} is not an object`];
    const docKeys = Object.keys(doc).sort();
    const actualKeys = Object.keys(actual).sort();
    if (JSON.stringify(docKeys) !== JSON.stringify(actualKeys)) {
      return [`${path || "value"}: keys ${JSON.stringify(actualKeys)}, the README says ${JSON.stringify(docKeys)}`];
    }
    return docKeys.flatMap((k) => differences(actual[k], doc[k], path ? `${path}.${k}` : k));
  }
  if (Array.isArray(doc)) {
    if (!Array.isArray(actual) || actual.length !== doc.length) {
      return [`${path || "value"}: ${JSON.stringify(actual)}, the README says ${doc.length} values`];
    }
    return doc.flatMap((d, i) => differences(actual[i], d, `${path}[${i}]`));
  }
  return Object.is(actual, doc) ? [] : [`${path || "value"}: ${JSON.stringify(actual)}, the README says ${JSON.stringify(doc)}`];
}

/** Asserts that what an example printed is what the README's comment says. */
function assertAsDocumented(actual, doc, what) {
  const diff = differences(actual, doc);
  assert.deepEqual(diff, [], `${what} printed ${JSON.stringify(actual)}, not what the README says:\n${diff.join("\n")}`);
}

// ---------------------------------------------------------------------------------------------
// Running the examples.

/** Runs a command to its exit, bounded; resolves with { code, stdout, stderr }. */
async function run(command, args, options, what) {
  // In a process group of its own, so that a timeout also ends what it started (bash's curl).
  const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
  let timer;
  const outcome = await Promise.race([
    onceEvent(child, "close").then(([code]) => ({ code })),
    onceEvent(child, "error").then(([err]) => ({ error: err })),
    new Promise((res) => (timer = setTimeout(() => res({ timeout: true }), WAIT_MS))),
  ]);
  clearTimeout(timer);
  if (outcome.timeout) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // the group ended on its own meanwhile
    }
  }
  if (outcome.error) throw new Error(`${what} could not be started: ${outcome.error.message}`);
  assert.ok(!outcome.timeout, `${what} did not exit within ${WAIT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`);
  return { code: outcome.code, stdout, stderr };
}

/**
 * Collects a page's console.log calls, each as the array of its arguments' values, in the page's
 * order. `next(what)` resolves with the next call, or fails after WAIT_MS naming `what` and
 * showing the page's console.
 */
function consoleOf(page) {
  const calls = [];
  const transcript = [];
  const arrivals = new EventEmitter();
  let inOrder = Promise.resolve();
  page.on("console", (message) => {
    transcript.push(`console.${message.type()}: ${message.text()}`);
    if (message.type() !== "log") return; // the browser's own errors (e.g. CORS) are not the page's
    const values = Promise.all(message.args().map((arg) => arg.jsonValue()));
    inOrder = inOrder
      .then(async () => calls.push(await values))
      .then(() => arrivals.emit("call"))
      .catch((err) => transcript.push(`(a console.log argument could not be read: ${err.message})`));
  });
  page.on("pageerror", (err) => transcript.push(`pageerror: ${err.message}`));
  let taken = 0;
  return {
    async next(what) {
      const deadline = Date.now() + WAIT_MS;
      while (calls.length <= taken) {
        try {
          await once(arrivals, "call", Math.max(deadline - Date.now(), 0));
        } catch {
          throw new Error(
            `timed out after ${WAIT_MS} ms waiting for the page to print ${what}\n` +
              `--- browser console ---\n${transcript.join("\n")}`,
          );
        }
      }
      return calls[taken++];
    },
  };
}

// ---------------------------------------------------------------------------------------------

describe("README.md's Quick start examples, run as written", () => {
  const markdown = readFileSync(README, "utf8");
  const browserExample = snippet(markdown, "### A browser", "html");
  const curlExample = snippet(markdown, "### A backend", "sh");
  const nodeExample = snippet(markdown, "### A backend", "js");

  const pages = {};
  let site;
  let chrome;
  let herald;
  let context;
  let pageCount = 0;

  before(async () => {
    site = await startStaticServer({ pages });
    chrome = await launchChromium();
  });
  afterEach(async (t) => {
    await context?.close();
    context = undefined;
    herald?.afterEach(t);
    await herald?.stop();
    herald = undefined;
  });
  after(async () => {
    const results = [];
    for (const step of [() => chrome?.close(), () => site?.close()]) results.push(await Promise.allSettled([step()]));
    const failed = results.flat().find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  });

  /** A herald of the test's own, so that `demo` starts with no events (offsets from 0). */
  async function startOwnHerald(options = { allowedOrigins: [site.origin] }) {
    herald = await startHerald("readme", options);
    return herald;
  }

  /** Opens the browser example with `token`, served from the test's site; returns its console. */
  async function openBrowserExample(token) {
    let html = browserExample;
    const what = "README.md's browser example";
    html = substitute(html, "https://your.cdn/socket.io.min.js", "/socket.io.min.js", what);
    html = substitute(html, "127.0.0.1:8090", `127.0.0.1:${herald.port}`, what);
    html = substitute(html, /\bTOKEN\b/g, JSON.stringify(token), what);
    pageCount += 1;
    const path = `/readme-${pageCount}.html`;
    pages[path] = html;
    context ??= await chrome.browser.newContext();
    const page = await context.newPage();
    const printed = consoleOf(page);
    await page.goto(site.origin + path, { timeout: WAIT_MS });
    return printed;
  }

  /** Runs the curl example with bash; resolves with { status, body }. */
  async function runCurlExample() {
    const what = "README.md's curl example";
    const script = substitute(curlExample, "127.0.0.1:8090", `127.0.0.1:${herald.port}`, what);
    assert.match(script, /\$PRIVATE_KEY\b/, `${what} no longer uses $PRIVATE_KEY`);
    // The example as written, with curl made quiet and told to print the status after the body.
    const wrapper = `curl() { command curl --silent --show-error --write-out '\\n%{http_code}' "$@"; }\n`;
    const env = { PATH: process.env.PATH, PRIVATE_KEY };
    const result = await run("bash", ["-c", wrapper + script], { env }, what);
    assert.equal(result.code, 0, `${what} failed: ${result.stderr}`);
    const nl = result.stdout.lastIndexOf("\n");
    return { status: Number(result.stdout.slice(nl + 1)), body: result.stdout.slice(0, nl) };
  }

  /** Runs the Node example as a module of its own; resolves with its console.log calls. */
  async function runNodeExample() {
    const what = "README.md's Node example";
    const code = substitute(nodeExample, "127.0.0.1:8090", `127.0.0.1:${herald.port}`, what);
    assert.match(code, /\bPRIVATE_KEY\b/, `${what} no longer uses PRIVATE_KEY`);
    const prelude =
      `const PRIVATE_KEY = ${JSON.stringify(PRIVATE_KEY)};\n` +
      // Each console.log call as one JSON line: what the test compares with the comments.
      "console.log = (...args) => process.stdout.write(JSON.stringify(args) + \"\\n\");\n";
    // In the suite's tree, so that `import ... from "socket.io-client"` resolves as after an
    // `npm install socket.io-client`.
    const artifacts = join(SUITE_DIR, "artifacts");
    mkdirSync(artifacts, { recursive: true });
    const dir = mkdtempSync(join(artifacts, "readme-node-"));
    try {
      const file = join(dir, "backend.mjs");
      writeFileSync(file, prelude + code);
      const env = { PATH: process.env.PATH };
      const result = await run(process.execPath, [file], { env }, `${what} (does it close its socket?)`);
      assert.equal(result.code, 0, `${what} failed:\n${result.stderr}`);
      return result.stdout.trim().split("\n").filter(Boolean).map((line) => JSON.parse(line));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test("the browser registers, and receives the curl example's event, as their comments say", async () => {
    const [registered] = documented(browserExample, "console.log(ack)", "the browser example");
    const [event] = documented(browserExample, "console.log(data, meta)", "the browser example");
    const curlComment = /^# (\d{3}) (.+)$/m.exec(curlExample);
    assert.ok(curlComment, "README.md's curl example has no `# <status> <body>` comment");
    const [curlBody] = parseValues(curlComment[2], "the curl example");

    await startOwnHerald();
    const page = await openBrowserExample(mintToken({ sub: "alice", workspaces: ["demo"] }));
    assertAsDocumented(await page.next("the register ack"), registered, "the browser example's register");

    const published = await runCurlExample();
    assert.equal(published.status, Number(curlComment[1]), `the curl example answered ${published.status} ${published.body}`);
    assertAsDocumented(JSON.parse(published.body), curlBody, "the curl example");

    const delivered = await page.next("the published event");
    assertAsDocumented(delivered, event, "the browser example's hello handler");
    assert.equal(delivered[1].id, JSON.parse(published.body).id, "meta.id is the id the publisher got");
  });

  test("the Node backend's ack is as its comment says, and the browser receives its event", async () => {
    const [acked, ...others] = documented(nodeExample, "console.log(ack)", "the Node example");
    assert.equal(others.length, 0, "the Node example's comment shows alternatives this test does not run");
    const [event] = documented(browserExample, "console.log(data, meta)", "the browser example");

    await startOwnHerald();
    const page = await openBrowserExample(mintToken({ sub: "alice", workspaces: ["demo"] }));
    await page.next("the register ack");

    const printed = await runNodeExample();
    assert.equal(printed.length, 1, `the Node example printed ${JSON.stringify(printed)}`);
    assertAsDocumented(printed[0], acked, "the Node example");

    const delivered = await page.next("the Node example's event");
    assertAsDocumented(delivered, event, "the browser example's hello handler");
    assert.equal(delivered[1].id, printed[0][0].id, "meta.id is the id of the Node example's ack");
  });

  test("a token without workspace demo gets the refusal the register comment shows", async () => {
    const alternatives = documented(browserExample, "console.log(ack)", "the browser example");
    assert.equal(alternatives.length, 2, "the test runs the two outcomes the README shows, and no more");
    await startOwnHerald();
    const page = await openBrowserExample(mintToken({ sub: "bob", workspaces: ["elsewhere"] }));
    assertAsDocumented(await page.next("the register ack"), alternatives[1], "the browser example's register");
  });

  test("a refused token prints the connect_error message the README shows", async () => {
    const [unauthorized, ...others] = documented(browserExample, "console.log(err.message)", "the browser example");
    assert.equal(others.length, 0);
    await startOwnHerald();
    const page = await openBrowserExample(mintToken({ sub: "alice", workspaces: ["demo"], secret: "not-the-secret" }));
    assertAsDocumented(await page.next("the connect_error message"), unauthorized, "the connect_error handler");
  });

  test("without its origin in allowed_origins the page cannot long-poll herald (as the README warns)", async () => {
    const prose = section(markdown, "### A browser").join(" ");
    assert.match(prose, /origin listed in `allowed_origins`/, "README.md no longer says the page's origin must be allowed");
    await startOwnHerald({});
    const page = await openBrowserExample(mintToken({ sub: "alice", workspaces: ["demo"] }));
    // socket.io-client's message when the cross-origin long-polling request is blocked.
    assert.deepEqual(await page.next("the connect_error message"), ["xhr poll error"]);
  });
});
