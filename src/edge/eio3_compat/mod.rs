//! Compatibility with socket.io-client 2.x (Engine.IO v3): namespace queries, and binary
//! attachments in long-polling answers.
//!
//! A 2.x client created with `io(url + "/public", { query: { token } })` sends its CONNECT
//! packet as `40/public?token=...,`. npm socket.io (with `allowEIO3`) strips the query from the
//! namespace; socketioxide keeps it and answers "Invalid namespace". herald strips it before
//! socketioxide parses the packet:
//! - on long-polling, by rewriting the POST body (`polling.rs`);
//! - on WebSocket, by terminating the client's WebSocket itself and bridging it to socketioxide
//!   over an in-process connection, rewriting CONNECT frames on the way (`websocket.rs`).
//!
//! The credentials are not lost: 2.x clients also put their `query` on the Engine.IO URL, where
//! the handshake reads `token`. Engine.IO v4 traffic is never touched.
//!
//! On the way out, [`attachments`] puts the binary attachments of v3 long-polling answers in
//! the v3 form; the edge's polling middleware ([`crate::edge::polling`]) applies it.

use std::net::SocketAddr;

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{ConnectInfo, Request, State},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::ApiError;

pub(crate) mod attachments;
mod polling;
mod websocket;

/// What the middleware needs: the engine path, the payload limit, and the application without
/// this middleware, to which bridged WebSockets are handed.
#[derive(Debug, Clone)]
pub(crate) struct Eio3Compat {
    /// The Engine.IO path, e.g. `/socket.io`.
    pub engine_path: String,
    /// Largest body or WebSocket message read (the Engine.IO payload limit).
    pub max_payload: usize,
    /// The application (HTTP routes + Socket.IO), without this middleware.
    pub inner: Router,
}

/// Routes Engine.IO v3 requests through the namespace-query rewrites; passes the rest.
pub(crate) async fn strip_namespace_query(
    State(compat): State<Eio3Compat>,
    request: Request,
    next: Next,
) -> Response {
    let uri = request.uri();
    let is_eio3 = uri.path().starts_with(&compat.engine_path)
        && uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "EIO=3"));
    if !is_eio3 {
        return next.run(request).await;
    }
    let is_websocket = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "transport=websocket"));
    if is_websocket && request.headers().contains_key(header::UPGRADE) {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .copied();
        return match peer {
            Some(ConnectInfo(peer)) => websocket::bridge(compat, peer, request).await,
            None => next.run(request).await,
        };
    }
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, compat.max_payload).await else {
        return ApiError::PayloadTooLarge(compat.max_payload).into_response();
    };
    let body = match std::str::from_utf8(&bytes)
        .ok()
        .and_then(polling::rewrite_payload)
    {
        Some(rewritten) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Body::from(rewritten)
        }
        None => Body::from(bytes),
    };
    next.run(Request::from_parts(parts, body)).await
}

/// `40/ns?query,...` → `40/ns,...`; `None` for any other packet.
fn strip_query(packet: &str) -> Option<String> {
    let nsp_and_rest = packet.strip_prefix("40/")?;
    let nsp_end = nsp_and_rest.find(',').unwrap_or(nsp_and_rest.len());
    let nsp = &nsp_and_rest[..nsp_end];
    let query_start = nsp.find('?')?;
    Some(format!(
        "40/{}{}",
        &nsp[..query_start],
        &nsp_and_rest[nsp_end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_connect_queries() {
        assert_eq!(
            strip_query("40/public?token=a.b,").as_deref(),
            Some("40/public,")
        );
        assert_eq!(
            strip_query("40/public?token=a.b").as_deref(),
            Some("40/public")
        );
        assert_eq!(strip_query("40/public,"), None);
        assert_eq!(strip_query("42/public,[\"a?b\"]"), None);
        assert_eq!(strip_query("40"), None);
    }
}
