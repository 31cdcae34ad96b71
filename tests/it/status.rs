//! `GET /status`: behind the private key unless `status_public = true`; live counts of
//! connections and of workspace rooms with members.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PRIVATE_KEY, TestServer, eventually, publish_ok};

async fn status(server: &TestServer, key: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(server.url("/status"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("GET /status")
}

async fn figures(server: &TestServer) -> Value {
    let response = status(server, Some(PRIVATE_KEY)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("status JSON")
}

#[tokio::test]
async fn status_needs_the_key() {
    let server = TestServer::start("").await;
    for key in [None, Some("wrong-key")] {
        let response = status(&server, key).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["code"], json!("unauthorized"));
    }
    let body = figures(&server).await;
    assert_eq!(body["status"], json!("ON"));
    assert_eq!(body["version"], json!(env!("CARGO_PKG_VERSION")));
    assert!(body["uptime_s"].is_u64(), "{body}");
    assert_eq!(body["connections"], json!({"public": 0, "private": 0}));
    assert_eq!(body["workspaces"], json!(0));
}

#[tokio::test]
async fn public_status_needs_no_key() {
    let server = TestServer::start("status_public = true").await;
    let response = status(&server, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["status"], json!("ON"));
}

#[tokio::test]
async fn counts_follow_connections_and_registrations() {
    let server = TestServer::start("").await;
    let mut alice = server.registered("alice", &["ws-a", "ws-b"]).await;
    let bob = server.registered("bob", &["ws-a"]).await;
    let _backend = server.backend().await;

    let body = figures(&server).await;
    assert_eq!(
        body["connections"],
        json!({"public": 2, "private": 1}),
        "{body}"
    );
    assert_eq!(body["workspaces"], json!(2), "{body}");

    let ack = alice.emit_with_ack("unregister", &json!("ws-b")).await;
    assert_eq!(ack, json!({"ok": true}));
    assert_eq!(figures(&server).await["workspaces"], json!(1));

    // ws-a keeps a member (alice) when bob leaves; the count of connections drops.
    drop(bob);
    eventually("bob's disconnect shows in /status", || async {
        figures(&server).await["connections"]["public"] == json!(1)
    })
    .await;
    assert_eq!(figures(&server).await["workspaces"], json!(1));
    drop(alice);
    eventually("the last member leaving empties ws-a", || async {
        figures(&server).await["workspaces"] == json!(0)
    })
    .await;
}

/// What Chromium sends when it navigates to a page.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
                              image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";

async fn status_accepting(
    server: &TestServer,
    accept: Option<&str>,
    query: &str,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(server.url(&format!("/status{query}")))
        .bearer_auth(PRIVATE_KEY);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    request.send().await.expect("GET /status")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap())
}

async fn page(server: &TestServer, query: &str) -> String {
    let response = status_accepting(server, Some(BROWSER_ACCEPT), query).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "content-type").starts_with("text/html"));
    response.text().await.unwrap()
}

#[tokio::test]
async fn json_unless_html_is_preferred() {
    let server = TestServer::start("").await;
    for accept in [
        None,
        Some("*/*"),
        Some("application/json"),
        Some("text/html;q=0.5, application/json"),
    ] {
        let response = status_accepting(&server, accept, "").await;
        assert_eq!(response.status(), StatusCode::OK, "{accept:?}");
        assert!(
            header(&response, "content-type").starts_with("application/json"),
            "{accept:?}: {}",
            header(&response, "content-type")
        );
        assert_eq!(header(&response, "vary"), "accept");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], json!("ON"));
    }
    for accept in [
        BROWSER_ACCEPT,
        "text/html",
        "text/*, application/json;q=0.9",
    ] {
        let response = status_accepting(&server, Some(accept), "").await;
        assert_eq!(response.status(), StatusCode::OK, "{accept}");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8",
            "{accept}"
        );
        assert_eq!(header(&response, "vary"), "accept");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "cache-control"), "no-store");
        let csp = header(&response, "content-security-policy").to_owned();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        let html = response.text().await.unwrap();
        assert!(html.starts_with("<!doctype html>"), "{html}");
        assert!(html.contains(r#"data-state="ON">ON</p>"#), "{html}");
        assert!(html.contains(env!("CARGO_PKG_VERSION")), "{html}");
        assert!(!html.contains("<script"), "{html}");
    }
}

