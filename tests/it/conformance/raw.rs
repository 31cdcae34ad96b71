//! Raw clients for the conformance suite. HTTP/1.1 is written and read by hand over a
//! `TcpStream`, one connection per request, so that a test sees the exact status line, headers
//! and body bytes, can leave a request pending or abandon it, and can tell whether the server
//! closed the connection. WebSocket frames go through tokio-tungstenite, untouched. Nothing
//! here speaks Socket.IO: the tests write every packet themselves.

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest},
};

use crate::support::WAIT;

/// The Engine.IO record separator between the packets of a v4 long-polling payload.
pub(super) const SEPARATOR: char = '\x1e';

/// An HTTP response as it came off the wire.
#[derive(Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    /// What was read of the body: all of it, unless the server stopped short.
    pub(super) body: Vec<u8>,
    /// The body length the head announced (`Content-Length`, or the decoded chunks).
    pub(super) declared_length: Option<usize>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub(super) fn text(&self) -> &str {
        std::str::from_utf8(&self.body)
            .unwrap_or_else(|_| panic!("body is not UTF-8: {:?}", self.body))
    }
}

/// One HTTP/1.1 connection.
pub(super) struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    /// Bytes read past the last response.
    buffered: Vec<u8>,
}

impl Conn {
    pub(super) async fn open(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connecting to {addr} took over {WAIT:?}"))
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Self {
            addr,
            stream,
            buffered: Vec::new(),
        }
    }

    /// Writes a request: `Host`, then `headers`, then `Content-Length` when there is a body
    /// (always for `POST`), then the body.
    pub(super) async fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.write(&bytes).await;
    }

    /// Writes bytes as they are (a head announcing more body than follows, the rest of a body).
    pub(super) async fn write(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .unwrap_or_else(|e| panic!("writing to {}: {e}", self.addr));
    }

    /// Reads one response; fails the test when none starts within [`WAIT`].
    pub(super) async fn response(&mut self, what: &str) -> Response {
        self.read_response(WAIT)
            .await
            .unwrap_or_else(|why| panic!("{what}: {why}"))
    }

    /// Reads one response: its head within `within`, then as much of its body as comes before
    /// the server closes the connection or `within` runs out. `Err` says why no head was read.
    pub(super) async fn read_response(&mut self, within: Duration) -> Result<Response, String> {
        let deadline = Instant::now() + within;
        let head_end = loop {
            if let Some(end) = find(&self.buffered, b"\r\n\r\n") {
                break end;
            }
            match self.fill(deadline).await {
                Fill::Read => {}
                Fill::Eof => {
                    return Err(format!(
                        "the connection closed before a response head (read {:?})",
                        String::from_utf8_lossy(&self.buffered)
                    ));
                }
                Fill::TimedOut => {
                    return Err(format!(
                        "no response head within {within:?} (read {:?})",
                        String::from_utf8_lossy(&self.buffered)
                    ));
                }
            }
        };
        let head = String::from_utf8_lossy(&self.buffered[..head_end]).into_owned();
        self.buffered.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
            declared_length: None,
        };
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if status == 101 || status == 204 || status == 304 {
            response.declared_length = Some(0);
        } else if chunked {
            self.read_chunked(&mut response, deadline).await;
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| format!("bad Content-Length {length:?}"))?;
            response.declared_length = Some(length);
            while self.buffered.len() < length {
                if !matches!(self.fill(deadline).await, Fill::Read) {
                    break;
                }
            }
            let taken = length.min(self.buffered.len());
            response.body = self.buffered.drain(..taken).collect();
        } else {
            // Neither: the body ends with the connection.
            while matches!(self.fill(deadline).await, Fill::Read) {}
            response.body = std::mem::take(&mut self.buffered);
        }
        Ok(response)
    }

    async fn read_chunked(&mut self, response: &mut Response, deadline: Instant) {
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.buffered, b"\r\n") {
                    break end;
                }
                if !matches!(self.fill(deadline).await, Fill::Read) {
                    return;
                }
            };
            let size_text = String::from_utf8_lossy(&self.buffered[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {size_text:?}"));
            self.buffered.drain(..line_end + 2);
            while self.buffered.len() < size + 2 {
                if !matches!(self.fill(deadline).await, Fill::Read) {
                    let taken = size.min(self.buffered.len());
                    response.body.extend(self.buffered.drain(..taken));
                    return;
                }
            }
            response.body.extend(self.buffered.drain(..size));
            self.buffered.drain(..2);
            if size == 0 {
                response.declared_length = Some(response.body.len());
                return;
            }
        }
    }

    /// Whether the server closes the connection within `within` (end of stream or reset).
    /// Fails the test when the server sends anything instead.
    pub(super) async fn closed_by_server(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        match self.fill(deadline).await {
            Fill::Eof => true,
            Fill::TimedOut => false,
            Fill::Read => panic!(
                "expected the server to close the connection; it sent {:?}",
                String::from_utf8_lossy(&self.buffered)
            ),
        }
    }

    /// Whether nothing at all arrives within `within` (the request is still pending).
    pub(super) async fn silent_for(&mut self, within: Duration) -> Result<(), String> {
        match self.fill(Instant::now() + within).await {
            Fill::TimedOut => Ok(()),
            Fill::Eof => Err("the connection was closed".to_owned()),
            Fill::Read => Err(format!(
                "it was answered: {:?}",
                String::from_utf8_lossy(&self.buffered)
            )),
        }
    }

    async fn fill(&mut self, deadline: Instant) -> Fill {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Fill::TimedOut,
            Ok(Ok(0) | Err(_)) => Fill::Eof,
            Ok(Ok(n)) => {
                self.buffered.extend_from_slice(&chunk[..n]);
                Fill::Read
            }
        }
    }
}

