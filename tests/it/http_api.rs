//! The HTTP API: `POST /api/v1/publish` (bearer private key + authorized host), `GET /health`,
//! and the JSON 404.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PRIVATE_KEY, TestServer};

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post_publish(
    server: &TestServer,
    key: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = http()
        .post(server.url("/api/v1/publish"))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("POST /api/v1/publish")
}

async fn error_body(response: reqwest::Response) -> Value {
    let body: Value = response.json().await.expect("JSON error body");
    assert!(body["message"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn publish_is_accepted_and_delivered_byte_for_byte() {
    let server = TestServer::start("").await;
    let mut browser = server.registered("alice", &["ws-a"]).await;
    let data = r#"{"big":18446744073709551616,"f":1.50}"#;
    let response = post_publish(
        &server,
        Some(PRIVATE_KEY),
        format!(r#"{{"event":"over-http","workspace":"ws-a","data":{data}}}"#),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let receipt: Value = response.json().await.expect("JSON receipt");
    let id = receipt["id"].as_str().expect("receipt id");
    uuid::Uuid::parse_str(id).expect("a UUID");

    let event = browser.next_event("over-http").await;
    assert!(
        event
            .raw
            .starts_with(&format!(r#"42/public,["over-http",{data},{{"#)),
        "data was re-encoded: {}",
        event.raw
    );
    assert_eq!(event.args[1]["id"], json!(id));
    assert_eq!(event.args[1]["workspace"], json!("ws-a"));
}

#[tokio::test]
async fn each_refusal_has_its_code() {
    let server = TestServer::start("[publish]\nmax_targets = 2").await;
    let long = "x".repeat(129);
    let cases = [
        ("not json".to_owned(), "bad_request"),
        (String::new(), "bad_request"),
        (r#"{"event":"e","workspace":5}"#.to_owned(), "bad_request"),
        (
            r#"{"event":"e","workspace":"w","x":1}"#.to_owned(),
            "bad_request",
        ),
        (
            format!(r#"{{"event":"{long}","workspace":"w"}}"#),
            "invalid_event",
        ),
        (
            r#"{"event":"","workspace":"w"}"#.to_owned(),
            "invalid_event",
        ),
        (
            r#"{"event":"connect","workspace":"w"}"#.to_owned(),
            "reserved_event",
        ),
        (r#"{"event":"e"}"#.to_owned(), "no_target"),
        (
            r#"{"event":"e","workspaces":["a","b","c"]}"#.to_owned(),
            "too_many_targets",
        ),
    ];
    for (body, code) in cases {
        let response = post_publish(&server, Some(PRIVATE_KEY), body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error = error_body(response).await;
        assert_eq!(error["code"], json!(code), "{body}: {error}");
    }
    let response = post_publish(&server, Some(PRIVATE_KEY), vec![b'"', 0xff, b'"']).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "non-UTF-8 body");
    assert_eq!(error_body(response).await["code"], json!("bad_request"));
}

#[tokio::test]
async fn missing_or_wrong_key_is_401() {
    let server = TestServer::start("").await;
    let body = r#"{"event":"e","workspace":"w"}"#;
    for key in [None, Some("wrong-key"), Some("")] {
        let response = post_publish(&server, key, body).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(error_body(response).await["code"], json!("unauthorized"));
    }
    let response = http()
        .post(server.url("/api/v1/publish"))
        .header("Authorization", format!("Basic {PRIVATE_KEY}"))
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "Basic scheme");
}

#[tokio::test]
async fn a_host_not_authorized_is_401_even_with_the_key() {
    let server = TestServer::start("[private]\nauthorized_hosts = [\"10.9.9.9\"]").await;
    let response = post_publish(&server, Some(PRIVATE_KEY), r#"{"event":"e","user":"u"}"#).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_body(response).await["code"], json!("unauthorized"));
}

#[tokio::test]
async fn forwarded_for_decides_only_behind_a_trusted_proxy() {
    let body = r#"{"event":"e","user":"u"}"#;
    let publish_as = |server: &TestServer, xff: &str| {
        http()
            .post(server.url("/api/v1/publish"))
            .bearer_auth(PRIVATE_KEY)
            .header("X-Forwarded-For", xff)
            .body(body)
            .send()
    };
    let untrusted = TestServer::start("[private]\nauthorized_hosts = [\"10.1.1.1\"]").await;
    let response = publish_as(&untrusted, "10.1.1.1").await.expect("POST");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "spoofed XFF");

    let trusted = TestServer::start(
        "trusted_proxies = [\"127.0.0.1\"]\n[private]\nauthorized_hosts = [\"10.1.1.1\"]",
    )
    .await;
    let response = publish_as(&trusted, "10.1.1.1").await.expect("POST");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let response = publish_as(&trusted, "garbage").await.expect("POST");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let server = TestServer::start("[publish]\nmax_body_bytes = 256").await;
    let padding = "x".repeat(300);
    let body = format!(r#"{{"event":"e","workspace":"w","data":"{padding}"}}"#);
    let response = post_publish(&server, Some(PRIVATE_KEY), body.clone()).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        error_body(response).await["code"],
        json!("payload_too_large")
    );

    // Without a Content-Length (chunked), the limit holds as well.
    let status = chunked_publish(&server, &body).await;
    assert!(status.starts_with("HTTP/1.1 413"), "chunked body: {status}");

    let small = r#"{"event":"e","workspace":"w"}"#;
    let response = post_publish(&server, Some(PRIVATE_KEY), small).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "under the limit");
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a raw connection; returns the status line.
async fn chunked_publish(server: &TestServer, body: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut request = format!(
        "POST /api/v1/publish HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {PRIVATE_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr
    );
    for chunk in body.as_bytes().chunks(64) {
        request.push_str(&format!("{:x}\r\n", chunk.len()));
        request.push_str(std::str::from_utf8(chunk).expect("ASCII body"));
        request.push_str("\r\n");
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut status = String::new();
    tokio::time::timeout(
        crate::support::WAIT,
        BufReader::new(stream).read_line(&mut status),
    )
    .await
    .expect("no response to the chunked POST")
    .expect("read the status line");
    status
}

#[tokio::test]
async fn health_is_ok() {
    let server = TestServer::start("").await;
    let response = http().get(server.url("/health")).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "ok");
}

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let server = TestServer::start("").await;
    for path in ["/nope", "/api/v1/nope", "/api/v2/publish"] {
        let response = http().get(server.url(path)).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.expect("JSON 404");
        assert_eq!(
            body,
            json!({"code": "not_found", "message": "not found"}),
            "{path}"
        );
    }
}

#[tokio::test]
async fn known_paths_with_another_method_are_json_405() {
    let server = TestServer::start("").await;
    let requests = [
        http().get(server.url("/api/v1/publish")),
        http().post(server.url("/health")),
        http().delete(server.url("/status")),
    ];
    for request in requests {
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        let body: Value = response.json().await.expect("JSON 405");
        assert_eq!(
            body,
            json!({"code": "method_not_allowed", "message": "method not allowed"})
        );
    }
}

#[tokio::test]
async fn content_type_is_not_checked() {
    let server = TestServer::start("").await;
    for content_type in [None, Some("text/plain")] {
        let mut request = http()
            .post(server.url("/api/v1/publish"))
            .bearer_auth(PRIVATE_KEY)
            .body(r#"{"event":"e","user":"u"}"#);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.expect("POST");
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{content_type:?}");
    }
}
