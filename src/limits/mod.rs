//! Limits: what one client, one user and the whole node may take.
//!
//! - `ticket`: an admitted Engine.IO session, counted while it lives, holding a handshake
//!   slot until its socket is admitted to a namespace ([`handshake_done`]).
//! - `users`: sockets per user (the oldest makes room for the newest).
//! - `rate`: a token bucket per browser socket on the events it sends.
//!
//! Admission, the HTTP side, is at the edge (`crate::edge::admission`): Engine.IO handshakes
//! beyond `limits.max_connections` or `limits.max_handshakes_in_flight` get a fast HTTP 503,
//! which socket.io-client retries with its backoff, so a reconnect storm is admitted at the
//! pace the node can take. The Socket.IO side that applies the limits to `/public` sockets is
//! `crate::socketio::guard`. Every refusal is counted in `herald_limit_refusals_total{limit}`
//! under its `Limit`'s label (`LimitLabel`).

pub(crate) mod rate;
pub(crate) mod ticket;
pub(crate) mod users;

pub(crate) use rate::{Bucket, Verdict};
pub(crate) use ticket::Ticket;
pub(crate) use users::UserSockets;

use crate::metrics::LimitLabel;

/// The socket went through a namespace's connect middleware (admitted or not): its handshake
/// slot is free for the next one. Every namespace's connect middleware calls it; a namespace
/// that did not would hold its sockets' slots until their sessions end.
pub fn handshake_done(socket: &socketioxide::extract::SocketRef) {
    if let Some(ticket) = socket
        .req_parts()
        .extensions
        .get::<std::sync::Arc<Ticket>>()
    {
        ticket.admitted();
    }
}

/// The limits whose refusals are counted; each is counted under its [`LimitLabel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// `limits.max_connections`: handshake answered 503 `server_full`.
    Connections,
    /// `limits.max_handshakes_in_flight`: handshake answered 503 `overloaded`.
    HandshakesInFlight,
    /// `limits.max_auth_calls_in_flight`: a backend auth call found no slot in time.
    AuthCallsInFlight,
    /// `limits.max_sockets_per_user`: the user's oldest socket was disconnected.
    SocketsPerUser,
    /// `limits.max_workspaces_per_socket`: a `register` refused.
    WorkspacesPerSocket,
    /// `limits.events_per_second`: an event refused with `rate_limited`.
    RateLimited,
    /// `limits.rate_limited_disconnect_after`: a socket disconnected for flooding.
    RateDisconnect,
}

impl From<Limit> for LimitLabel {
    fn from(limit: Limit) -> Self {
        match limit {
            Limit::Connections => Self::Connections,
            Limit::HandshakesInFlight => Self::HandshakesInFlight,
            Limit::AuthCallsInFlight => Self::AuthCallsInFlight,
            Limit::SocketsPerUser => Self::SocketsPerUser,
            Limit::WorkspacesPerSocket => Self::WorkspacesPerSocket,
            Limit::RateLimited => Self::RateLimited,
            Limit::RateDisconnect => Self::RateDisconnect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn each_limit_is_counted_under_its_label() {
        let metrics = Metrics::new();
        let limits = [
            (Limit::Connections, "max_connections"),
            (Limit::HandshakesInFlight, "max_handshakes_in_flight"),
            (Limit::AuthCallsInFlight, "max_auth_calls_in_flight"),
            (Limit::SocketsPerUser, "max_sockets_per_user"),
            (Limit::WorkspacesPerSocket, "max_workspaces_per_socket"),
            (Limit::RateLimited, "rate_limited"),
            (Limit::RateDisconnect, "rate_limited_disconnect"),
        ];
        for (limit, _) in limits {
            metrics.refused(limit);
        }
        metrics.limit_counter(Limit::RateLimited).inc();
        let text = metrics.render();
        for (limit, label) in limits {
            let count = if limit == Limit::RateLimited { 2 } else { 1 };
            let line = format!(r#"herald_limit_refusals_total{{limit="{label}"}} {count}"#);
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }
}
