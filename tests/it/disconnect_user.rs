//! `disconnect_user` on `/private`: every socket of the user gets `session_invalid`, then is
//! disconnected by the server; the backend learns how many sockets that was.

use serde_json::json;

use crate::support::{TestServer, client::Disconnect, publish_ok};

/// `session_invalid` came first, then the server's disconnect (packet or transport close).
fn assert_session_invalid_then_disconnect(arrivals: &[String]) {
    let at = |what: &str| arrivals.iter().position(|a| a == what);
    let told = at("event:session_invalid").expect("session_invalid arrived");
    let gone = at("disconnect")
        .or_else(|| at("closed"))
        .expect("a disconnect arrived");
    assert!(
        told < gone,
        "disconnected before session_invalid: {arrivals:?}"
    );
}

#[tokio::test]
async fn every_socket_of_the_user_is_told_then_disconnected() {
    let server = TestServer::start("").await;
    let mut tab1 = server.registered("alice", &["ws-a"]).await;
    let mut tab2 = server.browser("alice", &[]).await;
    let mut bob = server.registered("bob", &["ws-a"]).await;
    let mut backend = server.backend().await;

    let ack = backend
        .emit_with_ack("disconnect_user", &json!({"user": "alice"}))
        .await;
    assert_eq!(ack, json!({"ok": true, "sockets": 2}));
    for tab in [&mut tab1, &mut tab2] {
        let event = tab.next_event("session_invalid").await;
        assert_eq!(event.args, [json!({"reason": "logout"})]);
        assert_eq!(tab.expect_disconnect().await, Disconnect::Packet);
        assert_session_invalid_then_disconnect(tab.arrivals());
    }

    // Bob is untouched: still registered and receiving.
    publish_ok(
        &mut backend,
        &json!({"event": "after", "workspace": "ws-a"}),
    )
    .await;
    bob.next_event("after").await;
    assert_eq!(bob.count("session_invalid"), 0);
}

#[tokio::test]
async fn a_given_reason_is_forwarded() {
    let server = TestServer::start("").await;
    let mut browser = server.browser("alice", &[]).await;
    let mut backend = server.backend().await;
    let ack = backend
        .emit_with_ack(
            "disconnect_user",
            &json!({"user": "alice", "reason": "password_changed"}),
        )
        .await;
    assert_eq!(ack, json!({"ok": true, "sockets": 1}));
    let event = browser.next_event("session_invalid").await;
    assert_eq!(event.args, [json!({"reason": "password_changed"})]);
    assert_eq!(browser.expect_disconnect().await, Disconnect::Packet);
    assert_session_invalid_then_disconnect(browser.arrivals());
}

#[tokio::test]
async fn a_user_without_sockets_counts_zero() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    let ack = backend
        .emit_with_ack("disconnect_user", &json!({"user": "nobody"}))
        .await;
    assert_eq!(ack, json!({"ok": true, "sockets": 0}));
}

#[tokio::test]
async fn bad_disconnect_user_requests_are_bad_requests() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    for args in [
        "",
        "{}",
        "\"alice\"",
        r#"{"user":""}"#,
        r#"{"user":"a","x":1}"#,
    ] {
        let ack = backend.emit_raw_with_ack("disconnect_user", args).await;
        assert_eq!(ack["ok"], json!(false), "{args}: {ack}");
        assert_eq!(ack["error"], json!("bad_request"), "{args}: {ack}");
    }
}

#[tokio::test]
async fn browsers_cannot_disconnect_users() {
    let server = TestServer::start("").await;
    let mut mallory = server.browser("mallory", &[]).await;
    let mut alice = server.browser("alice", &[]).await;
    let ack = mallory
        .emit_with_ack("disconnect_user", &json!({"user": "alice"}))
        .await;
    assert_eq!(ack["error"], json!("bad_request"), "{ack}");
    let ack = mallory
        .emit_with_ack("publish", &json!({"event": "e", "user": "alice"}))
        .await;
    assert_eq!(ack["error"], json!("bad_request"), "{ack}");
    let mut backend = server.backend().await;
    publish_ok(&mut backend, &json!({"event": "marker", "user": "alice"})).await;
    alice.next_event("marker").await;
    assert_eq!(alice.events().len(), 1, "{:?}", alice.events());
}
