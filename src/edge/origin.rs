//! Browser origins: CORS for cross-origin long-polling, and refusal of foreign origins.
//!
//! With `allowed_origins` empty (the default, as npm socket.io), herald neither sends CORS
//! headers nor checks `Origin`. When it lists origins, Engine.IO requests (and the upgrades of
//! the other doors, such as the Pydio Cells `/ws/event`) whose `Origin` is not listed are refused with 403 before any handshake — this is what stops another site from
//! opening a socket with the user's cookies in backend auth mode (cross-site WebSocket
//! hijacking) — and listed origins get CORS headers with credentials, so long-polling works
//! across origins. Requests without `Origin` (servers, curl) are not browsers and pass.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The configured origins and where they apply.
#[derive(Debug, Clone)]
pub(crate) struct OriginPolicy {
    engine_path: Arc<str>,
    /// The paths of the other doors, checked the same.
    door_paths: Arc<[String]>,
    allowed: Arc<[HeaderValue]>,
}

impl OriginPolicy {
    /// From `engine_path`, the other doors' paths and the validated `allowed_origins`.
    pub(crate) fn new(engine_path: &str, door_paths: &[String], allowed: &[String]) -> Self {
        Self {
            engine_path: engine_path.into(),
            door_paths: door_paths.into(),
            allowed: allowed
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok())
                .collect(),
        }
    }

    /// CORS headers for the listed origins (none when the list is empty).
    pub(crate) fn cors_layer(&self) -> CorsLayer {
        if self.allowed.is_empty() {
            return CorsLayer::new();
        }
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(self.allowed.iter().cloned()))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
    }

    fn refuses(&self, request: &Request) -> bool {
        let path = request.uri().path();
        let guarded =
            path.starts_with(&*self.engine_path) || self.door_paths.iter().any(|p| p == path);
        if self.allowed.is_empty() || !guarded {
            return false;
        }
        match request.headers().get(header::ORIGIN) {
            Some(origin) => !self.allowed.iter().any(|allowed| allowed == origin),
            None => false,
        }
    }
}

/// Middleware: 403 for Engine.IO requests from an origin that is not allowed.
pub(crate) async fn guard(
    State(policy): State<OriginPolicy>,
    request: Request,
    next: Next,
) -> Response {
    if policy.refuses(&request) {
        tracing::debug!(origin = ?request.headers().get(header::ORIGIN), "origin refused");
        return (
            StatusCode::FORBIDDEN,
            axum::Json(
                serde_json::json!({"code": "forbidden_origin", "message": "origin not allowed"}),
            ),
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn request(path: &str, origin: Option<&str>) -> Request {
        let mut builder = Request::builder().uri(path);
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn an_empty_list_allows_everything() {
        let policy = OriginPolicy::new("/socket.io", &[], &[]);
        assert!(!policy.refuses(&request("/socket.io/?EIO=4", Some("https://evil.example"))));
    }

    #[test]
    fn a_list_refuses_other_browser_origins_on_the_engine_path_only() {
        let policy = OriginPolicy::new(
            "/socket.io",
            &["/ws/event".into()],
            &["https://cells.example.com".into()],
        );
        assert!(!policy.refuses(&request(
            "/socket.io/?EIO=4",
            Some("https://cells.example.com")
        )));
        assert!(policy.refuses(&request("/socket.io/?EIO=4", Some("https://evil.example"))));
        assert!(!policy.refuses(&request("/socket.io/?EIO=4", None)));
        assert!(!policy.refuses(&request("/health", Some("https://evil.example"))));
        assert!(policy.refuses(&request("/ws/event", Some("https://evil.example"))));
        assert!(!policy.refuses(&request("/ws/event", Some("https://cells.example.com"))));
    }
}
