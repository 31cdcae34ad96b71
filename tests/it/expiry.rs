//! Token expiry in JWT mode: `token_expiring` ahead of `exp`, `refresh` with a new token for the
//! same user, and `session_invalid` + disconnect at `exp` without one. Tokens here expire a few
//! seconds out, with `expiry_warning` shortened to match.

use serde_json::json;

use crate::support::{
    TestServer,
    client::Disconnect,
    publish_ok,
    tokens::{claims, hs256, now},
    without_position,
};

const CFG: &str = "[auth.jwt]\nexpiry_warning = \"2s\"\nleeway = \"0s\"";

/// A token for `sub`, readable workspaces `ws`, expiring `secs` from now.
fn token(sub: &str, ws: &[&str], secs: i64) -> String {
    let mut c = claims(sub);
    c["exp"] = json!(now() + secs);
    c["workspaces"] = json!(ws);
    hs256(&c)
}

#[tokio::test]
async fn warned_then_disconnected_at_exp_without_refresh() {
    let server = TestServer::start(CFG).await;
    let exp = now() + 3;
    let mut c = claims("alice");
    c["exp"] = json!(exp);
    let mut browser = server.browser_with(&hs256(&c)).await;

    let warning = browser.next_event("token_expiring").await;
    assert_eq!(warning.args, [json!({ "exp": exp })]);
    let ended = browser.next_event("session_invalid").await;
    assert_eq!(ended.args, [json!({ "reason": "token_expired" })]);
    assert_eq!(browser.expect_disconnect().await, Disconnect::Packet);
    assert!(now() >= exp, "disconnected at {} before exp {exp}", now());
}

#[tokio::test]
async fn a_refresh_keeps_the_socket_and_its_workspaces() {
    let server = TestServer::start(CFG).await;
    let mut browser = server.browser_with(&token("alice", &["ws-a"], 3)).await;
    let ack = browser
        .emit_with_ack("register", &json!({"workspace": "ws-a"}))
        .await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-a"})
    );
    browser.next_event("token_expiring").await;

    let fresh = now() + 3600;
    let mut c = claims("alice");
    c["exp"] = json!(fresh);
    c["workspaces"] = json!(["ws-a"]);
    let ack = browser
        .emit_with_ack("refresh", &json!({ "token": hs256(&c) }))
        .await;
    assert_eq!(ack, json!({"ok": true, "exp": fresh, "revoked": 0}));

    // Past the old exp, the socket is still connected and still receives ws-a's events.
    let mut backend = server.backend().await;
    crate::support::eventually("the old exp to pass", || async { now() > fresh - 3600 + 4 }).await;
    publish_ok(
        &mut backend,
        &json!({"event": "still", "workspace": "ws-a"}),
    )
    .await;
    browser.next_event("still").await;
    assert_eq!(browser.count("session_invalid"), 0);
}

#[tokio::test]
async fn a_refresh_that_drops_a_workspace_revokes_it() {
    let server = TestServer::start("").await;
    let mut browser = server
        .browser_with(&token("alice", &["ws-a", "ws-b"], 600))
        .await;
    for ws in ["ws-a", "ws-b"] {
        let ack = browser
            .emit_with_ack("register", &json!({ "workspace": ws }))
            .await;
        assert_eq!(ack["ok"], json!(true));
    }
    let ack = browser
        .emit_with_ack(
            "refresh",
            &json!({ "token": token("alice", &["ws-b"], 600) }),
        )
        .await;
    assert_eq!(ack["revoked"], json!(1), "{ack}");
    let revoked = browser.next_event("access_revoked").await;
    assert_eq!(revoked.args, [json!({ "workspace": "ws-a" })]);

    let mut backend = server.backend().await;
    publish_ok(&mut backend, &json!({"event": "gone", "workspace": "ws-a"})).await;
    publish_ok(&mut backend, &json!({"event": "kept", "workspace": "ws-b"})).await;
    browser.next_event("kept").await;
    assert_eq!(
        browser.count("gone"),
        0,
        "a revoked workspace still delivered"
    );
}

#[tokio::test]
async fn refresh_refusals() {
    let server = TestServer::start("").await;
    let mut browser = server.browser_with(&token("alice", &[], 600)).await;
    let other_user = token("mallory", &["ws-a"], 600);
    for (arg, expected) in [
        (
            json!({ "token": other_user }),
            json!({"ok": false, "error": "forbidden"}),
        ),
        (
            json!({ "token": "garbage" }),
            json!({"ok": false, "error": "unauthorized"}),
        ),
        (
            json!({ "token": token("alice", &[], -60) }),
            json!({"ok": false, "error": "unauthorized"}),
        ),
    ] {
        assert_eq!(
            browser.emit_with_ack("refresh", &arg).await,
            expected,
            "{arg}"
        );
    }
    for bad in [json!({}), json!("x"), json!({ "token": 5 })] {
        let ack = browser.emit_with_ack("refresh", &bad).await;
        assert_eq!(ack["error"], json!("bad_request"), "{bad}");
    }
    // Still connected and usable.
    let ack = browser
        .emit_with_ack("register", &json!({"workspace": "ws-a"}))
        .await;
    assert_eq!(ack, json!({"ok": false, "error": "forbidden"}));
}
