//! Adds the connection state recovery `pid` ([`crate::recovery`]) to CONNECT answers delivered
//! over long-polling: a middleware on the Engine.IO path that rewrites `GET` poll responses
//! while some answer waits for its pid. Otherwise it only compares a counter.

use std::sync::Arc;

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{Method, header},
    middleware::Next,
    response::Response,
};

use super::connect_packet;
use crate::recovery::Recovery;

/// What the middleware needs.
#[derive(Debug, Clone)]
pub(crate) struct PollingRewrite {
    /// The recovery state of the node.
    pub recovery: Arc<Recovery>,
    /// The Engine.IO path, e.g. `/socket.io`.
    pub engine_path: String,
    /// The browsers' namespace.
    pub public_ns: String,
    /// Largest poll response read (the Engine.IO payload limit).
    pub max_payload: usize,
}

/// Rewrites poll responses that carry a CONNECT answer of the browsers' namespace.
pub(crate) async fn add_pid(
    State(rewrite): State<PollingRewrite>,
    request: Request,
    next: Next,
) -> Response {
    let is_poll = request.method() == Method::GET
        && request.uri().path().starts_with(&rewrite.engine_path)
        && request.uri().query().is_some_and(|query| {
            query.split('&').any(|kv| kv == "transport=polling")
                && query.split('&').any(|kv| kv.starts_with("sid="))
        });
    if !is_poll {
        return next.run(request).await;
    }
    // Looked at once the poll is answered: a long poll can start before the handshake whose
    // CONNECT answer it carries has announced its pid (a recovery claim takes a Redis round trip).
    let response = next.run(request).await;
    if !rewrite.recovery.any_waiting() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, rewrite.max_payload.saturating_mul(2)).await else {
        // Larger than any payload socketioxide writes, or the body failed: nothing sensible
        // to forward; the client's next poll goes on.
        tracing::warn!("poll response unreadable; dropped");
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    };
    let rewritten = std::str::from_utf8(&bytes).ok().and_then(|payload| {
        connect_packet::payload_with_pid(payload, &rewrite.public_ns, |sid| {
            rewrite.recovery.take_announced(sid)
        })
    });
    match rewritten {
        Some(payload) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(payload))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}
