//! Backend authentication (`auth.mode = "backend"`): the application decides, as Pydio's
//! `ws_authenticate` did.
//!
//! The handshake's `Cookie` and `Authorization` headers are forwarded to `auth.backend_url`
//! (a token from `auth.token` / `?token=` goes as `Authorization: Bearer` when the browser sent
//! no such header). The backend answers 200 `{"user", "groups", "workspaces"}` or 401/403.
//! Per-workspace checks go to `<backend_url>/workspaces/<id>` with the same headers. Positive
//! answers are cached per credential for `auth.cache_ttl`; concurrent identical questions are
//! asked once. Every call is bounded by `auth.backend_timeout`, and at most
//! `limits.max_auth_calls_in_flight` are in flight: a call waits for a slot at most half of that
//! timeout (then fails as the backend being unavailable), so a reconnect storm cannot open
//! thousands of requests to the backend at once.

use std::{sync::Arc, time::Duration};

use axum::http::{StatusCode, header};
use moka::future::Cache;
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::{AuthError, AuthSetupError, Credentials, Principal};
use crate::{
    config::AuthConfig,
    ids::{GroupPath, UserId, WorkspaceId},
    limits::Limit,
    metrics::Metrics,
};

/// Largest backend answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Client of the application's authentication endpoint.
pub(crate) struct BackendAuth {
    client: reqwest::Client,
    url: reqwest::Url,
    principals: Cache<Credentials, Principal>,
    grants: Cache<(Credentials, WorkspaceId), ()>,
    /// Slots for calls in flight (`limits.max_auth_calls_in_flight`).
    calls: Semaphore,
    /// How long a call may wait for a slot (half of `auth.backend_timeout`).
    wait: Duration,
    /// Calls that found no slot in time.
    refused: Counter,
}

impl std::fmt::Debug for BackendAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendAuth")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl std::hash::Hash for Credentials {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.token.hash(state);
        self.cookie.hash(state);
        self.authorization.hash(state);
    }
}

/// The backend's answer to an authentication request.
#[derive(Debug, Deserialize)]
struct Answer {
    user: UserId,
    #[serde(default)]
    groups: Vec<GroupPath>,
    #[serde(default)]
    workspaces: Option<Vec<WorkspaceId>>,
    #[serde(flatten)]
    cells: super::cells::CellsIdentity,
}

