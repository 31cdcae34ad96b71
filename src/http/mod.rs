//! The REST API beside Socket.IO: publishing and access changes for backends without a
//! Socket.IO client, health, readiness, status (JSON, or an HTML page for a browser) and
//! metrics. Each area exposes `router()`; [`router`] merges them. Engine.IO requests are
//! handled before socketioxide in [`crate::edge`], not here.

use std::net::SocketAddr;

use axum::{
    Router,
    body::Bytes,
    extract::{ConnectInfo, FromRequestParts, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
};

use crate::{
    auth::credentials::bearer, config::Config, error::ApiError, socketio::state::AppState,
};

mod accept;
mod access;
mod health;
mod metrics;
mod publish;
mod ready;
mod status;
mod status_page;

/// All HTTP routes, with JSON 404 and 405 answers for anything else.
pub(crate) fn router(cfg: &Config) -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(status::router())
        .merge(metrics::router())
        .merge(ready::router())
        .merge(publish::router(cfg.publish.max_body_bytes))
        .merge(access::router(cfg.publish.max_body_bytes))
        .fallback(async || ApiError::NotFound)
        .method_not_allowed_fallback(async || ApiError::MethodNotAllowed)
}

/// A request body within the limit, or the API error to answer with (413 over the limit).
fn read_body(body: Result<Bytes, BytesRejection>, max: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(max)
        } else {
            ApiError::BadRequest {
                code: "bad_request",
                message: "the request body could not be read".into(),
            }
        }
    })
}

/// The bearer token of a request, if any.
fn bearer_token(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
}

/// An admitted backend: right key AND authorized host. Rejects with 401.
#[derive(Debug)]
pub(crate) struct Backend;

impl FromRequestParts<AppState> for Backend {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied()
        else {
            return Err(ApiError::Unauthorized);
        };
        state
            .private
            .admit(peer, &parts.headers, bearer_token(parts))
            .map(|()| Backend)
            .map_err(|error| {
                tracing::warn!(%peer, %error, "HTTP publisher refused");
                ApiError::Unauthorized
            })
    }
}

/// A caller that presented the private key (host not checked): for `/status`.
#[derive(Debug)]
pub(crate) struct KeyHolder;

impl FromRequestParts<AppState> for KeyHolder {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state
            .private
            .check_key(bearer_token(parts))
            .map(|()| KeyHolder)
            .map_err(|_| ApiError::Unauthorized)
    }
}
