//! `GET /health`: 200 `ok` while the process serves (liveness).

use axum::{Router, routing::get};

use crate::socketio::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/health", get(async || "ok"))
}
