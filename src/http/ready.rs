//! `GET /ready`: whether this node can do its whole job, for load balancers and orchestrators.
//! A single node is ready while it serves; in cluster mode, only while Redis answers (503
//! otherwise: its own sockets still get what is published on it, but nothing crosses nodes).
//! A node that is shutting down (draining its sockets) answers 503 too.

use axum::{Extension, Json, Router, extract::State, http::StatusCode, routing::get};
use serde_json::{Value, json};

use crate::{edge::admission::Admission, socketio::state::AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ready", get(ready))
}

async fn ready(
    State(state): State<AppState>,
    Extension(admission): Extension<Admission>,
) -> (StatusCode, Json<Value>) {
    if admission.is_closed() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "shutting down"})),
        );
    }
    match &state.cluster {
        None => (StatusCode::OK, Json(json!({"ready": true}))),
        Some(redis) if redis.ping().await => (StatusCode::OK, Json(json!({"ready": true}))),
        Some(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "redis unreachable"})),
        ),
    }
}
