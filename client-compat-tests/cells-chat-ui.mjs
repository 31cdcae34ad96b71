// A stand-in for the Pydio Cells web UI's chat socket (its ChatClient and chat view), for tests of
// herald's `/ws/chat` door. It is written from what the UI is known to do, not from its code:
//
// - on `open` it sends {"@type":"subscribe","jwt":<token>};
// - joining a room sends {"@type":"JOIN","Room":{"Type","RoomTypeObject"}}, then every 15 s for
//   as long as it holds the room, the same JOIN with "Message":{"Message":"PING"};
// - a ROOM_UPDATE teaches it `Room.Uuid -> "Type:RoomTypeObject"` (so the Type name and the
//   RoomTypeObject must be the ones it joined with); after the first ROOM_UPDATE of a room the
//   chat view asks for the history: {"@type":"HISTORY","Room":{…},"Message":{"Message":
//   "{\"Offset\":0,\"Limit\":40}"}} (here only with `autoHistory`);
// - a POST needs the room's Uuid learned from a ROOM_UPDATE: {"@type":"POST","Message":
//   {"RoomUuid","Message"}}; a DELETE_MSG sends the whole message object as it was received;
//   LEAVE sends {"@type":"LEAVE","Room":{…}} and stops that room's PINGs;
// - frames: ROOM_UPDATE, DELETE_MSG, and anything else is a message that must carry the
//   RoomUuid of a known room (a message of an unknown room is lost to the UI: `unroutable`); a
//   message whose `Message` is not a string is what the UI would throw on (`errors`). herald's
//   error frames ({"@type":"error","code","error"}) have no RoomUuid: the UI drops them; they are
//   kept in `errorFrames` for tests.
//
// No reconnection (the chat socket does not need one for these tests). The PING period is
// configurable so tests stay fast; the default is the UI's.


import WebSocket from "ws";

import { RecordedSocket } from "./recorded-socket.mjs";

/** The UI's heartbeat period for every room it holds. */
export const UI_CHAT_PING_MS = 15000;

/** What the chat view asks for after a room's first ROOM_UPDATE. */
export const UI_HISTORY_PAGE = Object.freeze({ Offset: 0, Limit: 40 });

/** The key the UI files a room under. */
export const roomKey = (type, object) => `${type}:${object}`;

export class CellsChatUI extends RecordedSocket {
  /**
   * `url`: ws://host:port/ws/chat. `token`: a function returning the token (or a promise of it).
   * Options:
   * - `pingMs`: the heartbeat period (UI_CHAT_PING_MS);
   * - `autoSubscribe`: false sends nothing on open (a socket that never subscribes);
   * - `autoHistory`: true asks for UI_HISTORY_PAGE after each room's first ROOM_UPDATE, as the
   *   chat view does;
   * - `wsOptions`: options for the `ws` client.
   */
  constructor({
    url,
    token = () => undefined,
    pingMs = UI_CHAT_PING_MS,
    autoSubscribe = true,
    autoHistory = false,
    wsOptions = {},
    label = "cells-chat-ui",
  }) {
    super(label);
    this.url = url;
    this.tokenProvider = token;
    this.pingMs = pingMs;
    this.autoSubscribe = autoSubscribe;
    this.autoHistory = autoHistory;
    this.wsOptions = wsOptions;

    /** Every frame sent, as objects (or strings for raw text), in order. */
    this.sent = [];
    /** Room.Uuid -> "Type:RoomTypeObject", from ROOM_UPDATE frames. */
    this.rooms = new Map();
    /** The Room of every ROOM_UPDATE, in order. */
    this.roomUpdates = [];
    /** Messages routed to a known room, in order of arrival. */
    this.messages = [];
    /** The Message of every DELETE_MSG. */
    this.deletions = [];
    /** herald's error frames. */
    this.errorFrames = [];
    /** Frames that were neither ROOM_UPDATE, DELETE_MSG nor a message of a known room (errors aside). */
    this.unroutable = [];
    /** Errors the socket reported. */
    this.socketErrors = [];
    /** "Type:RoomTypeObject" -> {type, object, timer}: the rooms this client holds. */
    this.held = new Map();
    /** Keys of the rooms whose first ROOM_UPDATE was seen (for autoHistory). */
    this.updated = new Set();
    this.ws = undefined;
  }

  /** Opens the socket; resolves once it is open (and the subscribe, if any, sent). */
  open() {
    const ws = new WebSocket(this.url, this.wsOptions);
    this.ws = ws;
    const opened = new Promise((resolve, reject) => {
      ws.once("open", async () => {
        if (this.autoSubscribe) {
          const token = await this.tokenProvider();
          if (ws.readyState === WebSocket.OPEN) this.#send({ "@type": "subscribe", jwt: token });
        }
        this.emit("open");
        resolve(this);
      });
      ws.once("close", (code) =>
        reject(new Error(`${this.label}: closed (${code}) before it opened; socket errors: ${JSON.stringify(this.socketErrors)}`)),
      );
    });
    ws.on("message", (data, isBinary) => this.receive(data, isBinary));
    ws.on("error", (err) => {
      this.socketErrors.push(err.message);
      this.emit("socket_error", err);
    });
    ws.on("close", (code, reasonBuffer) => {
      this.#stopPings();
      const close = { at: Date.now(), code, reason: reasonBuffer.toString() };
      this.closes.push(close);
      this.emit("close", close);
    });
    return opened;
  }

