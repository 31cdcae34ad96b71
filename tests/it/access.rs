//! Live access changes: `access` on `/private` and `POST /api/v1/access`. Every socket of the
//! user follows the new list at once: registrations no longer allowed are left and announced
//! with `access_revoked`, later `register`s are checked against the new list, and in backend
//! mode `{"user"}` alone makes herald ask the auth backend again, per socket, past its cache.

use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    Client, PRIVATE_KEY, TestServer, backend::MockBackend, client::Disconnect, eventually,
    publish_ok, without_position,
};

/// The ack / HTTP body of an applied change.
fn outcome(sockets: usize, revoked: usize, disconnected: usize) -> Value {
    json!({"ok": true, "sockets": sockets, "revoked": revoked, "disconnected": disconnected})
}

/// Sends `access` over `/private` and returns its ack.
async fn change(server: &TestServer, request: &Value) -> Value {
    let mut backend = server.backend().await;
    backend.emit_with_ack("access", request).await
}

/// Publishes an event to each of `workspaces`, then a marker to `user`, and returns, once the
/// browser has the marker, the workspaces whose event reached it (delivery is ordered, so an
/// event that has not arrived by then never will). Names are unique per call, so probes of
/// other browsers in the same workspaces do not count.
async fn probe(
    server: &TestServer,
    browser: &mut Client,
    workspaces: &[&str],
    user: &str,
) -> Vec<String> {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let (event, marker) = (format!("probe-{n}"), format!("marker-{n}"));
    let mut backend = server.backend().await;
    for ws in workspaces {
        publish_ok(&mut backend, &json!({"event": event, "workspace": ws})).await;
    }
    publish_ok(&mut backend, &json!({"event": marker, "user": user})).await;
    browser.next_event(&marker).await;
    browser
        .events()
        .iter()
        .filter(|e| e.name == event)
        .map(|e| {
            e.args[1]["workspace"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// The workspaces of every `access_revoked` received so far (after a marker), sorted.
fn revoked_workspaces(browser: &Client) -> Vec<String> {
    let mut revoked: Vec<String> = browser
        .events()
        .iter()
        .filter(|e| e.name == "access_revoked")
        .map(|e| {
            assert_eq!(e.args.len(), 1, "access_revoked args: {}", e.raw);
            let payload = e.args[0].as_object().expect("access_revoked payload");
            assert_eq!(payload.len(), 1, "access_revoked payload: {}", e.raw);
            payload["workspace"].as_str().expect("workspace").to_owned()
        })
        .collect();
    revoked.sort();
    revoked
}

// ---------------------------------------------------------------------------------------------
// JWT mode: the backend sends the new list.

#[tokio::test]
async fn a_workspace_no_longer_allowed_is_left_and_announced() {
    let server = TestServer::start("").await;
    let mut alice = server.registered("alice", &["ws1", "ws2"]).await;
    let mut bob = server.registered("bob", &["ws1"]).await;

    let ack = change(&server, &json!({"user": "alice", "workspaces": ["ws2"]})).await;
    assert_eq!(ack, outcome(1, 1, 0));
    let event = alice.next_event("access_revoked").await;
    assert_eq!(event.args, [json!({"workspace": "ws1"})]);

    // ws1 no longer reaches alice; ws2, still allowed, still does.
    assert_eq!(
        probe(&server, &mut alice, &["ws1", "ws2"], "alice").await,
        ["ws2"]
    );
    assert_eq!(
        revoked_workspaces(&alice),
        ["ws1"],
        "one access_revoked only"
    );
    // Bob, in ws1 too, is untouched.
    assert_eq!(probe(&server, &mut bob, &["ws1"], "bob").await, ["ws1"]);
    assert_eq!(bob.count("access_revoked"), 0);
}

#[tokio::test]
async fn every_socket_of_the_user_follows() {
    let server = TestServer::start("").await;
    let mut tab1 = server.registered("alice", &["ws1", "ws2"]).await;
    let mut tab2 = server.registered("alice", &["ws1"]).await;
    let mut idle = server.browser("alice", &["ws1", "ws2"]).await;

    let ack = change(&server, &json!({"user": "alice", "workspaces": []})).await;
    assert_eq!(ack, outcome(3, 3, 0));
    for tab in [&mut tab1, &mut tab2, &mut idle] {
        assert!(
            probe(&server, tab, &["ws1", "ws2"], "alice")
                .await
                .is_empty()
        );
    }
    assert_eq!(revoked_workspaces(&tab1), ["ws1", "ws2"]);
    assert_eq!(revoked_workspaces(&tab2), ["ws1"]);
    assert!(
        revoked_workspaces(&idle).is_empty(),
        "nothing was registered"
    );
}

#[tokio::test]
async fn workspaces_still_allowed_stay_without_a_word() {
    let server = TestServer::start("").await;
    let mut alice = server.registered("alice", &["ws1", "ws2"]).await;
    let ack = change(
        &server,
        &json!({"user": "alice", "workspaces": ["ws2", "ws1", "ws3"]}),
    )
    .await;
    assert_eq!(ack, outcome(1, 0, 0));
    let mut reached = probe(&server, &mut alice, &["ws1", "ws2"], "alice").await;
    reached.sort();
    assert_eq!(reached, ["ws1", "ws2"]);
    assert_eq!(alice.count("access_revoked"), 0);
}

#[tokio::test]
async fn a_later_register_is_checked_against_the_new_list() {
    let server = TestServer::start("").await;
    let mut alice = server.registered("alice", &["ws1"]).await;
    let ack = alice.emit_with_ack("register", &json!("ws2")).await;
    assert_eq!(ack, json!({"ok": false, "error": "forbidden"}), "before");

    let ack = change(&server, &json!({"user": "alice", "workspaces": ["ws2"]})).await;
    assert_eq!(ack, outcome(1, 1, 0));
    let ack = alice.emit_with_ack("register", &json!("ws2")).await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws2"}),
        "newly granted"
    );
    let ack = alice.emit_with_ack("register", &json!("ws1")).await;
    assert_eq!(ack, json!({"ok": false, "error": "forbidden"}), "revoked");
    assert_eq!(
        probe(&server, &mut alice, &["ws1", "ws2"], "alice").await,
        ["ws2"]
    );
}

#[tokio::test]
async fn a_user_without_sockets_counts_zero() {
    let server = TestServer::start("").await;
    let ack = change(&server, &json!({"user": "nobody", "workspaces": ["ws1"]})).await;
    assert_eq!(ack, outcome(0, 0, 0));
}

#[tokio::test]
async fn jwt_mode_requires_workspaces() {
    let server = TestServer::start("").await;
    let mut alice = server.registered("alice", &["ws1"]).await;
    let ack = change(&server, &json!({"user": "alice"})).await;
    assert_eq!(
        ack,
        json!({
            "ok": false,
            "error": "bad_request",
            "message": "`workspaces` is required unless auth.mode is \"backend\"",
        })
    );
    assert_eq!(probe(&server, &mut alice, &["ws1"], "alice").await, ["ws1"]);
    assert_eq!(alice.count("access_revoked"), 0);
}

#[tokio::test]
async fn bad_access_requests_are_bad_requests() {
    let server = TestServer::start("").await;
    let mut alice = server.registered("alice", &["ws1"]).await;
    let mut backend = server.backend().await;
    for args in [
        "",
        "{}",
        "\"alice\"",
        "[\"alice\"]",
        r#"{"user":""}"#,
        r#"{"user":5,"workspaces":[]}"#,
        r#"{"user":"alice","workspaces":[],"x":1}"#,
        r#"{"user":"alice","workspaces":"ws1"}"#,
        r#"{"user":"alice","workspaces":[""]}"#,
        r#"{"user":"alice","workspaces":[5]}"#,
        r#"{"workspaces":[]}"#,
    ] {
        let ack = backend.emit_raw_with_ack("access", args).await;
        assert_eq!(ack["ok"], json!(false), "{args}: {ack}");
        assert_eq!(ack["error"], json!("bad_request"), "{args}: {ack}");
        assert!(ack["message"].is_string(), "{args}: {ack}");
    }
    // None of them touched alice.
    assert_eq!(probe(&server, &mut alice, &["ws1"], "alice").await, ["ws1"]);
    assert_eq!(alice.count("access_revoked"), 0);
}

#[tokio::test]
async fn browsers_cannot_change_access() {
    let server = TestServer::start("").await;
    let mut alice = server.registered("alice", &["ws1"]).await;
    let mut mallory = server.browser("mallory", &[]).await;
    let ack = mallory
        .emit_with_ack("access", &json!({"user": "alice", "workspaces": []}))
        .await;
    assert_eq!(ack["error"], json!("bad_request"), "{ack}");
    assert_eq!(probe(&server, &mut alice, &["ws1"], "alice").await, ["ws1"]);
    assert_eq!(alice.count("access_revoked"), 0);
}

/// One round per workspace: grant it, then the browser registers it without awaiting while the
/// backend immediately takes it away. Whichever of the two the server sees first, the socket
/// must not end in the revoked workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_register_racing_a_revoke_never_survives_it() {
    let server = TestServer::start("").await;
    let mut alice = server.browser("alice", &[]).await;
    let mut backend = server.backend().await;
    let (mut registered_first, mut forbidden) = (0, 0);
    for round in 0..100 {
        let ws = format!("ws-{round}");
        let ack = backend
            .emit_with_ack("access", &json!({"user": "alice", "workspaces": [ws]}))
            .await;
        assert_eq!(ack, outcome(1, 0, 0), "round {round}: grant");

        let register = alice.request_raw("register", &json!(ws).to_string());
        let revoke = backend.request_raw(
            "access",
            &json!({"user": "alice", "workspaces": ["elsewhere"]}).to_string(),
        );
        let revoke = backend.ack(revoke).await;
        let register = alice.ack(register).await;
        if without_position(&register) == json!({"ok": true, "workspace": ws}) {
            registered_first += 1;
            assert_eq!(
                revoke,
                outcome(1, 1, 0),
                "round {round}: register went first"
            );
            let event = alice.next_event("access_revoked").await;
            assert_eq!(event.args, [json!({"workspace": ws})], "round {round}");
        } else {
            forbidden += 1;
            assert_eq!(
                register,
                json!({"ok": false, "error": "forbidden"}),
                "round {round}"
            );
            assert_eq!(revoke, outcome(1, 0, 0), "round {round}: revoke went first");
        }
        publish_ok(
            &mut backend,
            &json!({"event": "probe", "workspace": ws, "data": round}),
        )
        .await;
    }
    publish_ok(&mut backend, &json!({"event": "marker", "user": "alice"})).await;
    alice.next_event("marker").await;
    let leaked: Vec<&Value> = alice
        .events()
        .iter()
        .filter(|e| e.name == "probe")
        .map(|e| &e.args[0])
        .collect();
    assert!(
        leaked.is_empty(),
        "rounds whose revoked workspace still reached the socket: {leaked:?} \
         ({registered_first} registered first, {forbidden} forbidden)"
    );
    assert_eq!(
        alice.count("access_revoked"),
        registered_first,
        "one access_revoked per register that went first"
    );
}

// ---------------------------------------------------------------------------------------------
// Over HTTP.

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post_access(
    server: &TestServer,
    key: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = http()
        .post(server.url("/api/v1/access"))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("POST /api/v1/access")
}

/// Asserts a JSON error answer: `status`, exactly `{"code", "message"}` with `code`.
async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str, what: &str) {
    assert_eq!(response.status(), status, "{what}");
    let body: Value = response.json().await.expect("JSON error body");
    let fields = body.as_object().expect("an object");
    assert_eq!(fields.len(), 2, "{what}: {body}");
    assert_eq!(body["code"], json!(code), "{what}: {body}");
    assert!(body["message"].is_string(), "{what}: {body}");
}

#[tokio::test]
async fn over_http_the_same_change_applies() {
    let server = TestServer::start("").await;
    let mut alice = server.registered("alice", &["ws1", "ws2"]).await;
    let mut bob = server.registered("bob", &["ws1"]).await;
    let response = post_access(
        &server,
        Some(PRIVATE_KEY),
        r#"{"user":"alice","workspaces":["ws2"]}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE].clone();
    assert!(
        content_type
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{content_type:?}"
    );
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body, outcome(1, 1, 0));
    let event = alice.next_event("access_revoked").await;
    assert_eq!(event.args, [json!({"workspace": "ws1"})]);
    assert_eq!(
        probe(&server, &mut alice, &["ws1", "ws2"], "alice").await,
        ["ws2"]
    );
    assert_eq!(probe(&server, &mut bob, &["ws1"], "bob").await, ["ws1"]);

    let ack = alice.emit_with_ack("register", &json!("ws1")).await;
    assert_eq!(ack, json!({"ok": false, "error": "forbidden"}));

    let response = post_access(
        &server,
        Some(PRIVATE_KEY),
        r#"{"user":"nobody","workspaces":[]}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), outcome(0, 0, 0));
}

#[tokio::test]
async fn over_http_refusals_have_their_codes() {
    let server = TestServer::start("[publish]\nmax_body_bytes = 256").await;
    let mut alice = server.registered("alice", &["ws1"]).await;
    for body in [
        "",
        "not json",
        "{}",
        r#"{"user":""}"#,
        r#"{"user":"alice","workspaces":[],"x":1}"#,
        r#"{"user":"alice","workspaces":["ws1",7]}"#,
    ] {
        let response = post_access(&server, Some(PRIVATE_KEY), body).await;
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request", body).await;
    }

    let response = post_access(&server, Some(PRIVATE_KEY), r#"{"user":"alice"}"#).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({
            "code": "bad_request",
            "message": "`workspaces` is required unless auth.mode is \"backend\"",
        })
    );

    let change = r#"{"user":"alice","workspaces":[]}"#;
    for key in [None, Some("wrong-key"), Some("")] {
        let response = post_access(&server, key, change).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized", "key").await;
    }

    let padding = "w".repeat(300);
    let big = format!(r#"{{"user":"alice","workspaces":["{padding}"]}}"#);
    let response = post_access(&server, Some(PRIVATE_KEY), big).await;
    assert_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "over max_body_bytes",
    )
    .await;

    // Nothing of the above changed alice's access.
    assert_eq!(probe(&server, &mut alice, &["ws1"], "alice").await, ["ws1"]);
    assert_eq!(alice.count("access_revoked"), 0);
}

