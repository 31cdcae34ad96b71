//! `engine.max_payload_bytes` (default 1 MiB, as npm's `maxHttpBufferSize`) on every transport:
//! a WebSocket frame or a polling POST over it closes the offender's session, and only it.

use serde_json::json;

use crate::support::{TestServer, publish_ok};

/// Just over the default limit of 1 MiB.
const OVERSIZE: usize = 1024 * 1024 + 4096;

#[tokio::test]
async fn an_oversize_websocket_frame_closes_only_its_socket_at_the_default_limit() {
    let server = TestServer::start("").await;
    let mut offender = server.browser("mallory", &["ws-a"]).await;
    let mut bystander = server.registered("alice", &["ws-a"]).await;
    // Under the limit: fine (socketioxide's own WebSocket default would allow 64 MiB).
    let ack = offender
        .emit_with_ack("whatever", &json!("w".repeat(512 * 1024)))
        .await;
    assert_eq!(ack["error"], json!("bad_request"), "{ack}");

    offender.emit("register", &json!("w".repeat(OVERSIZE)));
    offender.expect_disconnect().await;

    let mut backend = server.backend().await;
    publish_ok(
        &mut backend,
        &json!({"event": "still", "workspace": "ws-a", "data": 1}),
    )
    .await;
    bystander.next_event("still").await;
}

#[tokio::test]
async fn an_oversize_polling_post_closes_its_session_and_no_other() {
    let server = TestServer::start("").await;
    let mut bystander = server.registered("alice", &["ws-a"]).await;
    let http = reqwest::Client::new();
    let base = server.url("/socket.io/?EIO=4&transport=polling");
    let open = http.get(&base).send().await.unwrap().text().await.unwrap();
    let handshake: serde_json::Value =
        serde_json::from_str(open.strip_prefix('0').expect("open packet")).unwrap();
    let sid = handshake["sid"].as_str().unwrap().to_owned();
    let session = format!("{base}&sid={sid}");
    let token = server.token("mallory", &[], &[]);
    let connect = format!("40/public,{}", json!({"token": token}));
    let posted = http.post(&session).body(connect).send().await.unwrap();
    assert!(posted.status().is_success(), "{}", posted.status());

    let huge = format!("42/public,[\"x\",\"{}\"]", "w".repeat(OVERSIZE));
    let refused = http.post(&session).body(huge).send().await.unwrap();
    assert!(
        refused.status().is_client_error(),
        "an oversize POST was answered {}",
        refused.status()
    );
    // The session is gone: polling it again is refused.
    let after = http.get(&session).send().await.unwrap();
    assert_eq!(
        after.status(),
        reqwest::StatusCode::BAD_REQUEST,
        "the offender's session outlived its oversize POST"
    );

    let mut backend = server.backend().await;
    publish_ok(
        &mut backend,
        &json!({"event": "still", "workspace": "ws-a", "data": 1}),
    )
    .await;
    bystander.next_event("still").await;
}
