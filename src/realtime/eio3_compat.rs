//! Compatibility with socket.io-client 2.x (Engine.IO v3): namespace queries.
//!
//! A 2.x client created with `io(url + "/public", { query: { token } })` sends its CONNECT
//! packet as `40/public?token=...,`. npm socket.io (with `allowEIO3`) strips the query from the
//! namespace; socketioxide keeps it and answers "Invalid namespace". This middleware strips the
//! query from CONNECT packets in Engine.IO v3 polling bodies, before socketioxide parses them.
//! The credentials are not lost: the client also puts its `query` on the Engine.IO URL, where
//! the handshake reads `token`.
//!
//! Limit: a 2.x client forced to `transports: ["websocket"]` sends CONNECT over the WebSocket,
//! where this middleware cannot reach; such clients must not set `query` on the socket (put
//! the token in the Manager's query or an Authorization header). The default 2.x transport
//! order (polling first) is covered.

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::ApiError;

/// What the middleware needs from the configuration.
#[derive(Debug, Clone)]
pub struct Eio3Compat {
    /// The Engine.IO path, e.g. `/socket.io`.
    pub engine_path: String,
    /// Largest body read (the Engine.IO payload limit).
    pub max_payload: usize,
}

/// Strips namespace queries from CONNECT packets of Engine.IO v3 polling POSTs.
pub async fn strip_namespace_query(
    State(compat): State<Eio3Compat>,
    request: Request,
    next: Next,
) -> Response {
    let is_eio3_post = request.method() == Method::POST
        && request.uri().path().starts_with(&compat.engine_path)
        && request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "EIO=3"));
    if !is_eio3_post {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, compat.max_payload).await else {
        return ApiError::PayloadTooLarge(compat.max_payload).into_response();
    };
    let body = match std::str::from_utf8(&bytes).ok().and_then(rewrite_payload) {
        Some(rewritten) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Body::from(rewritten)
        }
        None => Body::from(bytes),
    };
    next.run(Request::from_parts(parts, body)).await
}

/// Rewrites an Engine.IO v3 text payload (`<len>:<packet>...`, lengths in UTF-16 units).
/// `None` when nothing needs rewriting or the payload is not of that form.
fn rewrite_payload(payload: &str) -> Option<String> {
    let mut out = String::with_capacity(payload.len());
    let mut rest = payload;
    let mut changed = false;
    while !rest.is_empty() {
        let (len, after) = rest.split_once(':')?;
        let units: usize = len.parse().ok()?;
        let end = utf16_prefix_len(after, units)?;
        let (packet, tail) = after.split_at(end);
        match strip_query(packet) {
            Some(stripped) => {
                changed = true;
                out.push_str(&stripped.encode_utf16().count().to_string());
                out.push(':');
                out.push_str(&stripped);
            }
            None => {
                out.push_str(len);
                out.push(':');
                out.push_str(packet);
            }
        }
        rest = tail;
    }
    changed.then_some(out)
}

/// Byte length of the first `units` UTF-16 code units of `s`.
fn utf16_prefix_len(s: &str, units: usize) -> Option<usize> {
    let mut counted = 0;
    for (index, ch) in s.char_indices() {
        if counted == units {
            return Some(index);
        }
        counted += ch.len_utf16();
    }
    (counted == units).then_some(s.len())
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
    fn strips_the_query_of_a_connect_packet() {
        assert_eq!(
            rewrite_payload("24:40/public?token=abc.def,").as_deref(),
            Some("10:40/public,")
        );
        assert_eq!(
            rewrite_payload("17:40/public?token=x").as_deref(),
            Some("9:40/public")
        );
    }

    #[test]
    fn leaves_other_packets_alone_and_keeps_lengths() {
        let payload = "2:4124:40/public?token=abc.def,9:42[\"é\",1]";
        assert_eq!(
            rewrite_payload(payload).as_deref(),
            Some("2:4110:40/public,9:42[\"é\",1]")
        );
        assert_eq!(rewrite_payload("10:40/public,"), None);
        assert_eq!(rewrite_payload("1:2"), None);
    }

    #[test]
    fn refuses_malformed_payloads() {
        assert_eq!(rewrite_payload("99:40/a?b"), None);
        assert_eq!(rewrite_payload("x:40/a?b"), None);
        assert_eq!(rewrite_payload("40/a?b"), None);
    }

    #[test]
    fn counts_utf16_units() {
        assert_eq!(utf16_prefix_len("😀a", 2), Some(4));
        assert_eq!(utf16_prefix_len("😀a", 3), Some(5));
        assert_eq!(utf16_prefix_len("😀a", 1), None);
    }
}
