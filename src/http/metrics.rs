//! `GET /metrics`: the server's metrics in the OpenMetrics text format, for Prometheus. Guarded
//! like `/status`: the private key as a bearer token unless `status_public = true`.

use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use socketioxide::TransportType;

use super::KeyHolder;
use crate::{error::ApiError, metrics::ConnectionLabels, state::AppState};

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
    let namespaces = [
        ("public", state.cfg.public.path.as_str()),
        ("private", state.cfg.private.path.as_str()),
    ];
    for (namespace, path) in namespaces {
        let sockets = state.io.of(path).map(|ns| ns.sockets()).unwrap_or_default();
        let websocket = sockets
            .iter()
            .filter(|socket| socket.transport_type() == TransportType::Websocket)
            .count();
        for (transport, count) in [
            ("websocket", websocket),
            ("polling", sockets.len() - websocket),
        ] {
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
    Ok((
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.metrics.render(),
    )
        .into_response())
}
