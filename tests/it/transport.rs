//! Engine.IO transport settings: the polling handshake, a custom `engine_path` and namespace
//! paths, the heartbeat, and the payload limit.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Client, PRIVATE_KEY, TestServer, eventually, publish_ok};

#[tokio::test]
async fn events_are_pushed_without_delay() {
    // A browser that has just connected has sent nothing since; the server's next small write
    // (the event) must not wait for the TCP acknowledgement of the CONNECT packet (Nagle's
    // algorithm against delayed ACKs: about 40 ms per event on Linux). A push server sets
    // TCP_NODELAY.
    let server = TestServer::start("").await;
    let backend = server.backend().await;
    let mut latencies = Vec::new();
    for round in 0..15 {
        let user = format!("user-{round}");
        let mut browser = server.browser(&user, &[]).await;
        let sent = Instant::now();
        backend.emit("publish", &json!({"event": "hello", "user": user}));
        browser.next_event("hello").await;
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(
        median < Duration::from_millis(25),
        "median publish-to-delivery latency {median:?} (all: {latencies:?})"
    );
}

#[tokio::test]
async fn polling_handshake_opens_a_session() {
    let server = TestServer::start("").await;
    let response = reqwest::get(server.url("/socket.io/?EIO=4&transport=polling"))
        .await
        .expect("GET polling handshake");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body = response.text().await.expect("body");
    let open: Value = serde_json::from_str(body.strip_prefix('0').expect("open packet"))
        .unwrap_or_else(|e| panic!("open packet {body:?}: {e}"));
    assert!(
        open["sid"].as_str().is_some_and(|s| !s.is_empty()),
        "{open}"
    );
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["pingInterval"], json!(25000));
    assert_eq!(open["pingTimeout"], json!(20000));
}

#[tokio::test]
async fn custom_engine_path_and_namespaces() {
    let server = TestServer::start(
        "engine_path = \"/socket.io/appsuite\"\n[public]\npath = \"/browsers\"\n\
         [private]\npath = \"/backends\"",
    )
    .await;
    // The TestServer helpers follow the configured paths.
    let mut browser = server.registered("alice", &["ws-a"]).await;
    let mut backend = server.backend().await;
    publish_ok(
        &mut backend,
        &json!({"event": "moved", "workspace": "ws-a"}),
    )
    .await;
    let event = browser.next_event("moved").await;
    assert!(event.raw.starts_with("42/browsers,"), "{}", event.raw);

    // The default paths are not served.
    let response = reqwest::get(server.url("/socket.io/?EIO=4&transport=polling"))
        .await
        .expect("GET");
    assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
    let default_ns = Client::builder(server.addr)
        .path("/socket.io/appsuite")
        .namespace("/private")
        .auth(json!({"key": PRIVATE_KEY}))
        .try_connect()
        .await;
    assert!(default_ns.is_err(), "/private is not a namespace here");
}

#[tokio::test]
async fn clients_that_answer_pings_stay_connected() {
    let server =
        TestServer::start("[engine]\nping_interval = \"50ms\"\nping_timeout = \"200ms\"").await;
    let mut browser = server.browser("alice", &["ws-a"]).await;
    eventually("three engine pings", || {
        let pings = browser.pings();
        async move { pings >= 3 }
    })
    .await;
    let ack = browser.emit_with_ack("register", &json!("ws-a")).await;
    assert_eq!(ack["ok"], json!(true));
}

#[tokio::test]
async fn clients_that_do_not_answer_pings_are_dropped() {
    let server =
        TestServer::start("[engine]\nping_interval = \"50ms\"\nping_timeout = \"100ms\"").await;
    let mut silent = Client::builder(server.addr)
        .auth(json!({"token": server.token("alice", &[], &[])}))
        .without_pongs()
        .connect()
        .await;
    silent.expect_disconnect().await;
    assert!(silent.pings() >= 1);
}

#[tokio::test]
async fn messages_over_max_payload_close_the_connection() {
    let server = TestServer::start("[engine]\nmax_payload_bytes = 1024").await;
    let mut browser = server.browser("alice", &["ws-a"]).await;
    let ack = browser.emit_with_ack("register", &json!("ws-a")).await;
    assert_eq!(ack["ok"], json!(true), "a small message is fine");
    browser.emit("register", &json!("w".repeat(2000)));
    browser.expect_disconnect().await;
}
