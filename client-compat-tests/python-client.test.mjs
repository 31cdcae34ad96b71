// python-socketio, a client written independently of socket.io-client, against the real herald
// binary: 5.x (Socket.IO v5 over Engine.IO v4) and 4.x (Socket.IO v4 over Engine.IO v3, what
// socket.io-client 2.x speaks), each with its sync socketio.Client over WebSocket, long-polling
// and the upgrade. The scenarios run in python/ (scenarios.py, driven by sio5.py and sio4.py in
// the virtual environments python/setup.sh makes); this file starts them, publishes, reads
// herald's /status and /metrics, and asserts on the JSON lines the drivers print.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { EventEmitter, once as onceEvent } from "node:events";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";

import {
  JWT_SECRET,
  PRIVATE_KEY,
  UUID_RE,
  WAIT_MS,
  metric,
  mintToken,
  once,
  publish,
  startHerald,
  uid,
  withoutPosition,
} from "./harness.mjs";

const PYTHON_DIR = join(dirname(fileURLToPath(import.meta.url)), "python");
/** The first run installs both venvs from PyPI; later runs find them ready at once. */
const SETUP_MS = 300000;
/** A driver waits at most 5 s for any one thing and then fails with its own message: wait longer. */
const STEP_MS = WAIT_MS + 3000;

const MAJORS = [
  { major: 5, eio: "4", what: "python-socketio 5.x (Socket.IO v5, Engine.IO v4)" },
  { major: 4, eio: "3", what: "python-socketio 4.x (Socket.IO v4, Engine.IO v3)" },
];

/** A transport option of the drivers, the transport it ends on, and the handshake it makes. */
const TRANSPORTS = {
  websocket: { final: "websocket", engineSteps: ["websocket-handshake"] },
  polling: { final: "polling", engineSteps: ["polling-handshake"] },
  upgrade: { final: "websocket", engineSteps: ["polling-handshake", "upgraded"] },
};

/** Runs python/setup.sh once per file (creates or checks the venvs); rejects with its output. */
let venvs;
function setupVenvs() {
  venvs ??= new Promise((resolve, reject) => {
    execFile("bash", [join(PYTHON_DIR, "setup.sh")], { timeout: SETUP_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`python/setup.sh failed (${err.message.split("\n")[0]}):\n${stdout}${stderr}`));
      else resolve();
    });
  });
  return venvs;
}

/**
 * One run of a driver: `python sio<major>.py <scenario> <params>`. Its stdout is one JSON object
 * per line (`{step, ...}`); `step(name)` awaits the next line of that step.
 */
class PythonRun {
  constructor(major, scenario, params) {
    this.label = `python-socketio ${major}.x "${scenario}"`;
    this.steps = [];
    this.cursor = 0;
    this.stderr = "";
    this.exit = null;
    this.changed = new EventEmitter();
    this.child = spawn(
      join(PYTHON_DIR, `.venv${major}`, "bin", "python"),
      [join(PYTHON_DIR, `sio${major}.py`), scenario, JSON.stringify(params)],
      { cwd: PYTHON_DIR, stdio: ["pipe", "pipe", "pipe"] },
    );
    this.child.stdin.on("error", () => {}); // a command written after the driver exited
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (chunk) => (this.stderr += chunk));
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      let parsed;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = { step: "unparsed", line };
      }
      this.steps.push(parsed);
      this.changed.emit("change");
    });
    this.closed = onceEvent(this.child, "close").then(([code, signal]) => {
      this.exit = { code, signal };
      this.changed.emit("change");
      return this.exit;
    });
  }

  describe() {
    const printed = this.steps.map((s) => JSON.stringify(s)).join("\n");
    return `${this.label} printed:\n${printed || "(nothing)"}\nstderr:\n${this.stderr || "(nothing)"}`;
  }

  /** Resolves with the next `name` step; rejects on a "failed" step, an early exit, or a timeout. */
  step(name, ms = STEP_MS) {
    return new Promise((resolve, reject) => {
      const check = () => {
        while (this.cursor < this.steps.length) {
          const line = this.steps[this.cursor++];
          if (line.step === name) return done(null, line);
          if (line.step === "failed" || line.step === "unparsed") {
            return done(new Error(`${this.label} failed before "${name}": ${line.error ?? line.line}\n${this.describe()}`));
          }
        }
        if (this.exit) {
          done(new Error(`${this.label} exited (${JSON.stringify(this.exit)}) before "${name}"\n${this.describe()}`));
        }
      };
      const timer = setTimeout(
        () => done(new Error(`${this.label}: no "${name}" step within ${ms} ms\n${this.describe()}`)),
        ms,
      );
      const done = (err, line) => {
        clearTimeout(timer);
        this.changed.off("change", check);
        if (err) reject(err);
        else resolve(line);
      };
      this.changed.on("change", check);
      check();
    });
  }

  /** Writes a command line to the driver's stdin. */
  send(command) {
    this.child.stdin.write(`${command}\n`);
  }

  /** Awaits the driver's exit and asserts it succeeded. */
  async finish(ms = STEP_MS) {
    let timer;
    const exit = await Promise.race([
      this.closed,
      new Promise((res) => (timer = setTimeout(() => res(null), ms))),
    ]);
    clearTimeout(timer);
    assert.ok(exit, `${this.label} did not exit within ${ms} ms\n${this.describe()}`);
    assert.deepEqual(exit, { code: 0, signal: null }, `${this.label} exit status\n${this.describe()}`);
  }

  kill() {
    if (!this.exit) this.child.kill("SIGKILL");
  }
}

