//! [`Ticket`]: an admitted Engine.IO session's hold on the node's handshake bounds. The edge
//! hands one out with each handshake it admits (`crate::edge::admission`); it counts the
//! session while it lives, and holds a handshake slot until the socket is through a
//! namespace's connect middleware ([`super::handshake_done`]).

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::OwnedSemaphorePermit;

/// An admitted Engine.IO session: counted while it lives, holding a handshake slot until its
/// socket is admitted to a namespace.
///
/// socketioxide may hold a closed session's handshake request (and so this ticket) for up to
/// `limits.handshake_timeout` (its wait for a namespace CONNECT keeps it), so the edge also ends
/// the count as soon as it sees the session's transport go: [`Ticket::session_ended`].
#[derive(Debug)]
pub(crate) struct Ticket {
    slot: Mutex<Option<OwnedSemaphorePermit>>,
    /// Set once the session stopped counting against `limits.max_connections`.
    ended: AtomicBool,
    sessions: Gauge,
    in_flight: Gauge,
}

impl Ticket {
    /// A ticket for a session already counted in `sessions`, holding the handshake `slot`
    /// (already counted in `in_flight`) when it has one: the ticket takes the counts down.
    pub(crate) fn new(
        slot: Option<OwnedSemaphorePermit>,
        sessions: Gauge,
        in_flight: Gauge,
    ) -> Self {
        Self {
            slot: Mutex::new(slot),
            ended: AtomicBool::new(false),
            sessions,
            in_flight,
        }
    }

    /// The handshake is over (the socket passed a namespace's connect middleware, admitted or
    /// not): its slot goes to the next one. Idempotent.
    pub(crate) fn admitted(&self) {
        let slot = self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if slot.is_some() {
            self.in_flight.dec();
        }
    }

    /// The session is over (its transport closed, or it was closed): it no longer counts and
    /// its handshake slot, if still held, is free. Idempotent.
    pub(crate) fn session_ended(&self) {
        self.admitted();
        if !self.ended.swap(true, Ordering::AcqRel) {
            self.sessions.dec();
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.session_ended();
    }
}
