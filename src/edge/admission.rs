//! [`Admission`]: the fast refusal of Engine.IO handshakes the node cannot take now.
//!
//! An Engine.IO handshake is a request on the engine path without a `sid` (a polling `GET` or a
//! WebSocket upgrade); a `GET` on another door's path (the Pydio Cells `/ws/event`) opens a
//! connection of that door and counts the same. Before socketioxide or the door sees it,
//! [`admit`] checks two bounds:
//! - sessions: `limits.max_connections` sessions of every door at most, else 503 `server_full`;
//! - handshakes in flight: `limits.max_handshakes_in_flight` at most, else 503 `overloaded`.
//!
//! An admitted handshake carries a [`Ticket`] in its request extensions. socketioxide keeps the
//! handshake request's parts for the session's whole life, so the ticket lives exactly as long
//! as the session: its drop ends the session count. Its handshake slot is given back as soon as
//! the socket has been through a namespace's connect middleware ([`Ticket::admitted`]), when
//! the session ends, or, for a client that never sends CONNECT, when socketioxide closes it
//! after `limits.handshake_timeout`.
//!
//! The refusal is immediate (no queueing, no timeout): socket.io-client sees a failed
//! transport and retries with its randomized backoff, which spreads a reconnect storm.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use serde_json::json;
use tokio::sync::Semaphore;

use super::session_request::opens_session;
use crate::{
    limits::{Limit, Ticket},
    metrics::{LimitLabels, Metrics},
};

/// The handshake bounds of a node; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Admission(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    engine_path: String,
    /// The paths of the other doors' connections.
    door_paths: Vec<String>,
    max_sessions: i64,
    handshakes: Arc<Semaphore>,
    sessions: Gauge,
    in_flight: Gauge,
    refusals: Family<LimitLabels, Counter>,
    /// Set when the node shuts down: every handshake is refused.
    closed: AtomicBool,
}

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Full,
    Overloaded,
    ShuttingDown,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            Self::Full => (
                "server_full",
                "this node holds as many connections as it may",
            ),
            Self::Overloaded => (
                "overloaded",
                "too many handshakes in progress, retry shortly",
            ),
            Self::ShuttingDown => ("shutting_down", "this node is shutting down"),
        };
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"code": code, "message": message})),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    }
}

impl Admission {
    /// Bounds from `[limits]`, counted in `metrics`.
    pub(crate) fn new(
        engine_path: &str,
        door_paths: &[String],
        limits: &crate::config::LimitsConfig,
        metrics: &Metrics,
    ) -> Self {
        Self(Arc::new(Inner {
            engine_path: engine_path.trim_end_matches('/').to_owned(),
            door_paths: door_paths.to_vec(),
            max_sessions: i64::try_from(limits.max_connections).unwrap_or(i64::MAX),
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes_in_flight)),
            sessions: metrics.sessions.clone(),
            in_flight: metrics.handshakes_in_flight.clone(),
            refusals: metrics.limit_refusals.clone(),
            closed: AtomicBool::new(false),
        }))
    }

    /// The node is shutting down: every handshake from now on is refused (503
    /// `shutting_down`), also on connections that were open before the listener closed.
    pub(crate) fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
    }

    /// Whether [`Self::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Whether a request opens an Engine.IO session or another door's connection.
    fn is_handshake(&self, request: &Request) -> bool {
        opens_session(&self.0.engine_path, request.method(), request.uri())
            || (request.method() == axum::http::Method::GET
                && (self.0.door_paths.iter()).any(|path| path == request.uri().path()))
    }

    fn ticket(&self) -> Result<Ticket, Refusal> {
        let inner = &self.0;
        if self.is_closed() {
            return Err(Refusal::ShuttingDown);
        }
        let before = inner.sessions.inc();
        let ticket = |slot| Ticket::new(slot, inner.sessions.clone(), inner.in_flight.clone());
        if before >= inner.max_sessions {
            inner.sessions.dec();
            self.refused(Limit::Connections);
            return Err(Refusal::Full);
        }
        match inner.handshakes.clone().try_acquire_owned() {
            Ok(permit) => {
                inner.in_flight.inc();
                Ok(ticket(Some(permit)))
            }
            Err(_) => {
                // Not a session: undo the count (the ticket's drop would too, but it is not
                // made for a refusal).
                inner.sessions.dec();
                self.refused(Limit::HandshakesInFlight);
                Err(Refusal::Overloaded)
            }
        }
    }

    fn refused(&self, limit: Limit) {
        let labels = LimitLabels {
            limit: limit.into(),
        };
        self.0.refusals.get_or_create(&labels).inc();
    }
}

/// Middleware: refuses handshakes beyond the bounds with 503, and gives admitted ones their
/// [`Ticket`].
pub(crate) async fn admit(
    State(admission): State<Admission>,
    mut request: Request,
    next: Next,
) -> Response {
    if !admission.is_handshake(&request) {
        return next.run(request).await;
    }
    match admission.ticket() {
        Ok(ticket) => {
            request.extensions_mut().insert(Arc::new(ticket));
            next.run(request).await
        }
        Err(refusal) => {
            tracing::debug!(?refusal, "handshake refused");
            refusal.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn admission(max_connections: usize, in_flight: usize) -> (Admission, Metrics) {
        let mut limits = Config::from_toml("").unwrap().limits;
        limits.max_connections = max_connections;
        limits.max_handshakes_in_flight = in_flight;
        let metrics = Metrics::new();
        (
            Admission::new("/socket.io/", &[], &limits, &metrics),
            metrics,
        )
    }

    #[test]
    fn slots_come_back_when_admitted_and_sessions_when_dropped() {
        let (admission, metrics) = admission(3, 2);
        let a = admission.ticket().unwrap();
        let b = admission.ticket().unwrap();
        assert_eq!(admission.ticket().unwrap_err(), Refusal::Overloaded);
        assert_eq!(metrics.handshakes_in_flight.get(), 2);
        a.admitted();
        a.admitted();
        assert_eq!(metrics.handshakes_in_flight.get(), 1);
        let c = admission.ticket().unwrap();
        assert_eq!(metrics.sessions.get(), 3);
        c.admitted();
        // Three sessions live: full, whatever the free slots.
        assert_eq!(admission.ticket().unwrap_err(), Refusal::Full);
        // A session whose transport went counts no more, and its ticket's drop changes nothing.
        c.session_ended();
        c.session_ended();
        assert_eq!(metrics.sessions.get(), 2);
        assert!(admission.ticket().is_ok_and(|d| {
            d.admitted();
            true
        }));
        drop(c);
        assert_eq!(metrics.sessions.get(), 2);
        drop(b);
        assert_eq!(metrics.sessions.get(), 1);
        assert_eq!(metrics.handshakes_in_flight.get(), 0);
        assert!(admission.ticket().is_ok());
        admission.close();
        assert_eq!(admission.ticket().unwrap_err(), Refusal::ShuttingDown);
        let text = metrics.render();
        assert!(
            text.contains(r#"herald_limit_refusals_total{limit="max_connections"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"herald_limit_refusals_total{limit="max_handshakes_in_flight"} 1"#),
            "{text}"
        );
    }
}
