//! The long-polling sessions the edge follows, by Engine.IO session id: their handshake ticket
//! (to end their count when they end) and whether their first PING is still to be held back.
//!
//! An entry is made when a long-polling handshake is answered, and goes when the session ends
//! as the edge sees it (close packet, cancelled poll), when it moves to a WebSocket, or when its
//! ticket is gone (the engine dropped the session). Dead entries are purged as the map grows.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, Weak},
};

use crate::limits::Ticket;

/// Entries kept before the first purge of dead ones.
const FIRST_PURGE: usize = 1024;

/// The followed sessions; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct PollingSessions(Arc<Mutex<Registry>>);

#[derive(Debug, Default)]
struct Registry {
    by_sid: HashMap<Box<str>, Entry>,
    purge_at: usize,
}

/// What the edge knows of one session.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The session's handshake ticket (weak: the engine owns the session).
    ticket: Weak<Ticket>,
    /// Engine.IO v4, and its first PING not yet seen by a poll.
    pub(crate) first_ping_due: bool,
    /// Engine.IO v4 (v3 payloads are framed differently).
    pub(crate) eio4: bool,
    /// A `POST` of the session is being read.
    posting: bool,
}

impl PollingSessions {
    /// A long-polling handshake answered with `sid`.
    pub(crate) fn opened(&self, sid: &str, ticket: Option<&Arc<Ticket>>, eio4: bool) {
        let mut registry = self.lock();
        if registry.by_sid.len() >= registry.purge_at.max(FIRST_PURGE) {
            registry
                .by_sid
                .retain(|_, entry| entry.ticket.strong_count() > 0);
            registry.purge_at = registry.by_sid.len() * 2;
        }
        let entry = Entry {
            ticket: ticket.map_or_else(Weak::new, Arc::downgrade),
            first_ping_due: eio4,
            eio4,
            posting: false,
        };
        registry.by_sid.insert(sid.into(), entry);
    }

    /// The session's entry, while followed.
    pub(crate) fn get(&self, sid: &str) -> Option<Entry> {
        self.lock().by_sid.get(sid).cloned()
    }

    /// The session's first PING was held back and answered.
    pub(crate) fn ping_answered(&self, sid: &str) {
        if let Some(entry) = self.lock().by_sid.get_mut(sid) {
            entry.first_ping_due = false;
        }
    }

    /// A `POST` of the session starts: false when one is already under way (the session is
    /// then to be closed, as the Engine.IO v4 document says).
    pub(crate) fn start_post(&self, sid: &str) -> bool {
        match self.lock().by_sid.get_mut(sid) {
            Some(entry) => !std::mem::replace(&mut entry.posting, true),
            None => true,
        }
    }

    /// The session's `POST` is answered.
    pub(crate) fn post_done(&self, sid: &str) {
        if let Some(entry) = self.lock().by_sid.get_mut(sid) {
            entry.posting = false;
        }
    }

    /// The session moved to a WebSocket: no longer followed here; its ticket, for the
    /// connection that now carries it.
    pub(crate) fn upgraded(&self, sid: &str) -> Option<Arc<Ticket>> {
        self.lock().by_sid.remove(sid)?.ticket.upgrade()
    }

    /// The session is over: no longer followed, and no longer counted.
    pub(crate) fn ended(&self, sid: &str) {
        let entry = self.lock().by_sid.remove(sid);
        if let Some(ticket) = entry.and_then(|entry| entry.ticket.upgrade()) {
            ticket.session_ended();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Plain data, consistent after every statement: a poisoned lock is still usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