#[tokio::test]
async fn over_http_a_host_not_authorized_is_401_even_with_the_key() {
    let server = TestServer::start("[private]\nauthorized_hosts = [\"10.9.9.9\"]").await;
    let response = post_access(
        &server,
        Some(PRIVATE_KEY),
        r#"{"user":"alice","workspaces":[]}"#,
    )
    .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized", "host").await;
}

// ---------------------------------------------------------------------------------------------
// Backend mode: `{"user"}` alone asks the auth backend again.

async fn backend_server(backend: &MockBackend) -> TestServer {
    TestServer::start(&format!(
        "[auth]\nmode = \"backend\"\nbackend_url = \"{}\"",
        backend.url("/auth")
    ))
    .await
}

async fn with_cookie(server: &TestServer, cookie: &str) -> Client {
    Client::builder(server.addr)
        .header("Cookie", cookie)
        .connect()
        .await
}

async fn register(browser: &mut Client, ws: &str) {
    let ack = browser.emit_with_ack("register", &json!(ws)).await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": ws}),
        "register {ws}"
    );
}

#[tokio::test]
async fn backend_mode_follows_the_backends_new_list() {
    let backend = MockBackend::start().await;
    let server = backend_server(&backend).await;
    let mut alice = with_cookie(&server, "session=alice").await;
    register(&mut alice, "ws-a").await;
    assert_eq!(backend.calls("/auth"), 1);

    backend.answer_principal(
        "alice",
        json!({"user": "alice", "groups": ["/staff"], "workspaces": ["ws-new"]}),
    );
    let ack = change(&server, &json!({"user": "alice"})).await;
    assert_eq!(ack, outcome(1, 1, 0));
    assert_eq!(backend.calls("/auth"), 2, "the cached answer was used");
    let event = alice.next_event("access_revoked").await;
    assert_eq!(event.args, [json!({"workspace": "ws-a"})]);

    register(&mut alice, "ws-new").await;
    let ack = alice.emit_with_ack("register", &json!("ws-a")).await;
    assert_eq!(ack, json!({"ok": false, "error": "forbidden"}));
    assert_eq!(
        probe(&server, &mut alice, &["ws-a", "ws-new"], "alice").await,
        ["ws-new"]
    );
}

