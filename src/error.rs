//! [`ApiError`]: the one error type of the HTTP API, rendered as `{"code", "message"}`.
//!
//! 4xx are the caller's to fix and are logged at debug; 5xx are logged at error with their
//! details while the caller gets a generic message.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// An HTTP API failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400: the request is malformed; `code` is stable.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// What to fix.
        message: String,
    },
    /// 401: key or host refused. Deliberately says nothing more.
    #[error("unauthorized")]
    Unauthorized,
    /// 404: no such route.
    #[error("not found")]
    NotFound,
    /// 405: the route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: body over the limit.
    #[error("request body over {0} bytes")]
    PayloadTooLarge(usize),
    /// 503: delivery unavailable right now.
    #[error("service unavailable")]
    Unavailable,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: String,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        (
            status,
            Json(Body {
                code,
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}
