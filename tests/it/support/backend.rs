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
//!
//! A test can change the answers of `/auth` while herald runs (access that changed in the
//! application): [`MockBackend::answer_principal`], [`MockBackend::refuse_principal`] and
//! [`MockBackend::answer_grant`] override the defaults above for one user, and
//! [`MockBackend::hold_grants`] keeps per-workspace checks of a workspace waiting until
//! [`MockBackend::release_grants`].

use std::{
    collections::{HashMap, HashSet},
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
use serde_json::{Value, json};
use tokio::{sync::watch, task::JoinHandle};

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
    overrides: Mutex<Overrides>,
    /// Workspaces whose per-workspace checks wait until released.
    held: watch::Sender<HashSet<String>>,
}

/// Answers set by the test, taking precedence over the defaults.
#[derive(Debug, Default)]
struct Overrides {
    /// user → answer of `/auth`.
    principals: HashMap<String, Canned>,
    /// (user, workspace) → status of `/auth/workspaces/<workspace>`.
    grants: HashMap<(String, String), StatusCode>,
}

/// A canned answer: 200 with a JSON body, or a bare status.
#[derive(Debug, Clone)]
enum Canned {
    Json(Value),
    Status(StatusCode),
}

impl Canned {
    fn into_response(self) -> Response {
        match self {
            Self::Json(body) => Json(body).into_response(),
            Self::Status(status) => status.into_response(),
        }
    }
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
            .route("/auth", get(principal).with_state(log.clone()))
            .route("/auth/workspaces/{id}", get(grant).with_state(log.clone()))
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

    /// From now on `/auth` answers 200 with `body` for `user`'s credentials.
    pub(crate) fn answer_principal(&self, user: &str, body: Value) {
        self.overrides()
            .principals
            .insert(user.to_owned(), Canned::Json(body));
    }

    /// From now on `/auth` answers `status` (and no body) for `user`'s credentials.
    pub(crate) fn refuse_principal(&self, user: &str, status: StatusCode) {
        self.overrides()
            .principals
            .insert(user.to_owned(), Canned::Status(status));
    }

    /// From now on `/auth/workspaces/<workspace>` answers `status` for `user`'s credentials.
    pub(crate) fn answer_grant(&self, user: &str, workspace: &str, status: StatusCode) {
        self.overrides()
            .grants
            .insert((user.to_owned(), workspace.to_owned()), status);
    }

    /// Per-workspace checks of `workspace` wait (already recorded) until
    /// [`Self::release_grants`].
    pub(crate) fn hold_grants(&self, workspace: &str) {
        self.log.held.send_modify(|held| {
            held.insert(workspace.to_owned());
        });
    }

    /// Lets waiting and later checks of `workspace` answer.
    pub(crate) fn release_grants(&self, workspace: &str) {
        self.log.held.send_modify(|held| {
            held.remove(workspace);
        });
    }

    fn overrides(&self) -> std::sync::MutexGuard<'_, Overrides> {
        self.log.overrides.lock().expect("overrides lock")
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

async fn principal(State(log): State<Arc<Log>>, headers: HeaderMap) -> Response {
    let canned = who(&headers).and_then(|user| {
        let overrides = log.overrides.lock().expect("overrides lock");
        overrides.principals.get(user).cloned()
    });
    if let Some(canned) = canned {
        return canned.into_response();
    }
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

async fn grant(
    State(log): State<Arc<Log>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut held = log.held.subscribe();
    // The sender lives in `log`, which this handler holds: the wait cannot see it closed.
    let _ = held.wait_for(|held| !held.contains(&id)).await;
    let status = who(&headers).and_then(|user| {
        let overrides = log.overrides.lock().expect("overrides lock");
        overrides
            .grants
            .get(&(user.to_owned(), id.clone()))
            .copied()
    });
    if let Some(status) = status {
        return status.into_response();
    }
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
