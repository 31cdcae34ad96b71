//! `publish` on `/private`: the ack and every refusal code. A refused publish answers
//! `{"ok": false, "error": <code>, "message": ...}` and leaves the backend connected.

use serde_json::{Value, json};

use crate::support::TestServer;

async fn refusal(backend: &mut crate::support::Client, args: &str) -> Value {
    let ack = backend.emit_raw_with_ack("publish", args).await;
    assert_eq!(ack["ok"], json!(false), "{args}: {ack}");
    assert!(ack["message"].is_string(), "{args}: {ack}");
    ack
}

async fn assert_code(backend: &mut crate::support::Client, args: &str, code: &str) {
    let ack = refusal(backend, args).await;
    assert_eq!(ack["error"], json!(code), "{args}: {ack}");
}

#[tokio::test]
async fn publish_is_acked_with_a_uuid() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    let ack = backend
        .emit_with_ack("publish", &json!({"event": "e", "workspace": "w"}))
        .await;
    assert_eq!(ack["ok"], json!(true), "{ack}");
    let id = ack["id"].as_str().expect("id");
    uuid::Uuid::parse_str(id).expect("the id is a UUID");
    assert_eq!(ack, json!({"ok": true, "id": id}));
    let again = backend
        .emit_with_ack("publish", &json!({"event": "e", "workspace": "w"}))
        .await;
    assert_ne!(again["id"], ack["id"], "ids are unique");
}

#[tokio::test]
async fn malformed_requests_are_bad_requests() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    for args in [
        "",
        "\"a string\"",
        "42",
        "null",
        "[1,2]",
        r#"{"workspace":"w"}"#,
        r#"{"event":5,"workspace":"w"}"#,
        r#"{"event":"e","workspace":5}"#,
        r#"{"event":"e","workspace":""}"#,
        r#"{"event":"e","workspaces":"w"}"#,
        r#"{"event":"e","users":[""]}"#,
        r#"{"event":"e","group":""}"#,
        r#"{"event":"e","workspace":"w","extra":1}"#,
    ] {
        assert_code(&mut backend, args, "bad_request").await;
    }
    let long = "x".repeat(257);
    assert_code(
        &mut backend,
        &format!(r#"{{"event":"e","workspace":"{long}"}}"#),
        "bad_request",
    )
    .await;
}

#[tokio::test]
async fn bad_event_names_are_invalid_event() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    let long = "x".repeat(129);
    for name in ["", long.as_str(), "a\nb", "tab\there", "nul\u{0}"] {
        let args = json!({"event": name, "workspace": "w"}).to_string();
        assert_code(&mut backend, &args, "invalid_event").await;
    }
    let ok = backend
        .emit_with_ack(
            "publish",
            &json!({"event": "x".repeat(128), "workspace": "w"}),
        )
        .await;
    assert_eq!(ok["ok"], json!(true), "a 128-byte name is fine: {ok}");
}

#[tokio::test]
async fn socket_io_reserved_names_are_reserved_event() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    for name in [
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    ] {
        let args = json!({"event": name, "workspace": "w"}).to_string();
        assert_code(&mut backend, &args, "reserved_event").await;
    }
}

#[tokio::test]
async fn no_target_is_no_target() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    for args in [
        r#"{"event":"e"}"#,
        r#"{"event":"e","data":{"x":1}}"#,
        r#"{"event":"e","workspaces":[],"users":[]}"#,
    ] {
        assert_code(&mut backend, args, "no_target").await;
    }
}

#[tokio::test]
async fn too_many_targets_is_too_many_targets() {
    let server = TestServer::start("[publish]\nmax_targets = 3").await;
    let mut backend = server.backend().await;
    for args in [
        r#"{"event":"e","workspaces":["a","b","c","d"]}"#,
        r#"{"event":"e","workspace":"a","workspaces":["b","c"],"user":"u"}"#,
        r#"{"event":"e","users":["a","b"],"user":"c","group":"/g"}"#,
    ] {
        assert_code(&mut backend, args, "too_many_targets").await;
    }
    // Exactly the limit is fine, and a duplicate room counts once.
    for args in [
        r#"{"event":"e","workspaces":["a","b"],"group":"/g"}"#,
        r#"{"event":"e","workspace":"a","workspaces":["a","b"],"user":"u"}"#,
    ] {
        let ack = backend.emit_raw_with_ack("publish", args).await;
        assert_eq!(ack["ok"], json!(true), "{args}: {ack}");
    }
}

#[tokio::test]
async fn unknown_private_event_is_a_bad_request() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    let ack = backend.emit_with_ack("broadcast", &json!({})).await;
    assert_eq!(ack["ok"], json!(false));
    assert_eq!(ack["error"], json!("bad_request"));
    // The backend is still connected and can publish.
    let ack = backend
        .emit_with_ack("publish", &json!({"event": "e", "user": "u"}))
        .await;
    assert_eq!(ack["ok"], json!(true), "{ack}");
}

#[tokio::test]
async fn binary_attachments_are_a_bad_request() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    // BINARY_EVENT with one attachment: the placeholder in the JSON, the bytes in a binary frame.
    let id = backend.next_ack_id();
    backend.send_text(format!(
        r#"451-/private,{id}["publish",{{"event":"e","user":"u","data":{{"_placeholder":true,"num":0}}}}]"#
    ));
    backend.send_binary(vec![1, 2, 3]);
    let ack = backend.ack(id).await;
    assert_eq!(ack["ok"], json!(false), "{ack}");
    assert_eq!(ack["error"], json!("bad_request"), "{ack}");
}
