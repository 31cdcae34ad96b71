//! Engine.IO sessions at the edge (see [`crate::edge`]): on long-polling, the first PING held
//! back and answered, cancelled polls closing their session, and the count of a session that
//! ends; a session's WebSocket, opened or upgraded to, tied to its connection.
//!
//! The middleware sits inside admission (a handshake carries its ticket) and outside the
//! engine, which it calls again itself through `Next`: a PONG or a close packet it owes the
//! engine goes as a `POST` of the session, and a poll whose only packet was the held-back PING
//! is asked again.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use axum::{
    body::{Body, Bytes, to_bytes},
    extract::{Request, State},
    http::{Method, StatusCode, Uri, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures_util::{Stream, StreamExt};

use super::{
    connection::ConnectionHandle,
    eio3_compat,
    sessions::{Entry, PollingSessions},
};
use crate::limits::Ticket;

/// Engine.IO v4 payload separator.
const SEPARATOR: u8 = 0x1e;
/// Largest handshake answer read for its session id (an open packet is some 100 bytes).
const MAX_HANDSHAKE_ANSWER: usize = 16 * 1024;

/// What the middleware needs; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct PollingEdge {
    /// The Engine.IO path, without its trailing `/`.
    pub engine_path: Arc<str>,
    /// Largest poll answer read (the Engine.IO payload limit).
    pub max_payload: usize,
    /// The followed sessions.
    pub sessions: PollingSessions,
}

/// An Engine.IO request, as far as the edge cares.
enum Kind {
    /// A long-polling handshake.
    Handshake { eio4: bool },
    /// A session opened by a WebSocket.
    WebSocketHandshake,
    /// A poll (`GET`) of a session.
    Poll(String),
    /// A `POST` of a session.
    Post(String),
    /// A WebSocket upgrade of a session.
    Upgrade(String),
}

impl PollingEdge {
    fn kind(&self, request: &Request) -> Option<Kind> {
        if request.uri().path().trim_end_matches('/') != &*self.engine_path {
            return None;
        }
        let query = request.uri().query().unwrap_or_default();
        let (mut sid, mut polling, mut eio4) = (None, false, false);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sid", value)) => sid = Some(value),
                Some(("transport", value)) => polling = value == "polling",
                Some(("EIO", value)) => eio4 = value == "4",
                _ => {}
            }
        }
        let upgrade = request.headers().contains_key(header::UPGRADE);
        match (request.method(), sid) {
            (&Method::GET, Some(sid)) if upgrade => Some(Kind::Upgrade(sid.to_owned())),
            (&Method::GET, Some(sid)) if polling => Some(Kind::Poll(sid.to_owned())),
            (&Method::GET, None) if upgrade => Some(Kind::WebSocketHandshake),
            (&Method::GET, None) if polling => Some(Kind::Handshake { eio4 }),
            (&Method::POST, Some(sid)) if polling && eio4 => Some(Kind::Post(sid.to_owned())),
            _ => None,
        }
    }
}

/// Middleware: see the module documentation.
pub(crate) async fn follow(
    State(edge): State<PollingEdge>,
    request: Request,
    next: Next,
) -> Response {
    match edge.kind(&request) {
        None => next.run(request).await,
        Some(Kind::Handshake { eio4 }) => handshake(&edge, eio4, request, next).await,
        Some(Kind::WebSocketHandshake) => {
            // The session lives exactly as long as this connection.
            let extensions = request.extensions();
            if let (Some(ticket), Some(handle)) = (
                extensions.get::<Arc<Ticket>>(),
                extensions.get::<ConnectionHandle>(),
            ) {
                handle.carries_session(ticket.clone());
            }
            next.run(request).await
        }
        Some(Kind::Poll(sid)) => poll(&edge, sid, request, next).await,
        Some(Kind::Post(sid)) => post(&edge, &sid, request, next).await,
        Some(Kind::Upgrade(sid)) => {
            if edge.sessions.get(&sid).is_none() {
                // The engine would answer 101 and then close: say it as the other requests
                // for an unknown session hear it.
                return unknown_session();
            }
            let handle = request.extensions().get::<ConnectionHandle>().cloned();
            let response = next.run(request).await;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS
                && let Some(ticket) = edge.sessions.upgraded(&sid)
                && let Some(handle) = handle
            {
                // From now on the session lives on this connection (an upgrade that fails after
                // its 101 leaves the session on long-polling uncounted: rare, and bounded by the
                // session's life).
                handle.carries_session(ticket);
            }
            response
        }
    }
}

/// The engine's answer to a request naming a session it does not have.
fn unknown_session() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"code":"1","message":"Session ID unknown"}"#,
    )
        .into_response()
}

