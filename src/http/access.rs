//! `POST /api/v1/access`: the `/private` `access` event over plain HTTP. Replaces a user's
//! allowed workspaces on all of their sockets (or, in backend mode with `user` alone, asks the
//! backend again). Bearer private key and authorized host, like publishing.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    routing::post,
};

use super::Backend;
use crate::{
    error::ApiError,
    socketio::state::AppState,
    socketio::{
        access::{self, AccessError},
        events::{AccessChange, AccessOutcome},
    },
};

/// The route, with its body limit (`publish.max_body_bytes`).
pub(super) fn router(max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/api/v1/access", post(change_access))
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

async fn change_access(
    State(state): State<AppState>,
    _backend: Backend,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AccessOutcome>, ApiError> {
    let body = super::read_body(body, state.cfg.publish.max_body_bytes)?;
    let change: AccessChange = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
        code: "bad_request",
        message: e.to_string(),
    })?;
    match access::change(&state, change).await {
        Ok(outcome) => Ok(Json(outcome)),
        Err(error @ AccessError::WorkspacesRequired) => Err(ApiError::BadRequest {
            code: "bad_request",
            message: error.to_string(),
        }),
        Err(AccessError::Unavailable) => Err(ApiError::Unavailable),
    }
}
