//! `/public` handshakes in JWT mode: where the token is read from, and every refusal.
//! A refused handshake carries exactly the message "unauthorized".

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::support::{
    Client, TestServer, publish_ok,
    tokens::{self, claims, hs256, now},
};

/// Connects to `/public` presenting `token` as `auth.token`.
async fn connect(server: &TestServer, token: &str) -> Result<Client, String> {
    Client::builder(server.addr)
        .auth(json!({ "token": token }))
        .try_connect()
        .await
}

async fn assert_refused(server: &TestServer, token: &str) {
    match connect(server, token).await {
        Ok(_) => panic!("token {token:?} was accepted"),
        Err(message) => assert_eq!(message, "unauthorized"),
    }
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().expect("claims object").remove(key);
    claims
}

/// Proves which user a browser was admitted as: an event published to `user` reaches it.
async fn assert_is(server: &TestServer, browser: &mut Client, user: &str) {
    let mut backend = server.backend().await;
    publish_ok(
        &mut backend,
        &json!({"event": "whoami", "user": user, "data": user}),
    )
    .await;
    let event = browser.next_event("whoami").await;
    assert_eq!(event.args[0], json!(user));
}

#[tokio::test]
async fn token_in_auth_payload_is_accepted() {
    let server = TestServer::start("").await;
    let mut browser = connect(&server, &server.token("alice", &[], &[]))
        .await
        .expect("admitted");
    assert_is(&server, &mut browser, "alice").await;
}

#[tokio::test]
async fn token_in_query_is_accepted() {
    let server = TestServer::start("").await;
    let mut browser = Client::builder(server.addr)
        .query("token", &server.token("alice", &[], &[]))
        .connect()
        .await;
    assert_is(&server, &mut browser, "alice").await;
}

#[tokio::test]
async fn token_in_authorization_header_is_accepted() {
    let server = TestServer::start("").await;
    let bearer = format!("Bearer {}", server.token("alice", &[], &[]));
    let mut browser = Client::builder(server.addr)
        .header("Authorization", &bearer)
        .connect()
        .await;
    assert_is(&server, &mut browser, "alice").await;
}

#[tokio::test]
async fn auth_payload_wins_over_query_which_wins_over_header() {
    let server = TestServer::start("").await;
    let header = format!("Bearer {}", server.token("carol", &[], &[]));
    let mut all_three = Client::builder(server.addr)
        .auth(json!({"token": server.token("alice", &[], &[])}))
        .query("token", &server.token("bob", &[], &[]))
        .header("Authorization", &header)
        .connect()
        .await;
    assert_is(&server, &mut all_three, "alice").await;
    let mut query_and_header = Client::builder(server.addr)
        .query("token", &server.token("bob", &[], &[]))
        .header("Authorization", &header)
        .connect()
        .await;
    assert_is(&server, &mut query_and_header, "bob").await;

    // The first place that has a token decides, even when a later place holds a valid one.
    let refused = Client::builder(server.addr)
        .auth(json!({"token": "garbage"}))
        .query("token", &server.token("bob", &[], &[]))
        .try_connect()
        .await;
    assert_eq!(refused.err().as_deref(), Some("unauthorized"));
    let refused = Client::builder(server.addr)
        .query("token", "garbage")
        .header("Authorization", &header)
        .try_connect()
        .await;
    assert_eq!(refused.err().as_deref(), Some("unauthorized"));
}

#[tokio::test]
async fn no_token_is_refused() {
    let server = TestServer::start("").await;
    let refused = Client::builder(server.addr).try_connect().await;
    assert_eq!(refused.err().as_deref(), Some("unauthorized"));
    let refused = Client::builder(server.addr)
        .auth(json!({}))
        .try_connect()
        .await;
    assert_eq!(refused.err().as_deref(), Some("unauthorized"));
}

#[tokio::test]
async fn garbage_token_is_refused() {
    let server = TestServer::start("").await;
    assert_refused(&server, "not-a-jwt").await;
    assert_refused(&server, "a.b.c").await;
}

#[tokio::test]
async fn token_signed_with_another_secret_is_refused() {
    let server = TestServer::start("").await;
    let token = tokens::hmac(Algorithm::HS256, b"some-other-secret", &claims("eve"));
    assert_refused(&server, &token).await;
}

