//! Which HTTP requests open an Engine.IO session: a `GET` on the Engine.IO path without a
//! `sid` (a long-polling handshake, or a WebSocket opened directly). engineioxide keeps the
//! head of exactly these requests for the session's life; herald counts them against its
//! handshake limits.

use axum::http::{Method, Uri};

/// Whether a request with this method and URI opens an Engine.IO session on `engine_path`
/// (given without its trailing `/`).
pub(crate) fn opens_session(engine_path: &str, method: &Method, uri: &Uri) -> bool {
    uri.path().trim_end_matches('/') == engine_path
        && method == Method::GET
        && !uri
            .query()
            .unwrap_or_default()
            .split('&')
            .any(|pair| pair.starts_with("sid="))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opens(method: &Method, uri: &str) -> bool {
        opens_session("/socket.io", method, &uri.parse().unwrap())
    }

    #[test]
    fn only_a_get_without_a_sid_on_the_engine_path_opens_a_session() {
        assert!(opens(&Method::GET, "/socket.io/?EIO=4&transport=polling"));
        assert!(opens(&Method::GET, "/socket.io/?EIO=4&transport=websocket"));
        assert!(opens(&Method::GET, "/socket.io?EIO=3&transport=polling"));
        assert!(!opens(
            &Method::GET,
            "/socket.io/?EIO=4&transport=polling&sid=abc"
        ));
        assert!(!opens(
            &Method::GET,
            "/socket.io/?sid=abc&EIO=4&transport=websocket"
        ));
        assert!(!opens(&Method::POST, "/socket.io/?EIO=4&transport=polling"));
        assert!(!opens(
            &Method::OPTIONS,
            "/socket.io/?EIO=4&transport=polling"
        ));
        assert!(!opens(&Method::GET, "/api/v1/publish"));
        assert!(!opens(&Method::GET, "/socket.io.evil/?EIO=4"));
    }
}