impl BackendAuth {
    /// Builds the HTTP client and caches; at most `max_in_flight` calls at once, refusals
    /// counted in `metrics`.
    ///
    /// # Errors
    /// No `backend_url`, or a client that cannot be built.
    pub(crate) fn from_config(
        cfg: &AuthConfig,
        max_in_flight: usize,
        metrics: &Metrics,
    ) -> Result<Self, AuthSetupError> {
        let url: reqwest::Url = cfg
            .backend_url
            .as_deref()
            .ok_or_else(|| AuthSetupError::Backend("missing".into()))?
            .parse()
            .map_err(|e| AuthSetupError::Backend(format!("not a URL: {e}")))?;
        if url.cannot_be_a_base() {
            return Err(AuthSetupError::Backend("not a base URL".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.backend_timeout)
            .connect_timeout(cfg.backend_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AuthSetupError::Backend(e.to_string()))?;
        Ok(Self {
            client,
            url,
            principals: Cache::builder()
                .max_capacity(cfg.cache_capacity)
                .time_to_live(cfg.cache_ttl)
                .build(),
            grants: Cache::builder()
                .max_capacity(cfg.cache_capacity)
                .time_to_live(cfg.cache_ttl)
                .support_invalidation_closures()
                .build(),
            calls: Semaphore::new(max_in_flight),
            wait: cfg.backend_timeout / 2,
            refused: metrics.limit_counter(Limit::AuthCallsInFlight),
        })
    }

    /// Asks the backend who presents these credentials (cached).
    ///
    /// # Errors
    /// Nothing presented, 401/403, or an unreachable/unintelligible backend.
    pub(crate) async fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> Result<Principal, AuthError> {
        if credentials.is_empty() {
            return Err(AuthError::MissingCredentials);
        }
        self.principals
            .try_get_with(credentials.clone(), self.fetch_principal(credentials))
            .await
            .map_err(|e| unshare(&e))
    }

    /// Asks the backend whether these credentials may read a workspace (positive answers cached).
    ///
    /// # Errors
    /// An unreachable backend or an unexpected status.
    pub(crate) async fn can_read(
        &self,
        credentials: &Credentials,
        workspace: &WorkspaceId,
    ) -> Result<bool, AuthError> {
        let key = (credentials.clone(), workspace.clone());
        let result = self
            .grants
            .try_get_with(key, self.fetch_grant(credentials, workspace))
            .await;
        match result {
            Ok(()) => Ok(true),
            Err(e) => match unshare(&e) {
                AuthError::Rejected => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Asks the backend whether these credentials may read a file node
    /// (`GET <backend_url>/nodes/<uuid>`: 2xx yes; 401, 403, 404 no). Not cached: it guards
    /// the joins of a Pydio Cells node's chat room, which are rare.
    ///
    /// # Errors
    /// An unreachable backend or an unexpected status.
    pub(crate) async fn can_read_node(
        &self,
        credentials: &Credentials,
        node: &str,
    ) -> Result<bool, AuthError> {
        match self
            .get(child_url(&self.url, "nodes", node), credentials)
            .await
        {
            Ok(_) => Ok(true),
            Err(AuthError::Rejected) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Asks the backend again, ignoring and then replacing the cached answer (access changed).
    /// The per-workspace grants cached for these credentials are forgotten too: a later
    /// `register` asks the backend again.
    ///
    /// # Errors
    /// As [`Self::authenticate`].
    pub(crate) async fn reauthenticate(
        &self,
        credentials: &Credentials,
    ) -> Result<Principal, AuthError> {
        let stale = credentials.clone();
        if let Err(error) = self
            .grants
            .invalidate_entries_if(move |(held, _), ()| *held == stale)
        {
            // Only when the cache was built without invalidation closures: a bug, not input.
            tracing::error!(%error, "cached grants could not be invalidated");
        }
        self.principals.invalidate(credentials).await;
        self.authenticate(credentials).await
    }

    /// Forgets every cached answer about `user`: after a backend disconnected them (a logout, a
    /// password change), the next credentials they present are asked of the backend again.
    pub(crate) async fn forget_user(&self, user: &UserId) {
        let stale: Vec<Credentials> = (self.principals.iter())
            .filter(|(_, principal)| principal.user == *user)
            .map(|(credentials, _)| (*credentials).clone())
            .collect();
        for credentials in &stale {
            self.principals.invalidate(credentials).await;
        }
        let stale = std::sync::Arc::new(stale);
        if let Err(error) = self
            .grants
            .invalidate_entries_if(move |(held, _), ()| stale.contains(held))
        {
            tracing::error!(%error, "cached grants could not be invalidated");
        }
    }

    /// Asks the backend again whether these credentials may read a workspace.
    ///
    /// # Errors
    /// As [`Self::can_read`].
    pub(crate) async fn can_read_fresh(
        &self,
        credentials: &Credentials,
        workspace: &WorkspaceId,
    ) -> Result<bool, AuthError> {
        self.grants
            .invalidate(&(credentials.clone(), workspace.clone()))
            .await;
        self.can_read(credentials, workspace).await
    }

    async fn fetch_principal(&self, credentials: &Credentials) -> Result<Principal, AuthError> {
        let body = self.get(self.url.clone(), credentials).await?;
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| AuthError::Unavailable(format!("unintelligible answer: {e}")))?;
        Ok(Principal::new(
            answer.user,
            answer.groups,
            answer.workspaces,
            None,
            answer.cells,
        ))
    }

    async fn fetch_grant(
        &self,
        credentials: &Credentials,
        workspace: &WorkspaceId,
    ) -> Result<(), AuthError> {
        self.get(workspace_url(&self.url, workspace), credentials)
            .await
            .map(drop)
    }

    async fn get(
        &self,
        url: reqwest::Url,
        credentials: &Credentials,
    ) -> Result<Vec<u8>, AuthError> {
        let Ok(Ok(_slot)) = tokio::time::timeout(self.wait, self.calls.acquire()).await else {
            self.refused.inc();
            return Err(AuthError::Unavailable("too many calls in flight".into()));
        };
        let mut request = self
            .client
            .get(url)
            .header(header::ACCEPT, "application/json");
        if let Some(cookie) = &credentials.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        match (&credentials.authorization, &credentials.token) {
            (Some(authorization), _) => {
                request = request.header(header::AUTHORIZATION, authorization)
            }
            (None, Some(token)) => request = request.bearer_auth(token),
            (None, None) => {}
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| AuthError::Unavailable(without_url(&e)))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                return Err(AuthError::Rejected);
            }
            other => return Err(AuthError::Unavailable(format!("status {other}"))),
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| AuthError::Unavailable(without_url(&e)))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(AuthError::Unavailable("answer too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Describes a transport error briefly, without the URL.
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_body() || e.is_decode() {
        "broken answer body".into()
    } else {
        "request failed".into()
    }
}

/// `<backend_url>/workspaces/<id>`, the id escaped as one path segment.
fn workspace_url(base: &reqwest::Url, workspace: &WorkspaceId) -> reqwest::Url {
    child_url(base, "workspaces", workspace.as_str())
}

/// `<backend_url>/<kind>/<id>`, the id escaped as one path segment.
fn child_url(base: &reqwest::Url, kind: &str, id: &str) -> reqwest::Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(kind).push(id);
    }
    url
}

/// moka shares one error between concurrent waiters; rebuild an owned one.
fn unshare(e: &Arc<AuthError>) -> AuthError {
    match &**e {
        AuthError::MissingCredentials => AuthError::MissingCredentials,
        AuthError::Rejected => AuthError::Rejected,
        AuthError::InvalidToken(m) => AuthError::InvalidToken(m.clone()),
        AuthError::Unavailable(m) => AuthError::Unavailable(m.clone()),
        AuthError::WrongKey => AuthError::WrongKey,
        AuthError::HostNotAllowed(h) => AuthError::HostNotAllowed(h.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_urls_escape_the_id() {
        let base: reqwest::Url = "http://127.0.0.1:1/api/auth".parse().unwrap();
        assert_eq!(
            workspace_url(&base, &WorkspaceId::parse("a/b c").unwrap()).as_str(),
            "http://127.0.0.1:1/api/auth/workspaces/a%2Fb%20c"
        );
    }
}
