//! `Connection: close` on every error herald answers to an Engine.IO request.
//!
//! A client refused at the handshake (503 `server_full`, 403 `forbidden_origin`, 400 unknown
//! session, an Engine.IO v3 refusal) reads the body and then waits: over a kept-alive
//! connection, nothing says the exchange is over, so a client that reads to the end waits for
//! its own timeout instead of retrying with its backoff. With `Connection: close`, hyper writes
//! the whole body and closes the connection. A request that asked for a WebSocket upgrade is
//! treated the same wherever it was sent: no other request is expected on that connection.

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::Response,
};

/// The Engine.IO path (without its trailing `/`), shared by the middleware.
#[derive(Debug, Clone)]
pub(crate) struct EnginePath(pub std::sync::Arc<str>);

impl EnginePath {
    /// The path from the configuration (`engine_path`).
    pub(crate) fn new(engine_path: &str) -> Self {
        Self(engine_path.trim_end_matches('/').into())
    }

    fn covers(&self, request: &Request) -> bool {
        let path = request.uri().path().trim_end_matches('/');
        path == &*self.0 || request.headers().contains_key(header::UPGRADE)
    }
}

/// Middleware: adds `Connection: close` to the error answers of Engine.IO requests.
pub(crate) async fn close_after_errors(
    State(engine_path): State<EnginePath>,
    request: Request,
    next: Next,
) -> Response {
    if !engine_path.covers(&request) {
        return next.run(request).await;
    }
    let mut response = next.run(request).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::StatusCode, routing::get};
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/socket.io/", get(|| async { StatusCode::BAD_REQUEST }))
            .route("/socket.io/ok", get(|| async { "ok" }))
            .route("/health", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .layer(axum::middleware::from_fn_with_state(
                EnginePath::new("/socket.io/"),
                close_after_errors,
            ))
    }

    async fn connection_header(request: Request) -> Option<String> {
        let response = app().oneshot(request).await.unwrap();
        response
            .headers()
            .get(header::CONNECTION)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    fn get_request(uri: &str, upgrade: bool) -> Request {
        let mut builder = Request::get(uri);
        if upgrade {
            builder = builder.header(header::UPGRADE, "websocket");
        }
        builder.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn only_errors_of_engine_requests_close_the_connection() {
        let close = Some("close".to_owned());
        assert_eq!(
            connection_header(get_request("/socket.io/?EIO=4", false)).await,
            close
        );
        assert_eq!(
            connection_header(get_request("/socket.io/ok", false)).await,
            None
        );
        assert_eq!(connection_header(get_request("/health", false)).await, None);
        // An upgrade refused anywhere: nothing else is coming on that connection.
        assert_eq!(connection_header(get_request("/health", true)).await, close);
    }
}
