//! RS256 and ES256: tokens verify against the configured public key file, and the public key
//! cannot be turned into an HMAC secret (algorithm confusion).

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::support::{
    Client, TestServer, fixture,
    tokens::{self, claims},
};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

async fn server(algorithm: &str, public_key: &str) -> TestServer {
    TestServer::start(&format!(
        "[auth.jwt]\nalgorithm = \"{algorithm}\"\npublic_key_file = {:?}",
        fixture(public_key)
    ))
    .await
}

async fn connect(server: &TestServer, token: &str) -> Result<Client, String> {
    Client::builder(server.addr)
        .auth(json!({ "token": token }))
        .try_connect()
        .await
}

#[tokio::test]
async fn rs256_token_is_accepted() {
    let server = server("RS256", "rsa_public.pem").await;
    let token = tokens::rs256(&read("rsa_private.pem"), &claims("alice"));
    connect(&server, &token)
        .await
        .expect("RS256 token admitted");
}

#[tokio::test]
async fn rs256_public_key_as_hmac_secret_is_refused() {
    let server = server("RS256", "rsa_public.pem").await;
    let confused = tokens::hmac(Algorithm::HS256, &read("rsa_public.pem"), &claims("eve"));
    assert_eq!(
        connect(&server, &confused).await.err().as_deref(),
        Some("unauthorized")
    );
    let es = tokens::es256(&read("ec_private.pem"), &claims("eve"));
    assert_eq!(
        connect(&server, &es).await.err().as_deref(),
        Some("unauthorized")
    );
}

#[tokio::test]
async fn es256_token_is_accepted() {
    let server = server("ES256", "ec_public.pem").await;
    let token = tokens::es256(&read("ec_private.pem"), &claims("alice"));
    connect(&server, &token)
        .await
        .expect("ES256 token admitted");
}

#[tokio::test]
async fn es256_public_key_as_hmac_secret_is_refused() {
    let server = server("ES256", "ec_public.pem").await;
    let confused = tokens::hmac(Algorithm::HS256, &read("ec_public.pem"), &claims("eve"));
    assert_eq!(
        connect(&server, &confused).await.err().as_deref(),
        Some("unauthorized")
    );
    let rs = tokens::rs256(&read("rsa_private.pem"), &claims("eve"));
    assert_eq!(
        connect(&server, &rs).await.err().as_deref(),
        Some("unauthorized")
    );
}

#[tokio::test]
async fn a_tampered_signature_is_refused() {
    let server = server("RS256", "rsa_public.pem").await;
    let token = tokens::rs256(&read("rsa_private.pem"), &claims("alice"));
    // Change one character well inside the signature (the last one may only carry padding
    // bits): same header and claims, a signature that no longer verifies.
    let at = token.len() - 10;
    let replaced = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{replaced}{}", &token[..at], &token[at + 1..]);
    assert_eq!(
        connect(&server, &tampered).await.err().as_deref(),
        Some("unauthorized")
    );
}
