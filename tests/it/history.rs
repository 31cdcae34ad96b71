//! The event log through a running server: offsets and epochs in `meta` and in the `register`
//! ack, `register {since}` replaying what a client missed, `resync` when that cannot be
//! served, the user room resumed through `auth.since`, bad positions refused, and the seam:
//! a client that keeps dropping its connection mid-stream and resuming sees every offset
//! exactly once.

use serde_json::{Value, json};

use crate::support::{Client, TestServer, publish_ok, without_position};

/// Registers and returns the `(offset, epoch)` of the ack.
async fn register(browser: &mut Client, ws: &str, since: Option<(u64, &str)>) -> (u64, String) {
    let mut arg = json!({"workspace": ws});
    if let Some((offset, epoch)) = since {
        arg["since"] = json!({"offset": offset, "epoch": epoch});
    }
    let ack = browser.emit_with_ack("register", &arg).await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": ws}),
        "register {arg}"
    );
    position(&ack)
}

fn position(value: &Value) -> (u64, String) {
    (
        value["offset"].as_u64().expect("an offset"),
        value["epoch"].as_str().expect("an epoch").to_owned(),
    )
}

/// Takes the next `name` event and returns `(data, offset, epoch)`.
async fn next(browser: &mut Client, name: &str) -> (Value, u64, String) {
    let event = browser.next_event(name).await;
    let (offset, epoch) = position(&event.args[1]);
    (event.args[0].clone(), offset, epoch)
}

#[tokio::test]
async fn offsets_count_up_per_room_in_one_epoch() {
    let server = TestServer::start("").await;
    let mut browser = server.browser("alice", &["ws-a", "ws-b"]).await;
    let (offset, epoch_a) = register(&mut browser, "ws-a", None).await;
    assert_eq!(offset, 0);
    let (_, epoch_b) = register(&mut browser, "ws-b", None).await;
    assert_ne!(epoch_a, epoch_b, "each room has its own epoch");

    let mut backend = server.backend().await;
    for n in 1..=3 {
        publish_ok(
            &mut backend,
            &json!({"event": "e", "workspace": "ws-a", "data": n}),
        )
        .await;
    }
    publish_ok(&mut backend, &json!({"event": "e", "workspace": "ws-b"})).await;
    for n in 1..=3 {
        assert_eq!(
            next(&mut browser, "e").await,
            (json!(n), n, epoch_a.clone())
        );
    }
    assert_eq!(next(&mut browser, "e").await, (json!(null), 1, epoch_b));

    let mut late = server.browser("bob", &["ws-a"]).await;
    assert_eq!(register(&mut late, "ws-a", None).await, (3, epoch_a));
}

#[tokio::test]
async fn since_replays_what_was_missed_then_goes_live() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    let mut first = server.browser("alice", &["ws-a"]).await;
    let (start, epoch) = register(&mut first, "ws-a", None).await;
    publish_ok(
        &mut backend,
        &json!({"event": "e", "workspace": "ws-a", "data": 1}),
    )
    .await;
    assert_eq!(next(&mut first, "e").await.1, 1);
    drop(first);

    let mut ids = Vec::new();
    for n in 2..=4 {
        let id = publish_ok(
            &mut backend,
            &json!({"event": "e", "workspace": "ws-a", "data": n}),
        )
        .await;
        ids.push(id);
    }
    let mut again = server.browser("alice", &["ws-a"]).await;
    let head = register(&mut again, "ws-a", Some((start + 1, &epoch))).await;
    assert_eq!(head, (4, epoch.clone()));
    for (n, id) in (2..=4).zip(&ids) {
        let event = again.next_event("e").await;
        assert_eq!(event.args[0], json!(n));
        assert_eq!(
            (&event.args[1]["id"], &event.args[1]["workspace"]),
            (&json!(id), &json!("ws-a")),
            "a replayed event keeps its meta: {}",
            event.raw
        );
        assert_eq!(position(&event.args[1]), (n, epoch.clone()));
    }
    // The replay came before the ack: nothing of it is still on its way.
    assert_eq!(
        again.arrivals()[1..],
        ["event:e", "event:e", "event:e", "ack"],
        "connect, replay, then the ack"
    );
    publish_ok(
        &mut backend,
        &json!({"event": "e", "workspace": "ws-a", "data": 5}),
    )
    .await;
    assert_eq!(next(&mut again, "e").await, (json!(5), 5, epoch));
    assert_eq!(again.count("e"), 4, "{:?}", again.arrivals());
}

