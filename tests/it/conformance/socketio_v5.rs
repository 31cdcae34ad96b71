//! Socket.IO protocol v5 (`socket.io-protocol/v5-current.md` and its test suite) over
//! Engine.IO v4 on the default path `/socket.io/`: connecting to a namespace (with and without
//! a payload, refused, unknown), disconnecting from one, events, acknowledgements, binary
//! attachments, invalid packets, and the document's sample session. The suite's Engine.IO
//! scenarios are those of `engine_v4.rs`.

use std::{net::SocketAddr, time::Duration};

use serde_json::Value;
use tokio::time::Instant;

use super::{
    assert_around, config, echo_server,
    raw::{Frame, Polling, SEPARATOR, Ws},
};

const PATH: &str = "/socket.io/";

/// A heartbeat slower than any scenario here.
fn quiet() -> String {
    config("/socket.io", 25_000, 20_000)
}

/// A fresh WebSocket session (open packet read), not yet connected to any namespace.
async fn session(addr: SocketAddr) -> Ws {
    let mut ws = Ws::connect(&format!("ws://{addr}{PATH}?EIO=4&transport=websocket")).await;
    ws.open_packet().await;
    ws
}

/// Sends the CONNECT packet `connect` and checks the answer: `prefix` then exactly `{"sid"}`,
/// followed by the echo's `auth` event, `auth`.
async fn assert_connects(ws: &mut Ws, connect: &str, prefix: &str, auth: &str) {
    ws.send_text(connect).await;
    let answer = ws.next_text("the CONNECT answer").await;
    let payload: Value = serde_json::from_str(
        answer
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("CONNECT answer {answer:?} does not start {prefix:?}")),
    )
    .unwrap_or_else(|e| panic!("CONNECT answer {answer:?}: {e}"));
    let keys: Vec<_> = payload.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["sid"], "{answer}");
    assert!(
        payload["sid"].as_str().is_some_and(|s| !s.is_empty()),
        "{answer}"
    );
    assert_eq!(ws.next_text("the auth event").await, auth);
}

