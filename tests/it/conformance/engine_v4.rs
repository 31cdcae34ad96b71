//! Engine.IO protocol v4 (`engine.io-protocol/v4-current.md` and its test suite): the
//! handshake and its errors, long-polling payloads, the heartbeat and its timing, closing a
//! session, and the upgrade from long-polling to WebSocket. The server's Engine.IO endpoint is
//! `/engine.io/`, as in the document. Messages carry Socket.IO packets to the echo namespace
//! (see the module doc of `conformance`).

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    assert_around, config, echo_server,
    raw::{self, Conn, Frame, Polling, SEPARATOR, Ws, assert_ws_closed},
};
use crate::support::WAIT;

/// The Engine.IO endpoint of these tests.
const PATH: &str = "/engine.io/";
/// A session id of the right form that no session has.
const UNKNOWN_SID: &str = "AAAAAAAAAAAAAAHs";
/// How long a poll must stay unanswered to count as pending.
const PENDING: Duration = Duration::from_millis(50);

/// The test server's TOML with this heartbeat.
fn engine(ping_interval_ms: u64, ping_timeout_ms: u64) -> String {
    config("/engine.io", ping_interval_ms, ping_timeout_ms)
}

/// A heartbeat slower than any scenario here: no PING is due while one runs.
fn quiet() -> String {
    engine(25_000, 20_000)
}

fn ws_url(addr: std::net::SocketAddr, query: &str) -> String {
    format!("ws://{addr}{PATH}?{query}")
}

/// Asserts an open packet's fields: exactly the five the document lists, with the server's
/// settings.
fn assert_open_packet(open: &Value, upgrades: &Value, ping_interval: u64, ping_timeout: u64) {
    let mut keys: Vec<_> = open.as_object().expect("open JSON object").keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ],
        "{open}"
    );
    assert!(
        open["sid"].as_str().is_some_and(|s| !s.is_empty()),
        "{open}"
    );
    assert_eq!(&open["upgrades"], upgrades, "{open}");
    assert_eq!(open["pingInterval"], json!(ping_interval), "{open}");
    assert_eq!(open["pingTimeout"], json!(ping_timeout), "{open}");
    assert_eq!(open["maxPayload"], json!(super::MAX_PAYLOAD), "{open}");
}