/** The value of a counter in /metrics, 0 while the series has not appeared yet. */
async function counter(herald, series) {
  const value = await metric(herald, series);
  return Number.isNaN(value) ? 0 : value;
}

/** Bounded poll of /status and herald_engine_sessions until `predicate({status, engineSessions})`. */
async function pollSessions(herald, predicate, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    const res = await herald.http("GET", "/status", { key: PRIVATE_KEY });
    assert.equal(res.status, 200, `GET /status: ${res.text}`);
    last = { status: res.json, engineSessions: await metric(herald, "herald_engine_sessions") };
    if (predicate(last)) return last;
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${ms} ms waiting for ${what}; last /status connections ` +
          `${JSON.stringify(last.status.connections)}, transports ${JSON.stringify(last.status.transports)}, ` +
          `herald_engine_sessions ${last.engineSessions}`,
      );
    }
    await delay(50); // poll interval of a bounded poll
  }
}

/**
 * Unicode event data for a client on a transport. Characters outside the BMP (the emoji) are
 * left out for python-socketio 4.x on long-polling: python-engineio 3.x reads the length prefix
 * of an Engine.IO v3 polling payload (`<length>:<packet>`) in code points, while the protocol's
 * reference (engine.io-parser 2.x) and herald count UTF-16 code units, so a payload holding an
 * emoji and a further packet fails to decode in that client (ValueError in Payload.decode).
 */
function unicodeData(major, transport) {
  const data = { text: "héllo 日本 \u2028", list: [1, 2.5, null, true], nested: { a: { b: "c" } } };
  if (!(major === 4 && transport === "polling")) data.emoji = "😀 🎉";
  return data;
}

const noSessions = ({ status, engineSessions }) =>
  status.connections.public === 0 && status.connections.private === 0 && engineSessions === 0;

for (const { major, eio, what } of MAJORS) {
  describe(what, () => {
    let herald;
    let restarts = 0;
    const runs = new Set();
    before(
      async () => {
        await setupVenvs();
        herald = await startHerald(`python${major}`);
      },
      { timeout: SETUP_MS + 30000 },
    );
    afterEach(async (t) => {
      for (const run of runs) run.kill();
      runs.clear();
      if (!herald) return; // the before hook failed, and says why
      herald.afterEach(t);
      // Every test ends with no session left on herald: the drivers disconnect cleanly. After a
      // failure (a killed driver's session lasts until the heartbeat ends it) the next test gets
      // a fresh herald, so one failure does not fail the tests after it.
      let leftover;
      if (t.passed !== false) {
        leftover = await pollSessions(herald, noSessions, "every session of the test to be gone from herald").then(
          () => null,
          (err) => err,
        );
      }
      if (t.passed === false || leftover) {
        herald.failed = true;
        await herald.stop();
        restarts += 1;
        herald = await startHerald(`python${major}-restart${restarts}`); // its own log file
      }
      if (leftover) throw leftover;
    });
    after(() => herald?.stop());

    const py = (scenario, transport, params) => {
      const run = new PythonRun(major, scenario, { url: herald.url, path: herald.enginePath, transport, ...params });
      runs.add(run);
      return run;
    };

    for (const [transport, { final, engineSteps }] of Object.entries(TRANSPORTS)) {
      test(`/public with a token (${transport}): counted on ${final}; a client disconnect brings the counts back`, async () => {
        const run = py("connect", transport, { token: mintToken({ sub: uid("py") }) });
        const connected = await run.step("connected");
        assert.equal(connected.eio, eio, "the Engine.IO version in the client's handshake URL");
        assert.deepEqual(connected.engine_steps, engineSteps, "the client's handshake and upgrade");
        assert.equal(connected.transport, final);
        const counted = await pollSessions(
          herald,
          ({ status, engineSessions }) =>
            status.connections.public === 1 && status.transports.public[final] === 1 && engineSessions === 1,
          `herald to count one /public socket on ${final}`,
        );
        assert.equal(counted.status.connections.private, 0);

        run.send("disconnect");
        const gone = await run.step("disconnected");
        assert.equal(gone.connected, false);
        assert.equal(gone.engine, "disconnected");
        // 4.x calls no disconnect handler for a disconnect of its own.
        if (major === 5) assert.deepEqual(gone.disconnect_reasons, ["client disconnect"]);
        // The driver is still running: herald saw the client's disconnect, not its process end.
        await pollSessions(herald, noSessions, "the session count to come back to 0 after the client disconnected");
        run.send("exit");
        await run.finish();
      });
    }

    for (const transport of ["websocket", "polling"]) {
      const refusals = [
        [
          "a token signed with another secret on /public",
          "public",
          () => ({ namespace: "/public", token: mintToken({ sub: uid("py"), secret: `${JWT_SECRET}-not` }) }),
        ],
        ["a wrong key on /private", "private", () => ({ namespace: "/private", key: `${PRIVATE_KEY}x` })],
      ];
      for (const [why, namespace, params] of refusals) {
        test(`refused with ${why} (${transport}): connect_error "unauthorized", then a clean close`, async () => {
          const series = `herald_handshakes_total{namespace="${namespace}",outcome="unauthorized"}`;
          const refusedBefore = await counter(herald, series);
          const run = py("refused", transport, params());
          const refusal = await run.step("refused");
          // An object for both majors (npm socket.io sends a Socket.IO v4 client a bare string:
          // docs/benchmarks.md, "Behaviour differences").
          assert.deepEqual(refusal.error, { message: "unauthorized" });
          const closed = await run.step("closed");
          assert.equal(closed.connected, false);
          assert.equal(closed.engine, "disconnected");
          assert.equal(await counter(herald, series), refusedBefore + 1, `${series} after the refusal`);
          // While the driver is still running, as above.
          await pollSessions(herald, noSessions, "the refused client's Engine.IO session to be closed");
          run.send("exit");
          await run.finish();
        });
      }
    }

    for (const [transport, { final }] of Object.entries(TRANSPORTS)) {
      test(`register with an ack; a workspace publish over HTTP arrives with its data and meta (${transport})`, async () => {
        const ws = uid("ws");
        const sub = uid("py");
        const event = uid("py-event");
        const marker = uid("marker");
        const run = py("receive", transport, {
          token: mintToken({ sub, workspaces: [ws] }),
          register: [ws],
          events: [event, marker],
          until: marker,
        });
        assert.equal((await run.step("connected")).transport, final);
        const { ack } = await run.step("registered");
        assert.deepEqual(withoutPosition(ack), { ok: true, workspace: ws });
        await run.step("ready");

        const data = unicodeData(major, transport);
        const t0 = Date.now();
        const res = await herald.publishHttp({ event, workspace: ws, data });
        const t1 = Date.now();
        assert.equal(res.status, 202, res.text);
        // Published after the event, to the user's room: once it is there, so is the event.
        const markerRes = await herald.publishHttp({ event: marker, user: sub, data: "marker" });
        assert.equal(markerRes.status, 202, markerRes.text);

        const { events } = await run.step("received");
        assert.deepEqual(events.map((e) => e.event), [event, marker], "events received, in order");
        const { args } = events[0];
        assert.equal(args.length, 2, `exactly (data, meta): ${JSON.stringify(args)}`);
        const [got, meta] = args;
        assert.deepEqual(got, data);
        assert.deepEqual(Object.keys(meta).sort(), ["epoch", "id", "offset", "ts", "workspace"]);
        assert.equal(meta.id, res.json.id);
        assert.match(meta.id, UUID_RE);
        assert.equal(meta.workspace, ws);
        assert.ok(meta.ts >= t0 - 50 && meta.ts <= t1 + 50, `meta.ts ${meta.ts} outside [${t0}, ${t1}]`);
        assert.equal(meta.offset, ack.offset + 1, "the workspace's next offset after the register ack");
        assert.equal(meta.epoch, ack.epoch);

        await run.step("disconnected");
        await run.finish();
      });
    }

    for (const transport of ["websocket", "polling"]) {
      test(`an event published to workspace B never reaches the client registered to A (${transport})`, async () => {
        const [wsA, wsB] = [uid("ws-a"), uid("ws-b")];
        const sub = uid("py");
        const event = uid("py-event");
        const marker = uid("marker");
        const backend = await herald.connectPrivate();
        // A socket.io-client in B proves the publish to B went out.
        const inB = await herald.user({ workspaces: [wsB], register: [wsB] });
        const arrivalInB = once(inB, event, undefined, "the publish to B at the v4 socket registered to B");
        const run = py("receive", transport, {
          token: mintToken({ sub, workspaces: [wsA, wsB] }), // may read B, registers to A only
          register: [wsA],
          events: [event, marker],
          until: marker,
        });
        await run.step("ready");

        const toB = await publish(backend, { event, workspace: wsB, data: "for B" });
        const toA = await publish(backend, { event, workspace: wsA, data: "for A" });
        await publish(backend, { event: marker, user: sub, data: "marker" });

        const [dataInB, metaInB] = await arrivalInB;
        assert.equal(dataInB, "for B");
        assert.equal(metaInB.id, toB.id);
        const { events } = await run.step("received");
        assert.deepEqual(events.map((e) => e.event), [event, marker], `events received: ${JSON.stringify(events)}`);
        const [data, meta] = events[0].args;
        assert.equal(data, "for A");
        assert.equal(meta.id, toA.id);
        assert.equal(meta.workspace, wsA);

        await run.step("disconnected");
        await run.finish();
      });
    }

    for (const transport of ["websocket", "polling"]) {
      const { final } = TRANSPORTS[transport];
      test(`a python /private backend publishes with an ack; python and socket.io-client browsers receive it (${transport})`, async () => {
        const ws = uid("ws");
        const event = uid("py-published");
        const data = { from: "python", items: ["a", "b"], n: 3, ...unicodeData(major, transport) };
        const jsBrowser = await herald.user({ workspaces: [ws], register: [ws] });
        const arrivalAtJs = once(jsBrowser, event, undefined, "the python backend's publish at a v4 socket");
        const run = py("backend-publish", transport, {
          token: mintToken({ sub: uid("py"), workspaces: [ws] }),
          key: PRIVATE_KEY,
          workspace: ws,
          event,
          data,
        });
        assert.deepEqual(withoutPosition((await run.step("registered")).ack), { ok: true, workspace: ws });
        const backendConnected = await run.step("backend-connected");
        assert.equal(backendConnected.namespace, "/private");
        assert.equal(backendConnected.transport, final);
        assert.equal(backendConnected.eio, eio);
        const { ack } = await run.step("published");
        assert.deepEqual(Object.keys(ack).sort(), ["id", "ok"], `publish ack ${JSON.stringify(ack)}`);
        assert.equal(ack.ok, true);
        assert.match(ack.id, UUID_RE);

        const { events } = await run.step("received");
        assert.equal(events.length, 1, `events received: ${JSON.stringify(events)}`);
        const [got, meta] = events[0].args;
        assert.deepEqual(got, data);
        assert.equal(meta.id, ack.id);
        assert.equal(meta.workspace, ws);
        const [gotAtJs, metaAtJs] = await arrivalAtJs;
        assert.deepEqual(gotAtJs, data);
        assert.equal(metaAtJs.id, ack.id);

        const gone = await run.step("disconnected");
        for (const side of ["browser", "backend"]) {
          assert.equal(gone[side].connected, false, `${side} connected after disconnect()`);
          assert.equal(gone[side].engine, "disconnected", `${side} engine after disconnect()`);
        }
        await run.finish();
      });
    }
  });
}
