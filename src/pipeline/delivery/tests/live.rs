//! Live delivery: each subscriber once, meta and offsets per room, full queues, subscribers
//! held while they are admitted, leaving, recovery offsets, closed doors.

use super::*;

#[tokio::test]
async fn each_subscriber_once_with_the_meta_of_the_first_room_it_is_in() {
    let setup = setup();
    let both = setup.connected(
        10,
        &[
            rooms::workspace_room(&workspace("w1")),
            rooms::user_room(&user("alice")),
        ],
    );
    let user_only = setup.connected(10, &[rooms::user_room(&user("alice"))]);
    setup
        .publish_ok(json!({"workspace": "w1", "user": "alice"}), 1)
        .await;
    assert_eq!(both.data(), [json!(1)], "one delivery, not one per room");
    assert_eq!(both.metas()[0]["workspace"], json!("w1"));
    assert_eq!(user_only.data(), [json!(1)]);
    assert_eq!(user_only.metas()[0]["workspace"], Value::Null);
}

#[tokio::test]
async fn offsets_count_per_room() {
    let setup = setup();
    let w1 = setup.connected(10, &[rooms::workspace_room(&workspace("w1"))]);
    let w2 = setup.connected(10, &[rooms::workspace_room(&workspace("w2"))]);
    setup.publish_ok(json!({"workspace": "w1"}), 1).await;
    setup
        .publish_ok(json!({"workspaces": ["w1", "w2"]}), 2)
        .await;
    let offsets = |subscriber: &TestSubscriber| -> Vec<Value> {
        subscriber
            .metas()
            .iter()
            .map(|meta| meta["offset"].clone())
            .collect()
    };
    assert_eq!(offsets(&w1), [json!(1), json!(2)]);
    assert_eq!(offsets(&w2), [json!(1)]);
    let ids: Vec<Value> = w1.metas().iter().map(|meta| meta["id"].clone()).collect();
    assert_ne!(ids[0], ids[1], "each event has its own id");
    assert_eq!(w1.metas()[1]["id"], w2.metas()[0]["id"]);
}

#[tokio::test]
async fn a_full_queue_is_cut_off_and_the_others_still_get_the_event() {
    let setup = setup();
    let room = [rooms::workspace_room(&workspace("w1"))];
    let slow = setup.connected(1, &room);
    let fast = setup.connected(10, &room);
    setup.publish_ok(json!({"workspace": "w1"}), 1).await;
    setup.publish_ok(json!({"workspace": "w1"}), 2).await;
    assert_eq!(slow.data(), [json!(1)]);
    assert_eq!(slow.cut(), ["queue full during delivery"]);
    assert_eq!(fast.data(), [json!(1), json!(2)]);
    assert!(fast.cut().is_empty());
}

#[tokio::test]
async fn a_gone_subscriber_is_skipped_without_a_cut() {
    let setup = setup();
    let room = [rooms::workspace_room(&workspace("w1"))];
    let gone = setup.connected(10, &room);
    gone.gone.store(true, Ordering::Relaxed);
    let live = setup.connected(10, &room);
    setup.publish_ok(json!({"workspace": "w1"}), 1).await;
    assert!(gone.received().is_empty());
    assert!(gone.cut().is_empty(), "a gone subscriber is not slow");
    assert_eq!(live.data(), [json!(1)]);
}

#[tokio::test]
async fn events_for_a_subscriber_being_admitted_are_held_then_sent_in_order() {
    let setup = setup();
    let alice = TestSubscriber::new(10);
    let shared: Arc<dyn Subscriber> = alice.clone();
    setup
        .deliverer
        .admit(&shared, vec![rooms::user_room(&user("alice"))])
        .await;
    // Not listed by its door yet, as a socket inside socketioxide's connect middleware.
    setup.publish_ok(json!({"user": "alice"}), 1).await;
    setup.publish_ok(json!({"user": "alice"}), 2).await;
    assert!(
        alice.received().is_empty(),
        "nothing is sent before it is live"
    );
    setup.door.connect(&alice);
    assert!(
        setup
            .deliverer
            .go_live(alice.as_ref(), Default::default())
            .await
    );
    setup.publish_ok(json!({"user": "alice"}), 3).await;
    assert_eq!(alice.data(), [json!(1), json!(2), json!(3)]);
}

#[tokio::test]
async fn a_subscriber_held_past_the_limit_is_cut_off() {
    let setup = setup_with(100, 1, false);
    let alice = TestSubscriber::new(10);
    let shared: Arc<dyn Subscriber> = alice.clone();
    setup
        .deliverer
        .admit(&shared, vec![rooms::user_room(&user("alice"))])
        .await;
    setup.publish_ok(json!({"user": "alice"}), 1).await;
    assert!(alice.cut().is_empty());
    setup.publish_ok(json!({"user": "alice"}), 2).await;
    assert_eq!(alice.cut(), ["queue full during delivery"]);
}

#[tokio::test]
async fn after_leave_nothing_from_the_room_follows() {
    let setup = setup();
    let room = rooms::workspace_room(&workspace("w1"));
    let member = setup.connected(10, std::slice::from_ref(&room));
    setup.publish_ok(json!({"workspace": "w1"}), 1).await;
    setup.deliverer.leave(member.as_ref(), &[room]).await;
    setup.publish_ok(json!({"workspace": "w1"}), 2).await;
    assert_eq!(member.data(), [json!(1)]);
}

#[tokio::test]
async fn recovery_offsets_carry_the_sequence_number_and_joins_are_noted() {
    let setup = setup_with(100, 100, true);
    setup.publish_ok(json!({"workspace": "w2"}), 1).await;
    let room = rooms::workspace_room(&workspace("w1"));
    let member = setup.connected(10, &[]);
    let joined = setup
        .deliverer
        .join(
            member.as_ref(),
            LoggedRoom::Workspace(&workspace("w1")),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(joined, Joined::Live { replayed: 0, .. }));
    assert_eq!(member.joins.joined_at(&room), 1, "joined after event 1");
    setup.publish_ok(json!({"workspace": "w1"}), 2).await;
    let Received::Event { offset, .. } = &member.received()[0] else {
        panic!("expected an event");
    };
    assert_eq!(
        offset.as_deref(),
        Some("2"),
        "the node-wide sequence number"
    );
}

#[tokio::test]
async fn a_closed_door_makes_delivery_unavailable() {
    let setup = setup();
    setup.door.closed.store(true, Ordering::Relaxed);
    let result = setup.publish(json!({"workspace": "w1"}), 1).await;
    assert!(
        matches!(result, Err(PublishError::Unavailable)),
        "{result:?}"
    );
}
