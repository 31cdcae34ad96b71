//! `POST /api/v1/publish`: the `/private` `publish` contract over plain HTTP, for backends
//! without a Socket.IO client (PHP). Bearer private key and authorized host; 202 with the
//! event id; 400/401/413 with `{"code", "message"}`.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::StatusCode,
    routing::post,
};

use super::Backend;
use crate::{error::ApiError, event::Publication, pipeline::Receipt, state::AppState};

/// The route, with its body limit (`publish.max_body_bytes`).
pub(super) fn router(max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/api/v1/publish", post(publish))
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

async fn publish(
    State(state): State<AppState>,
    _backend: Backend,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let body = super::read_body(body, state.cfg.publish.max_body_bytes)?;
    let json = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest {
        code: "bad_request",
        message: "the body must be UTF-8 JSON".into(),
    })?;
    let publication = Publication::parse(json, state.cfg.publish.max_targets)?;
    let receipt = state.publisher.publish(publication).await?;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}