  /** Whether the socket is open. */
  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Closes 1000 (no LEAVE first: the page goes away) and stops the PINGs. */
  close() {
    this.#stopPings();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "Closing");
  }

  /** Drops the connection at once (cleanup). */
  terminate() {
    this.#stopPings();
    this.ws?.terminate();
  }

  /** Sends a raw frame: an object (as JSON) or a string (as it is). */
  send(frame) {
    this.#send(frame);
  }

  /** A subscribe with this token (or the provider's). */
  async subscribe(token) {
    this.#send({ "@type": "subscribe", jwt: token ?? (await this.tokenProvider()) });
  }

  /** JOIN the room, and PING it every `pingMs` until it is left. */
  join(type, object) {
    const key = roomKey(type, object);
    this.#send({ "@type": "JOIN", Room: { Type: type, RoomTypeObject: object } });
    const current = this.held.get(key);
    if (current) clearInterval(current.timer);
    const timer = setInterval(() => this.ping(type, object), this.pingMs);
    this.held.set(key, { type, object, timer });
  }

  /** One heartbeat for the room: the JOIN with "Message":{"Message":"PING"}. */
  ping(type, object) {
    if (!this.isOpen) return;
    this.#send({ "@type": "JOIN", Room: { Type: type, RoomTypeObject: object }, Message: { Message: "PING" } });
  }

  /** Stops the room's heartbeat without leaving (a tab the browser froze). */
  stopPinging(type, object) {
    const held = this.held.get(roomKey(type, object));
    if (held) clearInterval(held.timer);
  }

  /** HISTORY of the room: the paging parameters are JSON text inside Message.Message. */
  history(type, object, offset = UI_HISTORY_PAGE.Offset, limit = UI_HISTORY_PAGE.Limit) {
    this.#send({
      "@type": "HISTORY",
      Room: { Type: type, RoomTypeObject: object },
      Message: { Message: JSON.stringify({ Offset: offset, Limit: limit }) },
    });
  }

  /** POST `text` to the room of that Uuid (learned from a ROOM_UPDATE). */
  post(roomUuid, text) {
    this.#send({ "@type": "POST", Message: { RoomUuid: roomUuid, Message: text } });
  }

  /** DELETE_MSG with the whole message object as it was received. */
  deleteMessage(message) {
    this.#send({ "@type": "DELETE_MSG", Message: message });
  }

  /** LEAVE the room and stop its heartbeat. */
  leave(type, object) {
    this.#send({ "@type": "LEAVE", Room: { Type: type, RoomTypeObject: object } });
    const key = roomKey(type, object);
    const held = this.held.get(key);
    if (held) clearInterval(held.timer);
    this.held.delete(key);
  }

  /** The Uuid the UI filed for "Type:RoomTypeObject", if any. */
  roomUuid(type, object) {
    const key = roomKey(type, object);
    for (const [uuid, k] of this.rooms) if (k === key) return uuid;
    return undefined;
  }

  /** Messages received for the room of `roomUuid`, in order of arrival. */
  messagesOf(roomUuid) {
    return this.messages.filter((m) => m.RoomUuid === roomUuid);
  }

  /** Resolves with the close ({at, code, reason}); rejects after `ms`. */
  waitClose(ms, what = "a close") {
    if (this.closes.length > 0) return Promise.resolve(this.closes[0]);
    return this.waitFor("close", () => true, ms, what);
  }

  // -------------------------------------------------------------------------------------------

  #send(frame) {
    if (!this.isOpen) throw new Error(`${this.label}: send on a socket that is not open`);
    const text = typeof frame === "string" ? frame : JSON.stringify(frame);
    this.sent.push(typeof frame === "string" ? frame : JSON.parse(text));
    this.ws.send(text);
  }

  #stopPings() {
    for (const { timer } of this.held.values()) clearInterval(timer);
  }

  dispatch(frame) {
    const what = JSON.stringify(frame).slice(0, 300);
    if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
      this.fail(`a frame that is not an object: ${what}`);
      return;
    }
    const type = frame["@type"];
    if (type === "ROOM_UPDATE") {
      const room = frame.Room;
      if (room === null || typeof room !== "object" || typeof room.Uuid !== "string") {
        this.fail(`a ROOM_UPDATE without Room.Uuid: ${what}`);
        return;
      }
      const key = roomKey(room.Type, room.RoomTypeObject);
      this.rooms.set(room.Uuid, key);
      this.roomUpdates.push(room);
      this.emit("room_update", room);
      if (!this.updated.has(key)) {
        this.updated.add(key);
        if (this.autoHistory && this.held.has(key) && this.isOpen) this.history(room.Type, room.RoomTypeObject);
      }
      return;
    }
    if (type === "DELETE_MSG") {
      if (frame.Message === null || typeof frame.Message !== "object") {
        this.fail(`a DELETE_MSG without its Message: ${what}`);
        return;
      }
      this.deletions.push(frame.Message);
      this.emit("delete_msg", frame.Message);
      return;
    }
    if (type === "error" && typeof frame.code === "string") {
      // No RoomUuid: the UI drops it.
      this.errorFrames.push(frame);
      this.emit("error_frame", frame);
      return;
    }
    if (typeof frame.RoomUuid !== "string" || !this.rooms.has(frame.RoomUuid)) {
      this.unroutable.push(frame);
      this.emit("unroutable", frame);
      return;
    }
    if (typeof frame.Message !== "string") {
      this.fail(`a message whose Message is not a string: ${what}`);
      return;
    }
    this.messages.push(frame);
    this.emit("message", frame);
  }
}

