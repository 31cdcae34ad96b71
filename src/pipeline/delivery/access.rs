//! What a backend changes for a user, applied to the user's subscribers on every door: an
//! access change (the workspaces now allowed, or the backend asked again) and a kick.
//!
//! Each subscriber is changed in its turn ([`Subscriber::turn`]), behind the requests it sent
//! before, so a `register` that raced the change cannot re-join a workspace just taken away;
//! its session is read in that turn, since a `refresh` before it may have replaced it. The new
//! session is installed between two deliveries: nothing of a lost workspace follows the
//! client being told. A change only narrows what a subscriber holds: a workspace newly allowed
//! is entered the door's own way (a `register`, a Cells re-subscribe).

use std::{collections::HashSet, sync::Arc};

use super::Deliverer;
use crate::{
    auth::{AuthError, Authenticator, Principal, Session},
    ids::{UserId, WorkspaceId},
    pipeline::subscriber::Subscriber,
};

/// The reason a subscriber's session ends when a backend refuses its credentials on an
/// access change.
const ACCESS_REVOKED: &str = "access_revoked";

/// What an access change did on this node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AccessCounts {
    /// The user's subscribers here, on every door.
    pub(crate) subscribers: usize,
    /// The workspaces they lost, in all.
    pub(crate) revoked: usize,
    /// The subscribers whose session ended: the backend refused their credentials.
    pub(crate) ended: usize,
}

impl Deliverer {
    /// Applies an access change to every subscriber of `user` on this node: with `allowed`,
    /// the workspaces now allowed replace the session's list; without it, the backend is asked
    /// again (a refusal ends the session, an unreachable backend keeps the current access
    /// rather than cut everyone off).
    pub(crate) async fn change_access(
        &self,
        auth: &Authenticator,
        user: &UserId,
        allowed: Option<&HashSet<WorkspaceId>>,
    ) -> AccessCounts {
        let subscribers = self.subscribers_of(user);
        let mut counts = AccessCounts {
            subscribers: subscribers.len(),
            ..AccessCounts::default()
        };
        for subscriber in subscribers {
            let _turn = subscriber.turn().await;
            let Some(session) = subscriber.session() else {
                continue;
            };
            let principal = match allowed {
                Some(list) => Principal {
                    workspaces: Some(list.clone()),
                    ..session.principal.clone()
                },
                None => match auth.ask_again(&session).await {
                    Ok(Some(principal)) if principal.user == session.principal.user => principal,
                    Ok(None) => continue,
                    Ok(Some(_)) | Err(AuthError::Rejected | AuthError::MissingCredentials) => {
                        subscriber.end_session(ACCESS_REVOKED);
                        counts.ended += 1;
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(subscriber = ?subscriber.id(), %error, "access refresh: backend unavailable");
                        continue;
                    }
                },
            };
            counts.revoked += self.adopt(auth, &*subscriber, principal).await;
        }
        counts
    }

    /// Gives `subscriber` a session of `principal` with its current credentials; the caller
    /// holds its turn. The workspaces it holds and may no longer keep are left; how many.
    pub(crate) async fn adopt(
        &self,
        auth: &Authenticator,
        subscriber: &dyn Subscriber,
        principal: Principal,
    ) -> usize {
        let Some(old) = subscriber.session() else {
            return 0;
        };
        let session = Arc::new(Session {
            principal,
            credentials: old.credentials.clone(),
        });
        let mut lost = Vec::new();
        for workspace in subscriber.workspaces() {
            if !auth.may_keep(&session, &workspace).await {
                lost.push(workspace);
            }
        }
        let _order = self.order.lock().await;
        subscriber.adopt(session, &lost);
        lost.len()
    }

    /// Ends the session of every subscriber of `user` on this node, telling each `reason`;
    /// how many there were.
    pub(crate) fn disconnect_user(&self, user: &UserId, reason: &str) -> usize {
        let subscribers = self.subscribers_of(user);
        for subscriber in &subscribers {
            subscriber.end_session(reason);
        }
        subscribers.len()
    }

    fn subscribers_of(&self, user: &UserId) -> Vec<Arc<dyn Subscriber>> {
        (self.doors.iter())
            .flat_map(|door| door.subscribers_of(user))
            .collect()
    }
}