#[tokio::test]
async fn each_socket_is_asked_about_with_its_own_credentials() {
    let backend = MockBackend::start().await;
    let server = backend_server(&backend).await;
    let cookies = ["session=alice", "theme=dark; session=alice"];
    let mut tabs = Vec::new();
    for cookie in cookies {
        let mut tab = with_cookie(&server, cookie).await;
        register(&mut tab, "ws-a").await;
        tabs.push(tab);
    }
    let mut carol = Client::builder(server.addr)
        .auth(json!({"token": "carol-token"}))
        .connect()
        .await;
    register(&mut carol, "ws-c").await;
    let asked = |cookie: &str| {
        backend
            .all_calls()
            .iter()
            .filter(|c| c.path == "/auth" && c.cookie.as_deref() == Some(cookie))
            .count()
    };
    assert_eq!(cookies.map(&asked), [1, 1]);

    backend.answer_principal("alice", json!({"user": "alice", "workspaces": []}));
    let ack = change(&server, &json!({"user": "alice"})).await;
    assert_eq!(ack, outcome(2, 2, 0));
    assert_eq!(cookies.map(&asked), [2, 2], "{:?}", backend.all_calls());
    for tab in &mut tabs {
        let event = tab.next_event("access_revoked").await;
        assert_eq!(event.args, [json!({"workspace": "ws-a"})]);
        assert!(probe(&server, tab, &["ws-a"], "alice").await.is_empty());
    }
    // Carol's socket was not asked about, and keeps its access.
    let carol_calls = backend
        .all_calls()
        .iter()
        .filter(|c| c.authorization.as_deref() == Some("Bearer carol-token"))
        .count();
    assert_eq!(carol_calls, 1);
    assert_eq!(
        probe(&server, &mut carol, &["ws-c"], "carol").await,
        ["ws-c"]
    );
    assert_eq!(carol.count("access_revoked"), 0);
}

