//! `[limits]`: what one client, one user and the whole node may take, and `[shutdown]`: how a
//! node leaves. Every refusal these limits cause is answered with a stable code and counted in
//! `/metrics` (`herald_limit_refusals_total{limit}`); see `crate::limits`.

use std::time::Duration;

use serde::Deserialize;

/// `[limits]`: admission control and per-client limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Engine.IO sessions (browsers and backends, any transport) this node holds at most;
    /// a handshake beyond gets HTTP 503 `server_full` at once.
    pub max_connections: usize,
    /// Handshakes in flight at most: from the Engine.IO handshake request until its socket is
    /// admitted to a namespace (authentication included). A handshake beyond gets HTTP 503
    /// `overloaded` at once, and socket.io-client retries with its backoff.
    pub max_handshakes_in_flight: usize,
    /// How long an opened Engine.IO session may wait for its namespace CONNECT; bounds how long
    /// a client that never connects holds a handshake slot.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Backend mode: calls to `auth.backend_url` in flight at most; a call waits for a slot at
    /// most half of `auth.backend_timeout`, then fails as the backend being unavailable.
    pub max_auth_calls_in_flight: usize,
    /// Sockets of one user on this node at most; the oldest is disconnected to make room for
    /// the newest (it gets `session_invalid` with reason `too_many_sockets`).
    pub max_sockets_per_user: usize,
    /// Workspaces one socket may be registered to at once; a `register` beyond is refused
    /// with `too_many_workspaces`.
    pub max_workspaces_per_socket: usize,
    /// Events a browser socket may send per second, on average (token bucket refill rate).
    pub events_per_second: u32,
    /// Events a browser socket may send in a burst (token bucket size).
    pub events_burst: u32,
    /// Consecutive events refused with `rate_limited` after which the socket is disconnected.
    pub rate_limited_disconnect_after: u32,
}

/// `[shutdown]`: how a node leaves on SIGTERM/SIGINT (a rolling restart).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Sockets are disconnected spread over this long, so that they reconnect to the other
    /// nodes gradually instead of all at once; at most half of `shutdown_timeout` is used.
    #[serde(with = "humantime_serde")]
    pub drain: Duration,
}
