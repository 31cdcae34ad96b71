//! Coalescing through a running server: publishes with the same (targets, event,
//! `coalesce_key`) become one delivery of the last data, released `coalesce.delay` after the
//! latest of them and never later than `coalesce.max_delay` after the first; events without a
//! key are not held; held events go out on shutdown. The windows themselves are pinned with a
//! paused clock in the coalescer's unit tests; here the bounds are only "not before".

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{TestServer, publish_ok};

const CONFIG: &str = r#"
[coalesce]
delay = "300ms"
max_delay = "900ms"
"#;

fn keyed(ws: &str, key: &str, data: &Value) -> Value {
    json!({"event": "tree_changes", "workspace": ws, "coalesce_key": key, "data": data})
}

#[tokio::test]
async fn a_burst_is_one_delivery_of_the_last_data_after_the_delay() {
    let server = TestServer::start(CONFIG).await;
    let mut browser = server.registered("alice", &["ws-a"]).await;
    let mut backend = server.backend().await;

    let mut last_id = String::new();
    for n in 0..5 {
        last_id = publish_ok(&mut backend, &keyed("ws-a", "node-1", &json!({"n": n}))).await;
    }
    let last_publish = Instant::now();
    // Not held: goes out at once, before the merged delivery.
    publish_ok(
        &mut backend,
        &json!({"event": "tree_changes", "workspace": "ws-a", "data": "unkeyed"}),
    )
    .await;

    let first = browser.next_event("tree_changes").await;
    assert_eq!(first.args[0], json!("unkeyed"), "{}", first.raw);
    let merged = browser.next_event("tree_changes").await;
    assert!(
        last_publish.elapsed() >= Duration::from_millis(250),
        "the merged delivery came {:?} after the last publish, before coalesce.delay",
        last_publish.elapsed()
    );
    assert_eq!(merged.args[0], json!({"n": 4}), "{}", merged.raw);
    assert_eq!(
        merged.args[1]["id"],
        json!(last_id),
        "meta of the last event"
    );

    // A marker to the same socket proves nothing else of the burst is on its way.
    publish_ok(&mut backend, &json!({"event": "marker", "user": "alice"})).await;
    browser.next_event("marker").await;
    assert_eq!(browser.count("tree_changes"), 2, "{:?}", browser.arrivals());
}

#[tokio::test]
async fn keys_and_rooms_are_merged_separately() {
    let server = TestServer::start(CONFIG).await;
    let mut browser = server.registered("alice", &["ws-a", "ws-b"]).await;
    let mut backend = server.backend().await;

    for n in 0..3 {
        publish_ok(&mut backend, &keyed("ws-a", "node-1", &json!(["a1", n]))).await;
        publish_ok(&mut backend, &keyed("ws-a", "node-2", &json!(["a2", n]))).await;
        publish_ok(&mut backend, &keyed("ws-b", "node-1", &json!(["b1", n]))).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let event = browser.next_event("tree_changes").await;
        got.push(event.args[0].clone());
    }
    got.sort_by_key(ToString::to_string);
    assert_eq!(got, [json!(["a1", 2]), json!(["a2", 2]), json!(["b1", 2])]);
    publish_ok(&mut backend, &json!({"event": "marker", "user": "alice"})).await;
    browser.next_event("marker").await;
    assert_eq!(browser.count("tree_changes"), 3, "{:?}", browser.arrivals());
}

#[tokio::test]
async fn a_steady_stream_is_still_delivered_every_max_delay() {
    let server = TestServer::start(CONFIG).await;
    let mut browser = server.registered("alice", &["ws-a"]).await;
    let mut backend = server.backend().await;

    // One event every 100 ms for 2.2 s: never quiet for `delay`, so only `max_delay` releases.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let published: i64 = 22;
    for n in 0..published {
        tick.tick().await;
        publish_ok(&mut backend, &keyed("ws-a", "node-1", &json!(n))).await;
    }
    // Read until the stream's last value: it is never lost, and values come in publish order.
    let mut values = Vec::new();
    while values.last() != Some(&(published - 1)) {
        let event = browser.next_event("tree_changes").await;
        values.push(event.args[0].as_i64().expect("a number"));
    }
    assert!(values.is_sorted(), "{values:?}");
    assert!(
        (2..published).contains(&i64::try_from(values.len()).expect("small")),
        "{} deliveries for {published} events published over 2.2 s: {values:?}",
        values.len()
    );
}

#[tokio::test]
async fn held_events_go_out_on_shutdown() {
    let server = TestServer::start(
        r#"
shutdown_timeout = "3s"
[coalesce]
delay = "1m"
max_delay = "1m"
"#,
    )
    .await;
    let mut browser = server.registered("alice", &["ws-a"]).await;
    let mut backend = server.backend().await;
    publish_ok(&mut backend, &keyed("ws-a", "node-1", &json!("held"))).await;

    let stopping = tokio::spawn(server.stop(Duration::from_secs(5)));
    let event = browser.next_event("tree_changes").await;
    assert_eq!(event.args[0], json!("held"));
    stopping
        .await
        .expect("stop task")
        .expect("run returned an error");
}

#[tokio::test]
async fn invalid_keys_are_refused() {
    let server = TestServer::start(CONFIG).await;
    let mut backend = server.backend().await;
    let long = "k".repeat(257);
    for bad in [
        json!(""),
        json!(long),
        json!(7),
        json!("a\u{1}b"),
        json!(null),
    ] {
        let ack = backend
            .emit_with_ack(
                "publish",
                &json!({"event": "e", "workspace": "ws-a", "coalesce_key": bad}),
            )
            .await;
        if bad.is_null() {
            // An explicit null is "no key".
            assert_eq!(ack["ok"], json!(true), "{ack}");
            continue;
        }
        assert_eq!(ack["ok"], json!(false), "coalesce_key {bad}: {ack}");
        assert_eq!(
            ack["error"],
            json!("bad_request"),
            "coalesce_key {bad}: {ack}"
        );
    }
}
