//! Socket.IO connection state recovery (socket.io-client >= 4.6), which socketioxide lacks.
//!
//! The protocol: the server's CONNECT answer carries a private session id `pid` besides `sid`,
//! and every event carries, as its last argument, a string offset. A client that loses its
//! transport reconnects with `auth = {pid, offset, ...}`; when the server still knows that
//! session it answers CONNECT with the same `pid` (the client sets `socket.recovered = true`),
//! puts the socket back in its rooms and sends every packet it missed after `offset`.
//!
//! In herald:
//! - the offset is the event's node-wide sequence number in the event log;
//! - a `/public` socket that drops for a transport reason leaves a [`Saved`] session for
//!   `recovery.max_disconnection`; the next handshake naming its `pid` (same user) claims it;
//! - socketioxide writes the CONNECT answer itself, with `sid` only: herald adds `pid` on the
//!   way out, in the long-polling response body ([`polling`]) or the WebSocket frame
//!   ([`ws_frames`]), using the pid it [`Recovery::announce`]d for that socket's id.

use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::ids::UserId;

pub mod connect_packet;
pub mod polling;
pub mod ws_frames;

/// Announcements older than this are dropped: their CONNECT answer never went out.
const ANNOUNCEMENT_TTL: Duration = Duration::from_secs(60);

/// A session that may be recovered.
#[derive(Debug, Clone)]
pub struct Saved {
    /// Whose it was: only the same user may claim it.
    pub user: UserId,
    /// The rooms the socket was in, with the sequence number at which it joined each.
    pub rooms: Vec<(String, u64)>,
    /// Until when it may be claimed.
    pub expires: Instant,
}

/// Recovery state of the node: saved sessions, and the pids to add to CONNECT answers.
#[derive(Debug)]
pub struct Recovery {
    max_disconnection: Duration,
    saved: Mutex<HashMap<String, Saved>>,
    /// Engine.IO sid → (pid, when announced), until its CONNECT answer has been rewritten.
    announced: Mutex<HashMap<String, (String, Instant)>>,
    /// How many announcements wait: the rewriters skip all work while this is zero.
    waiting: AtomicUsize,
}

impl Recovery {
    /// Recovery with sessions kept for `max_disconnection`.
    pub fn new(max_disconnection: Duration) -> Self {
        Self {
            max_disconnection,
            saved: Mutex::new(HashMap::new()),
            announced: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
        }
    }

    /// A fresh private session id.
    pub fn new_pid() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Asks for `pid` to be added to the CONNECT answer of the socket `sid`.
    pub fn announce(&self, sid: &str, pid: &str) {
        let now = Instant::now();
        let mut announced = lock(&self.announced);
        announced.retain(|_, (_, at)| now.duration_since(*at) < ANNOUNCEMENT_TTL);
        announced.insert(sid.to_owned(), (pid.to_owned(), now));
        self.waiting.store(announced.len(), Ordering::Release);
    }

    /// Whether any CONNECT answer waits for its pid.
    pub fn any_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// The pid announced for `sid`, once.
    pub fn take_announced(&self, sid: &str) -> Option<String> {
        if !self.any_waiting() {
            return None;
        }
        let mut announced = lock(&self.announced);
        let pid = announced.remove(sid).map(|(pid, _)| pid);
        self.waiting.store(announced.len(), Ordering::Release);
        pid
    }

    /// Keeps a dropped socket's session for `recovery.max_disconnection`.
    pub fn save(&self, pid: String, user: UserId, rooms: Vec<(String, u64)>) {
        let now = Instant::now();
        let mut saved = lock(&self.saved);
        saved.retain(|_, session| session.expires > now);
        let expires = now + self.max_disconnection;
        saved.insert(
            pid,
            Saved {
                user,
                rooms,
                expires,
            },
        );
    }

    /// Takes the session `pid` when it is still there and was `user`'s.
    pub fn claim(&self, pid: &str, user: &UserId) -> Option<Saved> {
        let mut saved = lock(&self.saved);
        let session = saved.remove(pid)?;
        (session.expires > Instant::now() && session.user == *user).then_some(session)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps, consistent after every statement: a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_is_claimed_once_by_its_user_within_the_window() {
        let recovery = Recovery::new(Duration::from_secs(120));
        recovery.save("p1".into(), user("alice"), vec![("workspace:a".into(), 0)]);
        assert!(recovery.claim("p1", &user("bob")).is_none(), "another user");
        // A failed claim by someone else spends the pid: it was guessed or stolen.
        assert!(recovery.claim("p1", &user("alice")).is_none());

        recovery.save("p2".into(), user("alice"), vec![]);
        tokio::time::advance(Duration::from_secs(119)).await;
        assert!(recovery.claim("p2", &user("alice")).is_some());
        assert!(recovery.claim("p2", &user("alice")).is_none(), "only once");

        recovery.save("p3".into(), user("alice"), vec![]);
        tokio::time::advance(Duration::from_secs(121)).await;
        assert!(recovery.claim("p3", &user("alice")).is_none(), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn announcements_are_taken_once_and_expire() {
        let recovery = Recovery::new(Duration::from_secs(120));
        assert!(!recovery.any_waiting());
        recovery.announce("sid1", "pid1");
        assert!(recovery.any_waiting());
        assert_eq!(recovery.take_announced("sid1").as_deref(), Some("pid1"));
        assert_eq!(recovery.take_announced("sid1"), None);
        assert!(!recovery.any_waiting());

        recovery.announce("old", "p");
        tokio::time::advance(ANNOUNCEMENT_TTL).await;
        recovery.announce("new", "q");
        assert_eq!(recovery.take_announced("old"), None, "expired");
        assert_eq!(recovery.take_announced("new").as_deref(), Some("q"));
    }
}
