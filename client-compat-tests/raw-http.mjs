// One raw HTTP/1.1 exchange over TCP or TLS, read until the server closes the connection: what
// an independent client sees of an answer (its head, whether the whole body came, whether and
// when the connection ended), which fetch and socket.io-client hide.

import { connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";

import { WAIT_MS } from "./harness.mjs";

/** Headers a WebSocket upgrade request carries. */
export const UPGRADE_HEADERS = {
  connection: "Upgrade",
  upgrade: "websocket",
  "sec-websocket-version": "13",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
};

/** The head of a raw response, once it is whole: {status, headers, bodyStart}, else null. */
function parseHead(raw) {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [statusLine, ...headerLines] = raw.subarray(0, end).toString("latin1").split("\r\n");
  const headers = {};
  for (const line of headerLines) {
    const at = line.indexOf(":");
    headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  return { status: Number(statusLine.split(" ")[1]), headers, bodyStart: end + 4 };
}

/** Whether `raw` holds a whole response (head and the body its head announces). */
function wholeResponse(raw) {
  const head = parseHead(raw);
  if (!head) return false;
  const body = raw.subarray(head.bodyStart);
  if (head.headers["content-length"] !== undefined) return body.length >= Number(head.headers["content-length"]);
  if (head.headers["transfer-encoding"] === "chunked") return body.toString("latin1").endsWith("0\r\n\r\n");
  return false;
}

/**
 * Sends `GET path` to `url`'s host and resolves, once the server has closed the connection
 * (or, with `untilWholeBody`, once a whole response has arrived), with
 * {status, headers, body, ms, closed}; rejects (saying what had arrived) after `ms` milliseconds.
 */
export function exchangeUntilClose(url, path, { headers = {}, ca, ms = WAIT_MS, untilWholeBody = false } = {}) {
  const { hostname, port, protocol } = new URL(url);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const options = { host: hostname, port: Number(port) };
    const socket =
      protocol === "https:"
        ? tlsConnect({ ...options, ca, servername: hostname })
        : tcpConnect(options);
    const chunks = [];
    const timer = setTimeout(() => {
      socket.destroy();
      const got = Buffer.concat(chunks).toString("latin1");
      reject(new Error(`the connection was still open after ${ms} ms; received: ${JSON.stringify(got)}`));
    }, ms);
    socket.on(protocol === "https:" ? "secureConnect" : "connect", () => {
      const lines = [`GET ${path} HTTP/1.1`, `host: ${hostname}:${port}`];
      for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
      socket.write(lines.join("\r\n") + "\r\n\r\n");
    });
    const settle = (closed) => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks);
      const head = parseHead(raw);
      if (!head) {
        reject(new Error(`the connection closed without a whole response head: ${JSON.stringify(raw.toString("latin1"))}`));
        return;
      }
      resolve({ status: head.status, headers: head.headers, body: raw.subarray(head.bodyStart), ms: Date.now() - started, closed });
    };
    socket.on("data", (chunk) => {
      chunks.push(chunk);
      if (untilWholeBody && wholeResponse(Buffer.concat(chunks))) {
        socket.removeAllListeners("close");
        socket.destroy();
        settle(false);
      }
    });
    socket.on("error", () => {}); // a reset after the answer is still a close; judged below
    socket.on("close", () => settle(true));
  });
}

/**
 * Asserts what an Engine.IO error answer must be: the whole body (Content-Length bytes, or a
 * whole chunked body), `Connection: close`, and the connection closed by the server.
 */
export function assertWholeAndClosed(assert, answer, what) {
  assert.ok(answer.status >= 400, `${what}: status ${answer.status}`);
  assert.equal(answer.headers.connection, "close", `${what}: Connection header ${answer.headers.connection}`);
  assertWhole(assert, answer, what);
}

/** Asserts that an answer's body is whole (Content-Length bytes, or a whole chunked body). */
export function assertWhole(assert, answer, what) {
  if (answer.headers["content-length"] !== undefined) {
    assert.equal(
      answer.body.length,
      Number(answer.headers["content-length"]),
      `${what}: ${answer.body.length} body bytes of ${answer.headers["content-length"]}: ${JSON.stringify(answer.body.toString())}`,
    );
  } else {
    assert.equal(answer.headers["transfer-encoding"], "chunked", `${what}: neither a length nor chunks`);
    assert.ok(answer.body.toString("latin1").endsWith("0\r\n\r\n"), `${what}: the chunked body did not end`);
  }
}
