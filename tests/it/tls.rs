//! Native TLS (`[tls]`): browsers over `wss://`, backends over `wss://` and `https://`, with a
//! self-signed certificate generated per test. Whatever does not speak TLS on the port (plain
//! HTTP, garbage, silence) is dropped without holding up anyone else, and a slow consumer is
//! still cut off when its connection is TLS.

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use herald::{Config, config::Secret, server::ServerError};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_tungstenite::{
    Connector, MaybeTlsStream, WebSocketStream, client_async_tls_with_config,
    tungstenite::{Message, client::IntoClientRequest},
};
use tokio_util::sync::CancellationToken;

use crate::support::{
    Client, PRIVATE_KEY, TestServer, WAIT, publish_ok, tls::TestCert, without_position,
};

async fn tls_server(cert: &TestCert, toml: &str) -> TestServer {
    TestServer::start(&format!("{toml}{}", cert.toml())).await
}

fn https_url(server: &TestServer, path: &str) -> String {
    format!("https://{}{path}", server.addr)
}

/// A browser over `wss://` for `user`, who may read `workspaces`.
async fn wss_browser(
    server: &TestServer,
    cert: &TestCert,
    user: &str,
    workspaces: &[&str],
) -> Client {
    Client::builder(server.addr)
        .tls(cert.client_config())
        .auth(json!({"token": server.token(user, workspaces, &[])}))
        .connect()
        .await
}

/// A backend on `/private` over `wss://`.
async fn wss_backend(server: &TestServer, cert: &TestCert) -> Client {
    Client::builder(server.addr)
        .tls(cert.client_config())
        .namespace("/private")
        .auth(json!({"key": PRIVATE_KEY}))
        .connect()
        .await
}

async fn public_connections(server: &TestServer, cert: &TestCert) -> u64 {
    let status: Value = cert
        .https()
        .get(https_url(server, "/status"))
        .bearer_auth(PRIVATE_KEY)
        .send()
        .await
        .expect("GET /status over https")
        .json()
        .await
        .expect("status JSON");
    status["connections"]["public"]
        .as_u64()
        .expect("public count")
}

/// What a client that does not speak TLS gets on the TLS port: the connection ends (EOF or an
/// error), without an HTTP answer, within the wait.
async fn refused_without_tls(server: &TestServer, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(server.addr).await.expect("TCP connect");
    tcp.write_all(bytes).await.expect("send");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("herald kept a non-TLS connection open");
    // A reset is as good as an end.
    drop(read);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "a plain HTTP answer on the TLS port: {:?}",
        String::from_utf8_lossy(&answer)
    );
    answer
}

#[tokio::test]
async fn browsers_and_backends_over_wss_and_https() {
    let cert = TestCert::generate();
    let server = tls_server(&cert, "").await;
    let https = cert.https();

    let health = https
        .get(https_url(&server, "/health"))
        .send()
        .await
        .expect("GET /health over https");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.version(), reqwest::Version::HTTP_11);
    assert_eq!(health.text().await.unwrap(), "ok");

    let mut browser = wss_browser(&server, &cert, "alice", &["ws-t"]).await;
    let ack = browser
        .emit_with_ack("register", &json!({"workspace": "ws-t"}))
        .await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-t"})
    );

    // A backend over https...
    let published = https
        .post(https_url(&server, "/api/v1/publish"))
        .bearer_auth(PRIVATE_KEY)
        .json(&json!({"event": "over_https", "workspace": "ws-t", "data": {"n": 1}}))
        .send()
        .await
        .expect("POST /api/v1/publish over https");
    assert_eq!(published.status(), StatusCode::ACCEPTED);
    let event = browser.next_event("over_https").await;
    assert_eq!(event.args[0], json!({"n": 1}));

    // ...and one on /private over wss.
    let mut backend = wss_backend(&server, &cert).await;
    publish_ok(
        &mut backend,
        &json!({"event": "over_wss", "workspace": "ws-t", "data": 2}),
    )
    .await;
    let event = browser.next_event("over_wss").await;
    assert_eq!(event.args[0], json!(2));
}

