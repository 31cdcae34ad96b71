// Publishes one message with the npm `@socket.io/redis-emitter` (pinned in package.json), the way
// an application backend would, then quits. Used to capture herald's emitter fixtures
// (capture-emitter.mjs) and by the cluster end-to-end tests.
//
//   node emit.mjs --redis redis://127.0.0.1:6379 --nsp /public --to workspace:ws1 \
//        --event tree_changes --json '{"path":"/a"}'
//   node emit.mjs --cluster --redis redis://127.0.0.1:7001,redis://127.0.0.1:7002 ...
//
// Options (repeatable ones marked *):
//   --redis URL          Redis URL; defaults to $REDIS_URL, then redis://127.0.0.1:6379
//   --cluster            a Redis Cluster: --redis is a comma-separated list of seed node URLs,
//                        connected with node-redis createCluster instead of createClient. The
//                        emitter still makes a classic PUBLISH, sent to one node, which the
//                        cluster forwards to every node
//   --key PREFIX         the emitter's `key` option (its default is "socket.io")
//   --nsp NAME           namespace, as in emitter.of(NAME); default "/"
//   --to ROOM *          emitter.to(ROOM)
//   --except ROOM *      emitter.except(ROOM)
//   --volatile           the `.volatile` flag
//   --compress BOOL      `.compress(BOOL)`
//   --event NAME         the event name (required for an emit)
//   --json JSON *        one argument, parsed as JSON; inside it {"$date": ISO} becomes a Date,
//                        {"$buffer": HEX} a Buffer and {"$number": "1e20"} Number("1e20"), so
//                        values JSON cannot spell (dates, binary, NaN, huge floats) can be sent
//   --server-side-emit   emitter.serverSideEmit(...args) instead of emit (no --event needed)
//   --sockets-join ROOM  emitter[.to(...)].socketsJoin(ROOM) instead of emit
//   --disconnect-sockets emitter[.to(...)].disconnectSockets(true) instead of emit
//
// Prints one JSON line per Redis PUBLISH made: {"channel": ..., "receivers": N}, where N is
// what Redis answered (the number of subscribers that got the message; with --cluster, only
// those on the node that took the PUBLISH). Exit code 0 on success.

import { parseArgs } from "node:util";

import { Emitter } from "@socket.io/redis-emitter";
import { createCluster, createClient } from "redis";

const { values } = parseArgs({
  options: {
    redis: { type: "string" },
    cluster: { type: "boolean", default: false },
    key: { type: "string" },
    nsp: { type: "string", default: "/" },
    to: { type: "string", multiple: true, default: [] },
    except: { type: "string", multiple: true, default: [] },
    volatile: { type: "boolean", default: false },
    compress: { type: "string" },
    event: { type: "string" },
    json: { type: "string", multiple: true, default: [] },
    "server-side-emit": { type: "boolean", default: false },
    "sockets-join": { type: "string" },
    "disconnect-sockets": { type: "boolean", default: false },
  },
  strict: true,
});

/** JSON.parse reviver turning the tagged objects described above into JS values. */
function revive(_key, value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  if (keys.length !== 1) return value;
  if (keys[0] === "$date") return new Date(value.$date);
  if (keys[0] === "$buffer") return Buffer.from(value.$buffer, "hex");
  if (keys[0] === "$number") return Number(value.$number);
  return value;
}

const url = values.redis ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
// No reconnection: a Redis that is not there is an error the caller must see at once.
const socket = { reconnectStrategy: false, connectTimeout: 5000 };
const client = values.cluster
  ? createCluster({ rootNodes: url.split(",").map((seed) => ({ url: seed.trim() })), defaults: { socket } })
  : createClient({ url, socket });
client.on("error", () => {}); // connect() and publish() reject with the same error
try {
  await client.connect();
} catch (err) {
  console.error(`emit.mjs: cannot connect to Redis: ${err.message}`);
  process.exit(1);
}

// The emitter fires PUBLISH without awaiting it; this wrapper keeps each reply so the script
// can report it and quit only once every PUBLISH has been answered.
const pending = [];
const publisher = {
  publish(channel, message) {
    const reply = client.publish(channel, message).then((receivers) => ({ channel, receivers }));
    pending.push(reply);
    return reply;
  },
};

const emitter = new Emitter(publisher, values.key === undefined ? {} : { key: values.key });
const nsp = emitter.of(values.nsp);
const args = values.json.map((text) => JSON.parse(text, revive));

let op = nsp;
for (const room of values.to) op = op.to(room);
for (const room of values.except) op = op.except(room);
if (values.volatile) op = op.volatile;
if (values.compress !== undefined) op = op.compress(values.compress === "true");

if (values["server-side-emit"]) {
  nsp.serverSideEmit(...args);
} else if (values["sockets-join"] !== undefined) {
  op.socketsJoin(values["sockets-join"]);
} else if (values["disconnect-sockets"]) {
  op.disconnectSockets(true);
} else {
  if (values.event === undefined) {
    console.error("--event is required");
    process.exit(2);
  }
  op.emit(values.event, ...args);
}

for (const { channel, receivers } of await Promise.all(pending)) {
  console.log(JSON.stringify({ channel, receivers }));
}
await client.quit();
