//! What browsers receive: `["event", data, meta]` with `data` byte for byte as published,
//! `meta = {id, workspace, ts}`, one copy per socket for a union of targets, and nothing for
//! sockets outside the targets.

use serde_json::json;

use crate::support::{TestServer, publish_ok, tokens::now};

#[tokio::test]
async fn data_arrives_byte_for_byte() {
    let server = TestServer::start("").await;
    let mut browser = server.registered("alice", &["ws-a"]).await;
    let mut backend = server.backend().await;
    let data = r#"{"big":18446744073709551616,"f":1.50,"e":1e3,"s":"é\u00e9","n":[ ]}"#;
    let ack = backend
        .emit_raw_with_ack(
            "publish",
            &format!(r#"{{"event":"exact","workspace":"ws-a","data":{data}}}"#),
        )
        .await;
    assert_eq!(ack["ok"], json!(true), "{ack}");
    let event = browser.next_event("exact").await;
    let prefix = format!(r#"42/public,["exact",{data},{{"#);
    assert!(
        event.raw.starts_with(&prefix),
        "data was re-encoded:\n  sent {data}\n  got  {}",
        event.raw
    );
}

#[tokio::test]
async fn meta_carries_id_workspace_and_time() {
    let server = TestServer::start("").await;
    let mut browser = server.registered("alice", &["ws-a"]).await;
    let mut backend = server.backend().await;
    let before = now() * 1000;
    let id = publish_ok(
        &mut backend,
        &json!({"event": "changed", "workspace": "ws-a", "data": {"path": "/x"}}),
    )
    .await;
    let event = browser.next_event("changed").await;
    assert_eq!(event.args.len(), 2, "{}", event.raw);
    assert_eq!(event.args[0], json!({"path": "/x"}));
    let meta = &event.args[1];
    let keys: Vec<&String> = meta.as_object().expect("meta object").keys().collect();
    assert_eq!(keys, ["id", "workspace", "ts", "offset", "epoch"]);
    assert_eq!(meta["id"], json!(id));
    assert_eq!(meta["workspace"], json!("ws-a"));
    let ts = meta["ts"].as_i64().expect("ts in ms");
    assert!(
        ts >= before - 1000 && ts <= now() * 1000 + 1000,
        "ts {ts} is not now"
    );
}

#[tokio::test]
async fn absent_data_arrives_as_null() {
    let server = TestServer::start("").await;
    let mut browser = server.browser("alice", &[]).await;
    let mut backend = server.backend().await;
    publish_ok(&mut backend, &json!({"event": "ping-ish", "user": "alice"})).await;
    let event = browser.next_event("ping-ish").await;
    assert!(
        event.raw.starts_with(r#"42/public,["ping-ish",null,{"#),
        "{}",
        event.raw
    );
}

#[tokio::test]
async fn a_union_of_targets_delivers_one_copy_per_socket() {
    let server = TestServer::start("").await;
    let token = server.token("alice", &["ws-a", "ws-b"], &["/staff"]);
    let mut browser = server.browser_with(&token).await;
    for ws in ["ws-a", "ws-b"] {
        let ack = browser.emit_with_ack("register", &json!(ws)).await;
        assert_eq!(ack["ok"], json!(true));
    }
    let mut backend = server.backend().await;
    publish_ok(
        &mut backend,
        &json!({"event": "multi", "workspaces": ["ws-b", "ws-a"],
                "user": "alice", "users": ["alice"], "group": "/staff"}),
    )
    .await;
    // Reached through its user and group only: meta.workspace is null.
    publish_ok(
        &mut backend,
        &json!({"event": "personal", "user": "alice", "group": "/staff"}),
    )
    .await;
    publish_ok(&mut backend, &json!({"event": "marker", "user": "alice"})).await;
    browser.next_event("marker").await;

    assert_eq!(browser.count("multi"), 1, "{:?}", browser.events());
    assert_eq!(browser.count("personal"), 1, "{:?}", browser.events());
    let multi = browser.next_event("multi").await;
    // Reached through both workspaces: meta names the first in the publisher's order.
    assert_eq!(multi.args[1]["workspace"], json!("ws-b"));
    let personal = browser.next_event("personal").await;
    assert_eq!(personal.args[1]["workspace"], json!(null));
}

#[tokio::test]
async fn meta_workspace_names_the_workspace_that_reached_each_socket() {
    let server = TestServer::start("").await;
    let mut in_a = server.registered("alice", &["ws-a"]).await;
    let mut in_b = server.registered("bob", &["ws-b"]).await;
    let mut by_user = server.browser("carol", &[]).await;
    let mut backend = server.backend().await;
    publish_ok(
        &mut backend,
        &json!({"event": "e", "workspaces": ["ws-a", "ws-b"], "user": "carol"}),
    )
    .await;
    assert_eq!(
        in_a.next_event("e").await.args[1]["workspace"],
        json!("ws-a")
    );
    assert_eq!(
        in_b.next_event("e").await.args[1]["workspace"],
        json!("ws-b")
    );
    assert_eq!(
        by_user.next_event("e").await.args[1]["workspace"],
        json!(null)
    );
}

#[tokio::test]
async fn sockets_outside_the_targets_receive_nothing() {
    let server = TestServer::start("").await;
    let mut target = server.registered("alice", &["ws-a"]).await;
    let mut other_ws = server.registered("bob", &["ws-b"]).await;
    // May read ws-a but did not register to it.
    let mut unregistered = server.browser("carol", &["ws-a"]).await;
    let mut other_user = server.browser("dave", &[]).await;
    let mut backend = server.backend().await;

    publish_ok(
        &mut backend,
        &json!({"event": "secret", "workspace": "ws-a"}),
    )
    .await;
    publish_ok(&mut backend, &json!({"event": "secret", "user": "alice"})).await;
    publish_ok(
        &mut backend,
        &json!({"event": "marker", "users": ["alice", "bob", "carol", "dave"]}),
    )
    .await;

    for browser in [
        &mut target,
        &mut other_ws,
        &mut unregistered,
        &mut other_user,
    ] {
        browser.next_event("marker").await;
    }
    assert_eq!(target.count("secret"), 2);
    assert_eq!(other_ws.count("secret"), 0, "other workspace received it");
    assert_eq!(
        unregistered.count("secret"),
        0,
        "unregistered socket received it"
    );
    assert_eq!(other_user.count("secret"), 0, "other user received it");
}