/// Answers a handshake and follows the session it opened.
async fn handshake(edge: &PollingEdge, eio4: bool, request: Request, next: Next) -> Response {
    let ticket = request.extensions().get::<Arc<Ticket>>().cloned();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_HANDSHAKE_ANSWER).await else {
        tracing::warn!("handshake answer unreadable; dropped");
        return Response::from_parts(parts, Body::empty());
    };
    if let Some(sid) = open_packet_sid(&bytes) {
        edge.sessions.opened(sid, ticket.as_ref(), eio4);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The session id in an open packet (text or binary payload, Engine.IO v3 or v4).
fn open_packet_sid(payload: &[u8]) -> Option<&str> {
    const KEY: &[u8] = br#""sid":""#;
    let start = payload.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = payload[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&payload[start..start + len]).ok()
}

/// Closes the session when the poll it guards is dropped unanswered: the client went away.
struct CancelGuard<'a> {
    edge: &'a PollingEdge,
    sid: &'a str,
    uri: Uri,
    next: Next,
    eio4: bool,
    armed: bool,
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        tracing::debug!(
            sid = self.sid,
            "poll cancelled by the client; session closed"
        );
        self.edge.sessions.ended(self.sid);
        let close: &'static str = if self.eio4 { "1" } else { "1:1" };
        let request = packets_post(&self.uri, close);
        let next = self.next.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                next.run(request).await;
            });
        }
    }
}

/// A poll of a followed session: its first PING held back, its cancellation watched, a v3
/// session's attachments put in the v3 form.
async fn poll(edge: &PollingEdge, sid: String, request: Request, next: Next) -> Response {
    let Some(entry) = edge.sessions.get(&sid) else {
        return next.run(request).await;
    };
    let response = first_ping_held_back(edge, &sid, &entry, request, next).await;
    if entry.eio4 || response.status() != StatusCode::OK {
        return response;
    }
    v3_attachments(edge, response).await
}

/// A v3 poll answer with its binary attachments in the v3 form.
async fn v3_attachments(edge: &PollingEdge, response: Response) -> Response {
    let (mut head, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, edge.max_payload.saturating_mul(2)).await else {
        tracing::warn!("poll answer unreadable; dropped");
        head.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(head, Body::empty());
    };
    let binary = head
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == b"application/octet-stream");
    let fixed = if binary {
        eio3_compat::attachments::binary_payload(&bytes)
    } else {
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(eio3_compat::attachments::text_payload)
            .map(String::into_bytes)
    };
    match fixed {
        Some(payload) => {
            head.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(head, Body::from(payload))
        }
        None => Response::from_parts(head, Body::from(bytes)),
    }
}

/// Runs a poll, holding back the session's first PING when it is still due, and closing the
/// session when the poll is dropped unanswered.
async fn first_ping_held_back(
    edge: &PollingEdge,
    sid: &str,
    entry: &Entry,
    request: Request,
    next: Next,
) -> Response {
    let mut guard = CancelGuard {
        edge,
        sid,
        uri: request.uri().clone(),
        next: next.clone(),
        eio4: entry.eio4,
        armed: true,
    };
    let response = if entry.first_ping_due {
        poll_without_first_ping(edge, sid, request, &next).await
    } else {
        next.run(request).await
    };
    guard.armed = false;
    response
}

/// A poll of a v4 session whose first PING is still due: the PING taken out and answered to
/// the engine, and the poll asked again (as it came) when that PING was all it carried.
async fn poll_without_first_ping(
    edge: &PollingEdge,
    sid: &str,
    request: Request,
    next: &Next,
) -> Response {
    let (parts, _) = request.into_parts();
    let poll = || {
        let mut again = Request::new(Body::empty());
        *again.method_mut() = Method::GET;
        *again.uri_mut() = parts.uri.clone();
        *again.version_mut() = parts.version;
        *again.headers_mut() = parts.headers.clone();
        *again.extensions_mut() = parts.extensions.clone();
        next.clone().run(again)
    };
    let response = poll().await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut head, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, edge.max_payload.saturating_mul(2)).await else {
        tracing::warn!("poll answer unreadable; dropped");
        head.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(head, Body::empty());
    };
    let Some(rest) = without_first_ping(&bytes) else {
        return Response::from_parts(head, Body::from(bytes));
    };
    edge.sessions.ping_answered(sid);
    next.clone().run(packets_post(&parts.uri, "3")).await;
    if rest.is_empty() {
        // The held-back PING was all there was: wait for what comes next.
        return poll().await;
    }
    head.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(head, Body::from(rest))
}

/// A v4 payload without its first PING packet, when it has one.
fn without_first_ping(payload: &[u8]) -> Option<Vec<u8>> {
    let mut records = payload.split(|&b| b == SEPARATOR);
    let at = records.position(|record| record == b"2")?;
    let rest: Vec<&[u8]> = payload
        .split(|&b| b == SEPARATOR)
        .enumerate()
        .filter_map(|(i, record)| (i != at).then_some(record))
        .collect();
    Some(rest.join(&SEPARATOR))
}

