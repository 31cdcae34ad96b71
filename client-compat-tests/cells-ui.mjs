// A stand-in for the Pydio Cells web UI's event socket, for tests of herald's `/ws/event` door.
// It is written from what the UI is known to do (its PydioWebSocket over reconnecting-websocket
// 3.x), not from its code:
//
// - on every `open`, the first one and each automatic reconnect, it sends
//   {"@type":"subscribe","jwt":<token>}; without a token it retries a few times, then sends
//   {"@type":"subscribe"} (JSON.stringify drops the undefined jwt);
// - an {"@type":"idm"} frame makes it reload its workspaces 500 ms later (debounced), which sends
//   a subscribe with its current token again (`refresh()`);
// - after any close it did not ask for it reconnects: the delay before attempt n (n failed
//   attempts since the last successful open) is base * 1.6^n, capped at 60 s, where base is drawn
//   once per client, uniformly in [1.5 s, 3 s]; a connection not open within 4 s is dropped and
//   counts as failed; after more than 10 failed attempts in a row it gives up;
// - frames: the JSON string "dump" is ignored; an object with "@type" fires
//   `websocket_event:<type>`; one with TaskUpdated and Job is a task; anything else is a node
//   event (no Type but a Target: CREATE). A node event's node (Source for DELETE, Target
//   otherwise) must carry MetaStore.EventWorkspaceId, JSON text of a workspace id; events of
//   another workspace than the active one are ignored; every MetaStore value is parsed as JSON,
//   and one that is not JSON is an error (the UI throws); the node's Path loses "<slug>/" and
//   gets a leading "/"; a CREATE whose path is then the workspace root is skipped.
//
// What the UI would throw on is recorded in `errors` (and emitted as `protocol_error`), so a test
// can fail on it; `assertHealthy()` throws when there is any.
//
// Every delay is configurable so tests stay fast, but the defaults are the UI's.


import WebSocket from "ws";

import { RecordedSocket } from "./recorded-socket.mjs";

/** The UI's reconnection settings. */
export const UI_RECONNECT = Object.freeze({
  minDelayMs: 1500, // the first delay is drawn uniformly in [minDelayMs, maxDelayMs]
  maxDelayMs: 3000,
  growFactor: 1.6, // times this per failed attempt
  capMs: 60000,
  connectTimeoutMs: 4000,
  maxRetries: 10, // more failed attempts in a row than this: give up
});

/** How long after an idm frame the UI reloads its workspaces (and so subscribes again). */
export const UI_IDM_RELOAD_MS = 500;

/** How often, and how far apart, the UI asks for a token at open before subscribing without one. */
export const UI_NO_TOKEN_RETRIES = 3;
export const UI_NO_TOKEN_RETRY_MS = 10000;

export class CellsUI extends RecordedSocket {
  /**
   * `url`: ws://host:port/ws/event. `token`: a function returning the current token (or a
   * promise of it), undefined when there is none yet. `workspace`: the active workspace
   * {id, slug}, or undefined. Options:
   * - `reconnect`: false (never reconnect: a plain socket) or overrides of UI_RECONNECT;
   * - `autoSubscribe`: false sends nothing on open (a socket that never subscribes);
   * - `reloadOnIdm`: false ignores idm frames (a client that never re-subscribes);
   * - `idmReloadMs`, `noTokenRetries`, `noTokenRetryMs`: the UI's other delays;
   * - `wsOptions`: options for the `ws` client (e.g. {origin}, {headers}).
   */
  constructor({
    url,
    token = () => undefined,
    workspace,
    reconnect = {},
    autoSubscribe = true,
    reloadOnIdm = true,
    idmReloadMs = UI_IDM_RELOAD_MS,
    noTokenRetries = UI_NO_TOKEN_RETRIES,
    noTokenRetryMs = UI_NO_TOKEN_RETRY_MS,
    wsOptions = {},
    label = "cells-ui",
  }) {
    super(label);
    this.url = url;
    this.tokenProvider = token;
    this.workspace = workspace;
    this.reconnecting = reconnect !== false;
    this.settings = { ...UI_RECONNECT, ...(reconnect || {}) };
    const { minDelayMs, maxDelayMs } = this.settings;
    /** The first reconnection delay of this client, drawn once. */
    this.baseDelayMs = minDelayMs + Math.random() * (maxDelayMs - minDelayMs);
    this.autoSubscribe = autoSubscribe;
    this.reloadOnIdm = reloadOnIdm;
    this.idmReloadMs = idmReloadMs;
    this.noTokenRetries = noTokenRetries;
    this.noTokenRetryMs = noTokenRetryMs;
    this.wsOptions = wsOptions;

    /** Node events dispatched for the active workspace: {type, path, originalPath, node, metas, frame}. */
    this.nodeEvents = [];
    /** Times (ms) of each successful open. */
    this.opens = [];
    /** {at, code, reason, opened} of each close (a failed attempt included). */
    this.closes = [];
    /** {at, delayMs, failures} of each scheduled reconnection. */
    this.scheduled = [];
    /** {at, message} of each subscribe sent. */
    this.subscribes = [];
    /** Errors the socket reported (e.g. "Unexpected server response: 503"). */
    this.socketErrors = [];
    this.failures = 0; // failed attempts since the last successful open
    this.keepClosed = false;
    this.gaveUp = false;
    this.ws = undefined;
    this.timers = new Set();
    this.idmTimer = undefined;
  }