#[tokio::test]
async fn expired_token_is_refused_beyond_the_leeway() {
    let server = TestServer::start("[auth.jwt]\nleeway = \"30s\"").await;
    let within = hs256(&with(claims("alice"), "exp", json!(now() - 10)));
    connect(&server, &within)
        .await
        .expect("expired 10 s ago, within the 30 s leeway");
    let beyond = hs256(&with(claims("alice"), "exp", json!(now() - 120)));
    assert_refused(&server, &beyond).await;
}

#[tokio::test]
async fn token_not_yet_valid_is_refused() {
    let server = TestServer::start("").await;
    let future = hs256(&with(claims("alice"), "nbf", json!(now() + 3600)));
    assert_refused(&server, &future).await;
    let past = hs256(&with(claims("alice"), "nbf", json!(now() - 60)));
    connect(&server, &past).await.expect("nbf in the past");
}

#[tokio::test]
async fn token_without_sub_is_refused() {
    let server = TestServer::start("").await;
    assert_refused(&server, &hs256(&without(claims("alice"), "sub"))).await;
    assert_refused(&server, &hs256(&with(claims("alice"), "sub", json!("")))).await;
    assert_refused(&server, &hs256(&with(claims("alice"), "sub", json!(7)))).await;
    let too_long = "u".repeat(257);
    assert_refused(
        &server,
        &hs256(&with(claims("alice"), "sub", json!(too_long))),
    )
    .await;
    connect(&server, &hs256(&claims(&"u".repeat(256))))
        .await
        .expect("a 256-byte sub");
}

#[tokio::test]
async fn token_without_exp_is_refused() {
    let server = TestServer::start("").await;
    assert_refused(&server, &hs256(&without(claims("alice"), "exp"))).await;
}

#[tokio::test]
async fn unsigned_alg_none_token_is_refused() {
    let server = TestServer::start("").await;
    assert_refused(&server, &tokens::unsigned(&claims("alice"))).await;
}

#[tokio::test]
async fn other_hmac_algorithm_is_refused() {
    let server = TestServer::start("").await;
    let secret = crate::support::JWT_SECRET.as_bytes();
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        assert_refused(&server, &tokens::hmac(alg, secret, &claims("alice"))).await;
    }
    connect(
        &server,
        &tokens::hmac(Algorithm::HS256, secret, &claims("alice")),
    )
    .await
    .expect("HS256 with the right secret");
}

#[tokio::test]
async fn configured_issuer_and_audience_are_required() {
    let server = TestServer::start(
        "[auth.jwt]\nissuer = \"https://issuer.test\"\naudience = \"herald-test\"",
    )
    .await;
    let good = with(
        with(claims("alice"), "iss", json!("https://issuer.test")),
        "aud",
        json!("herald-test"),
    );
    connect(&server, &hs256(&good))
        .await
        .expect("right iss and aud");
    // mint() fills in the configured issuer and audience.
    connect(&server, &server.token("alice", &[], &[]))
        .await
        .expect("minted token");

    let wrong_iss = with(good.clone(), "iss", json!("https://evil.test"));
    assert_refused(&server, &hs256(&wrong_iss)).await;
    let wrong_aud = with(good.clone(), "aud", json!("someone-else"));
    assert_refused(&server, &hs256(&wrong_aud)).await;
    assert_refused(&server, &hs256(&without(good.clone(), "iss"))).await;
    assert_refused(&server, &hs256(&without(good, "aud"))).await;
}

#[tokio::test]
async fn hs384_and_hs512_servers_accept_their_own_algorithm_only() {
    for (name, alg, other) in [
        ("HS384", Algorithm::HS384, Algorithm::HS256),
        ("HS512", Algorithm::HS512, Algorithm::HS256),
    ] {
        let server = TestServer::start(&format!("[auth.jwt]\nalgorithm = \"{name}\"")).await;
        let secret = crate::support::JWT_SECRET.as_bytes();
        connect(&server, &tokens::hmac(alg, secret, &claims("alice")))
            .await
            .unwrap_or_else(|e| panic!("{name} token refused: {e}"));
        assert_refused(&server, &tokens::hmac(other, secret, &claims("alice"))).await;
    }
}