#[tokio::test]
async fn a_session_the_backend_now_refuses_is_ended() {
    for status in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN] {
        let backend = MockBackend::start().await;
        let server = backend_server(&backend).await;
        let mut alice = with_cookie(&server, "session=alice").await;
        register(&mut alice, "ws-a").await;
        let mut carol = Client::builder(server.addr)
            .auth(json!({"token": "carol-token"}))
            .connect()
            .await;

        backend.refuse_principal("alice", status);
        let ack = change(&server, &json!({"user": "alice"})).await;
        assert_eq!(ack, outcome(1, 0, 1), "{status}");
        let event = alice.next_event("session_invalid").await;
        assert_eq!(
            event.args,
            [json!({"reason": "access_revoked"})],
            "{status}"
        );
        assert_eq!(
            alice.expect_disconnect().await,
            Disconnect::Packet,
            "{status}"
        );

        // Other users stay connected.
        let mut publisher = server.backend().await;
        publish_ok(&mut publisher, &json!({"event": "still", "user": "carol"})).await;
        carol.next_event("still").await;
        assert_eq!(carol.count("session_invalid"), 0);
    }
}

#[tokio::test]
async fn without_a_list_registered_workspaces_are_checked_again() {
    let backend = MockBackend::start().await;
    let server = backend_server(&backend).await;
    let mut bob = with_cookie(&server, "session=bob").await;
    for ws in ["ws-keep", "ws-flaky"] {
        backend.answer_grant("bob", ws, StatusCode::OK);
    }
    for ws in ["ws-b", "ws-keep", "ws-flaky"] {
        register(&mut bob, ws).await;
    }

    backend.answer_grant("bob", "ws-b", StatusCode::FORBIDDEN);
    backend.answer_grant("bob", "ws-flaky", StatusCode::INTERNAL_SERVER_ERROR);
    let ack = change(&server, &json!({"user": "bob"})).await;
    assert_eq!(ack, outcome(1, 1, 0));
    for ws in ["ws-b", "ws-keep", "ws-flaky"] {
        assert_eq!(
            backend.calls(&format!("/auth/workspaces/{ws}")),
            2,
            "{ws}: not asked again past the cache"
        );
    }
    let event = bob.next_event("access_revoked").await;
    assert_eq!(event.args, [json!({"workspace": "ws-b"})]);
    // 403 revoked; 200 kept; an unreachable answer (500) keeps what was allowed.
    let mut reached = probe(&server, &mut bob, &["ws-b", "ws-keep", "ws-flaky"], "bob").await;
    reached.sort();
    assert_eq!(reached, ["ws-flaky", "ws-keep"]);
    assert_eq!(revoked_workspaces(&bob), ["ws-b"]);
}

