//! `auth.mode = "backend"`: the handshake's Cookie / Authorization headers go to the mock
//! backend, whose answer decides; positive answers are cached; a slow or failing backend refuses
//! the connection instead of hanging it.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    Client, TestServer, backend::MockBackend, eventually, publish_ok, without_position,
};

async fn server(backend: &MockBackend, base: &str) -> TestServer {
    TestServer::start(&format!(
        "[auth]\nmode = \"backend\"\nbackend_url = \"{}\"",
        backend.url(base)
    ))
    .await
}

async fn with_cookie(server: &TestServer, cookie: &str) -> Result<Client, String> {
    Client::builder(server.addr)
        .header("Cookie", cookie)
        .try_connect()
        .await
}

#[tokio::test]
async fn forwarded_cookie_admits_the_backends_principal() {
    let backend = MockBackend::start().await;
    let server = server(&backend, "/auth").await;
    let mut browser = with_cookie(&server, "theme=dark; session=alice")
        .await
        .expect("alice admitted");
    let calls = backend.all_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].path, "/auth");
    assert_eq!(
        calls[0].cookie.as_deref(),
        Some("theme=dark; session=alice")
    );
    assert_eq!(calls[0].authorization, None);

    // The principal's user and group rooms and workspace list come from the answer.
    let mut publisher = server.backend().await;
    publish_ok(
        &mut publisher,
        &json!({"event": "to-user", "user": "alice"}),
    )
    .await;
    publish_ok(
        &mut publisher,
        &json!({"event": "to-group", "group": "/staff"}),
    )
    .await;
    browser.next_event("to-user").await;
    browser.next_event("to-group").await;
    let ack = browser.emit_with_ack("register", &json!("ws-a")).await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-a"})
    );
}

#[tokio::test]
async fn a_401_from_the_backend_refuses() {
    let backend = MockBackend::start().await;
    let server = server(&backend, "/auth").await;
    let refused = with_cookie(&server, "session=mallory").await;
    assert_eq!(refused.err().as_deref(), Some("unauthorized"));
    assert_eq!(backend.calls("/auth"), 1);
}

#[tokio::test]
async fn nothing_presented_is_refused_without_asking_the_backend() {
    let backend = MockBackend::start().await;
    let server = server(&backend, "/auth").await;
    let refused = Client::builder(server.addr).try_connect().await;
    assert_eq!(refused.err().as_deref(), Some("unauthorized"));
    assert_eq!(backend.all_calls().len(), 0);
}

#[tokio::test]
async fn auth_token_is_forwarded_as_a_bearer_header() {
    let backend = MockBackend::start().await;
    let server = server(&backend, "/auth").await;
    Client::builder(server.addr)
        .auth(json!({"token": "carol-token"}))
        .connect()
        .await;
    let calls = backend.all_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some("Bearer carol-token")
    );
    assert_eq!(calls[0].cookie, None);
}

#[tokio::test]
async fn authorization_header_is_forwarded_as_sent() {
    let backend = MockBackend::start().await;
    let server = server(&backend, "/auth").await;
    Client::builder(server.addr)
        .header("Authorization", "Bearer carol-token")
        .connect()
        .await;
    let calls = backend.all_calls();
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some("Bearer carol-token")
    );
}

#[tokio::test]
async fn positive_answers_are_cached_per_credential() {
    let backend = MockBackend::start().await;
    let server = server(&backend, "/auth").await;
    let _first = with_cookie(&server, "session=alice").await.expect("alice");
    let _second = with_cookie(&server, "session=alice").await.expect("alice");
    assert_eq!(
        backend.calls("/auth"),
        1,
        "the second connect was not cached"
    );
    let _bob = with_cookie(&server, "session=bob").await.expect("bob");
    assert_eq!(
        backend.calls("/auth"),
        2,
        "other credentials share a cache entry"
    );
}

#[tokio::test]
async fn cached_answers_expire_after_cache_ttl() {
    let backend = MockBackend::start().await;
    let server = TestServer::start(&format!(
        "[auth]\nmode = \"backend\"\nbackend_url = \"{}\"\ncache_ttl = \"100ms\"",
        backend.url("/auth")
    ))
    .await;
    let _first = with_cookie(&server, "session=alice").await.expect("alice");
    assert_eq!(backend.calls("/auth"), 1);
    // Each poll is a fresh handshake; once the entry expired, the backend is asked again.
    eventually("the backend is asked again after cache_ttl", || async {
        let _again = with_cookie(&server, "session=alice").await.expect("alice");
        backend.calls("/auth") >= 2
    })
    .await;
}