/// Connects the long-polling session to the echo's `/` namespace: `40` posted, the CONNECT
/// answer and the echo's `auth` event received.
async fn connect_root(session: &Polling) {
    let posted = session.post("40").await;
    assert_eq!((posted.status, posted.text()), (200, "ok"), "POST 40");
    let packets = session.collect_v4(2).await;
    assert!(packets[0].starts_with("40{\"sid\":"), "{packets:?}");
    assert_eq!(packets[1], r#"42["auth",{}]"#, "{packets:?}");
}

/// Connects the WebSocket to the echo's `/` namespace.
async fn ws_connect_root(ws: &mut Ws) {
    ws.send_text("40").await;
    let answer = ws.next_text("the CONNECT answer").await;
    assert!(answer.starts_with("40{\"sid\":"), "{answer}");
    assert_eq!(ws.next_text("the auth event").await, r#"42["auth",{}]"#);
}

/// Asserts that a `message` sent over the WebSocket comes back.
async fn assert_ws_echo(ws: &mut Ws, text: &str) {
    ws.send_text(&format!(r#"42["message","{text}"]"#)).await;
    assert_eq!(
        ws.next_text("the echo").await,
        format!(r#"42["message-back","{text}"]"#)
    );
}

// ---- handshake -------------------------------------------------------------------------

#[tokio::test]
async fn polling_handshake_opens_a_session() {
    let server = echo_server(&engine(300, 200)).await;
    let response = raw::request(
        server.addr,
        "GET",
        &format!("{PATH}?EIO=4&transport=polling"),
        b"",
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    let body = response.text();
    let open: Value = serde_json::from_str(body.strip_prefix('0').expect("an open packet"))
        .unwrap_or_else(|e| panic!("the body is one open packet: {body:?}: {e}"));
    assert_open_packet(&open, &json!(["websocket"]), 300, 200);
}

#[tokio::test]
async fn polling_handshake_without_a_valid_eio_is_refused() {
    let server = echo_server(&quiet()).await;
    for query in ["transport=polling", "EIO=abc&transport=polling"] {
        let response = raw::request(server.addr, "GET", &format!("{PATH}?{query}"), b"").await;
        assert_eq!(response.status, 400, "{query}: {response:?}");
    }
}

#[tokio::test]
async fn polling_handshake_without_a_valid_transport_is_refused() {
    let server = echo_server(&quiet()).await;
    for query in ["EIO=4", "EIO=4&transport=abc"] {
        let response = raw::request(server.addr, "GET", &format!("{PATH}?{query}"), b"").await;
        assert_eq!(response.status, 400, "{query}: {response:?}");
    }
}

#[tokio::test]
async fn polling_handshake_with_another_method_is_refused() {
    let server = echo_server(&quiet()).await;
    for method in ["POST", "PUT"] {
        let response = raw::request(
            server.addr,
            method,
            &format!("{PATH}?EIO=4&transport=polling"),
            b"",
        )
        .await;
        assert_eq!(response.status, 400, "{method}: {response:?}");
    }
}

#[tokio::test]
async fn websocket_handshake_opens_a_session() {
    let server = echo_server(&engine(300, 200)).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=4&transport=websocket")).await;
    let open = ws.open_packet().await;
    assert_open_packet(&open, &json!([]), 300, 200);
}

#[tokio::test]
async fn websocket_handshake_without_a_valid_eio_is_closed() {
    let server = echo_server(&quiet()).await;
    for query in ["transport=websocket", "EIO=abc&transport=websocket"] {
        assert_ws_closed(&ws_url(server.addr, query)).await;
    }
}

#[tokio::test]
async fn websocket_handshake_without_a_valid_transport_is_closed() {
    let server = echo_server(&quiet()).await;
    for query in ["EIO=4", "EIO=4&transport=abc"] {
        assert_ws_closed(&ws_url(server.addr, query)).await;
    }
}

#[tokio::test]
async fn polling_requests_for_an_unknown_session_are_refused() {
    let server = echo_server(&quiet()).await;
    let target = format!("{PATH}?EIO=4&transport=polling&sid={UNKNOWN_SID}");
    let poll = raw::request(server.addr, "GET", &target, b"").await;
    assert_eq!(poll.status, 400, "GET: {poll:?}");
    let post = raw::request(server.addr, "POST", &target, b"40").await;
    assert_eq!(post.status, 400, "POST: {post:?}");
}

// ---- errors end the connection ---------------------------------------------------------

/// Headers of a WebSocket upgrade request.
const UPGRADE_HEADERS: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

/// Sends one erroneous Engine.IO request on a connection of its own; what is wrong with the
/// answer, if anything: a client error, its whole body (`Content-Length` bytes), a
/// `Connection: close` header, and then the server closing the connection.
async fn error_answer_problems(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<String> {
    let within = Duration::from_secs(2);
    let mut conn = Conn::open(addr).await;
    conn.send(method, target, headers, body).await;
    let request = format!("{method} {target}");
    let response = match conn.read_response(within).await {
        Ok(response) => response,
        Err(why) => return Some(format!("{request}: {why}")),
    };
    let mut problems = Vec::new();
    if !(400..500).contains(&response.status) {
        problems.push(format!("status {}", response.status));
    }
    match response.declared_length {
        None => problems.push("no Content-Length".to_owned()),
        Some(length) if length != response.body.len() => problems.push(format!(
            "body of {} bytes ({:?}) where Content-Length says {length}",
            response.body.len(),
            String::from_utf8_lossy(&response.body)
        )),
        Some(_) => {}
    }
    if !response
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    {
        problems.push(format!(
            "Connection header {:?}, not \"close\"",
            response.header("connection")
        ));
    }
    if !conn.closed_by_server(within).await {
        problems.push(format!("the connection still open {within:?} later"));
    }
    (!problems.is_empty())
        .then(|| format!("{request} → {}: {}", response.status, problems.join("; ")))
}

/// Every erroneous request (as long-polling, or with WebSocket upgrade headers) gets its whole
/// error answer and then the end of its connection.
async fn assert_errors_end_the_connection(recovery: bool, upgrade: bool) {
    let mut cfg = quiet();
    if recovery {
        cfg.push_str("[recovery]\nenabled = true\n");
    }
    let server = echo_server(&cfg).await;
    let transport = if upgrade { "websocket" } else { "polling" };
    let mut requests = vec![
        ("GET", format!("{PATH}?transport={transport}"), Vec::new()),
        (
            "GET",
            format!("{PATH}?EIO=abc&transport={transport}"),
            Vec::new(),
        ),
        ("GET", format!("{PATH}?EIO=4"), Vec::new()),
        ("GET", format!("{PATH}?EIO=4&transport=abc"), Vec::new()),
        (
            "GET",
            format!("{PATH}?EIO=4&transport={transport}&sid={UNKNOWN_SID}"),
            Vec::new(),
        ),
    ];
    if !upgrade {
        requests.push((
            "POST",
            format!("{PATH}?EIO=4&transport=polling"),
            b"40".to_vec(),
        ));
        requests.push((
            "POST",
            format!("{PATH}?EIO=4&transport=polling&sid={UNKNOWN_SID}"),
            b"40".to_vec(),
        ));
    }
    let headers: &[(&str, &str)] = if upgrade { &UPGRADE_HEADERS } else { &[] };
    let problems: Vec<String> = join_all(requests.iter().map(|(method, target, body)| {
        error_answer_problems(server.addr, method, target, headers, body)
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    assert!(
        problems.is_empty(),
        "error answers that are incomplete or keep the connection:\n{}",
        problems.join("\n")
    );
}

#[tokio::test]
async fn polling_request_errors_end_the_connection() {
    assert_errors_end_the_connection(false, false).await;
}

#[tokio::test]
async fn polling_request_errors_end_the_connection_with_recovery() {
    assert_errors_end_the_connection(true, false).await;
}

#[tokio::test]
async fn websocket_request_errors_end_the_connection() {
    assert_errors_end_the_connection(false, true).await;
}

#[tokio::test]
async fn websocket_request_errors_end_the_connection_with_recovery() {
    assert_errors_end_the_connection(true, true).await;
}

// ---- messages over long-polling -------------------------------------------------------------

#[tokio::test]
async fn polling_payload_with_one_packet() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    connect_root(&session).await;
    let posted = session.post(r#"42["message","hello"]"#).await;
    assert_eq!((posted.status, posted.text()), (200, "ok"));
    assert_eq!(
        session.collect_v4(1).await,
        [r#"42["message-back","hello"]"#]
    );
}

#[tokio::test]
async fn polling_payload_with_several_packets() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    connect_root(&session).await;
    let payload = [1, 2, 3]
        .map(|n| format!(r#"42["message","test{n}"]"#))
        .join(&SEPARATOR.to_string());
    let posted = session.post(&payload).await;
    assert_eq!((posted.status, posted.text()), (200, "ok"));
    assert_eq!(
        session.collect_v4(3).await,
        [1, 2, 3].map(|n| format!(r#"42["message-back","test{n}"]"#))
    );
}

#[tokio::test]
async fn polling_payload_with_text_and_binary_packets() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    connect_root(&session).await;
    // A BINARY_EVENT and its attachment <01 02 03 04>, base64 with the `b` prefix.
    let posted = session
        .post(&format!(
            r#"451-["message",{{"_placeholder":true,"num":0}}]{SEPARATOR}bAQIDBA=="#
        ))
        .await;
    assert_eq!((posted.status, posted.text()), (200, "ok"));
    assert_eq!(
        session.collect_v4(2).await,
        [
            r#"451-["message-back",{"_placeholder":true,"num":0}]"#,
            "bAQIDBA=="
        ]
    );
}

#[tokio::test]
async fn polling_invalid_packet_closes_the_session() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    let mut conn = Conn::open(server.addr).await;
    conn.send("POST", &session.target(), &[], b"abc").await;
    // A connection closed without an answer is as good as a 400 (the suite allows both).
    if let Ok(response) = conn.read_response(WAIT).await {
        assert_eq!(response.status, 400, "POST abc: {response:?}");
    }
    let poll = session.get().await;
    assert_eq!(poll.status, 400, "poll after an invalid packet: {poll:?}");
}

#[tokio::test]
async fn polling_duplicate_get_closes_the_session() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    let mut first = session.start_get().await;
    first
        .silent_for(PENDING)
        .await
        .unwrap_or_else(|why| panic!("the first poll of a fresh session is not pending: {why}"));
    let second = session.start_get().await.response("duplicate poll").await;
    assert!(
        [400, 500].contains(&second.status),
        "duplicate poll: {second:?}"
    );
    let first = first.response("first poll").await;
    assert_eq!((first.status, first.text()), (200, "1"), "first poll");
    let after = session.get().await;
    assert_eq!(after.status, 400, "poll after the duplicate: {after:?}");
}

#[tokio::test]
async fn polling_cancelled_get_closes_the_session() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    let mut cancelled = session.start_get().await;
    cancelled
        .silent_for(PENDING)
        .await
        .unwrap_or_else(|why| panic!("the first poll of a fresh session is not pending: {why}"));
    drop(cancelled);
    let after = session
        .start_get()
        .await
        .read_response(WAIT)
        .await
        .unwrap_or_else(|why| {
            panic!("poll after a cancelled poll: {why} (the session is still open)")
        });
    assert_eq!(after.status, 400, "poll after a cancelled poll: {after:?}");
}

#[tokio::test]
async fn polling_concurrent_post_closes_the_session() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    connect_root(&session).await;
    // A POST whose body is still coming: its first packet has been handled (its echo is
    // polled) while the rest is not sent yet.
    let first = format!(r#"42["message","first"]{SEPARATOR}"#);
    let rest = r#"42["message","rest"]"#;
    let mut active = Conn::open(server.addr).await;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n{first}",
        session.target(),
        server.addr,
        first.len() + rest.len()
    );
    active.write(head.as_bytes()).await;
    assert_eq!(
        session.collect_v4(1).await,
        [r#"42["message-back","first"]"#]
    );
    let second = session.post(r#"42["message","second"]"#).await;
    assert_eq!(
        second.status, 400,
        "a second POST while one is active: {second:?}"
    );
    let poll = session.get().await;
    assert_eq!(poll.status, 400, "poll after two active POSTs: {poll:?}");
}

// ---- messages over WebSocket -----------------------------------------------------------

#[tokio::test]
async fn websocket_text_packet() {
    let server = echo_server(&quiet()).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=4&transport=websocket")).await;
    ws.open_packet().await;
    ws_connect_root(&mut ws).await;
    assert_ws_echo(&mut ws, "hello").await;
}

#[tokio::test]
async fn websocket_binary_packet() {
    let server = echo_server(&quiet()).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=4&transport=websocket")).await;
    ws.open_packet().await;
    ws_connect_root(&mut ws).await;
    ws.send_text(r#"451-["message",{"_placeholder":true,"num":0}]"#)
        .await;
    // Binary frames carry the data as it is, without a packet type.
    ws.send_binary(&[1, 2, 3, 4]).await;
    assert_eq!(
        ws.next_text("the echoed BINARY_EVENT").await,
        r#"451-["message-back",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(
        ws.next_data("the echoed attachment").await,
        Frame::Binary(vec![1, 2, 3, 4])
    );
}

#[tokio::test]
async fn websocket_invalid_packet_closes_the_session() {
    let server = echo_server(&quiet()).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=4&transport=websocket")).await;
    ws.open_packet().await;
    ws.send_text("abc").await;
    ws.expect_closed("the session after an invalid packet")
        .await;
}

// ---- heartbeat --------------------------------------------------------------------------

#[tokio::test]
async fn polling_ping_pong() {
    let server = echo_server(&engine(300, 200)).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    for round in 1..=3 {
        let poll = session.get().await;
        assert_eq!((poll.status, poll.text()), (200, "2"), "ping {round}");
        let pong = session.post("3").await;
        assert_eq!(pong.status, 200, "pong {round}: {pong:?}");
    }
}

#[tokio::test]
async fn websocket_ping_pong() {
    let server = echo_server(&engine(300, 200)).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=4&transport=websocket")).await;
    ws.open_packet().await;
    for round in 1..=3 {
        assert_eq!(
            ws.next(&format!("ping {round}")).await,
            Frame::Text("2".to_owned()),
            "ping {round}"
        );
        ws.send_text("3").await;
    }
}

/// The heartbeat of the timing tests: long enough that scheduling noise stays well inside
/// the ±10 % asserted.
const TIMED_INTERVAL: u64 = 1500;
const TIMED_TIMEOUT: u64 = 500;

#[tokio::test]
async fn polling_first_ping_after_ping_interval() {
    let server = echo_server(&engine(TIMED_INTERVAL, TIMED_TIMEOUT)).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    let opened = Instant::now();
    let poll = session.get().await;
    let elapsed = opened.elapsed();
    assert_eq!((poll.status, poll.text()), (200, "2"), "the first poll");
    assert_around(
        "the first PING came",
        elapsed,
        Duration::from_millis(TIMED_INTERVAL),
    );
}

#[tokio::test]
async fn websocket_first_ping_after_ping_interval() {
    let server = echo_server(&engine(TIMED_INTERVAL, TIMED_TIMEOUT)).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=4&transport=websocket")).await;
    ws.open_packet().await;
    let opened = Instant::now();
    let first = ws.next("the first PING").await;
    let elapsed = opened.elapsed();
    assert_eq!(first, Frame::Text("2".to_owned()), "the first frame");
    assert_around(
        "the first PING came",
        elapsed,
        Duration::from_millis(TIMED_INTERVAL),
    );
}

#[tokio::test]
async fn polling_ping_timeout_closes_the_session() {
    let server = echo_server(&engine(TIMED_INTERVAL, TIMED_TIMEOUT)).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    let opened = Instant::now();
    let ping = session.get().await;
    assert_eq!((ping.status, ping.text()), (200, "2"), "the first poll");
    // Never answered: the next poll stays pending until the server gives up on the session.
    let pending = session.get().await;
    let elapsed = opened.elapsed();
    assert_eq!(
        pending.status, 200,
        "the poll pending at the close: {pending:?}"
    );
    assert_around(
        "the session of a client that never answers closed",
        elapsed,
        Duration::from_millis(TIMED_INTERVAL + TIMED_TIMEOUT),
    );
    let after = session.get().await;
    assert_eq!(after.status, 400, "poll after the ping timeout: {after:?}");
}

#[tokio::test]
async fn websocket_ping_timeout_closes_the_session() {
    let server = echo_server(&engine(TIMED_INTERVAL, TIMED_TIMEOUT)).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=4&transport=websocket")).await;
    ws.open_packet().await;
    let opened = Instant::now();
    ws.expect_closed("the session of a client that never answers a PING")
        .await;
    assert_around(
        "the session of a client that never answers closed",
        opened.elapsed(),
        Duration::from_millis(TIMED_INTERVAL + TIMED_TIMEOUT),
    );
}

// ---- close ------------------------------------------------------------------------------

#[tokio::test]
async fn polling_close_packet_closes_the_session() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    let mut pending = session.start_get().await;
    pending
        .silent_for(PENDING)
        .await
        .unwrap_or_else(|why| panic!("the first poll of a fresh session is not pending: {why}"));
    let closed = session.post("1").await;
    assert_eq!(closed.status, 200, "POST 1: {closed:?}");
    let pending = pending.response("the poll pending at the close").await;
    assert_eq!(
        (pending.status, pending.text()),
        (200, "6"),
        "the poll pending at the close"
    );
    let after = session.get().await;
    assert_eq!(after.status, 400, "poll after the close: {after:?}");
}

#[tokio::test]
async fn websocket_close_packet_closes_the_session() {
    let server = echo_server(&quiet()).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=4&transport=websocket")).await;
    ws.open_packet().await;
    ws.send_text("1").await;
    ws.expect_closed("the session after a close packet").await;
}

// ---- upgrade ----------------------------------------------------------------------------

/// Probes and upgrades `session` to a WebSocket, then connects `/` over it: once the CONNECT
/// answer comes on the WebSocket, the server has taken the upgrade packet sent before it.
async fn upgrade(session: &Polling) -> Ws {
    let mut ws = Ws::connect(&session.upgrade_url()).await;
    ws.send_text("2probe").await;
    assert_eq!(
        ws.next("the probe answer").await,
        Frame::Text("3probe".to_owned())
    );
    ws.send_text("5").await;
    ws_connect_root(&mut ws).await;
    ws
}

#[tokio::test]
async fn upgrade_from_polling_to_websocket() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    let mut ws = Ws::connect(&session.upgrade_url()).await;
    ws.send_text("2probe").await;
    assert_eq!(
        ws.next("the probe answer").await,
        Frame::Text("3probe".to_owned())
    );
    let poll = session.get().await;
    assert_eq!(
        (poll.status, poll.text()),
        (200, "6"),
        "a poll during the upgrade gets a noop"
    );
    ws.send_text("5").await;
    ws_connect_root(&mut ws).await;
    assert_ws_echo(&mut ws, "hello").await;
}

/// A poll left pending on a connected session. A poll answered with a PING meanwhile is
/// answered and sent again, as a client does: this scenario is about the upgrade, whenever
/// the heartbeat sends its PINGs.
async fn pending_poll(session: &Polling) -> Conn {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut poll = session.start_get().await;
        let Err(why) = poll.silent_for(PENDING).await else {
            return poll;
        };
        let answer = poll.response("a poll expected to stay pending").await;
        assert!(
            answer.text() == "2" && Instant::now() < deadline,
            "a poll with nothing but PINGs to send is not pending: {why}"
        );
        let pong = session.post("3").await;
        assert_eq!(pong.status, 200, "pong: {pong:?}");
    }
}

#[tokio::test]
async fn upgrade_answers_a_pending_poll_with_noop() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    connect_root(&session).await;
    let mut pending = pending_poll(&session).await;
    let mut ws = Ws::connect(&session.upgrade_url()).await;
    let pending = pending.response("the poll pending at the upgrade").await;
    assert_eq!(
        (pending.status, pending.text()),
        (200, "6"),
        "the poll pending at the upgrade"
    );
    ws.send_text("2probe").await;
    assert_eq!(
        ws.next("the probe answer").await,
        Frame::Text("3probe".to_owned())
    );
    ws.send_text("5").await;
    assert_ws_echo(&mut ws, "after the upgrade").await;
}

#[tokio::test]
async fn polls_after_the_upgrade_are_refused() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    let mut ws = upgrade(&session).await;
    let poll = session.get().await;
    assert_eq!(poll.status, 400, "poll after the upgrade: {poll:?}");
    assert_ws_echo(&mut ws, "hello").await;
}

#[tokio::test]
async fn a_second_websocket_after_the_upgrade_is_closed() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 4, "").await;
    let mut ws = upgrade(&session).await;
    assert_ws_closed(&session.upgrade_url()).await;
    assert_ws_echo(&mut ws, "hello").await;
}

#[tokio::test]
async fn a_second_websocket_of_a_websocket_session_is_closed() {
    let server = echo_server(&quiet()).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=4&transport=websocket")).await;
    let sid = ws.open_packet().await["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    assert_ws_closed(&ws_url(
        server.addr,
        &format!("EIO=4&transport=websocket&sid={sid}"),
    ))
    .await;
    ws_connect_root(&mut ws).await;
    assert_ws_echo(&mut ws, "hello").await;
}
