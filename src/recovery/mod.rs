//! Socket.IO connection state recovery (socket.io-client >= 4.6), which socketioxide lacks.
//!
//! The protocol: the server's CONNECT answer carries a private session id `pid` besides `sid`,
//! and every event carries, as its last argument, a string offset. A client that loses its
//! transport reconnects with `auth = {pid, offset, ...}`; when the server still knows that
//! session it answers CONNECT with the same `pid` (the client sets `socket.recovered = true`),
//! puts the socket back in its rooms and sends every packet it missed after `offset`.
//!
//! In herald:
//! - the offset is the event's sequence number in the event log: node-wide on a single node,
//!   cluster-wide in cluster mode (Redis numbers every event), so it means the same on every
//!   node;
//! - a `/public` socket that drops for a transport reason leaves a [`Saved`] session for
//!   `recovery.max_disconnection` in a [`SessionStore`] (memory; Redis in cluster mode, so any
//!   node can recover it); the next handshake naming its `pid` (same user) claims it;
//! - socketioxide writes the CONNECT answer itself, with `sid` only: herald adds `pid` on the
//!   way out, at the edge, in the long-polling response body ([`crate::edge::polling_pid`]) or
//!   the WebSocket frame ([`crate::edge::ws_frames`]), using the pid it
//!   [`Recovery::announce`]d for that socket's id.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::ids::UserId;

pub(crate) mod sessions;

pub(crate) use sessions::{MemorySessions, Saved, SessionError, SessionStore};

/// Announcements older than this are dropped: their CONNECT answer never went out.
const ANNOUNCEMENT_TTL: Duration = Duration::from_secs(60);

/// Recovery state of the node: where sessions are saved, and the pids to add to CONNECT
/// answers (those are the node's own: a CONNECT answer leaves the node that made it).
#[derive(Debug)]
pub(crate) struct Recovery {
    sessions: Arc<dyn SessionStore>,
    /// Set when the node shuts down: it claims no session any more (its client would lose it
    /// again at once), so the session stays for another node.
    closing: AtomicBool,
    /// Engine.IO sid → (pid, when announced), until its CONNECT answer has been rewritten.
    announced: Mutex<HashMap<String, (String, Instant)>>,
    /// How many announcements wait: the rewriters skip all work while this is zero.
    waiting: AtomicUsize,
}

impl Recovery {
    /// Recovery with sessions kept in `sessions`.
    pub(crate) fn new(sessions: Arc<dyn SessionStore>) -> Self {
        Self {
            sessions,
            closing: AtomicBool::new(false),
            announced: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
        }
    }

    /// A fresh private session id.
    pub(crate) fn new_pid() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Asks for `pid` to be added to the CONNECT answer of the socket `sid`.
    pub(crate) fn announce(&self, sid: &str, pid: &str) {
        let now = Instant::now();
        let mut announced = lock(&self.announced);
        announced.retain(|_, (_, at)| now.duration_since(*at) < ANNOUNCEMENT_TTL);
        announced.insert(sid.to_owned(), (pid.to_owned(), now));
        self.waiting.store(announced.len(), Ordering::Release);
    }

    /// Whether any CONNECT answer waits for its pid.
    pub(crate) fn any_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// The pid announced for `sid`, once.
    pub(crate) fn take_announced(&self, sid: &str) -> Option<String> {
        if !self.any_waiting() {
            return None;
        }
        let mut announced = lock(&self.announced);
        let pid = announced.remove(sid).map(|(pid, _)| pid);
        self.waiting.store(announced.len(), Ordering::Release);
        pid
    }

    /// Whether saved sessions outlive this process (cluster mode): then a node shutting
    /// down saves its sockets' sessions, for them to recover on another node.
    pub(crate) fn outlives_process(&self) -> bool {
        self.sessions.outlives_process()
    }

    /// The node is shutting down: from now on it claims no session.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Keeps a dropped socket's session for `recovery.max_disconnection`.
    ///
    /// # Errors
    /// The store is unreachable: the session cannot be recovered.
    pub(crate) async fn save(
        &self,
        pid: &str,
        user: UserId,
        rooms: Vec<(String, u64)>,
    ) -> Result<(), SessionError> {
        self.sessions.save(pid, Saved { user, rooms }).await
    }

    /// Takes the session `pid` when it is still there and was `user`'s. A pid tried by another
    /// user is spent: it was guessed or stolen.
    ///
    /// # Errors
    /// The store is unreachable.
    pub(crate) async fn claim(
        &self,
        pid: &str,
        user: &UserId,
    ) -> Result<Option<Saved>, SessionError> {
        if self.closing.load(Ordering::Acquire) {
            return Ok(None);
        }
        let session = self.sessions.take(pid).await?;
        Ok(session.filter(|session| session.user == *user))
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

    fn in_memory(max_disconnection: Duration) -> Recovery {
        Recovery::new(Arc::new(MemorySessions::new(max_disconnection)))
    }

    async fn claimed(recovery: &Recovery, pid: &str, who: &str) -> Option<Saved> {
        recovery.claim(pid, &user(who)).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_is_claimed_once_by_its_user_within_the_window() {
        let recovery = in_memory(Duration::from_secs(120));
        let rooms = vec![("workspace:a".to_owned(), 3)];
        recovery.save("p1", user("alice"), rooms).await.unwrap();
        assert!(
            claimed(&recovery, "p1", "bob").await.is_none(),
            "another user"
        );
        // A failed claim by someone else spends the pid: it was guessed or stolen.
        assert!(claimed(&recovery, "p1", "alice").await.is_none());

        recovery.save("p2", user("alice"), vec![]).await.unwrap();
        tokio::time::advance(Duration::from_secs(119)).await;
        assert!(claimed(&recovery, "p2", "alice").await.is_some());
        assert!(
            claimed(&recovery, "p2", "alice").await.is_none(),
            "only once"
        );

        recovery.save("p3", user("alice"), vec![]).await.unwrap();
        tokio::time::advance(Duration::from_secs(121)).await;
        assert!(claimed(&recovery, "p3", "alice").await.is_none(), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn announcements_are_taken_once_and_expire() {
        let recovery = in_memory(Duration::from_secs(120));
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
