//! The `[limits]` as `/public` sockets meet them (the pure parts are in [`crate::limits`]):
//! the event rate of each socket, the workspaces it may hold, the sockets of its user, and the
//! end of its handshake, which frees a handshake slot.

use std::time::Instant;

use socketioxide::extract::SocketRef;

use super::state::AppState;
use super::{
    events::{self, ErrorAck, ErrorCode, SessionInvalid},
    reply::Reply,
    socket_state::SocketState,
};
use crate::{
    ids::{UserId, WorkspaceId},
    limits::{Bucket, Limit, Verdict},
    rooms,
};

/// The reason `session_invalid` gives to a socket evicted by a newer one of its user.
pub(super) const TOO_MANY_SOCKETS: &str = "too_many_sockets";

pub(super) use crate::limits::handshake_done;

/// Makes room for a newly admitted socket among its user's sockets (the oldest beyond
/// `limits.max_sockets_per_user` are told and disconnected), and returns its full event bucket.
pub(super) fn admitted(state: &AppState, socket: &SocketRef, user: &UserId) -> Bucket {
    let limits = &state.cfg.limits;
    let bucket = Bucket::new(limits, Instant::now());
    let evicted = state
        .user_sockets
        .add(user, socket.id, limits.max_sockets_per_user);
    if evicted.is_empty() {
        return bucket;
    }
    let Some(ns) = state.io.of(&state.cfg.public.path) else {
        return bucket;
    };
    for sid in evicted {
        // Gone already (or still in its own handshake): nothing to end.
        let Some(old) = ns.get_socket(sid) else {
            continue;
        };
        state.metrics.refused(Limit::SocketsPerUser);
        tracing::info!(%user, sid = %sid, newer = %socket.id, "oldest socket of the user disconnected: limits.max_sockets_per_user");
        let reason = SessionInvalid {
            reason: TOO_MANY_SOCKETS,
        };
        if state.slow.emit(&old, events::SESSION_INVALID, &reason) {
            state.slow.disconnect(&old);
        }
    }
    bucket
}

/// The socket disconnected: its user holds one socket less.
pub(super) fn forget(state: &AppState, socket: &SocketRef, user: &UserId) {
    state.user_sockets.remove(user, socket.id);
}

/// Takes a token for an incoming event; without one, the error reply to answer with (and,
/// when the socket keeps flooding, a disconnect).
pub(super) fn throttle(state: &AppState, socket: &SocketRef) -> Result<(), Reply> {
    let Some(socket_state) = SocketState::of(socket) else {
        return Ok(());
    };
    let Some(bucket) = socket_state.bucket() else {
        return Ok(());
    };
    match bucket.take(Instant::now()) {
        Verdict::Pass => return Ok(()),
        Verdict::Refuse => state.metrics.refused(Limit::RateLimited),
        Verdict::Disconnect => {
            state.metrics.refused(Limit::RateDisconnect);
            tracing::warn!(
                sid = %socket.id,
                after = state.cfg.limits.rate_limited_disconnect_after,
                "socket disconnected: events over limits.events_per_second, refused in a row"
            );
            state.slow.disconnect(socket);
        }
    }
    Err(Reply::error(&ErrorAck::with_message(
        ErrorCode::RateLimited,
        format!(
            "more than {} events per second; slow down",
            state.cfg.limits.events_per_second
        ),
    )))
}

/// Whether the socket may register one more workspace (one it holds already is fine).
pub(super) fn room_for_workspace(
    state: &AppState,
    socket: &SocketRef,
    workspace: &WorkspaceId,
) -> Result<(), Reply> {
    let max = state.cfg.limits.max_workspaces_per_socket;
    let wanted = rooms::workspace_room(workspace);
    let held = socket.rooms();
    if held.iter().any(|room| *room == wanted) {
        return Ok(());
    }
    let count = held
        .iter()
        .filter(|room| rooms::is_workspace_room(room.as_ref()))
        .count();
    if count < max {
        return Ok(());
    }
    state.metrics.refused(Limit::WorkspacesPerSocket);
    Err(Reply::error(&ErrorAck::with_message(
        ErrorCode::TooManyWorkspaces,
        format!("registered to {max} workspaces already: unregister one first"),
    )))
}
