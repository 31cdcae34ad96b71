//! The connections Engine.IO sessions live on, by session id, and the outermost middleware
//! that hands each request its connection.
//!
//! A socket that started on long-polling and upgraded lives on the connection of its upgrade
//! request, not of its handshake: [`Connections`] remembers those by Engine.IO session id, and,
//! for a socket still on long-polling, the connection of its latest `GET` (cutting it fails the
//! pending poll, and socket.io-client reconnects). [`expose`] fills it, and gives every request
//! its connection's [`ConnectionHandle`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::request::Parts,
    middleware::Next,
    response::Response,
};

use super::{
    connection::{ConnectionHandle, WeakConnectionHandle},
    listener::Peer,
};
use crate::socketio::slow::SocketConnections;

/// The connections of upgraded Engine.IO sessions, by session id. Entries die with their
/// connection (weak handles) and are purged as the map grows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connections(Arc<Mutex<Registry>>);

#[derive(Debug, Default)]
struct Registry {
    /// The connection, and whether it is the session's WebSocket (else its latest poll).
    by_sid: HashMap<String, (WeakConnectionHandle, bool)>,
    purge_at: usize,
}

/// Entries kept before the first purge of dead ones.
const FIRST_PURGE: usize = 1024;

impl Connections {
    /// The connection an Engine.IO session upgraded to, while it is open.
    pub(crate) fn upgraded(&self, sid: &str) -> Option<ConnectionHandle> {
        let registry = self.lock();
        let (connection, websocket) = registry.by_sid.get(sid)?;
        connection.upgrade().filter(|_| *websocket)
    }

    /// The connection a session lives on now: its WebSocket, or the connection of its latest
    /// long-polling `GET`.
    pub(crate) fn current(&self, sid: &str) -> Option<ConnectionHandle> {
        let registry = self.lock();
        registry.by_sid.get(sid)?.0.upgrade()
    }

    fn remember(&self, sid: &str, handle: &ConnectionHandle, websocket: bool) {
        let mut registry = self.lock();
        if registry.by_sid.len() >= registry.purge_at.max(FIRST_PURGE) {
            registry.by_sid.retain(|_, (held, _)| held.is_alive());
            registry.purge_at = registry.by_sid.len() * 2;
        }
        if !websocket
            && let Some((held, true)) = registry.by_sid.get(sid)
            && held.is_alive()
        {
            // A poll that raced the upgrade: the WebSocket is where the session lives.
            return;
        }
        registry
            .by_sid
            .insert(sid.to_owned(), (handle.downgrade(), websocket));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // Plain data, consistent after every statement: a poisoned lock is still usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How the Socket.IO door cuts a socket's connection: through the session's entry here, or
/// the connection its handshake request came on (a session opened as a WebSocket).
impl SocketConnections for Connections {
    fn cut_websocket(&self, sid: &str, request: &Parts) -> bool {
        let connection = self
            .upgraded(sid)
            .or_else(|| request.extensions.get::<ConnectionHandle>().cloned());
        connection.map(|connection| connection.cut_off()).is_some()
    }

    fn cut_current(&self, sid: &str, request: &Parts, websocket: bool) -> bool {
        let connection = self.current(sid).or_else(|| {
            websocket
                .then(|| request.extensions.get::<ConnectionHandle>().cloned())
                .flatten()
        });
        connection.map(|connection| connection.cut_off()).is_some()
    }
}

/// Outermost middleware: exposes the peer as `ConnectInfo<SocketAddr>` and the
/// [`ConnectionHandle`] to everything inside, and remembers the connection of each WebSocket
/// upgrade of a session.
pub(crate) async fn expose(
    State(connections): State<Connections>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions_mut().remove::<ConnectInfo<Peer>>() {
        let sid = request.uri().query().and_then(|query| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("sid="))
                .map(str::to_owned)
        });
        if request.headers().contains_key(axum::http::header::UPGRADE) {
            let eio4 = request
                .uri()
                .query()
                .is_some_and(|query| query.split('&').any(|pair| pair == "EIO=4"));
            peer.handle.upgrading(eio4 && sid.is_none());
            if let Some(sid) = sid {
                connections.remember(&sid, &peer.handle, true);
            }
        } else if let Some(sid) = sid
            && request.method() == axum::http::Method::GET
        {
            connections.remember(&sid, &peer.handle, false);
        }
        request.extensions_mut().insert(ConnectInfo(peer.addr));
        request.extensions_mut().insert(peer.handle);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::connection::CuttableConnection;

    #[test]
    fn dead_upgrades_are_forgotten() {
        let connections = Connections::default();
        let live = CuttableConnection::new(tokio::io::empty());
        connections.remember("live", &live.handle(), true);
        {
            let gone = CuttableConnection::new(tokio::io::empty());
            connections.remember("gone", &gone.handle(), true);
        }
        assert!(connections.upgraded("live").is_some());
        assert!(connections.upgraded("gone").is_none());
        assert!(connections.upgraded("never").is_none());

        // A poll's connection is current but not an upgrade, and never replaces the WebSocket.
        let poll = CuttableConnection::new(tokio::io::empty());
        connections.remember("polling", &poll.handle(), false);
        assert!(connections.upgraded("polling").is_none());
        assert!(connections.current("polling").is_some());
        connections.remember("live", &poll.handle(), false);
        let current = connections.current("live").unwrap();
        current.cut_off();
        assert!(live.handle().is_cut_off());
    }
}