#[tokio::test]
async fn a_backend_that_never_answers_refuses_within_the_timeout() {
    let backend = MockBackend::start().await;
    let server = TestServer::start(&format!(
        "[auth]\nmode = \"backend\"\nbackend_url = \"{}\"\nbackend_timeout = \"300ms\"",
        backend.url("/slow")
    ))
    .await;
    let started = Instant::now();
    let refused = with_cookie(&server, "session=alice").await;
    let took = started.elapsed();
    assert_eq!(refused.err().as_deref(), Some("unauthorized"));
    assert_eq!(backend.calls("/slow"), 1);
    assert!(
        took < Duration::from_secs(2),
        "refusal took {took:?} with a 300 ms backend_timeout"
    );
}

#[tokio::test]
async fn a_backend_error_refuses() {
    let backend = MockBackend::start().await;
    let server = server(&backend, "/broken").await;
    let refused = with_cookie(&server, "session=alice").await;
    assert_eq!(refused.err().as_deref(), Some("unauthorized"));
    assert_eq!(backend.calls("/broken"), 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let backend = MockBackend::start().await;
    let server = server(&backend, "/redirect").await;
    let refused = with_cookie(&server, "session=alice").await;
    assert_eq!(refused.err().as_deref(), Some("unauthorized"));
    assert_eq!(backend.calls("/auth"), 0, "the redirect was followed");
}

#[tokio::test]
async fn an_unreadable_answer_refuses() {
    let backend = MockBackend::start().await;
    let server = server(&backend, "/garbled").await;
    let refused = with_cookie(&server, "session=alice").await;
    assert_eq!(refused.err().as_deref(), Some("unauthorized"));
}

#[tokio::test]
async fn register_uses_the_principals_list_when_there_is_one() {
    let backend = MockBackend::start().await;
    let server = server(&backend, "/auth").await;
    let mut alice = with_cookie(&server, "session=alice").await.expect("alice");
    let ack = alice.emit_with_ack("register", &json!("ws-a")).await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-a"})
    );
    let ack = alice.emit_with_ack("register", &json!("ws-b")).await;
    assert_eq!(ack, json!({"ok": false, "error": "forbidden"}));
    let workspace_checks = backend
        .all_calls()
        .iter()
        .filter(|c| c.path.starts_with("/auth/workspaces/"))
        .count();
    assert_eq!(
        workspace_checks, 0,
        "a listed principal needs no per-workspace call"
    );
}

#[tokio::test]
async fn register_without_a_list_asks_the_backend_per_workspace() {
    let backend = MockBackend::start().await;
    let server = server(&backend, "/auth").await;
    let mut bob = with_cookie(&server, "session=bob").await.expect("bob");

    let ack = bob
        .emit_with_ack("register", &json!({"workspace": "ws-b"}))
        .await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-b"})
    );
    let check = backend
        .all_calls()
        .into_iter()
        .find(|c| c.path == "/auth/workspaces/ws-b")
        .expect("per-workspace check");
    assert_eq!(check.cookie.as_deref(), Some("session=bob"));

    let ack = bob
        .emit_with_ack("register", &json!({"workspace": "ws-x"}))
        .await;
    assert_eq!(ack, json!({"ok": false, "error": "forbidden"}));
    let ack = bob
        .emit_with_ack("register", &json!({"workspace": "ws-down"}))
        .await;
    assert_eq!(ack, json!({"ok": false, "error": "unavailable"}));

    // A granted workspace is cached for the same credentials.
    let ack = bob.emit_with_ack("register", &json!("ws-b")).await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-b"})
    );
    assert_eq!(backend.calls("/auth/workspaces/ws-b"), 1);

    // And the registration is real: an event for ws-b reaches bob, tagged with it.
    let mut publisher = server.backend().await;
    publish_ok(
        &mut publisher,
        &json!({"event": "changed", "workspace": "ws-b"}),
    )
    .await;
    let event = bob.next_event("changed").await;
    assert_eq!(event.args[1]["workspace"], json!("ws-b"));
}
