//! [`UserSockets`]: the sockets of each user on this node, oldest first, for
//! `limits.max_sockets_per_user`.
//!
//! When a user's newest socket would exceed the cap, the OLDEST is disconnected. Why the oldest:
//! after a network blip or a laptop waking up, a browser reconnects before the server noticed
//! that its previous sockets died (that takes up to `ping_interval + ping_timeout`); refusing
//! the newest would refuse exactly the live tabs and keep the dead ones, and socket.io-client
//! does not retry a refused CONNECT. The evicted socket gets a server disconnect, which
//! socket.io-client does not answer by reconnecting, so two tabs cannot evict each other in a
//! loop. Counted per node: in cluster mode a user may hold the cap on each node.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use socketioxide::socket::Sid;

use crate::ids::UserId;

/// Sockets per user, oldest first; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserSockets(Arc<Mutex<HashMap<UserId, VecDeque<Sid>>>>);

impl UserSockets {
    /// Adds `sid` as `user`'s newest socket and returns the sockets to disconnect, oldest
    /// first, so that at most `max` remain. They are no longer counted.
    pub(crate) fn add(&self, user: &UserId, sid: Sid, max: usize) -> Vec<Sid> {
        let mut users = self.lock();
        let sockets = users.entry(user.clone()).or_default();
        sockets.retain(|held| *held != sid);
        sockets.push_back(sid);
        let excess = sockets.len().saturating_sub(max.max(1));
        sockets.drain(..excess).collect()
    }

    /// Forgets a socket (it disconnected).
    pub(crate) fn remove(&self, user: &UserId, sid: Sid) {
        let mut users = self.lock();
        if let Some(sockets) = users.get_mut(user) {
            sockets.retain(|held| *held != sid);
            if sockets.is_empty() {
                users.remove(user);
            }
        }
    }

    /// How many sockets `user` holds.
    #[cfg(test)]
    pub(crate) fn count(&self, user: &UserId) -> usize {
        self.lock().get(user).map_or(0, VecDeque::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, VecDeque<Sid>>> {
        // Plain data, consistent after every statement: a poisoned lock is still usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_make_room_and_removal_forgets() {
        let users = UserSockets::default();
        let alice = UserId::parse("alice").unwrap();
        let sids: Vec<Sid> = (0..4).map(|_| Sid::new()).collect();
        assert!(users.add(&alice, sids[0], 2).is_empty());
        assert!(users.add(&alice, sids[1], 2).is_empty());
        assert_eq!(users.add(&alice, sids[2], 2), vec![sids[0]]);
        assert_eq!(users.count(&alice), 2);
        users.remove(&alice, sids[1]);
        assert!(users.add(&alice, sids[3], 2).is_empty());
        assert_eq!(users.add(&alice, sids[3], 2), Vec::<Sid>::new());
        users.remove(&alice, sids[2]);
        users.remove(&alice, sids[3]);
        assert_eq!(users.count(&alice), 0);
        assert!(users.0.lock().unwrap().is_empty());
    }
}