#[tokio::test]
async fn an_unreachable_backend_keeps_access_as_it_was() {
    let backend = MockBackend::start().await;
    let server = backend_server(&backend).await;
    let mut alice = with_cookie(&server, "session=alice").await;
    register(&mut alice, "ws-a").await;

    backend.refuse_principal("alice", StatusCode::INTERNAL_SERVER_ERROR);
    let ack = change(&server, &json!({"user": "alice"})).await;
    assert_eq!(ack, outcome(1, 0, 0));
    assert_eq!(backend.calls("/auth"), 2, "the backend was not asked");
    assert_eq!(
        probe(&server, &mut alice, &["ws-a"], "alice").await,
        ["ws-a"]
    );
    assert_eq!(alice.count("access_revoked"), 0);
    assert_eq!(alice.count("session_invalid"), 0);
    let ack = alice.emit_with_ack("register", &json!("ws-a")).await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-a"}),
        "still allowed"
    );
}

#[tokio::test]
async fn backend_mode_takes_an_explicit_list_as_given() {
    let backend = MockBackend::start().await;
    let server = backend_server(&backend).await;
    let mut bob = with_cookie(&server, "session=bob").await;
    register(&mut bob, "ws-b").await;
    let calls_before = backend.all_calls().len();

    let ack = change(&server, &json!({"user": "bob", "workspaces": ["ws-z"]})).await;
    assert_eq!(ack, outcome(1, 1, 0));
    assert_eq!(
        backend.all_calls().len(),
        calls_before,
        "a given list needs no backend call"
    );
    let event = bob.next_event("access_revoked").await;
    assert_eq!(event.args, [json!({"workspace": "ws-b"})]);
    register(&mut bob, "ws-z").await;
    let ack = bob.emit_with_ack("register", &json!("ws-b")).await;
    assert_eq!(ack, json!({"ok": false, "error": "forbidden"}));
    assert_eq!(
        probe(&server, &mut bob, &["ws-b", "ws-z"], "bob").await,
        ["ws-z"]
    );
}

