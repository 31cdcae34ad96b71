// RecordedSocket: what the UI-like clients (cells-ui.mjs, cells-chat-ui.mjs) share: every frame
// received, parsed and recorded in order; what the UI would have thrown on; and waits for a
// frame or an event that always end, with a message naming what did not happen and the frames
// seen so far. A subclass reads each frame as its UI does (`dispatch`).

import { EventEmitter } from "node:events";

export class RecordedSocket extends EventEmitter {
  constructor(label) {
    super();
    this.label = label;
    /** Every frame received, parsed, in order. */
    this.frames = [];
    /** {at, frame} for every frame received. */
    this.arrivals = [];
    /** What the UI would have thrown on. */
    this.errors = [];
    /** {at, code, reason, ...} of each close. */
    this.closes = [];
  }

  /**
   * Resolves with the first frame (already received or to come) for which `predicate` holds;
   * rejects after `ms` naming `what`, with the frames received so far.
   */
  waitFrame(predicate, ms, what) {
    const found = this.frames.find((frame) => safely(predicate, frame));
    if (found !== undefined) return Promise.resolve(found);
    return this.nextFrame(predicate, ms, what);
  }

  /** Like waitFrame, but only a frame that arrives after now counts. */
  nextFrame(predicate, ms, what) {
    return this.waitFor("frame", predicate, ms, what);
  }

  /** Frames for which `predicate` holds. */
  matching(predicate) {
    return this.frames.filter((frame) => safely(predicate, frame));
  }

  /** Resolves with the next `event` whose value `predicate` accepts; rejects after `ms`. */
  waitFor(event, predicate, ms, what) {
    return new Promise((resolve, reject) => {
      const listener = (value) => {
        if (!safely(predicate, value)) return;
        clearTimeout(timer);
        this.off(event, listener);
        resolve(value);
      };
      const timer = setTimeout(() => {
        this.off(event, listener);
        const seen = JSON.stringify(this.frames).slice(-3000);
        const closes = JSON.stringify(this.closes.map(({ code, reason }) => [code, reason]));
        reject(new Error(`${this.label}: timed out after ${ms} ms waiting for ${what}; frames so far: ${seen}; closes: ${closes}`));
      }, ms);
      this.on(event, listener);
    });
  }

  /** Notes what the UI would have thrown on. */
  fail(why) {
    const message = `${why}`;
    this.errors.push(message);
    this.emit("protocol_error", message);
  }

  /** A message of the socket: parsed, recorded, read by `dispatch`, then emitted as `frame`. */
  receive(data, isBinary) {
    if (isBinary) {
      this.fail(`a binary frame (${data.length} bytes)`);
      return;
    }
    const text = data.toString("utf8");
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      this.fail(`a frame that is not JSON: ${text.slice(0, 200)}`);
      return;
    }
    this.frames.push(frame);
    this.arrivals.push({ at: Date.now(), frame });
    try {
      this.dispatch(frame);
    } finally {
      this.emit("frame", frame);
    }
  }

  /** Reads a frame as the UI does; the subclass's. */
  dispatch() {}
}

/** Whether `predicate` holds for `value`; false when it throws (it read a frame of another shape). */
function safely(predicate, value) {
  try {
    return Boolean(predicate(value));
  } catch {
    return false;
  }
}