/// A `POST` of `packets` (an encoded payload) to the session of `uri`.
fn packets_post(uri: &Uri, packets: &'static str) -> Request {
    let mut request = Request::new(Body::from(packets));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.clone();
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain;charset=UTF-8"),
    );
    request
}

/// A `POST` of a followed v4 session: a close packet in it ends the session's count; a second
/// `POST` while one is under way closes the session (the v4 document's rule).
async fn post(edge: &PollingEdge, sid: &str, request: Request, next: Next) -> Response {
    if edge.sessions.get(sid).is_none() {
        return next.run(request).await;
    }
    if !edge.sessions.start_post(sid) {
        tracing::debug!(sid, "a second POST while one is under way; session closed");
        edge.sessions.ended(sid);
        next.run(packets_post(request.uri(), "1")).await;
        return StatusCode::BAD_REQUEST.into_response();
    }
    let closes = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::from_stream(CloseScan {
        inner: body.into_data_stream(),
        record: Record::Start,
        closes: closes.clone(),
    });
    let response = {
        let _posting = PostUnderWay { edge, sid };
        next.run(Request::from_parts(parts, body)).await
    };
    if closes.load(Ordering::Acquire) && response.status() == StatusCode::OK {
        edge.sessions.ended(sid);
    }
    response
}

/// A session's `POST` under way, until it is answered or dropped.
struct PostUnderWay<'a> {
    edge: &'a PollingEdge,
    sid: &'a str,
}

impl Drop for PostUnderWay<'_> {
    fn drop(&mut self) {
        self.edge.sessions.post_done(self.sid);
    }
}

/// Where [`CloseScan`] is in the current record of a v4 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    /// At its first byte.
    Start,
    /// It is `1` so far: a close packet if it ends here.
    Close,
    /// Anything else.
    Other,
}

/// A request body passed through as it comes, noting whether it holds a close packet.
struct CloseScan<S> {
    inner: S,
    record: Record,
    closes: Arc<AtomicBool>,
}

impl<S> CloseScan<S> {
    fn note(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.record = match (self.record, byte) {
                (Record::Close, SEPARATOR) => {
                    self.closes.store(true, Ordering::Release);
                    Record::Start
                }
                (_, SEPARATOR) => Record::Start,
                (Record::Start, b'1') => Record::Close,
                _ => Record::Other,
            };
        }
    }
}

impl<S, E> Stream for CloseScan<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(bytes))) => {
                let bytes = bytes.clone();
                self.note(&bytes);
            }
            Poll::Ready(None) if self.record == Record::Close => {
                self.closes.store(true, Ordering::Release);
            }
            _ => {}
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ping_is_taken_out_of_a_payload() {
        assert_eq!(without_first_ping(b"2").unwrap(), b"");
        assert_eq!(
            without_first_ping(b"2\x1e40{\"sid\":\"x\"}").unwrap(),
            b"40{\"sid\":\"x\"}"
        );
        assert_eq!(without_first_ping(b"4a\x1e2\x1e2").unwrap(), b"4a\x1e2");
        assert_eq!(without_first_ping(b"42[\"2\"]\x1e6"), None);
        assert_eq!(without_first_ping(b"22"), None);
    }

    #[test]
    fn the_session_id_is_read_from_open_packets_of_both_versions() {
        assert_eq!(
            open_packet_sid(br#"0{"sid":"AbC-1","upgrades":["websocket"]}"#),
            Some("AbC-1")
        );
        assert_eq!(
            open_packet_sid(b"\x00\x09\x07\xff0{\"sid\":\"v3\",\"upgrades\":[]}\x00\x02\xff40"),
            Some("v3")
        );
        assert_eq!(open_packet_sid(b"0{}"), None);
    }

    async fn scanned(chunks: &[&'static [u8]]) -> bool {
        let closes = Arc::new(AtomicBool::new(false));
        let stream = futures_util::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, std::convert::Infallible>(Bytes::from_static(c))),
        );
        let mut scan = CloseScan {
            inner: stream,
            record: Record::Start,
            closes: closes.clone(),
        };
        while scan.next().await.is_some() {}
        closes.load(Ordering::Acquire)
    }

    #[tokio::test]
    async fn a_close_packet_is_seen_wherever_the_chunks_split() {
        assert!(scanned(&[b"1"]).await);
        assert!(scanned(&[b"40\x1e", b"1"]).await);
        assert!(scanned(&[b"3\x1e1", b"\x1e40"]).await);
        assert!(!scanned(&[b"1", b"0"]).await);
        assert!(!scanned(&[b"42[\"1\"]"]).await);
        assert!(!scanned(&[b"41"]).await);
        assert!(!scanned(&[b"2\x1e", b"11"]).await);
    }
}