  /** Opens the socket (the UI's open()). Returns this. */
  open() {
    this.keepClosed = false;
    this.#connect();
    return this;
  }

  /** The UI's close(): code 1000 `Closing`, and no reconnection. */
  close() {
    this.keepClosed = true;
    this.#clearTimers();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "Closing");
  }

  /** Drops everything at once (cleanup in tests): no close handshake, no reconnection. */
  terminate() {
    this.keepClosed = true;
    this.#clearTimers();
    this.ws?.terminate();
  }

  /** Whether the current socket is open. */
  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Sends a raw frame on the current socket: an object (as JSON), a string, or a Buffer (binary). */
  send(frame) {
    if (!this.isOpen) throw new Error(`${this.label}: send on a socket that is not open`);
    if (Buffer.isBuffer(frame)) this.ws.send(frame, { binary: true });
    else this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** The UI's refresh() (a workspace list reload): a subscribe with the current token, no retries. */
  async refresh() {
    const ws = this.ws;
    const token = await this.tokenProvider();
    if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
    this.#sendSubscribe(ws, token);
  }

  /** Stops reading from the TCP socket (a consumer that stopped reading). */
  pause() {
    this.ws._socket.pause();
  }

  /** Reads again. */
  resume() {
    this.ws._socket.resume();
  }

  /** Throws if the UI would have thrown on anything received so far. */
  assertHealthy() {
    if (this.errors.length > 0) {
      throw new Error(`${this.label}: the UI would have thrown on what it received:\n${this.errors.join("\n")}`);
    }
  }

  /** Resolves with the next close ({at, code, reason, opened}) after now; rejects after `ms`. */
  waitClose(ms, what = "a close") {
    return this.waitFor("close", () => true, ms, what);
  }

  /** Resolves with the time of the next successful open after now; rejects after `ms`. */
  waitOpen(ms, what = "an open") {
    return this.waitFor("open", () => true, ms, what);
  }

  /** Resolves with the next subscribe sent ({at, message}) after now; rejects after `ms`. */
  waitSubscribe(ms, what = "a subscribe") {
    return this.waitFor("subscribe", () => true, ms, what);
  }

  // -------------------------------------------------------------------------------------------

  #later(fn, ms) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  #clearTimers() {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.idmTimer = undefined;
  }

