//! What a client sends right after its CONNECT is acknowledged must be handled: socket.io
//! clients emit `register` (or `publish`) from their "connect" callback, and events published to
//! a user right after the user connected must reach the new socket. These tests run the server
//! on a multi-threaded runtime, as the binary does, where handlers set up after the CONNECT
//! packet would race with the client's first events.

use serde_json::json;

use crate::support::{TestServer, publish_ok, without_position};

const ROUNDS: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_right_after_connect_is_acked() {
    let server = TestServer::start("").await;
    for round in 0..ROUNDS {
        let mut browser = server.browser("alice", &["ws-a"]).await;
        let ack = browser.emit_with_ack("register", &json!("ws-a")).await;
        assert_eq!(
            without_position(&ack),
            json!({"ok": true, "workspace": "ws-a"}),
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workspace_registered_right_after_connect_receives_events() {
    // The ack alone is not enough: the registration must stick, even when the server is still
    // finishing the connection while `register` runs.
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    // The window is narrow (between the CONNECT packet leaving and the socket being marked
    // connected), so this detects a regression often, not always.
    for round in 0..ROUNDS {
        let ws = format!("ws-{round}");
        let mut browser = server.browser("alice", &[ws.as_str()]).await;
        let ack = browser.emit_with_ack("register", &json!(ws)).await;
        assert_eq!(
            without_position(&ack),
            json!({"ok": true, "workspace": ws}),
            "round {round}"
        );
        publish_ok(&mut backend, &json!({"event": "changed", "workspace": ws})).await;
        browser.next_event("changed").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_right_after_connect_is_acked() {
    let server = TestServer::start("").await;
    for _ in 0..ROUNDS {
        let mut backend = server.backend().await;
        publish_ok(&mut backend, &json!({"event": "e", "user": "nobody"})).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_event_right_after_connect_reaches_the_new_socket() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    for round in 0..ROUNDS {
        let user = format!("user-{round}");
        let mut browser = server.browser(&user, &[]).await;
        publish_ok(&mut backend, &json!({"event": "hello", "user": user})).await;
        browser.next_event("hello").await;
    }
}
