//! Who is on the other end of a socket or request.
//!
//! Browsers on `/public` present credentials (`Credentials`) that an `Authenticator` turns
//! into a [`Principal`]: the user, their groups and, when known up front, the workspaces they
//! may read. Backends on `/private` and the HTTP API are admitted by `private::PrivateAccess`
//! (shared key + host allow-list). Every refusal collapses to "unauthorized" on the wire; the
//! precise [`AuthError`] is only logged, so herald never becomes an oracle.

use std::{collections::HashSet, sync::Arc};

use crate::{
    config::{AuthMode, Config},
    ids::{GroupPath, UserId, WorkspaceId},
};

pub(crate) mod backend;
pub mod cells;
pub(crate) mod credentials;
pub mod jwt;
pub(crate) mod private;
mod session;

pub(crate) use credentials::Credentials;
pub(crate) use session::RefreshError;

/// An authenticated browser user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user id (`sub`).
    pub user: UserId,
    /// Group paths; the socket joins each group's room.
    pub groups: Vec<GroupPath>,
    /// Workspaces the user may read, when the token or backend listed them.
    pub workspaces: Option<HashSet<WorkspaceId>>,
    /// When the credentials expire (the JWT's `exp`, seconds since the epoch); `None` in
    /// backend mode, where the backend decides.
    pub expires_at: Option<u64>,
    /// What a Pydio Cells session needs beyond the user id; `None` when the token or backend
    /// said nothing of it.
    pub cells: Option<Arc<cells::CellsIdentity>>,
}

impl Principal {
    /// A principal from the fields every auth mode reads. A workspace list is taken from the
    /// Cells workspaces when none is given.
    pub(crate) fn new(
        user: UserId,
        groups: Vec<GroupPath>,
        workspaces: Option<Vec<WorkspaceId>>,
        expires_at: Option<u64>,
        cells: cells::CellsIdentity,
    ) -> Self {
        let cells = (!cells.is_empty()).then(|| Arc::new(cells));
        let workspaces = workspaces
            .map(|list| list.into_iter().collect())
            .or_else(|| {
                let roots = &cells.as_ref()?.workspace_roots;
                (!roots.is_empty()).then(|| roots.iter().map(|w| w.id.clone()).collect())
            });
        Self {
            user,
            groups,
            workspaces,
            expires_at,
            cells,
        }
    }
}

/// Why a browser or backend was refused. Logged, never sent: the wire says "unauthorized".
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token, cookie or header was presented.
    #[error("no credentials presented")]
    MissingCredentials,
    /// The token did not verify (signature, algorithm, expiry, audience, claims).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The backend answered 401 or 403.
    #[error("rejected by the auth backend")]
    Rejected,
    /// The backend could not be asked or answered nonsense; the caller is refused all the same.
    #[error("auth backend unavailable: {0}")]
    Unavailable(String),
    /// The private key did not match.
    #[error("wrong or missing private key")]
    WrongKey,
    /// The peer is not an authorized host.
    #[error("peer {0} is not an authorized host")]
    HostNotAllowed(String),
}

/// Why the authenticator could not be built at startup.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// The JWT key could not be read or parsed.
    #[error("auth.jwt: {0}")]
    Jwt(String),
    /// The backend client could not be built.
    #[error("auth.backend_url: {0}")]
    Backend(String),
}

/// The configured way of authenticating browsers. A closed set chosen by `auth.mode`, so an
/// enum rather than a trait object: no boxing of futures on the handshake path.
#[derive(Debug)]
pub(crate) enum Authenticator {
    /// Local JWT verification.
    Jwt(jwt::JwtVerifier),
    /// The application backend decides.
    Backend(backend::BackendAuth),
}

/// What a connected browser socket carries: who it is and, for backend mode, the credentials
/// to forward on later per-workspace checks.
#[derive(Debug)]
pub(crate) struct Session {
    /// The authenticated user.
    pub principal: Principal,
    /// The handshake's credentials.
    pub credentials: Credentials,
}

impl Authenticator {
    /// Builds the authenticator that `auth.mode` selects; refusals by
    /// `limits.max_auth_calls_in_flight` are counted in `metrics`.
    ///
    /// # Errors
    /// An unreadable key file or an unusable backend URL.
    pub(crate) fn from_config(
        cfg: &Config,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Arc<Self>, AuthSetupError> {
        Ok(Arc::new(match cfg.auth.mode {
            AuthMode::Jwt => Self::Jwt(jwt::JwtVerifier::from_config(&cfg.auth.jwt)?),
            AuthMode::Backend => Self::Backend(backend::BackendAuth::from_config(
                &cfg.auth,
                cfg.limits.max_auth_calls_in_flight,
                metrics,
            )?),
        }))
    }

    /// Turns handshake credentials into a principal.
    ///
    /// # Errors
    /// Missing, invalid or rejected credentials; an unreachable backend.
    pub(crate) async fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> Result<Principal, AuthError> {
        match self {
            Self::Jwt(verifier) => {
                let token = credentials
                    .token
                    .as_deref()
                    .ok_or(AuthError::MissingCredentials)?;
                verifier.verify(token)
            }
            Self::Backend(backend) => backend.authenticate(credentials).await,
        }
    }

    /// Whether the session may read a workspace: the principal's list when it has one;
    /// otherwise, in backend mode, the backend's per-workspace answer; otherwise no.
    ///
    /// # Errors
    /// The backend could not be asked.
    pub(crate) async fn can_read(
        &self,
        session: &Session,
        workspace: &WorkspaceId,
    ) -> Result<bool, AuthError> {
        if let Some(allowed) = &session.principal.workspaces {
            return Ok(allowed.contains(workspace));
        }
        match self {
            Self::Jwt(_) => Ok(false),
            Self::Backend(backend) => backend.can_read(&session.credentials, workspace).await,
        }
    }
}
