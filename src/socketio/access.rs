//! Live access changes (Pydio Cells' IDM events): a backend says what a user may now read, and
//! every socket of that user follows at once, without waiting for the browser to reload.
//!
//! Each socket's change waits for its turn in the socket's sequencer (`sequencer.rs`), behind any
//! `register` still being checked, so a register that raced the change cannot re-join a
//! workspace that was just taken away. Registered workspaces no longer allowed are left and
//! announced with `access_revoked`.

use std::{collections::HashSet, sync::Arc};

use socketioxide::extract::SocketRef;

use super::state::AppState;
use super::{
    events::{self, AccessChange, AccessOutcome, AccessRevoked, SessionInvalid},
    socket_state::SocketState,
    subscriber::SocketSubscriber,
};
use crate::{
    auth::{AuthError, Principal, Session},
    cluster::control,
    ids::WorkspaceId,
    rooms,
};

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

/// Applies an access change to every socket of the user on this node.
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
    let ns = state
        .io
        .of(&state.cfg.public.path)
        .ok_or(AccessError::Unavailable)?;
    let allowed: Option<HashSet<WorkspaceId>> =
        change.workspaces.map(|list| list.into_iter().collect());
    super::chat::revoke(state, &change.user, allowed.as_ref()).await;
    // The other doors' sessions of the user (Pydio Cells: told to reload their workspaces).
    state
        .deliverer
        .access_changed(&change.user, allowed.as_ref())
        .await;
    let sockets = ns.within(rooms::user_room(&change.user)).sockets();
    let mut outcome = AccessOutcome {
        ok: true,
        sockets: sockets.len(),
        ..AccessOutcome::default()
    };
    for socket in sockets {
        match update_socket(state, &socket, allowed.as_ref()).await {
            Some(revoked) => outcome.revoked += revoked,
            None => outcome.disconnected += 1,
        }
    }
    tracing::info!(user = %change.user, sockets = outcome.sockets, revoked = outcome.revoked, "access changed");
    Ok(outcome)
}

/// Updates one socket; the number of workspaces it lost, or `None` when it was disconnected
/// because its credentials are no longer accepted.
async fn update_socket(
    state: &AppState,
    socket: &SocketRef,
    allowed: Option<&HashSet<WorkspaceId>>,
) -> Option<usize> {
    let Some(socket_state) = SocketState::of(socket) else {
        return Some(0);
    };
    let _turn = socket_state.ticket().turn().await;
    // Read in turn: a `refresh` before this one may have replaced it.
    let session = socket_state.session();
    let principal = match allowed {
        Some(list) => Principal {
            workspaces: Some(list.clone()),
            ..session.principal.clone()
        },
        None => match state.auth.ask_again(&session).await {
            Ok(Some(principal)) if principal.user == session.principal.user => principal,
            Ok(None) => return Some(0),
            Ok(Some(_)) | Err(AuthError::Rejected | AuthError::MissingCredentials) => {
                end_session(state, socket, "access_revoked");
                return None;
            }
            Err(error) => {
                // Backend down: keep the current access rather than cut everyone off.
                tracing::warn!(sid = %socket.id, %error, "access refresh: backend unavailable");
                return Some(0);
            }
        },
    };
    Some(adopt(state, socket, &socket_state, principal).await)
}

/// Installs a new principal on a socket (the caller holds the socket's turn): group rooms
/// follow its groups, and registered workspaces it may no longer read are left and announced
/// with `access_revoked`. Returns how many were revoked.
pub(crate) async fn adopt(
    state: &AppState,
    socket: &SocketRef,
    socket_state: &SocketState,
    principal: Principal,
) -> usize {
    let old = socket_state.session();
    let (old_groups, new_groups): (HashSet<_>, HashSet<_>) = (
        old.principal.groups.iter().map(rooms::group_room).collect(),
        principal.groups.iter().map(rooms::group_room).collect(),
    );
    let left: Vec<String> = old_groups.difference(&new_groups).cloned().collect();
    let subscriber = SocketSubscriber::new(socket.clone(), &state.slow);
    state.deliverer.leave(&subscriber, &left).await;
    socket.join(
        new_groups
            .difference(&old_groups)
            .cloned()
            .collect::<Vec<_>>(),
    );
    let session = Arc::new(Session {
        principal,
        credentials: old.credentials.clone(),
    });
    socket_state.replace_session(session.clone());

    let mut revoked = 0;
    for room in socket.rooms() {
        let Some(workspace) = rooms::workspace_of(&room) else {
            continue;
        };
        if state.auth.may_keep(&session, &workspace).await {
            continue;
        }
        // Between two deliveries, so nothing from the workspace follows `access_revoked`.
        state
            .deliverer
            .leave(&subscriber, &[room.into_owned()])
            .await;
        revoked += 1;
        state.slow.emit(
            socket,
            events::ACCESS_REVOKED,
            &AccessRevoked {
                workspace: &workspace,
            },
        );
    }
    revoked
}

fn end_session(state: &AppState, socket: &SocketRef, reason: &str) {
    if state
        .slow
        .emit(socket, events::SESSION_INVALID, &SessionInvalid { reason })
    {
        state.slow.disconnect(socket);
    }
}
