//! Slow consumers: a socket whose outgoing queue (`engine.max_buffer_size` packets) is full
//! cannot keep up. It must not slow anyone else nor grow memory, and its events must not be
//! dropped silently: herald cuts its connection. socket.io-client sees a transport close and
//! reconnects, and a client that resumes with `since` gets what it missed from the event log.
//!
//! A WebSocket is cut at the TCP level ([`crate::connection`]), since socketioxide's own
//! disconnect needs room in the full queue. A long-polling socket has no connection of its
//! own to cut; its queue fills only when it stops polling, and then the Engine.IO heartbeat
//! ends it within `ping_interval + ping_timeout`.

use socketioxide::{TransportType, extract::SocketRef};

use crate::connection::{Connections, Severer};

/// Cuts off a socket whose queue is full; `why` goes to the log.
pub(crate) fn cut_off(connections: &Connections, socket: &SocketRef, why: &'static str) {
    let severer = match socket.transport_type() {
        TransportType::Websocket => connections
            .upgraded(socket.id.as_str())
            .or_else(|| socket.req_parts().extensions.get::<Severer>().cloned()),
        TransportType::Polling => None,
    };
    if let Some(severer) = severer {
        severer.sever();
        tracing::warn!(sid = %socket.id, why, "slow consumer disconnected");
    } else {
        tracing::warn!(sid = %socket.id, why, "slow consumer without a connection of its own to cut (long-polling): the heartbeat ends it if it stopped polling");
    }
}
