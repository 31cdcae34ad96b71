//! [`UserSockets`]: the sockets of each user on this node, oldest first, for
//! `limits.max_sockets_per_user`; each door keeps one, keyed by its own socket ids.
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

use crate::ids::UserId;

/// Sockets per user, oldest first, by socket id `K`; cheap to clone.
#[derive(Debug)]
pub(crate) struct UserSockets<K>(Arc<Mutex<HashMap<UserId, VecDeque<K>>>>);

impl<K> Clone for UserSockets<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K> Default for UserSockets<K> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<K: Copy + Eq> UserSockets<K> {
    /// Adds `sid` as `user`'s newest socket and returns the sockets to disconnect, oldest
    /// first, so that at most `max` remain. They are no longer counted.
    pub(crate) fn add(&self, user: &UserId, sid: K, max: usize) -> Vec<K> {
        let mut users = self.lock();
        let sockets = users.entry(user.clone()).or_default();
        sockets.retain(|held| *held != sid);
        sockets.push_back(sid);
        let excess = sockets.len().saturating_sub(max.max(1));
        sockets.drain(..excess).collect()
    }

    /// Forgets a socket (it disconnected).
    pub(crate) fn remove(&self, user: &UserId, sid: K) {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, VecDeque<K>>> {
        // Plain data, consistent after every statement: a poisoned lock is still usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use socketioxide::socket::Sid;

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
