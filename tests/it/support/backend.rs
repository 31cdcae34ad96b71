//! A mock application backend for `auth.mode = "backend"`, on `127.0.0.1:<free port>`.
//!
//! Principals, chosen by the forwarded headers:
//! - `Cookie: session=alice` → alice, group `/staff`, workspaces `["ws-a"]`;
//! - `Cookie: session=bob` → bob, no `workspaces` list (per-workspace checks: `ws-b` is
//!   granted, `ws-down` answers 500, anything else 403);
//! - `Authorization: Bearer carol-token` → carol, workspaces `["ws-c"]`;
//! - anything else → 401.
//!
//! Base paths: `/auth` (the above), `/slow` (never answers), `/broken` (always 500),
//! `/redirect` (302 to `/auth`), `/garbled` (200 with a body that is not JSON). Every call is
//! counted by path and its `Cookie` / `Authorization` headers are recorded.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use tokio::task::JoinHandle;

/// The headers of one call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) path: String,
    pub(crate) cookie: Option<String>,
    pub(crate) authorization: Option<String>,
}

#[derive(Debug, Default)]
struct Log {
    calls: Mutex<Vec<Call>>,
}

/// The running mock; stops when dropped.
#[derive(Debug)]
pub(crate) struct MockBackend {
    pub(crate) addr: SocketAddr,
    log: Arc<Log>,
    task: JoinHandle<()>,
}

impl Drop for MockBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockBackend {
    pub(crate) async fn start() -> Self {
        let log = Arc::new(Log::default());
        let app = Router::new()
            .route("/auth", get(principal))
            .route("/auth/workspaces/{id}", get(grant))
            .route("/slow", get(never))
            .route("/slow/workspaces/{id}", get(never))
            .route("/broken", get(broken))
            .route("/broken/workspaces/{id}", get(broken))
            .route("/redirect", get(redirect))
            .route("/garbled", get(garbled))
            .layer(axum::middleware::from_fn_with_state(log.clone(), record))
            .with_state(());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock backend");
        let addr = listener.local_addr().expect("mock backend addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("mock backend serves");
        });
        Self { addr, log, task }
    }

    /// The herald `auth.backend_url` for base path `base` (`/auth`, `/slow`, `/broken`).
    pub(crate) fn url(&self, base: &str) -> String {
        format!("http://{}{base}", self.addr)
    }

    /// How many calls reached `path`.
    pub(crate) fn calls(&self, path: &str) -> usize {
        self.log
            .calls
            .lock()
            .expect("log lock")
            .iter()
            .filter(|c| c.path == path)
            .count()
    }

    /// Every call so far.
    pub(crate) fn all_calls(&self) -> Vec<Call> {
        self.log.calls.lock().expect("log lock").clone()
    }
}

async fn record(
    State(log): State<Arc<Log>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let call = {
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Call {
            path: request.uri().path().to_owned(),
            cookie: header(header::COOKIE),
            authorization: header(header::AUTHORIZATION),
        }
    };
    log.calls.lock().expect("log lock").push(call);
    next.run(request).await
}

/// Which test user the forwarded headers name.
fn who(headers: &HeaderMap) -> Option<&'static str> {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let cookie = get(header::COOKIE).unwrap_or_default();
    if cookie.split(';').any(|c| c.trim() == "session=alice") {
        Some("alice")
    } else if cookie.split(';').any(|c| c.trim() == "session=bob") {
        Some("bob")
    } else if get(header::AUTHORIZATION) == Some("Bearer carol-token") {
        Some("carol")
    } else {
        None
    }
}

async fn principal(headers: HeaderMap) -> Response {
    match who(&headers) {
        Some("alice") => {
            Json(json!({"user": "alice", "groups": ["/staff"], "workspaces": ["ws-a"]}))
                .into_response()
        }
        Some("bob") => Json(json!({"user": "bob", "groups": []})).into_response(),
        Some("carol") => Json(json!({"user": "carol", "workspaces": ["ws-c"]})).into_response(),
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn grant(headers: HeaderMap, Path(id): Path<String>) -> Response {
    match (who(&headers), id.as_str()) {
        (Some("bob"), "ws-b") => Json(json!({})).into_response(),
        (Some("bob"), "ws-down") => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => StatusCode::FORBIDDEN.into_response(),
    }
}

async fn never() -> StatusCode {
    std::future::pending().await
}

async fn broken() -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn redirect() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, "/auth")]).into_response()
}

async fn garbled() -> &'static str {
    "<html>sign in</html>"
}
