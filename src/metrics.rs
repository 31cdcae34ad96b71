//! [`Metrics`]: what herald counts, in one Prometheus registry per server (no global recorder:
//! several servers in one process, as in the tests, each count their own).
//!
//! Counters are cheap handles, cloned into the parts that count; gauges of live state
//! (connections by namespace and transport, Redis up in cluster mode) are read when scraped.
//! `GET /metrics` (`http/metrics.rs`) renders the registry in the OpenMetrics text format.
//! [`Throughput`] turns two counters into the events per second `/status` shows.

use std::sync::Arc;

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

mod rate;

pub(crate) use rate::{Rates, Throughput};

/// Labels of handshake and register outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    /// The namespace (`public`, `private`).
    pub namespace: &'static str,
    /// `ok`, or why not (`unauthorized`, `bad_request`, `forbidden`, `unavailable`).
    pub outcome: &'static str,
}

/// Labels of live connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ConnectionLabels {
    /// The namespace (`public`, `private`).
    pub namespace: &'static str,
    /// `websocket` or `polling`.
    pub transport: &'static str,
}

/// Labels of closes by reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    /// Why the connection was closed.
    pub reason: &'static str,
}

/// Labels of limit refusals.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct LimitLabels {
    /// Which limit refused.
    pub limit: LimitLabel,
}

/// The `limit` label of `herald_limit_refusals_total`: one value per limit whose refusals are
/// counted. The strings are what dashboards and alerts read; the limits module turns each of
/// its limits into one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LimitLabel {
    /// `max_connections`.
    Connections,
    /// `max_handshakes_in_flight`.
    HandshakesInFlight,
    /// `max_auth_calls_in_flight`.
    AuthCallsInFlight,
    /// `max_sockets_per_user`.
    SocketsPerUser,
    /// `max_workspaces_per_socket`.
    WorkspacesPerSocket,
    /// `rate_limited`.
    RateLimited,
    /// `rate_limited_disconnect`.
    RateDisconnect,
}

impl LimitLabel {
    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Connections => "max_connections",
            Self::HandshakesInFlight => "max_handshakes_in_flight",
            Self::AuthCallsInFlight => "max_auth_calls_in_flight",
            Self::SocketsPerUser => "max_sockets_per_user",
            Self::WorkspacesPerSocket => "max_workspaces_per_socket",
            Self::RateLimited => "rate_limited",
            Self::RateDisconnect => "rate_limited_disconnect",
        }
    }
}

