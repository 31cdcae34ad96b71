//! Where saved sessions live between a socket's drop and its recovery: [`SessionStore`] is the
//! seam, [`MemorySessions`] the store of a single node; in cluster mode the sessions live in
//! Redis (`crate::cluster::sessions`), so a client may recover on any node.
//!
//! A session is claimed at most once: the first handshake naming its pid takes it, whoever it
//! is; it is recovered only when it was that user's. A pid tried by someone else is spent.

use std::{
    collections::HashMap,
    fmt,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use futures_util::future::{BoxFuture, FutureExt};
use tokio::time::Instant;

use crate::ids::UserId;

/// A session that may be recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Saved {
    /// Whose it was: only the same user may claim it.
    pub user: UserId,
    /// The rooms the socket was in, with the sequence number at which it joined each.
    pub rooms: Vec<(String, u64)>,
}

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The storage is unreachable (cluster mode: Redis).
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// Storage of saved sessions, each kept for `recovery.max_disconnection`.
pub(crate) trait SessionStore: Send + Sync + fmt::Debug {
    /// Keeps `saved` under `pid` for `recovery.max_disconnection`.
    fn save<'a>(&'a self, pid: &'a str, saved: Saved) -> BoxFuture<'a, Result<(), SessionError>>;

    /// Takes the session `pid` (it is gone afterwards, whoever asked); `None` when there is
    /// none or it has expired.
    fn take<'a>(&'a self, pid: &'a str) -> BoxFuture<'a, Result<Option<Saved>, SessionError>>;

    /// Whether saved sessions outlive the process (Redis): a node shutting down then saves
    /// its sockets' sessions before it exits.
    fn outlives_process(&self) -> bool {
        false
    }
}

/// The saved sessions of a single node, in memory.
#[derive(Debug)]
pub(crate) struct MemorySessions {
    max_disconnection: Duration,
    saved: Mutex<HashMap<String, (Saved, Instant)>>,
}

impl MemorySessions {
    /// Sessions kept for `max_disconnection`.
    pub(crate) fn new(max_disconnection: Duration) -> Self {
        Self {
            max_disconnection,
            saved: Mutex::new(HashMap::new()),
        }
    }
}

impl SessionStore for MemorySessions {
    fn save<'a>(&'a self, pid: &'a str, saved: Saved) -> BoxFuture<'a, Result<(), SessionError>> {
        let now = Instant::now();
        // A plain map, consistent after every statement: a poisoned lock is still usable.
        let mut sessions = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, (_, expires)| *expires > now);
        sessions.insert(pid.to_owned(), (saved, now + self.max_disconnection));
        futures_util::future::ready(Ok(())).boxed()
    }

    fn take<'a>(&'a self, pid: &'a str) -> BoxFuture<'a, Result<Option<Saved>, SessionError>> {
        let mut sessions = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = sessions
            .remove(pid)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(saved, _)| saved);
        futures_util::future::ready(Ok(taken)).boxed()
    }
}