#[tokio::test]
async fn after_a_refresh_a_workspace_the_backend_now_refuses_cannot_be_registered() {
    let backend = MockBackend::start().await;
    let server = backend_server(&backend).await;
    let mut bob = with_cookie(&server, "session=bob").await;
    // Granted once (and cached), then left again.
    register(&mut bob, "ws-b").await;
    let ack = bob.emit_with_ack("unregister", &json!("ws-b")).await;
    assert_eq!(ack, json!({"ok": true}));

    backend.answer_grant("bob", "ws-b", StatusCode::FORBIDDEN);
    let ack = change(&server, &json!({"user": "bob"})).await;
    assert_eq!(ack, outcome(1, 0, 0));
    let ack = bob.emit_with_ack("register", &json!("ws-b")).await;
    assert_eq!(
        ack,
        json!({"ok": false, "error": "forbidden"}),
        "a grant cached before the access change was used"
    );
    assert!(probe(&server, &mut bob, &["ws-b"], "bob").await.is_empty());
}

#[tokio::test]
async fn a_change_waits_for_a_register_still_being_checked() {
    let backend = MockBackend::start().await;
    let server = backend_server(&backend).await;
    let mut bob = with_cookie(&server, "session=bob").await;
    let mut publisher = server.backend().await;
    backend.answer_grant("bob", "ws-slow", StatusCode::OK);
    backend.hold_grants("ws-slow");

    // The register is at the server, waiting for the backend's answer...
    let register = bob.request_raw("register", &json!("ws-slow").to_string());
    eventually("the register's check reached the backend", || async {
        backend.calls("/auth/workspaces/ws-slow") == 1
    })
    .await;
    // ...when the change arrives (the publish ack proves the server has read it).
    let revoke = publisher.request_raw(
        "access",
        &json!({"user": "bob", "workspaces": ["ws-b"]}).to_string(),
    );
    publish_ok(&mut publisher, &json!({"event": "noise", "user": "nobody"})).await;
    backend.release_grants("ws-slow");

    assert_eq!(
        without_position(&bob.ack(register).await),
        json!({"ok": true, "workspace": "ws-slow"}),
        "the register was checked against the list it was sent under"
    );
    assert_eq!(publisher.ack(revoke).await, outcome(1, 1, 0));
    let event = bob.next_event("access_revoked").await;
    assert_eq!(event.args, [json!({"workspace": "ws-slow"})]);
    assert!(
        probe(&server, &mut bob, &["ws-slow"], "bob")
            .await
            .is_empty(),
        "the racing register left the socket in a revoked workspace"
    );
}
