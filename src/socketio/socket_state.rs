//! [`SocketState`]: what herald keeps for one `/public` or chat socket, as one socketioxide
//! extension: its session, its event sequencer, its rate bucket and its expiry timer.
//!
//! socketioxide keeps a socket's extensions in a hash map keyed by type, with a box per value.
//! One value instead of four takes one allocation and the map's smallest table: about 300 bytes
//! less per idle connection (docs/benchmarks.md, S1). It also makes the four arrive together:
//! a socket has all of them (from the end of its connect middleware) or none.

use std::{
    convert::Infallible,
    sync::{Arc, PoisonError, RwLock},
};

use socketioxide::{
    adapter::Adapter,
    extract::SocketRef,
    handler::{FromMessageParts, Value},
    socket::Socket,
};

use super::{
    expiry::{ExpiryHandle, ExpiryWheel},
    sequencer::{Sequencer, Ticket},
};
use crate::{auth::Session, limits::Bucket};

/// One socket's state, shared by its handlers through `Arc`.
#[derive(Debug)]
pub(crate) struct SocketState {
    /// Replaced as a whole when access changes or a token is refreshed (under the socket's
    /// turn, so replacements do not race each other).
    session: RwLock<Arc<Session>>,
    sequencer: Sequencer,
    /// `/public` only: the chat has no event rate limit.
    bucket: Option<Bucket>,
    /// JWT mode with an `exp`: the socket's place on the expiry wheel.
    expiry: Option<ExpiryHandle>,
}

impl SocketState {
    /// Gives `socket` its state (once, in its connect middleware): `session`, a fresh
    /// sequencer, `bucket`, and a place on the expiry `wheel` when the session's token has an
    /// `exp`.
    pub(crate) fn attach(
        socket: &SocketRef,
        session: Session,
        bucket: Option<Bucket>,
        wheel: &ExpiryWheel,
    ) {
        let expiry = session
            .principal
            .expires_at
            .map(|exp| wheel.watch(socket.clone(), exp));
        socket.extensions.insert(Arc::new(Self {
            session: RwLock::new(Arc::new(session)),
            sequencer: Sequencer::default(),
            bucket,
            expiry,
        }));
    }

    /// The state of `socket`; `None` before its connect middleware has attached one.
    pub(crate) fn of<A: Adapter>(socket: &Socket<A>) -> Option<Arc<Self>> {
        socket.extensions.get::<Arc<Self>>()
    }

    /// The current session.
    pub(crate) fn session(&self) -> Arc<Session> {
        // A plain replacement under the lock: a poisoned lock still holds a whole session.
        self.session
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the session (the caller holds the socket's turn).
    pub(crate) fn replace_session(&self, session: Arc<Session>) {
        *self.session.write().unwrap_or_else(PoisonError::into_inner) = session;
    }

    /// A place in the socket's queue, after every event already received from it.
    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        Ticket::take(self.clone())
    }

    pub(crate) fn bucket(&self) -> Option<&Bucket> {
        self.bucket.as_ref()
    }

    pub(crate) fn expiry(&self) -> Option<&ExpiryHandle> {
        self.expiry.as_ref()
    }
}

impl AsRef<Sequencer> for SocketState {
    fn as_ref(&self) -> &Sequencer {
        &self.sequencer
    }
}

/// A handler's [`Ticket`], taken while its event is extracted, in arrival order. A socket
/// without state (none is reachable: handlers are added after it is attached) gets a ticket
/// whose turn comes at once.
impl<A: Adapter> FromMessageParts<A> for Ticket {
    type Error = Infallible;

    fn from_message_parts(
        socket: &Arc<Socket<A>>,
        _: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(SocketState::of(socket).map_or_else(Ticket::unqueued, |state| state.ticket()))
    }
}
