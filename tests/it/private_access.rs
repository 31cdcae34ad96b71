//! `/private` admission: the key must match AND the client must be an authorized host, where
//! the client is the TCP peer unless that peer is a trusted proxy (then `X-Forwarded-For`).

use serde_json::json;

use crate::support::{Client, PRIVATE_KEY, TestServer};

fn private(server: &TestServer) -> crate::support::client::ClientBuilder {
    Client::builder(server.addr).namespace("/private")
}

async fn assert_refused(builder: crate::support::client::ClientBuilder) {
    assert_eq!(
        builder.try_connect().await.err().as_deref(),
        Some("unauthorized")
    );
}

#[tokio::test]
async fn key_in_auth_or_bearer_header_is_admitted() {
    let server = TestServer::start("").await;
    private(&server)
        .auth(json!({"key": PRIVATE_KEY}))
        .connect()
        .await;
    private(&server)
        .header("Authorization", &format!("Bearer {PRIVATE_KEY}"))
        .connect()
        .await;
}

#[tokio::test]
async fn missing_or_wrong_key_is_refused() {
    let server = TestServer::start("").await;
    assert_refused(private(&server)).await;
    assert_refused(private(&server).auth(json!({}))).await;
    assert_refused(private(&server).auth(json!({"key": "wrong-key"}))).await;
    assert_refused(private(&server).auth(json!({"key": &PRIVATE_KEY[..PRIVATE_KEY.len() - 1]})))
        .await;
    assert_refused(private(&server).auth(json!({"key": format!("{PRIVATE_KEY}x")}))).await;
    assert_refused(private(&server).auth(json!({"key": 12345}))).await;
    assert_refused(private(&server).header("Authorization", "Bearer wrong-key")).await;
    // A browser token is not a key.
    let token = server.token("alice", &[], &[]);
    assert_refused(private(&server).auth(json!({"token": token}))).await;
}

#[tokio::test]
async fn right_key_from_a_host_not_authorized_is_refused() {
    let server = TestServer::start("[private]\nauthorized_hosts = [\"10.9.9.9\"]").await;
    assert_refused(private(&server).auth(json!({"key": PRIVATE_KEY}))).await;
}

#[tokio::test]
async fn cidr_blocks_authorize_hosts() {
    let server = TestServer::start("[private]\nauthorized_hosts = [\"127.0.0.0/8\"]").await;
    private(&server)
        .auth(json!({"key": PRIVATE_KEY}))
        .connect()
        .await;
}

#[tokio::test]
async fn forwarded_for_is_ignored_without_trusted_proxies() {
    let server = TestServer::start("[private]\nauthorized_hosts = [\"10.1.1.1\"]").await;
    assert_refused(
        private(&server)
            .auth(json!({"key": PRIVATE_KEY}))
            .header("X-Forwarded-For", "10.1.1.1"),
    )
    .await;

    // And a spoofed header cannot get an authorized peer refused either: the peer counts.
    let server = TestServer::start("").await;
    private(&server)
        .auth(json!({"key": PRIVATE_KEY}))
        .header("X-Forwarded-For", "192.0.2.66")
        .connect()
        .await;
}

#[tokio::test]
async fn forwarded_for_is_believed_from_a_trusted_proxy() {
    let server = TestServer::start(
        "trusted_proxies = [\"127.0.0.1\"]\n[private]\nauthorized_hosts = [\"10.1.1.1\"]",
    )
    .await;
    let keyed = || private(&server).auth(json!({"key": PRIVATE_KEY}));
    keyed()
        .header("X-Forwarded-For", "10.1.1.1")
        .connect()
        .await;
    // Proxies append: only the right-most untrusted entry is the client.
    keyed()
        .header("X-Forwarded-For", "198.51.100.7, 10.1.1.1")
        .connect()
        .await;
    assert_refused(keyed().header("X-Forwarded-For", "10.1.1.1, 198.51.100.7")).await;
    assert_refused(keyed().header("X-Forwarded-For", "garbage")).await;
    assert_refused(keyed().header("X-Forwarded-For", "10.1.1.1, garbage")).await;
    // No header: the proxy itself is the client, and it is not authorized.
    assert_refused(keyed()).await;
    // The key is still required.
    assert_refused(
        private(&server)
            .auth(json!({"key": "wrong-key"}))
            .header("X-Forwarded-For", "10.1.1.1"),
    )
    .await;
}

#[tokio::test]
async fn a_browser_token_does_not_open_private_and_the_key_does_not_open_public() {
    let server = TestServer::start("").await;
    let refused = Client::builder(server.addr)
        .auth(json!({"token": PRIVATE_KEY, "key": PRIVATE_KEY}))
        .try_connect()
        .await;
    assert_eq!(refused.err().as_deref(), Some("unauthorized"));
}
