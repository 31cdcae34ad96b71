//! The Pydio Cells door: plain WebSockets on `cells.event_path` (`/ws/event`) speaking the
//! Cells web UI's JSON protocol, so the unmodified UI connects to herald (docs/protocol.md,
//! "Pydio Cells").
//!
//! A socket subscribes with its token (`connection.rs`); its identity decides its rooms (its
//! user, groups, workspaces, and the Cells scopes: login, roles, profile, the roots of its
//! workspaces), and the pipeline delivers to it through `CellsDoor` like to any subscriber.
//! Events of the Cells kinds (`cells:node`, `cells:task`, `cells:idm`, `cells:activity`) are
//! rendered once per event and per workspace as the UI expects (`render.rs`); no other event
//! reaches this door's sockets. With the chat on, the sockets of `cells.chat_path` speak the
//! Cells chat on herald's chat (`chat/`), and receive no events.

use std::{sync::Arc, time::Duration};

use axum::{Router, routing::get};

use crate::{
    auth::Authenticator,
    config::{Config, LimitsConfig},
    metrics::{Metrics, ReasonLabels},
    pipeline::Deliverer,
};

mod chat;
mod connection;
mod door;
mod frames;
mod render;

pub(crate) use chat::{CellsChat, Limits as ChatLimits};
pub(crate) use door::CellsDoor;

/// What the door's sockets share.
#[derive(Clone)]
pub(crate) struct CellsContext {
    door: Arc<CellsDoor>,
    deliverer: Deliverer,
    auth: Arc<Authenticator>,
    settings: Arc<Settings>,
    metrics: CellsMetrics,
    /// The chat, on the chat path's sockets; `None` on the event path's.
    chat: Option<Arc<CellsChat>>,
}

/// The door's settings, from `[cells]`, `[engine]` and `[limits]`.
#[derive(Debug)]
struct Settings {
    queue: usize,
    max_frame_bytes: usize,
    read_buffer_bytes: usize,
    unsubscribed_timeout: Duration,
    expiry_grace: Duration,
    ping_interval: Duration,
    ping_timeout: Duration,
    limits: LimitsConfig,
}

/// What the door counts.
#[derive(Clone)]
struct CellsMetrics {
    connections: prometheus_client::metrics::gauge::Gauge,
    metrics: Metrics,
}

impl CellsMetrics {
    fn close(&self, reason: frames::CloseReason) {
        if reason == frames::CloseReason::SlowConsumer {
            self.metrics.slow_disconnects.inc();
        }
        self.metrics
            .cells_closes
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .inc();
    }
}

/// The frames a session whose `workspace_roots` (JSON, as in a token) are these receives for an
/// event, as text; `None` when `workspace_roots` does not parse. For the fuzzers.
pub fn render(event: &str, data: &str, workspace_roots: &str) -> Option<Vec<String>> {
    let workspaces: Vec<crate::auth::cells::WorkspaceRoots> =
        serde_json::from_str(workspace_roots).ok()?;
    let mut frames = Vec::new();
    render::Parsed::of(event, data).frames(None, &workspaces, &mut frames);
    Some(
        frames
            .iter()
            .map(|frame| frame.as_str().to_owned())
            .collect(),
    )
}

/// Whether a client frame is a subscribe or an unsubscribe herald understands. For the fuzzers.
pub fn understands(frame: &str) -> bool {
    frames::parse(frame).is_ok()
}

/// The door's routes: `GET cells.event_path`, and `GET cells.chat_path` when the chat is on.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(
    cfg: &Config,
    door: Arc<CellsDoor>,
    deliverer: Deliverer,
    auth: Arc<Authenticator>,
    metrics: &Metrics,
    chat: Option<Arc<CellsChat>>,
) -> Router<S> {
    let context = CellsContext {
        door,
        deliverer,
        auth,
        settings: Arc::new(Settings {
            queue: cfg.cells.queue,
            max_frame_bytes: cfg.cells.max_frame_bytes,
            read_buffer_bytes: cfg.engine.ws_read_buffer_bytes,
            unsubscribed_timeout: cfg.cells.unsubscribed_timeout,
            expiry_grace: cfg.cells.expiry_grace,
            ping_interval: cfg.engine.ping_interval,
            ping_timeout: cfg.engine.ping_timeout,
            limits: cfg.limits.clone(),
        }),
        metrics: CellsMetrics {
            connections: metrics.cells_connections.clone(),
            metrics: metrics.clone(),
        },
        chat: None,
    };
    let events = Router::new()
        .route(&cfg.cells.event_path, get(connection::upgrade))
        .with_state(context.clone());
    match chat {
        Some(chat) => events.merge(
            Router::new()
                .route(&cfg.cells.chat_path, get(connection::upgrade))
                .with_state(CellsContext {
                    chat: Some(chat),
                    ..context
                }),
        ),
        None => events,
    }
}
