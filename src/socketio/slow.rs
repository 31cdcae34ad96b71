//! Slow consumers: a socket whose outgoing queue (`engine.max_buffer_size` packets) is full
//! cannot keep up. It must not slow anyone else nor grow memory, and nothing sent to it may be
//! dropped silently: herald cuts its connection. socket.io-client sees a transport close and
//! reconnects, and a client that resumes with `since` (or Socket.IO recovery) gets what it
//! missed from the event log.
//!
//! A WebSocket is cut at the TCP level (by the edge, through [`SocketConnections`]), since
//! socketioxide's own disconnect needs room in the full queue. A long-polling socket has no connection of its
//! own to cut; its queue fills only when it stops polling, and then the Engine.IO heartbeat
//! ends it within `ping_interval + ping_timeout`.
//!
//! [`SlowPolicy`] is the one place that sends to a single socket outside the delivery path
//! (control events, disconnects): every full queue it meets is cut off and counted.

use std::{fmt, sync::Arc};

use axum::http::request::Parts;
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use socketioxide::{SendError, SocketError, TransportType, extract::SocketRef};

/// The transport connections sockets live on, as the edge keeps them: the door ends one without
/// a Socket.IO DISCONNECT and without knowing how connections are held.
pub(crate) trait SocketConnections: Send + Sync + fmt::Debug {
    /// Cuts the WebSocket of Engine.IO session `sid`, whose handshake request was `request`
    /// (a session opened as a WebSocket lives on that request's connection); `false` when the
    /// session has no WebSocket of its own.
    fn cut_websocket(&self, sid: &str, request: &Parts) -> bool;

    /// Cuts the connection session `sid` lives on now: its WebSocket, or the connection of its
    /// latest long-polling `GET`; `websocket` says which transport the socket is on. `false`
    /// when there is none.
    fn cut_current(&self, sid: &str, request: &Parts, websocket: bool) -> bool;
}

/// Cuts off slow sockets; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct SlowPolicy {
    connections: Arc<dyn SocketConnections>,
    cut: Counter,
}

impl SlowPolicy {
    /// Cuts connections through `connections`, counting each in `cut`.
    pub(crate) fn new(connections: Arc<dyn SocketConnections>, cut: Counter) -> Self {
        Self { connections, cut }
    }

    /// Cuts off a socket whose queue is full; `why` goes to the log.
    pub(crate) fn cut_off(&self, socket: &SocketRef, why: &'static str) {
        self.cut.inc();
        let cut = match socket.transport_type() {
            TransportType::Websocket => self
                .connections
                .cut_websocket(socket.id.as_str(), socket.req_parts()),
            TransportType::Polling => false,
        };
        if cut {
            tracing::warn!(sid = %socket.id, why, "slow consumer disconnected");
        } else {
            tracing::warn!(sid = %socket.id, why, "slow consumer without a connection of its own to cut (long-polling): the heartbeat ends it if it stopped polling");
        }
    }

    /// Ends a socket's transport without a Socket.IO DISCONNECT (a rolling restart): cuts the
    /// connection it lives on now. `false` when it has none.
    pub(crate) fn cut_transport(&self, socket: &SocketRef) -> bool {
        let websocket = socket.transport_type() == TransportType::Websocket;
        self.connections
            .cut_current(socket.id.as_str(), socket.req_parts(), websocket)
    }

    /// Sends one event to one socket; a full queue cuts it off. Whether it was queued.
    pub(crate) fn emit<T: ?Sized + Serialize>(
        &self,
        socket: &SocketRef,
        event: &'static str,
        data: &T,
    ) -> bool {
        match socket.emit(event, data) {
            Ok(()) => true,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                self.cut_off(socket, event);
                false
            }
            Err(error) => {
                tracing::debug!(sid = %socket.id, %error, event, "not sent: the socket is gone");
                false
            }
        }
    }

    /// Disconnects a socket from the server side; when its queue has no room for the
    /// DISCONNECT packet, its connection is cut instead, so it never outlives the decision.
    pub(crate) fn disconnect(&self, socket: &SocketRef) {
        if let Err(SocketError::InternalChannelFull) = socket.clone().disconnect() {
            self.cut_off(socket, "disconnect");
        }
    }
}