enum Fill {
    Read,
    Eof,
    TimedOut,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One request on a connection of its own; the response within [`WAIT`].
pub(super) async fn request(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> Response {
    let mut conn = Conn::open(addr).await;
    conn.send(method, target, &[], body).await;
    conn.response(&format!("{method} {target}")).await
}

/// An Engine.IO long-polling session, each request on a connection of its own (as a browser
/// may do).
pub(super) struct Polling {
    addr: SocketAddr,
    /// The Engine.IO endpoint with its trailing `/`, e.g. `/engine.io/`.
    path: String,
    eio: u8,
    /// Query parameters after `sid` (e.g. `&b64=1`).
    extra: String,
    pub(super) sid: String,
}

impl Polling {
    /// The handshake `GET <path>?EIO=<eio>&transport=polling<extra>`: the session and its open
    /// packet's JSON.
    pub(super) async fn open(addr: SocketAddr, path: &str, eio: u8, extra: &str) -> (Self, Value) {
        let target = format!("{path}?EIO={eio}&transport=polling{extra}");
        let response = request(addr, "GET", &target, b"").await;
        assert_eq!(response.status, 200, "handshake {target}: {response:?}");
        let text = response.text();
        let packet = if eio == 3 {
            let packets = v3_packets(text);
            assert_eq!(packets.len(), 1, "handshake payload {text:?}");
            packets[0].clone()
        } else {
            text.to_owned()
        };
        let open: Value = serde_json::from_str(
            packet
                .strip_prefix('0')
                .unwrap_or_else(|| panic!("not an open packet: {text:?}")),
        )
        .unwrap_or_else(|e| panic!("open packet {text:?}: {e}"));
        let sid = open["sid"]
            .as_str()
            .unwrap_or_else(|| panic!("open packet without a sid: {text:?}"))
            .to_owned();
        let session = Self {
            addr,
            path: path.to_owned(),
            eio,
            extra: extra.to_owned(),
            sid,
        };
        (session, open)
    }

    /// The request target of this session's polls and posts.
    pub(super) fn target(&self) -> String {
        format!(
            "{}?EIO={}&transport=polling&sid={}{}",
            self.path, self.eio, self.sid, self.extra
        )
    }

    /// The WebSocket URL that upgrades this session.
    pub(super) fn upgrade_url(&self) -> String {
        format!(
            "ws://{}{}?EIO={}&transport=websocket&sid={}",
            self.addr, self.path, self.eio, self.sid
        )
    }

    /// A `GET` poll, answered within [`WAIT`].
    pub(super) async fn get(&self) -> Response {
        self.start_get().await.response("poll").await
    }

    /// A `GET` poll, sent and not read: the connection to read it from.
    pub(super) async fn start_get(&self) -> Conn {
        let mut conn = Conn::open(self.addr).await;
        conn.send("GET", &self.target(), &[], b"").await;
        conn
    }

    /// A `POST` of `body`, answered within [`WAIT`].
    pub(super) async fn post(&self, body: &str) -> Response {
        request(self.addr, "POST", &self.target(), body.as_bytes()).await
    }

    /// Polls until `count` packets other than Engine.IO v4 PINGs (`2`) have come, each poll
    /// answered `200`; the packets, in order. Fails after [`WAIT`] in all.
    pub(super) async fn collect_v4(&self, count: usize) -> Vec<String> {
        self.collect(count, |body| {
            body.split(SEPARATOR)
                .filter(|p| *p != "2")
                .map(str::to_owned)
                .collect()
        })
        .await
    }

    /// Polls until `count` packets have come in Engine.IO v3 text payloads, each poll answered
    /// `200`; the packets, in order. Fails after [`WAIT`] in all.
    pub(super) async fn collect_v3(&self, count: usize) -> Vec<String> {
        self.collect(count, v3_packets).await
    }

    async fn collect(&self, count: usize, decode: impl Fn(&str) -> Vec<String>) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut packets = Vec::new();
        while packets.len() < count {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut conn = self.start_get().await;
            let response = conn.read_response(remaining).await.unwrap_or_else(|why| {
                panic!("waiting for {count} packets, got {packets:?}, then a poll failed: {why}")
            });
            assert_eq!(response.status, 200, "poll: {response:?}");
            packets.extend(decode(response.text()));
        }
        packets
    }
}

/// The packets of an Engine.IO v3 text payload, `<length>:<packet>...`, checking each length
/// (in characters, counted as UTF-16 units like JavaScript strings).
pub(super) fn v3_packets(payload: &str) -> Vec<String> {
    let mut packets = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let (length, after) = rest
            .split_once(':')
            .unwrap_or_else(|| panic!("no `<length>:` in v3 payload {payload:?}"));
        let length: usize = length
            .parse()
            .unwrap_or_else(|_| panic!("bad length {length:?} in v3 payload {payload:?}"));
        let mut units = 0;
        let end = after
            .char_indices()
            .find(|(_, c)| {
                let before = units;
                units += c.len_utf16();
                before == length
            })
            .map_or(after.len(), |(i, _)| i);
        let packet = &after[..end];
        assert_eq!(
            packet.encode_utf16().count(),
            length,
            "packet {packet:?} of v3 payload {payload:?}: length in characters"
        );
        packets.push(packet.to_owned());
        rest = &after[end..];
    }
    packets
}

