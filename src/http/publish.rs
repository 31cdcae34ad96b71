//! `POST /api/v1/publish`: the `/private` `publish` contract over plain HTTP, for backends
//! without a Socket.IO client (PHP). Bearer private key and authorized host; 202 with the
//! event id; 400/401/413/503 with `{"code", "message"}`. A refused publication
//! ([`PublishError`]) becomes an [`ApiError`] here, with its stable code.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::StatusCode,
    routing::post,
};

use super::Backend;
use crate::{
    error::ApiError,
    event::{Publication, PublishError},
    pipeline::Receipt,
    socketio::state::AppState,
};

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

/// A refused publish: 503 when delivery is unavailable, otherwise 400 with the refusal's code.
impl From<PublishError> for ApiError {
    fn from(error: PublishError) -> Self {
        match error {
            PublishError::Unavailable => Self::Unavailable,
            other => Self::BadRequest {
                code: other.code(),
                message: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::to_bytes, response::IntoResponse};

    use super::*;

    async fn answer(error: PublishError) -> (StatusCode, String) {
        let response = ApiError::from(error).into_response();
        let status = response.status();
        let body = to_bytes(response.into_body(), 4096).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn each_refusal_has_its_status_and_body() {
        let cases = [
            (
                PublishError::BadRequest("what to fix".into()),
                StatusCode::BAD_REQUEST,
                r#"{"code":"bad_request","message":"what to fix"}"#,
            ),
            (
                PublishError::InvalidEvent,
                StatusCode::BAD_REQUEST,
                r#"{"code":"invalid_event","message":"`event` must be 1 to 128 bytes without control characters"}"#,
            ),
            (
                PublishError::ReservedEvent("connect".into()),
                StatusCode::BAD_REQUEST,
                r#"{"code":"reserved_event","message":"`event` \"connect\" is reserved by Socket.IO"}"#,
            ),
            (
                PublishError::NoTarget,
                StatusCode::BAD_REQUEST,
                r#"{"code":"no_target","message":"name at least one target: workspace, workspaces, user, users or group"}"#,
            ),
            (
                PublishError::TooManyTargets(10),
                StatusCode::BAD_REQUEST,
                r#"{"code":"too_many_targets","message":"at most 10 targets per publish"}"#,
            ),
            (
                PublishError::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"code":"unavailable","message":"service unavailable"}"#,
            ),
        ];
        for (error, status, body) in cases {
            assert_eq!(answer(error).await, (status, body.to_owned()));
        }
    }
}
