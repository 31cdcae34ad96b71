//! [`AppState`]: what every handler shares. One allocation, cloned by reference count: every
//! socket's event handlers hold a clone, so a clone must cost a pointer, not a copy of every
//! handle (that was ~1 KB and some 40 reference counts per handler, five handlers per socket).

use std::{ops::Deref, sync::Arc, time::Instant};

use socketioxide::socket::Sid;

use crate::{
    auth::{Authenticator, private::PrivateAccess},
    cluster::Redis,
    config::Config,
    limits::UserSockets,
    metrics::Metrics,
    pipeline::{Deliverer, Publisher},
    recovery::Recovery,
    socketio::{Io, expiry::ExpiryWheel, slow::SlowPolicy},
};

/// Shared state of the HTTP routes and Socket.IO handlers; its fields are [`Shared`]'s.
#[derive(Clone, Debug)]
pub(crate) struct AppState(Arc<Shared>);

impl AppState {
    /// The state that handlers will share.
    pub(crate) fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The validated configuration.
    pub cfg: Arc<Config>,
    /// Browser authentication.
    pub auth: Arc<Authenticator>,
    /// Backend admission.
    pub private: Arc<PrivateAccess>,
    /// The publishing pipeline.
    pub publisher: Publisher,
    /// Its delivery side: puts sockets in rooms between deliveries (joins with replays,
    /// admissions, recoveries, leaves).
    pub deliverer: Deliverer,
    /// The Socket.IO server.
    pub io: Io,
    /// Cuts off sockets whose queue is full.
    pub slow: SlowPolicy,
    /// Every socket's token expiry (JWT mode), on one timer wheel.
    pub expiry: ExpiryWheel,
    /// What the server counts.
    pub metrics: Metrics,
    /// Socket.IO connection state recovery: saved sessions, pids to announce.
    pub recovery: Arc<Recovery>,
    /// The chat namespace's store and presence; `None` when `chat.enabled` is off.
    pub chat: Option<crate::chat::Chat>,
    /// Cluster mode: the node's Redis side.
    pub cluster: Option<Redis>,
    /// This node's id (random per process), in heartbeats and `/status`.
    pub node_id: String,
    /// When the server started, for `/status` uptime.
    pub started: Instant,
    /// Sockets per user on this node (`limits.max_sockets_per_user`).
    pub user_sockets: UserSockets<Sid>,
}
