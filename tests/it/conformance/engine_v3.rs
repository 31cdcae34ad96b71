//! Engine.IO protocol v3 (`engine.io-protocol/v3.md` and its test suite), what
//! socket.io-client 2.x speaks: length-prefixed long-polling payloads (text, base64 and XHR2
//! binary), the heartbeat the client drives, closing a session, and the upgrade to WebSocket.
//! Under Engine.IO v3 the Socket.IO layer connects every session to `/` at once, so each
//! session first receives the echo's `40` and `auth` packets; the scenarios start after them.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    assert_around, config, echo_server,
    raw::{self, Conn, Frame, Polling, V3Binary, Ws, assert_ws_closed, v3_binary_packets},
};
use crate::support::WAIT;

const PATH: &str = "/engine.io/";
/// The reference test suite opens its sessions for clients without binary support.
const B64: &str = "&b64=1";

fn engine(ping_interval_ms: u64, ping_timeout_ms: u64) -> String {
    config("/engine.io", ping_interval_ms, ping_timeout_ms)
}

/// A heartbeat slower than any scenario here: no client PING is due while one runs.
fn quiet() -> String {
    engine(25_000, 20_000)
}

fn ws_url(addr: std::net::SocketAddr, query: &str) -> String {
    format!("ws://{addr}{PATH}?{query}")
}

/// A v3 payload of `packets`: each prefixed with its length in characters.
fn payload(packets: &[&str]) -> String {
    packets
        .iter()
        .map(|p| format!("{}:{p}", p.encode_utf16().count()))
        .collect()
}

