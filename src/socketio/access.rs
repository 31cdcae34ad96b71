//! Live access changes (Pydio Cells' IDM events), as the `/private` `access` event and
//! `POST /api/v1/access` ask for them: a backend says what a user may now read, and every
//! session of that user follows at once, on every node and every door, without waiting for
//! the browser to reload. The change itself is the pipeline's (`Deliverer::change_access`);
//! here it is sent to the other nodes and to the chat namespace's sockets.

use std::collections::HashSet;

use super::events::{AccessChange, AccessOutcome};
use super::state::AppState;
use crate::{cluster::control, ids::WorkspaceId, pipeline::AccessCounts};

/// Why an access change could not be applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccessError {
    /// `workspaces` omitted while herald cannot ask anyone (JWT mode).
    #[error("`workspaces` is required unless auth.mode is \"backend\"")]
    WorkspacesRequired,
    /// The `/public` namespace is gone (shutting down).
    #[error("delivery is unavailable")]
    Unavailable,
}

/// Applies an access change to every socket of the user, on every node: in cluster mode it is
/// sent to the other nodes first (and refused as unavailable when that fails), then applied
/// here. The outcome counts this node's sockets.
///
/// # Errors
/// [`AccessError`] when the change cannot be applied at all.
pub(crate) async fn change(
    state: &AppState,
    change: AccessChange,
) -> Result<AccessOutcome, AccessError> {
    if change.workspaces.is_none() && !state.auth.can_ask_again() {
        return Err(AccessError::WorkspacesRequired);
    }
    if let Some(redis) = &state.cluster
        && let Err(error) = control::broadcast(redis, &state.node_id, &change).await
    {
        tracing::warn!(%error, "access change not sent to the other nodes");
        return Err(AccessError::Unavailable);
    }
    apply(state, change).await
}

/// Applies an access change to every session of the user on this node.
///
/// # Errors
/// [`AccessError`] when the change cannot be applied at all.
pub(crate) async fn apply(
    state: &AppState,
    change: AccessChange,
) -> Result<AccessOutcome, AccessError> {
    if change.workspaces.is_none() && !state.auth.can_ask_again() {
        return Err(AccessError::WorkspacesRequired);
    }
    // The browsers' namespace is gone only when the node shuts down.
    if state.io.of(&state.cfg.public.path).is_none() {
        return Err(AccessError::Unavailable);
    }
    let allowed: Option<HashSet<WorkspaceId>> =
        change.workspaces.map(|list| list.into_iter().collect());
    super::chat::revoke(state, &change.user, allowed.as_ref()).await;
    let AccessCounts {
        subscribers,
        revoked,
        ended,
    } = state
        .deliverer
        .change_access(&state.auth, &change.user, allowed.as_ref())
        .await;
    let outcome = AccessOutcome {
        ok: true,
        sockets: subscribers,
        revoked,
        disconnected: ended,
    };
    tracing::info!(user = %change.user, sockets = outcome.sockets, revoked = outcome.revoked, "access changed");
    Ok(outcome)
}