#[tokio::test]
async fn a_client_that_does_not_speak_tls_is_dropped() {
    let cert = TestCert::generate();
    let server = tls_server(&cert, "").await;
    refused_without_tls(&server, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    refused_without_tls(&server, &[0xde, 0xad, 0xbe, 0xef].repeat(4096)).await;
    // A TLS record header announcing a huge handshake, then nothing sensible.
    refused_without_tls(&server, &[0x16, 0x03, 0x01, 0xff, 0xff, 0x00, 0x00]).await;

    // An untrusting client fails its own handshake; herald keeps serving.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(https_url(&server, "/health"))
            .send()
            .await
            .is_err()
    );
    let health = cert
        .https()
        .get(https_url(&server, "/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn silent_clients_do_not_hold_up_the_others() {
    let cert = TestCert::generate();
    let server = tls_server(&cert, "").await;
    // Accepted first, they never send a ClientHello (nor does one that stops half-way).
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(server.addr).await.expect("TCP connect"));
    }
    let mut halfway = TcpStream::connect(server.addr).await.expect("TCP connect");
    halfway
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();

    // Handshakes in the accept loop would hold this one up until theirs timed out (10 s).
    let https = cert.https();
    let health = tokio::time::timeout(WAIT, https.get(https_url(&server, "/health")).send())
        .await
        .expect("an https request waited behind silent TLS clients")
        .expect("GET /health over https");
    assert_eq!(health.status(), StatusCode::OK);
    let _browser = tokio::time::timeout(WAIT, wss_browser(&server, &cert, "bob", &[]))
        .await
        .expect("a wss handshake waited behind silent TLS clients");
    drop(silent);
}

type Wss = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Reads text frames until one starts with `prefix`; fails after [`WAIT`].
async fn read_until(ws: &mut Wss, prefix: &str) {
    let wait = async {
        while let Some(frame) = ws.next().await {
            if let Message::Text(text) = frame.expect("websocket frame")
                && text.starts_with(prefix)
            {
                return;
            }
        }
        panic!("connection closed before a frame starting with {prefix:?}");
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no frame starting with {prefix:?} within {WAIT:?}"));
}

#[tokio::test]
async fn a_slow_consumer_over_tls_is_cut_off() {
    let cert = TestCert::generate();
    let server = tls_server(&cert, "[engine]\nmax_buffer_size = 64\n").await;
    let mut reader = wss_browser(&server, &cert, "bob", &["ws-s"]).await;
    reader
        .emit_with_ack("register", &json!({"workspace": "ws-s"}))
        .await;

    // A raw wss client that registers, then reads nothing more.
    let url = format!("wss://{}/socket.io/?EIO=4&transport=websocket", server.addr);
    let tcp = TcpStream::connect(server.addr).await.expect("TCP connect");
    let (mut slow, _) = client_async_tls_with_config(
        url.into_client_request().expect("request"),
        tcp,
        None,
        Some(Connector::Rustls(cert.client_config())),
    )
    .await
    .expect("wss handshake");
    read_until(&mut slow, "0{").await;
    let auth = json!({"token": server.token("alice", &["ws-s"], &[])});
    slow.send(Message::text(format!("40/public,{auth}")))
        .await
        .unwrap();
    read_until(&mut slow, "40/public,").await;
    slow.send(Message::text("42/public,0[\"register\",\"ws-s\"]"))
        .await
        .unwrap();
    read_until(&mut slow, "43/public,0").await;
    assert_eq!(public_connections(&server, &cert).await, 2);

    let data = "x".repeat(16 * 1024);
    let mut backend = wss_backend(&server, &cert).await;
    let mut published = 0u64;
    while public_connections(&server, &cert).await == 2 {
        assert!(
            published < 4000,
            "the slow TLS client was still connected after {published} events of 16 KiB"
        );
        for _ in 0..50 {
            publish_ok(
                &mut backend,
                &json!({"event": "slow", "workspace": "ws-s", "data": data}),
            )
            .await;
            published += 1;
        }
        for _ in 0..50 {
            reader.next_event("slow").await;
        }
    }
    // Its connection ends: what was buffered drains, then the stream closes.
    let drain = async { while let Some(Ok(_)) = slow.next().await {} };
    tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .expect("the slow TLS client's connection did not end");
}

#[tokio::test]
async fn a_missing_or_invalid_certificate_stops_startup_naming_the_file() {
    crate::support::init_tracing();
    let cert = TestCert::generate();
    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), "no certificate here").unwrap();
    let garbage_path = garbage.path().display().to_string();
    for (tls, named) in [
        (
            "[tls]\ncert = \"/nonexistent/herald-test-cert.pem\"\nkey = \"/nonexistent/k.pem\""
                .to_owned(),
            "/nonexistent/herald-test-cert.pem".to_owned(),
        ),
        (
            format!("[tls]\ncert = {garbage_path:?}\nkey = {garbage_path:?}"),
            garbage_path.clone(),
        ),
    ] {
        let mut cfg = Config::from_toml(&tls).unwrap();
        cfg.private.key = Some(Secret::new(PRIVATE_KEY));
        cfg.auth.jwt.secret = Some(Secret::new("a-jwt-secret-0123"));
        cfg.validate(false).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let result = tokio::time::timeout(
            WAIT,
            herald::run(listener, Arc::new(cfg), CancellationToken::new()),
        )
        .await
        .expect("herald::run neither failed nor returned");
        let Err(error @ ServerError::Tls(_)) = result else {
            panic!("expected a TLS startup error, got {result:?}");
        };
        assert!(error.to_string().contains(&named), "{error}");
    }
    drop(cert);
}
