//! `GET /status`: behind the private key unless `status_public = true`; live counts of
//! connections and of workspace rooms with members.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PRIVATE_KEY, TestServer, eventually};

async fn status(server: &TestServer, key: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(server.url("/status"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("GET /status")
}

async fn figures(server: &TestServer) -> Value {
    let response = status(server, Some(PRIVATE_KEY)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("status JSON")
}

#[tokio::test]
async fn status_needs_the_key() {
    let server = TestServer::start("").await;
    for key in [None, Some("wrong-key")] {
        let response = status(&server, key).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["code"], json!("unauthorized"));
    }
    let body = figures(&server).await;
    assert_eq!(body["status"], json!("ON"));
    assert_eq!(body["version"], json!(env!("CARGO_PKG_VERSION")));
    assert!(body["uptime_s"].is_u64(), "{body}");
    assert_eq!(body["connections"], json!({"public": 0, "private": 0}));
    assert_eq!(body["workspaces"], json!(0));
}

#[tokio::test]
async fn public_status_needs_no_key() {
    let server = TestServer::start("status_public = true").await;
    let response = status(&server, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["status"], json!("ON"));
}

#[tokio::test]
async fn counts_follow_connections_and_registrations() {
    let server = TestServer::start("").await;
    let mut alice = server.registered("alice", &["ws-a", "ws-b"]).await;
    let bob = server.registered("bob", &["ws-a"]).await;
    let _backend = server.backend().await;

    let body = figures(&server).await;
    assert_eq!(
        body["connections"],
        json!({"public": 2, "private": 1}),
        "{body}"
    );
    assert_eq!(body["workspaces"], json!(2), "{body}");

    let ack = alice.emit_with_ack("unregister", &json!("ws-b")).await;
    assert_eq!(ack, json!({"ok": true}));
    assert_eq!(figures(&server).await["workspaces"], json!(1));

    // ws-a keeps a member (alice) when bob leaves; the count of connections drops.
    drop(bob);
    eventually("bob's disconnect shows in /status", || async {
        figures(&server).await["connections"]["public"] == json!(1)
    })
    .await;
    assert_eq!(figures(&server).await["workspaces"], json!(1));
    drop(alice);
    eventually("the last member leaving empties ws-a", || async {
        figures(&server).await["workspaces"] == json!(0)
    })
    .await;
}
