//! What an auth mode can do for a session after the handshake, asked of the [`Authenticator`]
//! rather than learned by matching on its mode: whether it keeps the credentials (to forward
//! them on later checks), whether a token can be refreshed, whether the backend can be asked
//! again when access changes.

use super::{AuthError, Authenticator, Credentials, Principal, Session};
use crate::ids::WorkspaceId;

/// Why a token refresh was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RefreshError {
    /// The auth mode has no token to refresh.
    #[error("refresh applies to auth.mode = \"jwt\"")]
    NotApplicable,
    /// The token verifies, but for another user.
    #[error("the token is another user's")]
    OtherUser,
    /// The token does not verify.
    #[error(transparent)]
    Invalid(AuthError),
}

impl Authenticator {
    /// Authenticates handshake credentials into a session. The credentials are kept only by
    /// a mode that forwards them on later checks (backend).
    ///
    /// # Errors
    /// Missing, invalid or rejected credentials; an unreachable backend.
    pub(crate) async fn open_session(
        &self,
        credentials: Credentials,
    ) -> Result<Session, AuthError> {
        let principal = self.authenticate(&credentials).await?;
        let credentials = match self {
            Self::Backend(_) => credentials,
            Self::Jwt(_) => Credentials::default(),
        };
        Ok(Session {
            principal,
            credentials,
        })
    }

    /// The principal of a newer token for the session's user.
    ///
    /// # Errors
    /// [`RefreshError`]: the mode has no tokens, the token is invalid or another user's.
    pub(crate) fn refresh(
        &self,
        session: &Session,
        token: &str,
    ) -> Result<Principal, RefreshError> {
        let Self::Jwt(verifier) = self else {
            return Err(RefreshError::NotApplicable);
        };
        match verifier.verify(token) {
            Ok(principal) if principal.user == session.principal.user => Ok(principal),
            Ok(_) => Err(RefreshError::OtherUser),
            Err(error) => Err(RefreshError::Invalid(error)),
        }
    }

    /// Whether the mode can be asked again what a session may read (backend): an access
    /// change without a workspace list needs it.
    pub(crate) fn can_ask_again(&self) -> bool {
        matches!(self, Self::Backend(_))
    }

    /// Asks again who the session is and what it may read, past any cached answer; `None`
    /// when the mode cannot be asked again (see [`Self::can_ask_again`]).
    ///
    /// # Errors
    /// As [`Self::authenticate`].
    pub(crate) async fn ask_again(
        &self,
        session: &Session,
    ) -> Result<Option<Principal>, AuthError> {
        match self {
            Self::Backend(backend) => backend.reauthenticate(&session.credentials).await.map(Some),
            Self::Jwt(_) => Ok(None),
        }
    }

    /// Whether the session may read a file node: asked of the backend in backend mode; in JWT
    /// mode only the root nodes of the session's Cells workspaces are known.
    ///
    /// # Errors
    /// The backend could not be asked.
    pub(crate) async fn can_read_node(
        &self,
        session: &Session,
        node: &str,
    ) -> Result<bool, AuthError> {
        match self {
            Self::Backend(backend) => backend.can_read_node(&session.credentials, node).await,
            Self::Jwt(_) => Ok(session.principal.cells.as_ref().is_some_and(|cells| {
                (cells.workspace_roots.iter())
                    .any(|workspace| workspace.roots.iter().any(|root| root.uuid == node))
            })),
        }
    }

    /// Forgets what the mode cached about `user` (backend answers), so that credentials they
    /// present after being disconnected by a backend are checked again.
    pub(crate) async fn forget_user(&self, user: &crate::ids::UserId) {
        if let Self::Backend(backend) = self {
            backend.forget_user(user).await;
        }
    }

    /// Whether a registered workspace may stay registered after an access change: the
    /// principal's list when it has one, else the backend asked again; an unreachable backend
    /// keeps it (it was allowed a moment ago).
    pub(crate) async fn may_keep(&self, session: &Session, workspace: &WorkspaceId) -> bool {
        if let Some(list) = &session.principal.workspaces {
            return list.contains(workspace);
        }
        match self {
            Self::Backend(backend) => backend
                .can_read_fresh(&session.credentials, workspace)
                .await
                .unwrap_or(true),
            Self::Jwt(_) => false,
        }
    }
}