/// One packet of an Engine.IO v3 binary (XHR2) payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum V3Binary {
    Text(String),
    Binary(Vec<u8>),
}

/// The packets of an Engine.IO v3 binary payload: per packet, `0` (string) or `1` (binary),
/// the length as one byte per decimal digit, `255`, then the packet.
pub(super) fn v3_binary_packets(payload: &[u8]) -> Vec<V3Binary> {
    let mut packets = Vec::new();
    let mut rest = payload;
    while let Some((&kind, after)) = rest.split_first() {
        let digits = after
            .iter()
            .position(|&b| b == 255)
            .unwrap_or_else(|| panic!("no 255 after a length in v3 binary payload {payload:?}"));
        let length = after[..digits].iter().fold(0usize, |n, &d| {
            assert!(d <= 9, "length digit {d} in v3 binary payload {payload:?}");
            n * 10 + usize::from(d)
        });
        let body = &after[digits + 1..];
        assert!(
            body.len() >= length,
            "v3 binary payload {payload:?} shorter than its lengths"
        );
        let (packet, tail) = body.split_at(length);
        packets.push(match kind {
            0 => V3Binary::Text(String::from_utf8(packet.to_vec()).expect("UTF-8 string packet")),
            1 => V3Binary::Binary(packet.to_vec()),
            other => panic!("packet kind {other} in v3 binary payload {payload:?}"),
        });
        rest = tail;
    }
    packets
}

/// What a WebSocket client sees next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Frame {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame, the end of the stream, or a transport error.
    Closed,
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw WebSocket.
pub(super) struct Ws {
    stream: Stream,
}

