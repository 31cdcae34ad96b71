//! Access changes and kicks through the seam: what each subscriber of the user is told, which
//! rooms it leaves, and that a change waits for the subscriber's turn.

use std::{collections::HashSet, time::Duration};

use serde_json::json;

use super::{Setup, setup, user, workspace};
use crate::{
    auth::{Authenticator, jwt::JwtVerifier},
    config::{Config, Secret},
    pipeline::{AccessCounts, subscriber::Subscriber},
    rooms,
};

/// A JWT authenticator: it cannot ask anyone again, so changes carry their workspace list.
fn jwt() -> Authenticator {
    let mut cfg = Config::from_toml("").unwrap().auth.jwt;
    cfg.secret = Some(Secret::new("unit-test-secret"));
    Authenticator::Jwt(JwtVerifier::from_config(&cfg).unwrap())
}

impl Setup {
    /// Publishes to workspace `id` and says whether the data reached `subscriber`.
    async fn reaches(&self, id: &str, subscriber: &super::TestSubscriber, data: u32) -> bool {
        self.publish_ok(json!({ "workspace": id }), data).await;
        subscriber.data().contains(&json!(data))
    }
}

#[tokio::test]
async fn a_change_takes_away_the_workspaces_no_longer_allowed_from_every_subscriber_of_the_user() {
    let setup = setup();
    let (alice, bob) = (user("alice"), user("bob"));
    let (w1, w2) = (workspace("w1"), workspace("w2"));
    let tabs = [
        setup.session_of(&alice, &[w1.clone(), w2.clone()]),
        setup.session_of(&alice, std::slice::from_ref(&w1)),
    ];
    let other = setup.session_of(&bob, &[w1.clone(), w2.clone()]);

    let allowed: HashSet<_> = [w2.clone()].into();
    let counts = setup
        .deliverer
        .change_access(&jwt(), &alice, Some(&allowed))
        .await;
    assert_eq!(
        counts,
        AccessCounts {
            subscribers: 2,
            revoked: 2,
            ended: 0
        }
    );
    for tab in &tabs {
        assert_eq!(tab.told(), ["revoked w1"]);
        let session = tab.session().unwrap();
        assert_eq!(session.principal.workspaces.as_ref(), Some(&allowed));
    }
    assert_eq!(tabs[0].rooms(), [rooms::workspace_room(&w2)].into());
    assert!(tabs[1].rooms().is_empty());
    assert!(
        other.told().is_empty(),
        "another user was told: {:?}",
        other.told()
    );

    assert!(
        !setup.reaches("w1", &tabs[0], 1).await,
        "w1 after the change"
    );
    assert!(
        setup.reaches("w2", &tabs[0], 2).await,
        "w2 after the change"
    );
    assert!(setup.reaches("w1", &other, 3).await, "another user's w1");
}

#[tokio::test]
async fn a_change_that_keeps_every_workspace_tells_nothing() {
    let setup = setup();
    let alice = user("alice");
    let tab = setup.session_of(&alice, &[workspace("w1")]);
    let allowed: HashSet<_> = [workspace("w1"), workspace("w2")].into();
    let counts = setup
        .deliverer
        .change_access(&jwt(), &alice, Some(&allowed))
        .await;
    assert_eq!((counts.subscribers, counts.revoked), (1, 0));
    assert!(tab.told().is_empty());
    // A change narrows: a workspace newly allowed is entered the door's own way.
    assert_eq!(
        tab.rooms(),
        [rooms::workspace_room(&workspace("w1"))].into()
    );
}

#[tokio::test]
async fn without_a_list_a_mode_that_cannot_ask_again_changes_nothing() {
    let setup = setup();
    let alice = user("alice");
    let tab = setup.session_of(&alice, &[workspace("w1")]);
    let counts = setup.deliverer.change_access(&jwt(), &alice, None).await;
    assert_eq!(
        (counts.subscribers, counts.revoked, counts.ended),
        (1, 0, 0)
    );
    assert!(tab.told().is_empty());
}

#[tokio::test]
async fn a_change_waits_for_the_subscribers_turn() {
    let setup = setup();
    let alice = user("alice");
    let tab = setup.session_of(&alice, &[workspace("w1")]);
    // A request of the subscriber's own (a register being checked) holds its turn.
    let request = tab.turn.clone().lock_owned().await;
    let deliverer = setup.deliverer.clone();
    let change = tokio::spawn({
        let alice = alice.clone();
        async move {
            let allowed = HashSet::new();
            deliverer
                .change_access(&jwt(), &alice, Some(&allowed))
                .await
        }
    });
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(
        !change.is_finished(),
        "the change did not wait for the turn"
    );
    assert!(tab.told().is_empty(), "told before its turn");
    drop(request);
    let counts = tokio::time::timeout(Duration::from_secs(5), change)
        .await
        .expect("the change never finished after the turn was free")
        .unwrap();
    assert_eq!(counts.revoked, 1);
    assert_eq!(tab.told(), ["revoked w1"]);
}

#[tokio::test]
async fn disconnect_user_ends_every_session_of_the_user_and_no_other() {
    let setup = setup();
    let (alice, bob) = (user("alice"), user("bob"));
    let tabs = [
        setup.session_of(&alice, &[workspace("w1")]),
        setup.session_of(&alice, &[]),
    ];
    let other = setup.session_of(&bob, &[workspace("w1")]);
    // A connection without a session yet is nobody's.
    let anonymous = setup.connected(10, &[]);
    assert_eq!(setup.deliverer.disconnect_user(&alice, "logout"), 2);
    for tab in &tabs {
        assert_eq!(tab.told(), ["ended logout"]);
    }
    assert!(other.told().is_empty());
    assert!(anonymous.told().is_empty());
    assert_eq!(setup.deliverer.disconnect_user(&user("carol"), "logout"), 0);
}
