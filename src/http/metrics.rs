//! `GET /metrics`: the server's metrics in the OpenMetrics text format, for Prometheus. Guarded
//! like `/status`: the private key as a bearer token unless `status_public = true`.

use super::{KeyHolder, status::transport_counts};
use crate::{error::ApiError, metrics::ConnectionLabels, socketio::state::AppState};
use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(
    State(state): State<AppState>,
    key: Result<KeyHolder, ApiError>,
) -> Result<Response, ApiError> {
    if !state.cfg.status_public {
        key?;
    }
    for (namespace, path) in [
        ("public", state.cfg.public.path.as_str()),
        ("private", state.cfg.private.path.as_str()),
    ] {
        let counts = transport_counts(&state.io, path);
        for (transport, count) in [("websocket", counts.websocket), ("polling", counts.polling)] {
            let labels = ConnectionLabels {
                namespace,
                transport,
            };
            state
                .metrics
                .connections
                .get_or_create(&labels)
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
    if let Some(redis) = &state.cluster {
        state.metrics.redis_up.set(i64::from(redis.ping().await));
    }
    Ok((
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.metrics.render(),
    )
        .into_response())
}