#[tokio::test]
async fn a_position_that_cannot_be_served_gets_resync() {
    let server = TestServer::start("[history]\nsize = 2").await;
    let mut backend = server.backend().await;
    let mut browser = server.browser("alice", &["ws-a"]).await;
    let (_, epoch) = register(&mut browser, "ws-a", None).await;
    for n in 1..=5 {
        publish_ok(
            &mut backend,
            &json!({"event": "e", "workspace": "ws-a", "data": n}),
        )
        .await;
    }
    let mut cases = vec![(1, epoch.clone(), "fell out of the window")];
    cases.push((3, "another-epoch".to_owned(), "another epoch"));
    for (head, (offset, since_epoch, why)) in (5..).zip(cases) {
        let mut again = server.browser("alice", &["ws-a"]).await;
        let at = register(&mut again, "ws-a", Some((offset, &since_epoch))).await;
        assert_eq!(at, (head, epoch.clone()), "{why}");
        let resync = again.next_event("resync").await;
        assert_eq!(
            resync.args,
            [json!({"workspace": "ws-a", "epoch": epoch, "offset": head})],
            "{why}"
        );
        assert_eq!(again.count("e"), 0, "{why}: nothing replayed");
        publish_ok(&mut backend, &json!({"event": "live", "workspace": "ws-a"})).await;
        again.next_event("live").await;
    }
    // The two `live` events made 6 and 7, the two held now: a client at 5 is at the window's
    // edge and still gets a replay.
    let mut edge = server.browser("alice", &["ws-a"]).await;
    register(&mut edge, "ws-a", Some((5, &epoch))).await;
    assert_eq!(edge.arrivals()[1..], ["event:live", "event:live", "ack"]);
}

#[tokio::test]
async fn bad_positions_are_bad_requests_and_harm_nothing() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    let mut browser = server.browser("alice", &["ws-a"]).await;
    let (_, epoch) = register(&mut browser, "ws-a", None).await;
    publish_ok(&mut backend, &json!({"event": "e", "workspace": "ws-a"})).await;
    browser.next_event("e").await;

    let mut other = server.browser("bob", &["ws-a"]).await;
    let huge_epoch = "e".repeat(10_000);
    for since in [
        json!("1"),
        json!(1),
        json!({"offset": "1", "epoch": epoch}),
        json!({"offset": -1, "epoch": epoch}),
        json!({"offset": 1}),
        json!({"epoch": epoch}),
        json!({"offset": 1, "epoch": huge_epoch}),
        json!({"offset": 1, "epoch": ""}),
        json!({"offset": 1, "epoch": epoch, "extra": 1}),
        json!({"offset": 2, "epoch": epoch}),
        json!({"offset": u64::MAX, "epoch": epoch}),
    ] {
        let ack = other
            .emit_with_ack("register", &json!({"workspace": "ws-a", "since": since}))
            .await;
        assert_eq!(ack["ok"], json!(false), "since {since}: {ack}");
        assert_eq!(ack["error"], json!("bad_request"), "since {since}: {ack}");
        let message = ack["message"].as_str().expect("a message");
        assert!(
            message.len() < 200,
            "the message echoes the input: {message}"
        );
    }
    // Not registered by any of them; everyone still works.
    publish_ok(
        &mut backend,
        &json!({"event": "after", "workspace": "ws-a"}),
    )
    .await;
    browser.next_event("after").await;
    publish_ok(&mut backend, &json!({"event": "marker", "user": "bob"})).await;
    other.next_event("marker").await;
    assert_eq!(
        other.count("after"),
        0,
        "a refused register joined the room"
    );
    register(&mut other, "ws-a", Some((1, &epoch))).await;
}

/// A browser for `user` whose handshake carries `auth.since`.
async fn resuming(server: &TestServer, user: &str, since: &Value) -> Result<Client, String> {
    let token = server.token(user, &[], &[]);
    Client::builder(server.addr)
        .namespace("/public")
        .auth(json!({"token": token, "since": since}))
        .try_connect()
        .await
}

