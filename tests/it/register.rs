//! `register` / `unregister` on `/public`: acks, access checks, bad input that never
//! disconnects, and per-socket ordering of back-to-back calls.

use serde_json::{Value, json};

use crate::support::{Client, TestServer, backend::MockBackend, publish_ok, without_position};

/// Publishes `event` to `workspace`, then a marker to `user`; returns once the browser has the
/// marker, so by then it has received the event if it ever will (delivery is ordered).
async fn probe(server: &TestServer, browser: &mut Client, workspace: &str, user: &str) -> bool {
    let mut backend = server.backend().await;
    publish_ok(
        &mut backend,
        &json!({"event": "probe", "workspace": workspace}),
    )
    .await;
    publish_ok(&mut backend, &json!({"event": "marker", "user": user})).await;
    browser.next_event("marker").await;
    browser.count("probe") > 0
}

#[tokio::test]
async fn register_accepts_an_object_or_a_bare_string() {
    let server = TestServer::start("").await;
    let mut browser = server.browser("alice", &["ws-a", "ws-b"]).await;
    let ack = browser
        .emit_with_ack("register", &json!({"workspace": "ws-a"}))
        .await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-a"})
    );
    let ack = browser.emit_with_ack("register", &json!("ws-b")).await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-b"})
    );
    assert!(probe(&server, &mut browser, "ws-a", "alice").await);
}

#[tokio::test]
async fn registering_twice_is_harmless() {
    let server = TestServer::start("").await;
    let mut browser = server.registered("alice", &["ws-a"]).await;
    let ack = browser.emit_with_ack("register", &json!("ws-a")).await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-a"})
    );
    assert!(probe(&server, &mut browser, "ws-a", "alice").await);
    assert_eq!(
        browser.count("probe"),
        1,
        "registered twice, delivered twice"
    );
}

#[tokio::test]
async fn register_outside_the_claim_is_forbidden() {
    let server = TestServer::start("").await;
    let mut browser = server.browser("alice", &["ws-a"]).await;
    let ack = browser.emit_with_ack("register", &json!("ws-secret")).await;
    assert_eq!(ack, json!({"ok": false, "error": "forbidden"}));
    assert!(!probe(&server, &mut browser, "ws-secret", "alice").await);
}

#[tokio::test]
async fn register_without_a_workspaces_claim_is_forbidden() {
    let server = TestServer::start("").await;
    let mut browser = server.browser("alice", &[]).await;
    let ack = browser.emit_with_ack("register", &json!("ws-a")).await;
    assert_eq!(ack, json!({"ok": false, "error": "forbidden"}));
    assert!(!probe(&server, &mut browser, "ws-a", "alice").await);
}

#[tokio::test]
async fn unregister_stops_delivery() {
    let server = TestServer::start("").await;
    let mut browser = server.registered("alice", &["ws-a"]).await;
    let ack = browser
        .emit_with_ack("unregister", &json!({"workspace": "ws-a"}))
        .await;
    assert_eq!(ack, json!({"ok": true}));
    assert!(!probe(&server, &mut browser, "ws-a", "alice").await);
    // Unregistering what is not registered is harmless.
    let ack = browser.emit_with_ack("unregister", &json!("ws-zzz")).await;
    assert_eq!(ack, json!({"ok": true}));
}

#[tokio::test]
async fn bad_input_is_a_bad_request_and_keeps_the_socket() {
    let server = TestServer::start("").await;
    let mut browser = server.browser("alice", &["ws-a"]).await;
    let long = "x".repeat(257);
    let cases: Vec<(&str, String)> = vec![
        ("register", "42".into()),
        ("register", "null".into()),
        ("register", "true".into()),
        ("register", "[\"ws-a\"]".into()),
        ("register", String::new()),
        ("register", "{}".into()),
        ("register", "{\"workspace\":5}".into()),
        ("register", "{\"workspace\":\"\"}".into()),
        ("register", "\"\"".into()),
        ("register", format!("\"{long}\"")),
        ("register", format!("{{\"workspace\":\"{long}\"}}")),
        ("register", "\"a\\nb\"".into()),
        ("unregister", "7".into()),
        ("unregister", String::new()),
        ("unregister", format!("\"{long}\"")),
        ("subscribe", "\"ws-a\"".into()),
    ];
    for (event, args) in &cases {
        let ack = browser.emit_raw_with_ack(event, args).await;
        assert_eq!(ack["ok"], json!(false), "{event} {args}: {ack}");
        assert_eq!(ack["error"], json!("bad_request"), "{event} {args}: {ack}");
        assert!(ack["message"].is_string(), "{event} {args}: {ack}");
    }
    let unknown = browser.emit_raw_with_ack("subscribe", "").await;
    assert_eq!(unknown["message"], json!("unknown event"));

    // Still connected and still working.
    let ack = browser.emit_with_ack("register", &json!("ws-a")).await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-a"})
    );
}

#[tokio::test]
async fn a_256_byte_id_is_fine() {
    let server = TestServer::start("").await;
    let id = "w".repeat(256);
    let mut browser = server.browser("alice", &[id.as_str()]).await;
    let ack = browser.emit_with_ack("register", &json!(id)).await;
    assert_eq!(without_position(&ack), json!({"ok": true, "workspace": id}));
}

/// Sends register then unregister without awaiting the first ack, `rounds` times, and checks
/// the socket ends unregistered.
async fn back_to_back(server: &TestServer, browser: &mut Client, ws: &str, user: &str) {
    for round in 0..10 {
        let register = browser.request_raw("register", &json!(ws).to_string());
        let unregister = browser.request_raw("unregister", &json!({"workspace": ws}).to_string());
        let (first, second): (Value, Value) =
            (browser.ack(register).await, browser.ack(unregister).await);
        assert_eq!(
            without_position(&first),
            json!({"ok": true, "workspace": ws}),
            "round {round}"
        );
        assert_eq!(second, json!({"ok": true}), "round {round}");
    }
    assert!(
        !probe(server, browser, ws, user).await,
        "register then unregister left the socket registered"
    );
}

#[tokio::test]
async fn register_then_unregister_back_to_back_ends_unregistered() {
    let server = TestServer::start("").await;
    let mut browser = server.browser("alice", &["ws-a"]).await;
    back_to_back(&server, &mut browser, "ws-a", "alice").await;
}

#[tokio::test]
async fn back_to_back_also_holds_when_register_waits_for_the_backend() {
    let backend = MockBackend::start().await;
    let server = TestServer::start(&format!(
        "[auth]\nmode = \"backend\"\nbackend_url = \"{}\"\ncache_ttl = \"1ms\"",
        backend.url("/auth")
    ))
    .await;
    let mut bob = Client::builder(server.addr)
        .header("Cookie", "session=bob")
        .connect()
        .await;
    back_to_back(&server, &mut bob, "ws-b", "bob").await;
}
