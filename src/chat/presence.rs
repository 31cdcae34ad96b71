//! Presence: who is in each room, as users (two tabs of one user count once).
//!
//! A room's member is a user holding it through at least one joined socket, or through a
//! *ghost*: what a socket leaves behind when its connection was lost without a clean
//! disconnect (transport closed, transport error, ping timeout). socketioxide already notices
//! a silent connection within `ping_interval + ping_timeout`; the ghost then keeps the user
//! present for `chat.presence_timeout` more, so a page reload or a network blip does not make
//! them leave and come back. A clean disconnect or `leave` drops the socket at once.
//!
//! This is this node's view; in cluster mode `cluster.rs` mirrors it into Redis and merges it
//! with the other nodes'.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use uuid::Uuid;

use crate::{ids::UserId, pipeline::SubscriberId};

/// What keeps a user in a room: a connection of any door, or a ghost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Holder {
    Connection(SubscriberId),
    Ghost(u64),
}

type Rooms = HashMap<Uuid, HashMap<UserId, HashSet<Holder>>>;

/// Who is in each room on this node. Cheap operations under a short lock.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    rooms: Mutex<Rooms>,
    ghosts: AtomicU64,
}

/// A ghost to lay to rest once the presence timeout has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ghost {
    room: Uuid,
    user: UserId,
    id: u64,
}

impl Ghost {
    /// Whose ghost it is.
    pub(crate) fn user(&self) -> &UserId {
        &self.user
    }
}

impl Presence {
    fn with<R>(&self, f: impl FnOnce(&mut Rooms) -> R) -> R {
        f(&mut self.rooms.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The connection (`member`, a door's subscriber id) joined; the room's users after it.
    pub(crate) fn join(&self, room: Uuid, user: &UserId, member: SubscriberId) -> Vec<UserId> {
        self.with(|rooms| {
            let members = rooms.entry(room).or_default();
            members
                .entry(user.clone())
                .or_default()
                .insert(Holder::Connection(member));
            sorted(members)
        })
    }

    /// The socket left cleanly; the room's users when that changed them.
    pub(crate) fn leave(
        &self,
        room: Uuid,
        user: &UserId,
        member: SubscriberId,
    ) -> Option<Vec<UserId>> {
        self.release(room, user, Holder::Connection(member))
    }

    /// The socket's connection was lost: it leaves a ghost, which [`Presence::expire`] removes.
    pub(crate) fn vanish(&self, room: Uuid, user: &UserId, member: SubscriberId) -> Option<Ghost> {
        let id = self.ghosts.fetch_add(1, Ordering::Relaxed);
        self.with(|rooms| {
            let holders = rooms.get_mut(&room)?.get_mut(user)?;
            holders
                .remove(&Holder::Connection(member))
                .then(|| holders.insert(Holder::Ghost(id)))?;
            Some(Ghost {
                room,
                user: user.clone(),
                id,
            })
        })
    }

    /// The ghost's time is up; the room's users when that changed them.
    pub(crate) fn expire(&self, ghost: &Ghost) -> Option<(Uuid, Vec<UserId>)> {
        self.release(ghost.room, &ghost.user, Holder::Ghost(ghost.id))
            .map(|members| (ghost.room, members))
    }

    /// The room's users now.
    pub(crate) fn members(&self, room: &Uuid) -> Vec<UserId> {
        self.with(|rooms| rooms.get(room).map(sorted).unwrap_or_default())
    }

    /// Rooms that have members on this node.
    pub(crate) fn rooms(&self) -> Vec<Uuid> {
        self.with(|rooms| rooms.keys().copied().collect())
    }

    /// Whether the user is in the room on this node (through a socket or a ghost).
    pub(crate) fn holds(&self, room: &Uuid, user: &UserId) -> bool {
        self.with(|rooms| {
            rooms
                .get(room)
                .is_some_and(|members| members.contains_key(user))
        })
    }

    /// Every (room, user) present on this node.
    pub(crate) fn entries(&self) -> Vec<(Uuid, UserId)> {
        self.with(|rooms| {
            rooms
                .iter()
                .flat_map(|(room, members)| members.keys().map(|user| (*room, user.clone())))
                .collect()
        })
    }

    fn release(&self, room: Uuid, user: &UserId, holder: Holder) -> Option<Vec<UserId>> {
        self.with(|rooms| {
            let members = rooms.get_mut(&room)?;
            let holders = members.get_mut(user)?;
            if !holders.remove(&holder) || !holders.is_empty() {
                return None;
            }
            members.remove(user);
            let now = sorted(members);
            if members.is_empty() {
                rooms.remove(&room);
            }
            Some(now)
        })
    }
}

fn sorted(members: &HashMap<UserId, HashSet<Holder>>) -> Vec<UserId> {
    members
        .keys()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u8) -> SubscriberId {
        SubscriberId::from_bytes([n; 16])
    }

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    #[test]
    fn two_tabs_count_once_and_leave_with_the_last() {
        let presence = Presence::default();
        let room = Uuid::new_v4();
        assert_eq!(presence.join(room, &user("a"), sid(1)), [user("a")]);
        assert_eq!(presence.join(room, &user("a"), sid(2)), [user("a")]);
        assert_eq!(
            presence.join(room, &user("b"), sid(3)),
            [user("a"), user("b")]
        );
        assert_eq!(presence.leave(room, &user("a"), sid(1)), None);
        assert_eq!(
            presence.leave(room, &user("a"), sid(2)),
            Some(vec![user("b")])
        );
        assert_eq!(presence.leave(room, &user("a"), sid(2)), None);
        assert_eq!(presence.leave(room, &user("b"), sid(3)), Some(vec![]));
        assert!(presence.rooms().is_empty());
    }

    #[test]
    fn a_ghost_keeps_its_user_until_it_expires() {
        let presence = Presence::default();
        let room = Uuid::new_v4();
        presence.join(room, &user("a"), sid(1));
        let ghost = presence.vanish(room, &user("a"), sid(1)).unwrap();
        assert_eq!(presence.members(&room), [user("a")]);
        assert!(presence.holds(&room, &user("a")));
        assert_eq!(presence.entries(), [(room, user("a"))]);
        assert_eq!(presence.expire(&ghost), Some((room, vec![])));
        assert!(!presence.holds(&room, &user("a")));
        assert_eq!(presence.expire(&ghost), None);
        // A socket that never joined leaves no ghost.
        assert_eq!(presence.vanish(room, &user("a"), sid(9)), None);
    }

    #[test]
    fn coming_back_before_the_timeout_is_no_change() {
        let presence = Presence::default();
        let room = Uuid::new_v4();
        presence.join(room, &user("a"), sid(1));
        let ghost = presence.vanish(room, &user("a"), sid(1)).unwrap();
        presence.join(room, &user("a"), sid(2));
        assert_eq!(presence.expire(&ghost), None);
        assert_eq!(presence.members(&room), [user("a")]);
    }
}