#[tokio::test]
async fn the_user_room_resumes_through_the_handshake() {
    let server = TestServer::start("").await;
    let mut backend = server.backend().await;
    let mut first = resuming(&server, "alice", &json!({}))
        .await
        .expect("connect");
    let (start, epoch) = position(&first.next_event("user_position").await.args[0]);
    assert_eq!(start, 0);
    publish_ok(
        &mut backend,
        &json!({"event": "dm", "user": "alice", "data": 1}),
    )
    .await;
    let (_, offset, _) = next(&mut first, "dm").await;
    assert_eq!(offset, 1);
    drop(first);

    for n in 2..=3 {
        publish_ok(
            &mut backend,
            &json!({"event": "dm", "user": "alice", "data": n}),
        )
        .await;
    }
    let since = json!({"user": {"offset": 1, "epoch": epoch}});
    let mut again = resuming(&server, "alice", &since).await.expect("connect");
    for n in 2..=3 {
        let event = again.next_event("dm").await;
        assert_eq!(event.args[0], json!(n));
        assert_eq!(position(&event.args[1]), (n, epoch.clone()));
        assert_eq!(event.args[1]["workspace"], json!(null), "{}", event.raw);
    }
    let head = position(&again.next_event("user_position").await.args[0]);
    assert_eq!(head, (3, epoch.clone()));
    publish_ok(
        &mut backend,
        &json!({"event": "dm", "user": "alice", "data": 4}),
    )
    .await;
    assert_eq!(next(&mut again, "dm").await, (json!(4), 4, epoch.clone()));

    // Another epoch: resync for the user room, then live.
    let stale = json!({"user": {"offset": 1, "epoch": "gone"}});
    let mut stale = resuming(&server, "alice", &stale).await.expect("connect");
    let resync = stale.next_event("resync").await;
    assert_eq!(
        resync.args,
        [json!({"user": "alice", "epoch": epoch, "offset": 4})]
    );
    publish_ok(
        &mut backend,
        &json!({"event": "dm", "user": "alice", "data": 5}),
    )
    .await;
    assert_eq!(next(&mut stale, "dm").await.1, 5);
}

#[tokio::test]
async fn a_bad_auth_since_refuses_the_handshake_clearly() {
    let server = TestServer::start("").await;
    let mut first = resuming(&server, "alice", &json!({}))
        .await
        .expect("connect");
    let (_, epoch) = position(&first.next_event("user_position").await.args[0]);
    for since in [
        json!(1),
        json!([]),
        json!({"workspace:ws-a": {"offset": 0, "epoch": epoch}}),
        json!({"user": {"offset": 0}}),
        json!({"user": {"offset": 0, "epoch": "e".repeat(10_000)}}),
        json!({"user": {"offset": 7, "epoch": epoch}}),
    ] {
        let refusal = resuming(&server, "alice", &since)
            .await
            .err()
            .unwrap_or_else(|| panic!("auth.since {since} was accepted"));
        assert!(
            refusal.starts_with("bad_request: ") && refusal.len() < 200,
            "auth.since {since}: {refusal}"
        );
    }
    // A bad since is not a way around authentication: a bad token still says unauthorized.
    let Err(refusal) = Client::builder(server.addr)
        .namespace("/public")
        .auth(json!({"token": "garbage", "since": 1}))
        .try_connect()
        .await
    else {
        panic!("garbage token accepted");
    };
    assert_eq!(refusal, "unauthorized");
}

#[tokio::test]
async fn group_deliveries_carry_the_group_rooms_offset() {
    let server = TestServer::start("").await;
    let token = server.token("alice", &[], &["/staff"]);
    let mut browser = server.browser_with(&token).await;
    let mut backend = server.backend().await;
    for _ in 0..2 {
        publish_ok(&mut backend, &json!({"event": "g", "group": "/staff"})).await;
    }
    let first = position(&browser.next_event("g").await.args[1]);
    let second = position(&browser.next_event("g").await.args[1]);
    assert_eq!((first.0, second.0), (1, 2));
    assert_eq!(first.1, second.1);
}

/// The seam: a publisher publishes without pause while a client reads a few events, drops its
/// connection without a goodbye, comes back with `since` = the last offset it read, again and
/// again. Every offset must arrive exactly once, in order.
#[tokio::test]
async fn reconnecting_with_since_never_loses_nor_repeats_an_event() {
    const EVENTS: u64 = 400;
    let server = TestServer::start("").await;
    let mut browser = server.browser("alice", &["ws-seam"]).await;
    let (mut last, epoch) = register(&mut browser, "ws-seam", None).await;

    let mut backend = server.backend().await;
    let publisher = tokio::spawn(async move {
        for n in 1..=EVENTS {
            publish_ok(
                &mut backend,
                &json!({"event": "seam", "workspace": "ws-seam", "data": n}),
            )
            .await;
        }
    });

    let mut seen = Vec::new();
    let mut reconnects = 0;
    while last < EVENTS {
        // Read a handful (more each round, so the loop ends even if publishing is slow).
        for _ in 0..(3 + reconnects) {
            if last == EVENTS {
                break;
            }
            let (data, offset, event_epoch) = next(&mut browser, "seam").await;
            assert_eq!(event_epoch, epoch);
            assert_eq!(data, json!(offset), "data and offset travel together");
            seen.push(offset);
            last = offset;
        }
        drop(browser);
        reconnects += 1;
        browser = server.browser("alice", &["ws-seam"]).await;
        register(&mut browser, "ws-seam", Some((last, &epoch))).await;
    }
    publisher.await.expect("publisher");
    let expected: Vec<u64> = (1..=EVENTS).collect();
    assert_eq!(seen, expected, "offsets over {reconnects} reconnects");
    assert!(reconnects >= 10, "only {reconnects} reconnects");
}
