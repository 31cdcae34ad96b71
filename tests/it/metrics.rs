//! `GET /metrics`: guarded like `/status`, OpenMetrics text, and the counts move with what
//! happens: handshakes and registers by outcome, publishes, deliveries, merged events,
//! replays, resyncs and live connections.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Client, PRIVATE_KEY, TestServer, publish_ok};

async fn scrape(server: &TestServer) -> String {
    let response = reqwest::Client::new()
        .get(server.url("/metrics"))
        .bearer_auth(PRIVATE_KEY)
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.expect("metrics text")
}

/// The value of the sample `series` (name and labels exactly as rendered); 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().expect("a number"))
}

#[tokio::test]
async fn metrics_need_the_key_unless_status_is_public() {
    let server = TestServer::start("").await;
    let client = reqwest::Client::new();
    for key in [None, Some("wrong-key-0123456789")] {
        let mut request = client.get(server.url("/metrics"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("GET /metrics");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{key:?}");
    }
    let open = TestServer::start("status_public = true").await;
    let response = client.get(open.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn counts_follow_what_happens() {
    let server = TestServer::start("[coalesce]\ndelay = \"100ms\"\nmax_delay = \"300ms\"").await;
    let refused = Client::builder(server.addr)
        .namespace("/public")
        .auth(json!({"token": "garbage"}))
        .try_connect()
        .await;
    assert!(refused.is_err());
    let mut alice = server.registered("alice", &["ws-a"]).await;
    let mut bob = server.registered("bob", &["ws-a"]).await;
    let ack = bob.emit_with_ack("register", &json!("ws-z")).await;
    assert_eq!(ack["error"], json!("forbidden"));
    let mut backend = server.backend().await;
    publish_ok(&mut backend, &json!({"event": "e", "workspace": "ws-a"})).await;
    alice.next_event("e").await;
    bob.next_event("e").await;
    for n in 0..3 {
        publish_ok(
            &mut backend,
            &json!({"event": "k", "workspace": "ws-a", "coalesce_key": "n", "data": n}),
        )
        .await;
    }
    alice.next_event("k").await;
    bob.next_event("k").await;

    // A replay of two events, and a resync.
    let ack = alice.emit_with_ack("register", &json!("ws-a")).await;
    let epoch = ack["epoch"].as_str().unwrap().to_owned();
    let mut late = server.browser("alice", &["ws-a"]).await;
    let since = json!({"workspace": "ws-a", "since": {"offset": 0, "epoch": epoch}});
    assert_eq!(
        late.emit_with_ack("register", &since).await["ok"],
        json!(true)
    );
    let stale = json!({"workspace": "ws-a", "since": {"offset": 0, "epoch": "old"}});
    assert_eq!(
        late.emit_with_ack("register", &stale).await["ok"],
        json!(true)
    );
    late.next_event("resync").await;

    let text = scrape(&server).await;
    let expected = [
        (
            r#"herald_handshakes_total{namespace="public",outcome="ok"}"#,
            3.0,
        ),
        (
            r#"herald_handshakes_total{namespace="public",outcome="unauthorized"}"#,
            1.0,
        ),
        (
            r#"herald_handshakes_total{namespace="private",outcome="ok"}"#,
            1.0,
        ),
        (
            r#"herald_registers_total{namespace="public",outcome="ok"}"#,
            5.0,
        ),
        (
            r#"herald_registers_total{namespace="public",outcome="forbidden"}"#,
            1.0,
        ),
        ("herald_events_published_total", 4.0),
        ("herald_events_coalesced_total", 2.0),
        ("herald_events_delivered_total", 4.0),
        ("herald_events_replayed_total", 2.0),
        ("herald_resyncs_total", 1.0),
        ("herald_publish_to_emit_seconds_count", 2.0),
        (
            r#"herald_connections{namespace="public",transport="websocket"}"#,
            3.0,
        ),
        (
            r#"herald_connections{namespace="private",transport="websocket"}"#,
            1.0,
        ),
    ];
    for (series, wanted) in expected {
        assert_eq!(value(&text, series), wanted, "{series} in\n{text}");
    }
}
