//! Slow consumers: a socket whose outgoing queue (`engine.max_buffer_size` packets) is full
//! cannot keep up. It must not slow anyone else nor grow memory, and nothing sent to it may be
//! dropped silently: herald cuts its connection. socket.io-client sees a transport close and
//! reconnects, and a client that resumes with `since` (or Socket.IO recovery) gets what it
//! missed from the event log.
//!
//! A WebSocket is cut at the TCP level ([`crate::edge::connection`]), since socketioxide's own
//! disconnect needs room in the full queue. A long-polling socket has no connection of its
//! own to cut; its queue fills only when it stops polling, and then the Engine.IO heartbeat
//! ends it within `ping_interval + ping_timeout`.
//!
//! [`SlowPolicy`] is the one place that sends to a single socket outside the delivery path
//! (control events, disconnects): every full queue it meets is cut off and counted.

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use socketioxide::{SendError, SocketError, TransportType, extract::SocketRef};

use crate::edge::{connection::ConnectionHandle, session_connections::Connections};

/// Cuts off slow sockets; cheap to clone.
#[derive(Debug, Clone)]
pub struct SlowPolicy {
    connections: Connections,
    cut: Counter,
}

impl SlowPolicy {
    /// Cuts connections through `connections`, counting each in `cut`.
    pub fn new(connections: Connections, cut: Counter) -> Self {
        Self { connections, cut }
    }

    /// Cuts off a socket whose queue is full; `why` goes to the log.
    pub fn cut_off(&self, socket: &SocketRef, why: &'static str) {
        self.cut.inc();
        let connection = match socket.transport_type() {
            TransportType::Websocket => {
                self.connections.upgraded(socket.id.as_str()).or_else(|| {
                    socket
                        .req_parts()
                        .extensions
                        .get::<ConnectionHandle>()
                        .cloned()
                })
            }
            TransportType::Polling => None,
        };
        if let Some(connection) = connection {
            connection.cut_off();
            tracing::warn!(sid = %socket.id, why, "slow consumer disconnected");
        } else {
            tracing::warn!(sid = %socket.id, why, "slow consumer without a connection of its own to cut (long-polling): the heartbeat ends it if it stopped polling");
        }
    }

    /// The connection a socket lives on now (its WebSocket, or its latest long-polling `GET`),
    /// for ending its transport without a Socket.IO DISCONNECT (a rolling restart).
    pub fn connection_of(&self, socket: &SocketRef) -> Option<ConnectionHandle> {
        self.connections
            .current(socket.id.as_str())
            .or_else(|| match socket.transport_type() {
                TransportType::Websocket => socket
                    .req_parts()
                    .extensions
                    .get::<ConnectionHandle>()
                    .cloned(),
                TransportType::Polling => None,
            })
    }

    /// Sends one event to one socket; a full queue cuts it off. Whether it was queued.
    pub fn emit<T: ?Sized + Serialize>(
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
    pub fn disconnect(&self, socket: &SocketRef) {
        if let Err(SocketError::InternalChannelFull) = socket.clone().disconnect() {
            self.cut_off(socket, "disconnect");
        }
    }
}
