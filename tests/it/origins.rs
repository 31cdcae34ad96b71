//! `allowed_origins`: when set, Engine.IO requests from other browser origins are refused with
//! 403 before any handshake (cross-site WebSocket hijacking in backend mode), listed origins get
//! CORS headers, and requests without `Origin` (servers) pass.

use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::support::{Client, TestServer};

const CONFIG: &str = "allowed_origins = [\"https://app.example\"]";

/// The HTTP status of a WebSocket upgrade attempt with `origin` (101 when it upgrades).
async fn upgrade_status(server: &TestServer, origin: &str) -> u16 {
    let mut request = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("Origin", origin.parse().expect("origin header"));
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("websocket handshake failed: {other}"),
    }
}

#[tokio::test]
async fn foreign_origins_cannot_open_a_websocket() {
    let server = TestServer::start(CONFIG).await;
    assert_eq!(upgrade_status(&server, "https://evil.example").await, 403);
    assert_eq!(upgrade_status(&server, "https://app.example").await, 101);
    // A server-side client sends no Origin and is not a browser.
    server.browser("alice", &[]).await;
    Client::builder(server.addr)
        .header("Origin", "https://app.example")
        .auth(json!({"token": server.token("alice", &[], &[])}))
        .connect()
        .await;
}

#[tokio::test]
async fn polling_gets_cors_for_listed_origins_only() {
    let server = TestServer::start(CONFIG).await;
    let poll = |origin: &'static str| {
        reqwest::Client::new()
            .get(server.url("/socket.io/?EIO=4&transport=polling"))
            .header("Origin", origin)
            .send()
    };
    let listed = poll("https://app.example").await.expect("GET");
    assert_eq!(listed.status(), StatusCode::OK);
    let headers = listed.headers();
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(|v| v.to_str().expect("ASCII")),
        Some("https://app.example")
    );
    assert_eq!(
        headers
            .get("access-control-allow-credentials")
            .map(|v| v.to_str().expect("ASCII")),
        Some("true")
    );
    let foreign = poll("https://evil.example").await.expect("GET");
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = foreign.json().await.expect("JSON");
    assert_eq!(body["code"], json!("forbidden_origin"));
}

#[tokio::test]
async fn without_a_list_any_origin_may_connect() {
    let server = TestServer::start("").await;
    assert_eq!(
        upgrade_status(&server, "https://anywhere.example").await,
        101
    );
}

#[tokio::test]
async fn the_http_api_is_not_origin_checked() {
    let server = TestServer::start(CONFIG).await;
    let response = reqwest::Client::new()
        .get(server.url("/health"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
}
