//! On connect a browser sits in `user:<sub>` and one `group:<path>` room per group, so events
//! targeted at its user or group reach it without any `register`.

use serde_json::json;

use crate::support::{TestServer, publish_ok};

#[tokio::test]
async fn user_targets_reach_every_socket_of_the_user_only() {
    let server = TestServer::start("").await;
    let mut tab1 = server.browser("alice", &[]).await;
    let mut tab2 = server.browser("alice", &[]).await;
    let mut bob = server.browser("bob", &[]).await;
    let mut backend = server.backend().await;

    let id = publish_ok(
        &mut backend,
        &json!({"event": "note", "user": "alice", "data": 1}),
    )
    .await;
    publish_ok(&mut backend, &json!({"event": "marker", "user": "bob"})).await;
    for tab in [&mut tab1, &mut tab2] {
        let event = tab.next_event("note").await;
        assert_eq!(event.args[0], json!(1));
        assert_eq!(event.args[1]["id"], json!(id));
        assert_eq!(event.args[1]["workspace"], json!(null));
    }
    bob.next_event("marker").await;
    assert_eq!(bob.count("note"), 0, "bob received alice's event");
}

#[tokio::test]
async fn group_targets_reach_the_groups_members_only() {
    let server = TestServer::start("").await;
    let mut staff = server
        .browser_with(&server.token("alice", &[], &["/staff", "/staff/eng"]))
        .await;
    let mut eng = server
        .browser_with(&server.token("bob", &[], &["/staff/eng"]))
        .await;
    let mut outsider = server
        .browser_with(&server.token("carol", &[], &["/visitors"]))
        .await;
    let mut backend = server.backend().await;

    publish_ok(&mut backend, &json!({"event": "memo", "group": "/staff"})).await;
    publish_ok(
        &mut backend,
        &json!({"event": "eng-memo", "group": "/staff/eng"}),
    )
    .await;
    publish_ok(
        &mut backend,
        &json!({"event": "marker", "users": ["alice", "bob", "carol"]}),
    )
    .await;

    let memo = staff.next_event("memo").await;
    assert_eq!(memo.args[1]["workspace"], json!(null));
    staff.next_event("eng-memo").await;
    eng.next_event("eng-memo").await;
    for browser in [&mut staff, &mut eng, &mut outsider] {
        browser.next_event("marker").await;
    }
    assert_eq!(eng.count("memo"), 0, "group rooms are not hierarchical");
    assert_eq!(outsider.count("memo") + outsider.count("eng-memo"), 0);
    assert_eq!(staff.count("memo"), 1);
}