impl EncodeLabelValue for LimitLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Every metric of a server; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    /// Publishes accepted (both doors).
    pub published: Counter,
    /// Events handed to a socket (one per socket per event, replays excluded).
    pub delivered: Counter,
    /// Publishes merged into a later one by coalescing.
    pub coalesced: Counter,
    /// Events sent again from the log (`since`, recovery).
    pub replayed: Counter,
    /// `resync`s sent.
    pub resyncs: Counter,
    /// Sockets disconnected as slow consumers.
    pub slow_disconnects: Counter,
    /// Handshakes by namespace and outcome.
    pub handshakes: Family<OutcomeLabels, Counter>,
    /// `register`s by outcome.
    pub registers: Family<OutcomeLabels, Counter>,
    /// Socket.IO recoveries: `recovered` or `new`.
    pub recoveries: Family<OutcomeLabels, Counter>,
    /// Live connections (set when scraped).
    pub connections: Family<ConnectionLabels, Gauge>,
    /// Seconds from publish to emit (held coalesced events included).
    pub publish_to_emit: Histogram,
    /// Cluster mode: 1 while Redis answers, 0 while not (set when scraped).
    pub redis_up: Gauge,
    /// Cluster mode: times this node lost Redis (seen by its bus reader).
    pub redis_outages: Counter,
    /// Events per second, for `/status` (sampled by a task of the server).
    pub throughput: Throughput,
    /// Refusals by limit (`[limits]`).
    pub limit_refusals: Family<LimitLabels, Counter>,
    /// Live Engine.IO sessions admitted by the handshake bound.
    pub sessions: Gauge,
    /// Handshakes between their Engine.IO request and their namespace admission.
    pub handshakes_in_flight: Gauge,
    /// Live WebSockets of the Pydio Cells door.
    pub cells_connections: Gauge,
    /// Cells WebSockets herald closed, by reason.
    pub cells_closes: Family<ReasonLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric of a single node registered.
    pub(crate) fn new() -> Self {
        Self::build(false)
    }

    /// A fresh registry for a node in cluster mode: [`Metrics::new`] and the Redis state.
    pub(crate) fn clustered() -> Self {
        Self::build(true)
    }

    fn build(cluster: bool) -> Self {
        let (published, delivered, coalesced) = Default::default();
        let (replayed, resyncs, slow_disconnects) = Default::default();
        let (handshakes, registers, recoveries) = Default::default();
        let connections = Family::default();
        let limit_refusals = Family::<LimitLabels, Counter>::default();
        let (sessions, handshakes_in_flight) = (Gauge::default(), Gauge::default());
        // 50 µs to ~3.3 s.
        let publish_to_emit = Histogram::new(exponential_buckets(0.000_05, 2.0, 17));

        let mut registry = Registry::with_prefix("herald");
        let counters: [(&str, &str, &Counter); 6] = [
            ("events_published", "Publishes accepted", &published),
            (
                "events_delivered",
                "Events handed to a socket (one per socket per event)",
                &delivered,
            ),
            (
                "events_coalesced",
                "Publishes merged into a later one by coalescing",
                &coalesced,
            ),
            (
                "events_replayed",
                "Events sent again from the event log (since, recovery)",
                &replayed,
            ),
            ("resyncs", "resync events sent", &resyncs),
            (
                "slow_disconnects",
                "Sockets disconnected because their queue was full",
                &slow_disconnects,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        let families: [(&str, &str, &Family<OutcomeLabels, Counter>); 3] = [
            (
                "handshakes",
                "Handshakes by namespace and outcome",
                &handshakes,
            ),
            ("registers", "register requests by outcome", &registers),
            (
                "recoveries",
                "Handshakes naming a session to recover: recovered or new",
                &recoveries,
            ),
        ];
        for (name, help, family) in families {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "connections",
            "Live connections by namespace and transport",
            connections.clone(),
        );
        registry.register(
            "limit_refusals",
            "Refusals by limit: handshakes answered 503, events and registers refused, sockets disconnected",
            limit_refusals.clone(),
        );
        registry.register(
            "engine_sessions",
            "Live connections counted against limits.max_connections: Engine.IO sessions and the Pydio Cells door's sockets",
            sessions.clone(),
        );
        registry.register(
            "handshakes_in_flight",
            "Handshakes not yet admitted to a namespace (bounded by limits.max_handshakes_in_flight)",
            handshakes_in_flight.clone(),
        );
        registry.register(
            "publish_to_emit_seconds",
            "Time from publish to emit",
            publish_to_emit.clone(),
        );
        let (cells_connections, cells_closes) = (Gauge::default(), Family::default());
        registry.register(
            "cells_connections",
            "Live WebSockets of the Pydio Cells door",
            cells_connections.clone(),
        );
        registry.register(
            "cells_closes",
            "Pydio Cells WebSockets herald closed, by reason",
            cells_closes.clone(),
        );
        let (redis_up, redis_outages) = (Gauge::default(), Counter::default());
        if cluster {
            registry.register(
                "redis_up",
                "1 while Redis answers a PING, 0 while not",
                redis_up.clone(),
            );
            registry.register(
                "redis_outages",
                "Times this node lost Redis (seen by its bus reader)",
                redis_outages.clone(),
            );
        }
        Self {
            registry: Arc::new(registry),
            published,
            delivered,
            coalesced,
            replayed,
            resyncs,
            slow_disconnects,
            handshakes,
            registers,
            recoveries,
            connections,
            publish_to_emit,
            redis_up,
            redis_outages,
            throughput: Throughput::default(),
            limit_refusals,
            sessions,
            handshakes_in_flight,
            cells_connections,
            cells_closes,
        }
    }

    /// Counts one outcome of a family.
    pub(crate) fn count(
        family: &Family<OutcomeLabels, Counter>,
        namespace: &'static str,
        outcome: &'static str,
    ) {
        family
            .get_or_create(&OutcomeLabels { namespace, outcome })
            .inc();
    }

    /// Counts one refusal by a limit.
    pub(crate) fn refused(&self, limit: impl Into<LimitLabel>) {
        self.limit_counter(limit).inc();
    }

    /// The refusal counter of one limit, to keep where it is counted often.
    pub(crate) fn limit_counter(&self, limit: impl Into<LimitLabel>) -> Counter {
        self.limit_refusals
            .get_or_create(&LimitLabels {
                limit: limit.into(),
            })
            .clone()
    }

    /// The registry in the OpenMetrics text format.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "metrics not encoded");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_the_prefix_and_labels() {
        let metrics = Metrics::new();
        metrics.published.inc();
        Metrics::count(&metrics.handshakes, "public", "unauthorized");
        let text = metrics.render();
        assert!(text.contains("herald_events_published_total 1"), "{text}");
        assert!(
            text.contains(
                r#"herald_handshakes_total{namespace="public",outcome="unauthorized"} 1"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert!(!text.contains("redis"), "{text}");
    }

    #[test]
    fn the_redis_state_is_there_in_cluster_mode_only() {
        let metrics = Metrics::clustered();
        metrics.redis_up.set(1);
        metrics.redis_outages.inc();
        let text = metrics.render();
        assert!(text.contains("herald_redis_up 1"), "{text}");
        assert!(text.contains("herald_redis_outages_total 1"), "{text}");
    }
}