impl Ws {
    /// Opens `url`; fails the test unless the server switches protocols.
    pub(super) async fn connect(url: &str) -> Self {
        match Self::try_connect(url).await {
            Ok(ws) => ws,
            Err(status) => panic!("WebSocket {url} refused: HTTP {status}"),
        }
    }

    /// Opens `url`: the WebSocket, or the status of the refusal.
    pub(super) async fn try_connect(url: &str) -> Result<Self, u16> {
        let request = url.into_client_request().expect("WebSocket request");
        let attempt = tokio_tungstenite::connect_async_tls_with_config(request, None, true, None);
        let Ok(outcome) = tokio::time::timeout(WAIT, attempt).await else {
            panic!("WebSocket handshake with {url} took over {WAIT:?}");
        };
        match outcome {
            Ok((stream, _)) => Ok(Self { stream }),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("WebSocket handshake with {url}: {e}"),
        }
    }

    pub(super) async fn send_text(&mut self, text: &str) {
        self.send(Message::text(text)).await;
    }

    pub(super) async fn send_binary(&mut self, data: &[u8]) {
        self.send(Message::binary(data.to_vec())).await;
    }

    async fn send(&mut self, message: Message) {
        tokio::time::timeout(WAIT, self.stream.send(message))
            .await
            .expect("WebSocket send took too long")
            .expect("WebSocket send failed");
    }

    /// The next frame within `within`, or `None`.
    pub(super) async fn next_within(&mut self, within: Duration) -> Option<Frame> {
        let deadline = Instant::now() + within;
        loop {
            let message = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return None,
                Ok(None | Some(Err(_))) => return Some(Frame::Closed),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => return Some(Frame::Text(text.as_str().to_owned())),
                Message::Binary(data) => return Some(Frame::Binary(data.to_vec())),
                Message::Close(_) => return Some(Frame::Closed),
                // WebSocket-level control frames are not Engine.IO's.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// The next frame; fails the test after [`WAIT`], naming `what` was awaited.
    pub(super) async fn next(&mut self, what: &str) -> Frame {
        self.next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("{what}: nothing within {WAIT:?}"))
    }

    /// The next frame that is not an Engine.IO v4 PING (`2`); the PINGs on the way are
    /// answered (`3`), as a client does.
    pub(super) async fn next_data(&mut self, what: &str) -> Frame {
        let deadline = Instant::now() + WAIT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.next_within(remaining).await {
                None => panic!("{what}: nothing but pings within {WAIT:?}"),
                Some(Frame::Text(text)) if text == "2" => self.send_text("3").await,
                Some(frame) => return frame,
            }
        }
    }

    /// The next text frame other than a PING; fails on anything else.
    pub(super) async fn next_text(&mut self, what: &str) -> String {
        match self.next_data(what).await {
            Frame::Text(text) => text,
            other => panic!("{what}: expected a text frame, got {other:?}"),
        }
    }

    /// Waits for the server to close the WebSocket, whatever frames come first.
    pub(super) async fn expect_closed(&mut self, what: &str) {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.next_within(remaining).await {
                Some(Frame::Closed) => return,
                Some(frame) => seen.push(frame),
                None => panic!("{what}: still open after {WAIT:?} (frames: {seen:?})"),
            }
        }
    }

    /// The open packet's JSON, from the first frame.
    pub(super) async fn open_packet(&mut self) -> Value {
        let frame = self.next("the Engine.IO open packet").await;
        let Frame::Text(text) = &frame else {
            panic!("expected the open packet, got {frame:?}");
        };
        serde_json::from_str(
            text.strip_prefix('0')
                .unwrap_or_else(|| panic!("not an open packet: {text:?}")),
        )
        .unwrap_or_else(|e| panic!("open packet {text:?}: {e}"))
    }
}

/// Asserts that the server refuses the WebSocket at `url` or closes it before any Engine.IO
/// packet: a browser sees `close` either way.
pub(super) async fn assert_ws_closed(url: &str) {
    match Ws::try_connect(url).await {
        Err(status) => assert!(
            (400..500).contains(&status),
            "WebSocket {url} refused with HTTP {status}, not a client error"
        ),
        Ok(mut ws) => {
            let first = ws
                .next(&format!("the server closing WebSocket {url}"))
                .await;
            assert_eq!(
                first,
                Frame::Closed,
                "WebSocket {url}: the server sent a frame instead of closing"
            );
        }
    }
}