  #connect() {
    const ws = new WebSocket(this.url, this.wsOptions);
    this.ws = ws;
    let opened = false;
    const connectTimer = this.#later(() => {
      if (!opened && ws.readyState !== WebSocket.CLOSED) ws.terminate();
    }, this.settings.connectTimeoutMs);

    ws.on("open", () => {
      opened = true;
      clearTimeout(connectTimer);
      this.timers.delete(connectTimer);
      this.failures = 0;
      const at = Date.now();
      this.opens.push(at);
      this.emit("open", at);
      if (this.autoSubscribe) this.#subscribeOnOpen(ws, this.noTokenRetries);
    });
    ws.on("message", (data, isBinary) => this.receive(data, isBinary));
    ws.on("error", (err) => {
      this.socketErrors.push(err.message);
      this.emit("socket_error", err);
    });
    ws.on("close", (code, reasonBuffer) => {
      clearTimeout(connectTimer);
      this.timers.delete(connectTimer);
      const close = { at: Date.now(), code, reason: reasonBuffer.toString(), opened };
      this.closes.push(close);
      this.emit("close", close);
      if (ws !== this.ws || this.keepClosed || !this.reconnecting) return;
      if (!opened) this.failures += 1;
      if (this.failures > this.settings.maxRetries) {
        this.gaveUp = true;
        this.emit("give_up");
        return;
      }
      const { growFactor, capMs } = this.settings;
      const delayMs = Math.min(capMs, this.baseDelayMs * growFactor ** this.failures);
      this.scheduled.push({ at: Date.now(), delayMs, failures: this.failures });
      this.emit("reconnect_scheduled", delayMs);
      this.#later(() => {
        if (!this.keepClosed) this.#connect();
      }, delayMs);
    });
  }

  async #subscribeOnOpen(ws, retriesLeft) {
    const token = await this.tokenProvider();
    if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
    if (token === undefined && retriesLeft > 0) {
      this.#later(() => this.#subscribeOnOpen(ws, retriesLeft - 1), this.noTokenRetryMs);
      return;
    }
    this.#sendSubscribe(ws, token);
  }

  #sendSubscribe(ws, token) {
    const message = JSON.stringify({ "@type": "subscribe", jwt: token });
    ws.send(message);
    const sent = { at: Date.now(), message: JSON.parse(message) };
    this.subscribes.push(sent);
    this.emit("subscribe", sent);
  }

  dispatch(frame) {
    if (frame === "dump") {
      this.emit("dump");
      return;
    }
    if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
      this.fail(`a frame that is not an object: ${JSON.stringify(frame).slice(0, 200)}`);
      return;
    }
    if (Object.hasOwn(frame, "@type")) {
      const type = frame["@type"];
      this.emit(`websocket_event:${type}`, frame);
      if (type === "idm" && this.reloadOnIdm) {
        if (this.idmTimer !== undefined) {
          clearTimeout(this.idmTimer);
          this.timers.delete(this.idmTimer);
        }
        this.idmTimer = this.#later(() => {
          this.idmTimer = undefined;
          this.refresh();
        }, this.idmReloadMs);
      }
      return;
    }
    if (frame.TaskUpdated !== undefined && frame.Job !== undefined) {
      this.emit("task_message", frame);
      return;
    }
    this.#nodeEvent(frame);
  }

  #nodeEvent(frame) {
    const what = JSON.stringify(frame).slice(0, 300);
    let type = frame.Type;
    if (type === undefined) {
      if (frame.Target === undefined) {
        this.fail(`a node event with neither Type nor Target: ${what}`);
        return;
      }
      type = "CREATE";
    }
    const node = type === "DELETE" ? frame.Source : frame.Target;
    if (node === null || typeof node !== "object") {
      this.fail(`a ${type} node event without its ${type === "DELETE" ? "Source" : "Target"}: ${what}`);
      return;
    }
    // The UI parses the metadata of each node it is given.
    const metasOf = (n, name) => {
      if (n === undefined) return undefined;
      if (n.MetaStore === null || typeof n.MetaStore !== "object") {
        this.fail(`${name} of a node event has no MetaStore object: ${what}`);
        return undefined;
      }
      const metas = {};
      for (const [key, value] of Object.entries(n.MetaStore)) {
        if (typeof value !== "string") {
          this.fail(`${name}.MetaStore.${key} is not a string: ${what}`);
          return undefined;
        }
        try {
          metas[key] = JSON.parse(value);
        } catch {
          this.fail(`${name}.MetaStore.${key} is not JSON text (${JSON.stringify(value)}): ${what}`);
          return undefined;
        }
      }
      return metas;
    };
    const nodeName = type === "DELETE" ? "Source" : "Target";
    const metas = metasOf(node, nodeName);
    const sourceMetas = type === "DELETE" ? metas : metasOf(frame.Source, "Source");
    if (metas === undefined || (frame.Source !== undefined && sourceMetas === undefined)) return;
    if (!Object.hasOwn(metas, "EventWorkspaceId")) {
      this.fail(`${nodeName}.MetaStore has no EventWorkspaceId: ${what}`);
      return;
    }
    const workspace = this.workspace;
    if (!workspace || metas.EventWorkspaceId !== workspace.id) {
      this.emit("ignored", frame);
      return;
    }
    const relative = (n, name) => {
      if (typeof n.Path !== "string" || !(n.Path === workspace.slug || n.Path.startsWith(`${workspace.slug}/`))) {
        this.fail(`${name}.Path ${JSON.stringify(n.Path)} does not start with the slug "${workspace.slug}/": ${what}`);
        return undefined;
      }
      return `/${n.Path.substring(workspace.slug.length + 1)}`;
    };
    const path = relative(node, nodeName);
    if (path === undefined) return;
    let originalPath = path;
    if (type !== "DELETE" && frame.Source !== undefined) {
      originalPath = relative(frame.Source, "Source");
      if (originalPath === undefined) return;
    }
    if (type === "CREATE" && (path === "" || path === "/")) {
      this.emit("skipped", frame);
      return;
    }
    const event = { type, path, originalPath, node, metas, frame };
    this.nodeEvents.push(event);
    this.emit("node_event", event);
  }
}