/// A WebSocket session connected to the echo's `/`.
async fn connected(addr: SocketAddr) -> Ws {
    let mut ws = session(addr).await;
    assert_connects(&mut ws, "40", "40", r#"42["auth",{}]"#).await;
    ws
}

// ---- connect ----------------------------------------------------------------------------

#[tokio::test]
async fn connect_to_the_main_namespace() {
    let server = echo_server(&quiet()).await;
    let mut ws = session(server.addr).await;
    assert_connects(&mut ws, "40", "40", r#"42["auth",{}]"#).await;
}

#[tokio::test]
async fn connect_to_the_main_namespace_with_a_payload() {
    let server = echo_server(&quiet()).await;
    let mut ws = session(server.addr).await;
    assert_connects(
        &mut ws,
        r#"40{"token":"123"}"#,
        "40",
        r#"42["auth",{"token":"123"}]"#,
    )
    .await;
}

#[tokio::test]
async fn connect_to_a_custom_namespace() {
    let server = echo_server(&quiet()).await;
    let mut ws = session(server.addr).await;
    assert_connects(
        &mut ws,
        "40/custom,",
        "40/custom,",
        r#"42/custom,["auth",{}]"#,
    )
    .await;
}

#[tokio::test]
async fn connect_to_a_custom_namespace_with_a_payload() {
    let server = echo_server(&quiet()).await;
    let mut ws = session(server.addr).await;
    assert_connects(
        &mut ws,
        r#"40/custom,{"token":"abc"}"#,
        "40/custom,",
        r#"42/custom,["auth",{"token":"abc"}]"#,
    )
    .await;
}

#[tokio::test]
async fn connect_to_an_unknown_namespace_is_refused() {
    let server = echo_server(&quiet()).await;
    let mut ws = session(server.addr).await;
    ws.send_text("40/random").await;
    assert_eq!(
        ws.next_text("the CONNECT_ERROR").await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
}

#[tokio::test]
async fn connect_refused_by_the_namespace() {
    // herald's own browsers' namespace, without credentials.
    let server = echo_server(&quiet()).await;
    let mut ws = session(server.addr).await;
    ws.send_text("40/public,").await;
    assert_eq!(
        ws.next_text("the CONNECT_ERROR").await,
        r#"44/public,{"message":"unauthorized"}"#
    );
}

#[tokio::test]
async fn invalid_handshake_closes_the_connection() {
    let server = echo_server(&quiet()).await;
    let mut ws = session(server.addr).await;
    ws.send_text("4abc").await;
    ws.expect_closed("the connection after an invalid CONNECT")
        .await;
}

#[tokio::test]
async fn no_handshake_closes_the_connection() {
    let timeout = Duration::from_millis(1500);
    let server = echo_server(&format!(
        "{}[limits]\nhandshake_timeout = \"1500ms\"\n",
        quiet()
    ))
    .await;
    let mut ws = session(server.addr).await;
    let opened = Instant::now();
    ws.expect_closed("the connection of a client that never sends CONNECT")
        .await;
    assert_around(
        "the connection of a client that never sends CONNECT closed",
        opened.elapsed(),
        timeout,
    );
}

#[tokio::test]
async fn a_packet_before_connect_closes_the_connection() {
    // "If the server does not receive a CONNECT packet first, then it MUST close the
    // connection immediately": well before the connect timeout (10 s here).
    let server = echo_server(&quiet()).await;
    let mut ws = session(server.addr).await;
    ws.send_text(r#"42["message","too early"]"#).await;
    ws.expect_closed("the connection after an EVENT before any CONNECT")
        .await;
}

// ---- disconnect -------------------------------------------------------------------------

#[tokio::test]
async fn disconnect_from_the_main_namespace() {
    // A short heartbeat: the next thing the client hears is a PING, on a connection the
    // server kept open.
    let server = echo_server(&config("/socket.io", 300, 200)).await;
    let mut ws = connected(server.addr).await;
    ws.send_text("41").await;
    assert_eq!(
        ws.next("the frame after DISCONNECT").await,
        Frame::Text("2".to_owned())
    );
}

#[tokio::test]
async fn connect_then_disconnect_from_a_custom_namespace() {
    let server = echo_server(&quiet()).await;
    let mut ws = connected(server.addr).await;
    assert_connects(
        &mut ws,
        "40/custom",
        "40/custom,",
        r#"42/custom,["auth",{}]"#,
    )
    .await;
    ws.send_text("41/custom").await;
    ws.send_text(r#"42["message","message to main namespace"]"#)
        .await;
    assert_eq!(
        ws.next_text("the echo on the main namespace").await,
        r#"42["message-back","message to main namespace"]"#
    );
}

// ---- messages ---------------------------------------------------------------------------

#[tokio::test]
async fn plain_text_event() {
    let server = echo_server(&quiet()).await;
    let mut ws = connected(server.addr).await;
    ws.send_text(r#"42["message",1,"2",{"3":[true]}]"#).await;
    assert_eq!(
        ws.next_text("the echo").await,
        r#"42["message-back",1,"2",{"3":[true]}]"#
    );
}

#[tokio::test]
async fn event_with_binary_attachments() {
    let server = echo_server(&quiet()).await;
    let mut ws = connected(server.addr).await;
    ws.send_text(r#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    ws.send_binary(&[1, 2, 3]).await;
    ws.send_binary(&[4, 5, 6]).await;
    assert_eq!(
        ws.next_text("the echoed BINARY_EVENT").await,
        r#"452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert_eq!(
        ws.next_data("attachment 0").await,
        Frame::Binary(vec![1, 2, 3])
    );
    assert_eq!(
        ws.next_data("attachment 1").await,
        Frame::Binary(vec![4, 5, 6])
    );
}

#[tokio::test]
async fn event_with_an_ack() {
    let server = echo_server(&quiet()).await;
    let mut ws = connected(server.addr).await;
    ws.send_text(r#"42456["message-with-ack",1,"2",{"3":[false]}]"#)
        .await;
    assert_eq!(
        ws.next_text("the ACK").await,
        r#"43456[1,"2",{"3":[false]}]"#
    );
}

#[tokio::test]
async fn event_with_binary_attachments_and_an_ack() {
    let server = echo_server(&quiet()).await;
    let mut ws = connected(server.addr).await;
    ws.send_text(
        r#"452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    )
    .await;
    ws.send_binary(&[1, 2, 3]).await;
    ws.send_binary(&[4, 5, 6]).await;
    assert_eq!(
        ws.next_text("the BINARY_ACK").await,
        r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert_eq!(
        ws.next_data("attachment 0").await,
        Frame::Binary(vec![1, 2, 3])
    );
    assert_eq!(
        ws.next_data("attachment 1").await,
        Frame::Binary(vec![4, 5, 6])
    );
}

async fn assert_closes_the_connection(packet: &str) {
    let server = echo_server(&quiet()).await;
    let mut ws = connected(server.addr).await;
    ws.send_text(packet).await;
    ws.expect_closed(&format!("the connection after {packet:?}"))
        .await;
}

#[tokio::test]
async fn unknown_packet_type_closes_the_connection() {
    assert_closes_the_connection("4abc").await;
}

#[tokio::test]
async fn invalid_payload_format_closes_the_connection() {
    assert_closes_the_connection("42{}").await;
}

#[tokio::test]
async fn invalid_ack_id_closes_the_connection() {
    assert_closes_the_connection(r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#).await;
}

#[tokio::test]
async fn event_with_an_empty_array_closes_the_connection() {
    // "The payload is mandatory and MUST be a non-empty array."
    assert_closes_the_connection("42[]").await;
}

// ---- the document's sample session ------------------------------------------------------

#[tokio::test]
async fn sample_session() {
    let server = echo_server(&quiet()).await;
    // Long-polling: open, CONNECT to `/`, two events in one payload.
    let (session, open) = Polling::open(server.addr, PATH, 4, "").await;
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]), "{open}");
    let posted = session.post("40").await;
    assert_eq!((posted.status, posted.text()), (200, "ok"));
    let packets = session.collect_v4(2).await;
    assert!(packets[0].starts_with("40{\"sid\":"), "{packets:?}");
    assert_eq!(packets[1], r#"42["auth",{}]"#);
    let posted = session
        .post(&format!(
            r#"42["message","hello"]{SEPARATOR}42["message","world"]"#
        ))
        .await;
    assert_eq!((posted.status, posted.text()), (200, "ok"));
    assert_eq!(
        session.collect_v4(2).await,
        [
            r#"42["message-back","hello"]"#,
            r#"42["message-back","world"]"#
        ]
    );

    // The upgrade to WebSocket.
    let mut ws = Ws::connect(&session.upgrade_url()).await;
    ws.send_text("2probe").await;
    assert_eq!(
        ws.next("the probe answer").await,
        Frame::Text("3probe".to_owned())
    );
    ws.send_text("5").await;

    // A second namespace on the same connection, then an event with an ack answered with a
    // binary attachment (BINARY_ACK).
    assert_connects(
        &mut ws,
        "40/custom,",
        "40/custom,",
        r#"42/custom,["auth",{}]"#,
    )
    .await;
    ws.send_text(r#"451-1["message-with-ack",{"_placeholder":true,"num":0}]"#)
        .await;
    ws.send_binary(&[1, 2, 3, 4]).await;
    assert_eq!(
        ws.next_text("the BINARY_ACK").await,
        r#"461-1[{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(
        ws.next_data("the attachment").await,
        Frame::Binary(vec![1, 2, 3, 4])
    );

    // Engine.IO close.
    ws.send_text("1").await;
    ws.expect_closed("the session after a close packet").await;
}
