//! Joins from a position: replays, refusals beyond the head, `resync`, paced replays.

use super::*;
use crate::history::Position;

impl Setup {
    /// Publishes events 1 to `published` (the data is the number) to workspace `w1`, then
    /// joins a new subscriber whose queue holds `capacity` to `w1` from `offset` of the
    /// room's current epoch. The subscriber, how the join went, and the head before it.
    async fn join_w1_since(
        &self,
        published: u32,
        offset: u64,
        capacity: usize,
    ) -> (Arc<TestSubscriber>, Joined, Position) {
        for data in 1..=published {
            self.publish_ok(json!({"workspace": "w1"}), data).await;
        }
        let w1 = workspace("w1");
        let head = self
            .deliverer
            .head(LoggedRoom::Workspace(&w1))
            .await
            .unwrap();
        let since = Position {
            offset,
            epoch: head.epoch.clone(),
        };
        let late = self.connected(capacity, &[]);
        let joined = self
            .deliverer
            .join(late.as_ref(), LoggedRoom::Workspace(&w1), Some(&since))
            .await
            .unwrap();
        (late, joined, head)
    }
}

#[tokio::test]
async fn join_since_replays_what_was_missed_then_goes_live() {
    let setup = setup();
    let (late, joined, _) = setup.join_w1_since(3, 1, 10).await;
    assert!(
        matches!(joined, Joined::Live { replayed: 2, ref head } if head.offset == 3),
        "{joined:?}"
    );
    setup.publish_ok(json!({"workspace": "w1"}), 4).await;
    assert_eq!(late.data(), [json!(2), json!(3), json!(4)]);
    let offsets: Vec<Value> = late.metas().iter().map(|m| m["offset"].clone()).collect();
    assert_eq!(offsets, [json!(2), json!(3), json!(4)]);
    assert_eq!(late.metas()[0]["workspace"], json!("w1"));
}

#[tokio::test]
async fn join_since_beyond_the_head_is_refused() {
    let setup = setup();
    let (late, joined, _) = setup.join_w1_since(1, 5, 10).await;
    assert!(matches!(joined, Joined::Beyond(_)), "{joined:?}");
    setup.publish_ok(json!({"workspace": "w1"}), 2).await;
    assert!(
        late.received().is_empty(),
        "a refused join is not in the room"
    );
}

#[tokio::test]
async fn join_since_what_the_log_no_longer_holds_sends_resync() {
    let setup = setup_with(2, 100, false);
    let (late, joined, head) = setup.join_w1_since(5, 1, 10).await;
    assert!(matches!(joined, Joined::Resync(_)), "{joined:?}");
    assert_eq!(
        late.received(),
        [Received::Resync(
            json!({"workspace": "w1", "epoch": head.epoch.as_str(), "offset": 5})
        )]
    );
    setup.publish_ok(json!({"workspace": "w1"}), 6).await;
    assert_eq!(late.data(), [json!(6)], "joined after the resync");
}

#[tokio::test(start_paused = true)]
async fn a_replay_the_queue_cannot_take_cuts_the_subscriber_off() {
    let setup = setup();
    let (small, joined, _) = setup.join_w1_since(3, 0, 1).await;
    assert!(matches!(joined, Joined::Slow), "{joined:?}");
    assert_eq!(small.cut(), ["no room for the replay"]);
    assert_eq!(small.data(), [json!(1)], "paced: what fit was sent");
}
