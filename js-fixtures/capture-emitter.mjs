// Captures what the npm `@socket.io/redis-emitter` really puts on Redis, as fixtures for
// herald's decoder (src/cluster/emitter.rs). For each case it runs emit.mjs against a Redis
// that this script PSUBSCRIBEs to with `*`, waits for the one message the case publishes and
// writes tests/fixtures/redis-emitter/<case>.txt: the emit.mjs arguments, then the channel and
// the payload, each in hex.
//
//   redis-server --port 6390 --save '' --appendonly no &
//   node capture-emitter.mjs --redis redis://127.0.0.1:6390 [--out DIR]
//
// Use a Redis no one else publishes on: every message it sees is taken for the case's.

import { spawn } from "node:child_process";
import { writeFile, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { createClient } from "redis";

const HERE = dirname(fileURLToPath(import.meta.url));
const WAIT_MS = 5000;

const { values } = parseArgs({
  options: {
    redis: { type: "string" },
    out: { type: "string", default: join(HERE, "..", "tests", "fixtures", "redis-emitter") },
  },
});
const url = values.redis ?? process.env.REDIS_URL;
if (url === undefined) {
  console.error("--redis URL (or $REDIS_URL) is required");
  process.exit(2);
}

const longText = "0123456789".repeat(30);
const sixteen = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i]));

/** name → emit.mjs arguments. Every case publishes exactly one message. */
const CASES = {
  "one-room": ["--nsp", "/public", "--to", "workspace:ws1", "--event", "tree_changes",
    "--json", '{"path":"/docs/a.txt","op":"create"}'],
  "several-rooms": ["--nsp", "/public", "--to", "workspace:ws1", "--to", "user:u1",
    "--to", "group:/acme/eng", "--event", "tree_changes", "--json", '{"n":1}'],
  "except": ["--nsp", "/public", "--to", "workspace:ws1", "--except", "user:u2",
    "--except", "user:u3", "--event", "tree_changes", "--json", '{"n":2}'],
  "no-room": ["--nsp", "/public", "--event", "announcement", "--json", '"maintenance at 22:00"'],
  "default-namespace": ["--to", "workspace:ws1", "--event", "tree_changes", "--json", "true"],
  "no-args": ["--nsp", "/public", "--to", "workspace:ws1", "--event", "ping"],
  "several-args": ["--nsp", "/public", "--to", "workspace:ws1", "--event", "multi",
    "--json", "1", "--json", '"two"', "--json", '{"three":[3]}', "--json", "null"],
  "nested": ["--nsp", "/public", "--to", "workspace:ws1", "--event", "tree_changes", "--json",
    JSON.stringify({
      node: { uuid: "b9f0", path: "/a/b", meta: { tags: ["x", "y"], size: 12, ok: true, none: null } },
      list: Array.from({ length: 20 }, (_, i) => i * 1000),
      sixteen,
      long: longText,
      deep: [[[[[[[[{ z: [] }]]]]]]]],
      empty: {},
    })],
  "unicode": ["--nsp", "/public", "--to", "workspace:wö ✓", "--event", "änderung",
    "--json", '{"name":"résumé 📄.txt","quote":"\\"\\\\\\n\\u0000\\u2028","日本":"語"}'],
  "numbers": ["--nsp", "/public", "--to", "workspace:ws1", "--event", "numbers", "--json",
    JSON.stringify([0, 1, -1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296,
      9007199254740991, 9007199254740993, -32, -33, -128, -129, -32768, -32769, -2147483648,
      -2147483649, -9007199254740991, 1.5, -0.25, 3.141592653589793, 1e-7,
      { $number: "-0" }, { $number: "9223372036854775807" }, { $number: "18446744073709549568" },
      { $number: "-9223372036854775808" }, { $number: "1e20" }, { $number: "-1e20" },
      { $number: "NaN" }, { $number: "Infinity" }])],
  "binary-buffer": ["--nsp", "/public", "--to", "workspace:ws1", "--event", "upload",
    "--json", '{"$buffer":"deadbeef"}'],
  "binary-nested": ["--nsp", "/public", "--to", "workspace:ws1", "--event", "upload",
    "--json", '{"name":"a.bin","content":{"$buffer":"00ff"}}'],
  "dates": ["--nsp", "/public", "--to", "workspace:ws1", "--event", "dates", "--json",
    JSON.stringify([{ $date: "2024-05-01T12:34:56.789Z" }, { $date: "2024-05-01T12:34:56Z" },
      { $date: "1969-07-20T20:17:40.001Z" }, { $date: "2200-01-01T00:00:00.000Z" },
      { mtime: { $date: "1970-01-01T00:00:00Z" } }])],
  "custom-key": ["--key", "herald-test", "--nsp", "/public", "--to", "workspace:ws1",
    "--event", "tree_changes", "--json", '{"n":3}'],
  "flags": ["--nsp", "/public", "--to", "workspace:ws1", "--to", "user:u1", "--volatile",
    "--compress", "false", "--event", "tree_changes", "--json", '{"n":4}'],
  "room-with-hash": ["--nsp", "/public", "--to", "group:/a#b", "--event", "tree_changes",
    "--json", '{"n":5}'],
  "server-side-emit": ["--nsp", "/public", "--server-side-emit", "--json", '"hello"',
    "--json", '{"n":6}'],
  "sockets-join": ["--nsp", "/public", "--to", "user:u1", "--sockets-join", "workspace:ws9"],
  "disconnect-sockets": ["--nsp", "/public", "--to", "user:u1", "--disconnect-sockets"],
};

const emitterVersion = JSON.parse(
  await readFile(join(HERE, "node_modules", "@socket.io", "redis-emitter", "package.json"), "utf8"),
).version;

const sub = createClient({ url });
await sub.connect();
let waiter = null;
await sub.pSubscribe("*", (message, channel) => {
  if (waiter === null) {
    console.error(`unexpected message on ${channel.toString()}`);
    process.exitCode = 1;
    return;
  }
  const w = waiter;
  waiter = null;
  w({ channel, message });
}, true);

function nextMessage(what) {
  let timer;
  return Promise.race([
    new Promise((resolve) => { waiter = resolve; }),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no message for ${what} after ${WAIT_MS} ms`)), WAIT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

function run(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(HERE, "emit.mjs"), "--redis", url, ...args], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`emit.mjs exited ${code}`))));
  });
}

for (const [name, args] of Object.entries(CASES)) {
  const received = nextMessage(name);
  await run(args);
  const { channel, message } = await received;
  const text = [
    `# @socket.io/redis-emitter ${emitterVersion}, captured by js-fixtures/capture-emitter.mjs`,
    `# emit.mjs ${JSON.stringify(args)}`,
    `channel: ${channel.toString("hex")}`,
    `payload: ${message.toString("hex")}`,
    "",
  ].join("\n");
  await writeFile(join(values.out, `${name}.txt`), text);
  console.log(`${name}: ${channel.toString()} (${message.length} bytes)`);
}
await sub.quit();