/// The packets the Socket.IO layer sends a new session: the CONNECT of `/` and the echo's
/// `auth` event.
const CONNECT_PACKETS: [&str; 2] = ["40", r#"42["auth",{}]"#];

/// A long-polling session whose connect packets have been received.
async fn connected(server_addr: std::net::SocketAddr, extra: &str) -> Polling {
    let (session, _) = Polling::open(server_addr, PATH, 3, extra).await;
    assert_eq!(session.collect_v3(2).await, CONNECT_PACKETS);
    session
}

/// A WebSocket session whose connect packets have been received.
async fn ws_connected(server_addr: std::net::SocketAddr) -> Ws {
    let mut ws = Ws::connect(&ws_url(server_addr, "EIO=3&transport=websocket")).await;
    ws.open_packet().await;
    for packet in CONNECT_PACKETS {
        assert_eq!(ws.next(packet).await, Frame::Text(packet.to_owned()));
    }
    ws
}

fn assert_open_packet(open: &Value, upgrades: &Value, ping_interval: u64, ping_timeout: u64) {
    assert!(
        open["sid"].as_str().is_some_and(|s| !s.is_empty()),
        "{open}"
    );
    assert_eq!(&open["upgrades"], upgrades, "{open}");
    assert_eq!(open["pingInterval"], json!(ping_interval), "{open}");
    assert_eq!(open["pingTimeout"], json!(ping_timeout), "{open}");
    // Not part of v3; the suite allows it absent or the server's.
    assert!(
        [Value::Null, json!(super::MAX_PAYLOAD)].contains(&open["maxPayload"]),
        "{open}"
    );
}

// ---- handshake -------------------------------------------------------------------------

#[tokio::test]
async fn polling_handshake_opens_a_session() {
    let server = echo_server(&engine(300, 200)).await;
    let response = raw::request(
        server.addr,
        "GET",
        &format!("{PATH}?EIO=3&transport=polling"),
        b"",
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    // One packet, its length in characters before the colon (checked by the decoder).
    let packets = raw::v3_packets(response.text());
    assert_eq!(packets.len(), 1, "{packets:?}");
    let open: Value = serde_json::from_str(packets[0].strip_prefix('0').expect("open packet"))
        .expect("open packet JSON");
    assert_open_packet(&open, &json!(["websocket"]), 300, 200);
}

#[tokio::test]
async fn polling_handshake_without_a_valid_transport_is_refused() {
    let server = echo_server(&quiet()).await;
    for query in ["EIO=3", "EIO=3&transport=abc"] {
        let response = raw::request(server.addr, "GET", &format!("{PATH}?{query}"), b"").await;
        assert_eq!(response.status, 400, "{query}: {response:?}");
    }
}

#[tokio::test]
async fn polling_handshake_with_another_method_is_refused() {
    let server = echo_server(&quiet()).await;
    let response = raw::request(
        server.addr,
        "POST",
        &format!("{PATH}?EIO=3&transport=polling"),
        b"",
    )
    .await;
    assert_eq!(response.status, 400, "{response:?}");
}

#[tokio::test]
async fn websocket_handshake_opens_a_session() {
    let server = echo_server(&engine(300, 200)).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=3&transport=websocket")).await;
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
    for query in ["EIO=3", "EIO=3&transport=abc"] {
        assert_ws_closed(&ws_url(server.addr, query)).await;
    }
}

// ---- messages over long-polling -------------------------------------------------------------

#[tokio::test]
async fn polling_payload_with_one_packet() {
    let server = echo_server(&quiet()).await;
    let session = connected(server.addr, B64).await;
    let posted = session.post(&payload(&[r#"42["message","hello"]"#])).await;
    assert_eq!((posted.status, posted.text()), (200, "ok"));
    assert_eq!(
        session.collect_v3(1).await,
        [r#"42["message-back","hello"]"#]
    );
    // Lengths count characters, not bytes: "€" is one (three bytes in UTF-8).
    let posted = session.post(&payload(&[r#"42["message","€"]"#])).await;
    assert_eq!((posted.status, posted.text()), (200, "ok"));
    let poll = session.get().await;
    assert_eq!(poll.text(), payload(&[r#"42["message-back","€"]"#]));
}

#[tokio::test]
async fn polling_payload_with_several_packets() {
    let server = echo_server(&quiet()).await;
    let session = connected(server.addr, B64).await;
    let messages = [1, 2, 3].map(|n| format!(r#"42["message","test{n}"]"#));
    let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
    let posted = session.post(&payload(&messages)).await;
    assert_eq!((posted.status, posted.text()), (200, "ok"));
    assert_eq!(
        session.collect_v3(3).await,
        [1, 2, 3].map(|n| format!(r#"42["message-back","test{n}"]"#))
    );
}

#[tokio::test]
async fn polling_payload_with_text_and_binary_packets_in_base64() {
    let server = echo_server(&quiet()).await;
    let session = connected(server.addr, B64).await;
    // A BINARY_EVENT and its attachment <01 02 03 04>: `b`, the packet type, then base64.
    let posted = session
        .post(&payload(&[
            r#"451-["message",{"_placeholder":true,"num":0}]"#,
            "b4AQIDBA==",
        ]))
        .await;
    assert_eq!((posted.status, posted.text()), (200, "ok"));
    assert_eq!(
        session.collect_v3(2).await,
        [
            r#"451-["message-back",{"_placeholder":true,"num":0}]"#,
            "b4AQIDBA=="
        ]
    );
}

#[tokio::test]
async fn polling_payload_with_text_and_binary_packets_in_binary() {
    let server = echo_server(&quiet()).await;
    // Without `b64=1` the client reads binary (XHR2) payloads.
    let session = connected(server.addr, "").await;
    let posted = session
        .post(&payload(&[
            r#"451-["message",{"_placeholder":true,"num":0}]"#,
            "b4AQIDBA==",
        ]))
        .await;
    assert_eq!((posted.status, posted.text()), (200, "ok"));
    let deadline = Instant::now() + WAIT;
    let mut packets = Vec::new();
    while packets.len() < 2 {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let response = session
            .start_get()
            .await
            .read_response(remaining)
            .await
            .unwrap_or_else(|why| panic!("waiting for the echo, got {packets:?}: {why}"));
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(
            response.header("content-type"),
            Some("application/octet-stream"),
            "a binary payload: {response:?}"
        );
        packets.extend(v3_binary_packets(&response.body));
    }
    assert_eq!(
        packets,
        [
            V3Binary::Text(r#"451-["message-back",{"_placeholder":true,"num":0}]"#.to_owned()),
            V3Binary::Binary(vec![4, 1, 2, 3, 4]),
        ]
    );
}

#[tokio::test]
async fn polling_invalid_packet_closes_the_session() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 3, B64).await;
    let mut conn = Conn::open(server.addr).await;
    conn.send("POST", &session.target(), &[], b"abc").await;
    // A connection closed without an answer is as good as a 400 (the suite allows both).
    if let Ok(response) = conn.read_response(WAIT).await {
        assert_eq!(response.status, 400, "POST abc: {response:?}");
    }
    let poll = session.get().await;
    assert_eq!(poll.status, 400, "poll after an invalid packet: {poll:?}");
}

// ---- messages over WebSocket -----------------------------------------------------------

#[tokio::test]
async fn websocket_text_packet() {
    let server = echo_server(&quiet()).await;
    let mut ws = ws_connected(server.addr).await;
    ws.send_text(r#"42["message","hello"]"#).await;
    assert_eq!(
        ws.next("the echo").await,
        Frame::Text(r#"42["message-back","hello"]"#.to_owned())
    );
}

#[tokio::test]
async fn websocket_binary_packet() {
    let server = echo_server(&quiet()).await;
    let mut ws = ws_connected(server.addr).await;
    ws.send_text(r#"451-["message",{"_placeholder":true,"num":0}]"#)
        .await;
    // v3 binary frames start with the packet type (4, message).
    ws.send_binary(&[4, 1, 2, 3, 4]).await;
    assert_eq!(
        ws.next("the echoed BINARY_EVENT").await,
        Frame::Text(r#"451-["message-back",{"_placeholder":true,"num":0}]"#.to_owned())
    );
    assert_eq!(
        ws.next("the echoed attachment").await,
        Frame::Binary(vec![4, 1, 2, 3, 4])
    );
}

#[tokio::test]
async fn websocket_invalid_packet_closes_the_session() {
    let server = echo_server(&quiet()).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=3&transport=websocket")).await;
    ws.open_packet().await;
    ws.send_text("abc").await;
    ws.expect_closed("the session after an invalid packet")
        .await;
}

// ---- heartbeat (driven by the client) ----------------------------------------------------

#[tokio::test]
async fn polling_ping_pong() {
    let server = echo_server(&engine(300, 200)).await;
    let session = connected(server.addr, B64).await;
    for round in 1..=3 {
        let ping = session.post("1:2").await;
        assert_eq!(ping.status, 200, "ping {round}: {ping:?}");
        let poll = session.get().await;
        assert_eq!((poll.status, poll.text()), (200, "1:3"), "pong {round}");
    }
}

#[tokio::test]
async fn websocket_ping_pong() {
    let server = echo_server(&engine(300, 200)).await;
    let mut ws = ws_connected(server.addr).await;
    for round in 1..=3 {
        ws.send_text("2").await;
        assert_eq!(
            ws.next(&format!("pong {round}")).await,
            Frame::Text("3".to_owned()),
            "pong {round}"
        );
    }
}

/// The heartbeat of the timing tests: long enough that scheduling noise stays well inside
/// the ±10 % asserted.
const TIMED_INTERVAL: u64 = 1000;
const TIMED_TIMEOUT: u64 = 500;

#[tokio::test]
async fn polling_ping_timeout_closes_the_session() {
    let server = echo_server(&engine(TIMED_INTERVAL, TIMED_TIMEOUT)).await;
    let (session, _) = Polling::open(server.addr, PATH, 3, B64).await;
    let opened = Instant::now();
    assert_eq!(session.collect_v3(2).await, CONNECT_PACKETS);
    // The client never pings: this poll stays pending until the server gives up.
    let pending = session.get().await;
    let elapsed = opened.elapsed();
    assert_eq!(
        pending.status, 200,
        "the poll pending at the close: {pending:?}"
    );
    assert_around(
        "the session of a client that never pings closed",
        elapsed,
        Duration::from_millis(TIMED_INTERVAL + TIMED_TIMEOUT),
    );
    let ping = session.post("1:2").await;
    assert_eq!(ping.status, 400, "ping after the timeout: {ping:?}");
}

#[tokio::test]
async fn websocket_ping_timeout_closes_the_session() {
    let server = echo_server(&engine(TIMED_INTERVAL, TIMED_TIMEOUT)).await;
    let mut ws = Ws::connect(&ws_url(server.addr, "EIO=3&transport=websocket")).await;
    ws.open_packet().await;
    let opened = Instant::now();
    ws.expect_closed("the session of a client that never pings")
        .await;
    assert_around(
        "the session of a client that never pings closed",
        opened.elapsed(),
        Duration::from_millis(TIMED_INTERVAL + TIMED_TIMEOUT),
    );
}

// ---- close ------------------------------------------------------------------------------

#[tokio::test]
async fn polling_close_packet_closes_the_session() {
    let server = echo_server(&quiet()).await;
    let session = connected(server.addr, B64).await;
    let mut pending = session.start_get().await;
    pending
        .silent_for(Duration::from_millis(50))
        .await
        .unwrap_or_else(|why| panic!("a poll with nothing to send is not pending: {why}"));
    let closed = session.post("1:1").await;
    assert_eq!(closed.status, 200, "POST 1:1: {closed:?}");
    let pending = pending.response("the poll pending at the close").await;
    assert_eq!(
        (pending.status, pending.text()),
        (200, "1:6"),
        "the poll pending at the close"
    );
    let after = session.get().await;
    assert_eq!(after.status, 400, "poll after the close: {after:?}");
}

#[tokio::test]
async fn websocket_close_packet_closes_the_session() {
    let server = echo_server(&quiet()).await;
    let mut ws = ws_connected(server.addr).await;
    ws.send_text("1").await;
    ws.expect_closed("the session after a close packet").await;
}

// ---- upgrade ----------------------------------------------------------------------------

/// Probes and upgrades `session`; the connect packets still buffered then come over the
/// WebSocket, which shows that the server took the upgrade packet.
async fn upgrade(session: &Polling) -> Ws {
    let mut ws = Ws::connect(&session.upgrade_url()).await;
    ws.send_text("2probe").await;
    assert_eq!(
        ws.next("the probe answer").await,
        Frame::Text("3probe".to_owned())
    );
    ws.send_text("5").await;
    for packet in CONNECT_PACKETS {
        assert_eq!(ws.next(packet).await, Frame::Text(packet.to_owned()));
    }
    ws
}

async fn assert_ws_echo(ws: &mut Ws) {
    ws.send_text(r#"42["message","hello"]"#).await;
    assert_eq!(
        ws.next("the echo").await,
        Frame::Text(r#"42["message-back","hello"]"#.to_owned())
    );
}

#[tokio::test]
async fn upgrade_from_polling_to_websocket() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 3, B64).await;
    let mut ws = Ws::connect(&session.upgrade_url()).await;
    ws.send_text("2probe").await;
    assert_eq!(
        ws.next("the probe answer").await,
        Frame::Text("3probe".to_owned())
    );
    let poll = session.get().await;
    assert_eq!(
        (poll.status, poll.text()),
        (200, "1:6"),
        "a poll during the upgrade gets a noop"
    );
    ws.send_text("5").await;
    // What was buffered for the long-polling transport comes over the new one, in order.
    for packet in CONNECT_PACKETS {
        assert_eq!(ws.next(packet).await, Frame::Text(packet.to_owned()));
    }
    assert_ws_echo(&mut ws).await;
}

#[tokio::test]
async fn polls_after_the_upgrade_are_refused() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 3, B64).await;
    let mut ws = upgrade(&session).await;
    let poll = session.get().await;
    assert_eq!(poll.status, 400, "poll after the upgrade: {poll:?}");
    assert_ws_echo(&mut ws).await;
}

#[tokio::test]
async fn a_second_websocket_after_the_upgrade_is_closed() {
    let server = echo_server(&quiet()).await;
    let (session, _) = Polling::open(server.addr, PATH, 3, B64).await;
    let mut ws = upgrade(&session).await;
    assert_ws_closed(&session.upgrade_url()).await;
    assert_ws_echo(&mut ws).await;
}