#[tokio::test]
async fn the_page_is_guarded_like_the_json() {
    let server = TestServer::start("").await;
    let response = reqwest::Client::new()
        .get(server.url("/status"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = response.text().await.unwrap();
    assert!(!body.contains("<html"), "{body}");

    let open = TestServer::start("status_public = true").await;
    let response = reqwest::Client::new()
        .get(open.url("/status"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains(">ON</p>"));
}

#[tokio::test]
async fn a_hostile_workspace_id_is_shown_as_text() {
    let server = TestServer::start("").await;
    let hostile = r#"<script>alert("x")</script><b onmouseover='y'>&amp;"#;
    let _member = server.registered("mallory", &[hostile]).await;
    let html = page(&server, "").await;
    assert!(
        html.contains(
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;b onmouseover=&#39;y&#39;&gt;&amp;amp;"
        ),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<b "), "{html}");
    // JSON carries the id as it is.
    let body = figures(&server).await;
    assert_eq!(
        body["busiest_workspaces"],
        json!([{"workspace": hostile, "members": 1}])
    );
}

#[tokio::test]
async fn the_figures_a_person_looks_for() {
    let server = TestServer::start("").await;
    let _a = server.registered("alice", &["ws-a", "ws-b"]).await;
    let _b = server.registered("bob", &["ws-a"]).await;
    let _c = server.registered("carol", &["ws-a", "ws-c"]).await;
    let mut backend = server.backend().await;

    let body = figures(&server).await;
    assert_eq!(
        body["transports"],
        json!({"public": {"websocket": 3, "polling": 0}, "private": {"websocket": 1, "polling": 0}}),
        "{body}"
    );
    assert_eq!(
        body["busiest_workspaces"],
        json!([
            {"workspace": "ws-a", "members": 3},
            {"workspace": "ws-b", "members": 1},
            {"workspace": "ws-c", "members": 1},
        ]),
        "{body}"
    );
    assert_eq!(body["workspaces"], json!(3));

    for _ in 0..20 {
        publish_ok(&mut backend, &json!({"event": "e", "workspace": "ws-a"})).await;
    }
    // Sampled every second: the rate shows within a few.
    eventually("events per second after 20 publishes", || async {
        let rates = &figures(&server).await["events_per_second"];
        rates["published"].as_f64().unwrap() > 0.0 && rates["delivered"].as_f64().unwrap() > 0.0
    })
    .await;

    let html = page(&server, "").await;
    assert!(
        html.contains(r#"<p class="big" id="connections-total">4</p>"#),
        "{html}"
    );
    assert!(
        html.contains(
            r#"<tr data-namespace="public"><th>/public</th><td class="n">3</td><td class="n">0</td><td class="n">3</td></tr>"#
        ),
        "{html}"
    );
    assert!(
        html.contains(r#"<tr><td class="id">ws-a</td><td class="n">3</td></tr>"#),
        "{html}"
    );
    assert!(html.contains(r#"id="delivered-rate""#), "{html}");
}

#[tokio::test]
async fn the_page_reloads_itself_unless_told_not_to() {
    let server = TestServer::start("").await;
    let refresh = |n: u32| format!(r#"<meta http-equiv="refresh" content="{n}">"#);
    assert!(page(&server, "").await.contains(&refresh(10)));
    assert!(page(&server, "?refresh=3").await.contains(&refresh(3)));
    assert!(
        page(&server, "?refresh=99999999")
            .await
            .contains(&refresh(3600))
    );
    assert!(
        page(&server, "?refresh=garbage")
            .await
            .contains(&refresh(10))
    );
    assert!(!page(&server, "?refresh=0").await.contains("http-equiv"));
}
