//! Socket.IO connection state recovery on `/public` (see [`crate::recovery`]): at the
//! handshake, claiming a saved session named by `auth.pid` and finding what it missed since
//! `auth.offset`; at disconnect, saving the session when the transport dropped.

use std::sync::Arc;

use futures_util::StreamExt;

use socketioxide::{extract::SocketRef, socket::DisconnectReason};

use super::state::AppState;
use super::{socket_state::SocketState, subscriber::SocketSubscriber};
use crate::rooms;
use crate::{
    auth::{Authenticator, Session},
    metrics::Metrics,
    pipeline::{Backlog, RoomJoins},
    recovery::{Recovery, Saved},
};

/// Longest pid accepted from a client (herald's are 32 hex digits).
const MAX_PID_BYTES: usize = 64;

/// The socket's private session id, announced in its CONNECT answer.
#[derive(Debug)]
pub(super) struct Pid(pub(super) String);

/// What a recovered socket is owed, sent by the connect handler.
#[derive(Debug)]
pub(super) struct Recovered(pub(super) std::sync::Mutex<Option<Backlog>>);

/// The handshake's `auth.pid` and `auth.offset`, when both are usable.
fn claimed(auth: Option<&serde_json::Value>) -> Option<(&str, u64)> {
    let auth = auth?;
    let pid = auth.get("pid")?.as_str()?;
    let offset = auth.get("offset")?.as_str()?.parse().ok()?;
    (pid.len() <= MAX_PID_BYTES).then_some((pid, offset))
}

/// Gives the socket its pid: the claimed one when its session is recovered (the socket is
/// then back in its rooms, and what it missed is kept for the connect handler), a new one
/// otherwise. Returns whether it was recovered. Call after authentication, before any join.
pub(super) async fn admit(
    state: &AppState,
    socket: &SocketRef,
    session: &Session,
    auth: Option<&serde_json::Value>,
) -> bool {
    let recovery = &state.recovery;
    let claim = claimed(auth);
    let recovered = match claim {
        Some((pid, offset)) => match recovery.claim(pid, &session.principal.user).await {
            Ok(Some(saved)) => restore(state, socket, session, &saved, offset)
                .await
                .map(|owed| (pid.to_owned(), owed)),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(sid = %socket.id, %error, "session not recovered: a new one starts");
                None
            }
        },
        None => None,
    };
    if claim.is_some() {
        let outcome = if recovered.is_some() {
            "recovered"
        } else {
            "new"
        };
        Metrics::count(&state.metrics.recoveries, "public", outcome);
    }
    let (pid, was_recovered) = match recovered {
        Some((pid, owed)) => {
            tracing::debug!(sid = %socket.id, missed = owed.len(), "session recovered");
            socket
                .extensions
                .insert(Arc::new(Recovered(std::sync::Mutex::new(Some(owed)))));
            (pid, true)
        }
        None => (Recovery::new_pid(), false),
    };
    recovery.announce(socket.id.as_str(), &pid);
    socket.extensions.insert(Arc::new(Pid(pid)));
    was_recovered
}

/// Puts the socket back in the saved session's rooms that it may still read, plus its current
/// groups, and returns what it missed there; `None` when the log cannot serve it all.
async fn restore(
    state: &AppState,
    socket: &SocketRef,
    session: &Session,
    saved: &Saved,
    offset: u64,
) -> Option<Backlog> {
    let principal = &session.principal;
    let own = rooms::user_room(&principal.user);
    let groups: Vec<String> = principal.groups.iter().map(rooms::group_room).collect();
    let mut rooms_after: Vec<(String, u64)> = Vec::new();
    for (room, joined) in &saved.rooms {
        let after = offset.max(*joined);
        let keep = if let Some(workspace) = rooms::workspace_of(room) {
            may_read(&state.auth, session, &workspace).await
        } else {
            *room == own || groups.contains(room)
        };
        if keep {
            rooms_after.push((room.clone(), after));
        }
    }
    // Workspace rooms first: an event in several of them keeps the meta of the first.
    rooms_after.sort_by_key(|(room, _)| rooms::workspace_of(room).is_none());
    for group in groups {
        if !rooms_after.iter().any(|(room, _)| *room == group) {
            // A group joined while away: only what happens from now on.
            rooms_after.push((group, u64::MAX));
        }
    }
    if !rooms_after.iter().any(|(room, _)| *room == own) {
        rooms_after.push((own, offset));
    }
    let subscriber = SocketSubscriber::shared(socket.clone(), state.slow.clone());
    match state
        .deliverer
        .recover(&subscriber, &rooms_after, offset)
        .await
    {
        Ok(owed) => owed,
        Err(error) => {
            tracing::warn!(sid = %socket.id, %error, "session not recovered: event log unavailable");
            None
        }
    }
}

/// Whether a saved workspace may still be read: the principal's list, else the backend.
async fn may_read(
    auth: &Authenticator,
    session: &Session,
    workspace: &crate::ids::WorkspaceId,
) -> bool {
    auth.can_read(session, workspace).await.unwrap_or(false)
}

/// Saves the session of a socket whose transport dropped (not one that left or was sent
/// away), for `recovery.max_disconnection`.
pub(super) async fn save(recovery: &Recovery, socket: &SocketRef, reason: DisconnectReason) {
    let recoverable = matches!(
        reason,
        DisconnectReason::TransportClose
            | DisconnectReason::TransportError
            | DisconnectReason::HeartbeatTimeout
            | DisconnectReason::ClosingServer
    );
    let (Some(pid), Some(socket_state)) =
        (socket.extensions.get::<Arc<Pid>>(), SocketState::of(socket))
    else {
        return;
    };
    let session = socket_state.session();
    if !recoverable {
        return;
    }
    let joins = socket.extensions.get::<Arc<RoomJoins>>();
    let rooms = socket
        .rooms()
        .into_iter()
        .map(|room| {
            let joined = joins.as_ref().map_or(0, |joins| joins.joined_at(&room));
            (room.to_string(), joined)
        })
        .collect();
    let user = session.principal.user.clone();
    if let Err(error) = recovery.save(&pid.0, user, rooms).await {
        tracing::warn!(sid = %socket.id, %error, "session not saved: it cannot be recovered");
    }
}

/// Most sessions saved at once at shutdown.
const SAVES_AT_ONCE: usize = 64;

/// Shutdown, when sessions outlive the process (cluster mode): saves every browser socket's
/// session so that its client recovers on another node. Closing the server does not run the
/// sockets' disconnect handlers (socketioxide drops its namespaces first), hence this.
pub(super) async fn save_all(state: &AppState) {
    if !state.cfg.recovery.enabled || !state.recovery.outlives_process() {
        return;
    }
    // A client reconnecting here while this node closes would take its session and lose it.
    state.recovery.close();
    let Some(ns) = state.io.of(&state.cfg.public.path) else {
        return;
    };
    let recovery = &state.recovery;
    futures_util::stream::iter(ns.sockets())
        .for_each_concurrent(SAVES_AT_ONCE, |socket| async move {
            save(recovery, &socket, DisconnectReason::ClosingServer).await;
        })
        .await;
}
