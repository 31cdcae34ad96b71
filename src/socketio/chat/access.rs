//! Access in the chat: who may join a room, and what happens to joined rooms when a user's
//! access changes (a backend's `access` change, a `refresh` with a new token): workspace and
//! node rooms of workspaces no longer readable are left, each announced with `room_revoked`.

use std::{collections::HashSet, sync::Arc};

use serde_json::Value;
use uuid::Uuid;

use super::{
    broadcast::released,
    handlers::Ctx,
    protocol::{self, ChatError, RoomRevoked},
    room::{Room, RoomKind, socket_room},
};
use crate::{
    auth::{Authenticator, RefreshError, Session},
    ids::{UserId, WorkspaceId},
    rooms,
    socketio::socket_state::SocketState,
    socketio::state::AppState,
};

/// Workspace and node rooms: read access to the workspace; users rooms: being listed.
pub(super) async fn check_access(
    auth: &Authenticator,
    session: &Session,
    room: &Room,
) -> Result<(), ChatError> {
    match (room.kind, &room.workspace) {
        (RoomKind::Workspace | RoomKind::Node, Some(workspace)) => {
            match auth.can_read(session, workspace).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(ChatError::Forbidden("no access to the room's workspace")),
                Err(error) => {
                    tracing::warn!(%error, "chat join: access check unavailable");
                    Err(ChatError::Unavailable)
                }
            }
        }
        (RoomKind::Users, _) if room.users.contains(&session.principal.user) => Ok(()),
        _ => Err(ChatError::Forbidden(
            "only the listed users may join this room",
        )),
    }
}

/// `refresh {"token"}` (JWT mode): a new token for the same user moves the expiry; joined
/// workspace and node rooms it no longer allows are left with `room_revoked`.
pub(super) async fn on_refresh(ctx: Ctx, value: Value) -> Result<Value, ChatError> {
    let token = value
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| ChatError::BadRequest("expected {\"token\": \"<jwt>\"}".into()))?;
    let socket_state = ctx.socket_state()?;
    let session = socket_state.session();
    let principal = match ctx.state.auth.refresh(&session, token) {
        Ok(principal) => principal,
        Err(refusal @ RefreshError::NotApplicable) => {
            return Err(ChatError::BadRequest(refusal.to_string()));
        }
        Err(RefreshError::OtherUser) => {
            return Err(ChatError::Forbidden("the token is another user's"));
        }
        Err(RefreshError::Invalid(error)) => {
            tracing::debug!(sid = %ctx.socket.id, %error, "chat refresh refused");
            return Err(ChatError::Forbidden("the token does not verify"));
        }
    };
    let exp = principal.expires_at;
    let session = Arc::new(Session {
        principal,
        credentials: session.credentials.clone(),
    });
    socket_state.replace_session(session.clone());
    if let (Some(expiry), Some(exp)) = (socket_state.expiry(), exp) {
        expiry.extend(exp);
    }
    let revoked = recheck(&ctx, &session).await;
    Ok(serde_json::json!({"ok": true, "exp": exp, "revoked": revoked}))
}

/// Access to workspaces changed for `user` (`POST /api/v1/access`, `access` on `/private`):
/// each of the user's chat sockets takes the new list (or, without one in backend mode,
/// re-asks the backend) and leaves the workspace and node rooms it may no longer read.
pub(crate) async fn revoke(
    state: &AppState,
    user: &UserId,
    allowed: Option<&HashSet<WorkspaceId>>,
) {
    let (Some(chat), Some(ns)) = (state.chat.clone(), state.io.of(&state.cfg.chat.path)) else {
        return;
    };
    for socket in ns.within(rooms::user_room(user)).sockets() {
        let Some(socket_state) = SocketState::of(&socket) else {
            continue;
        };
        let _turn = socket_state.ticket().turn().await;
        // Read in turn: a `refresh` before this one may have replaced it.
        let session = socket_state.session();
        let session = match allowed {
            Some(list) => {
                let mut principal = session.principal.clone();
                principal.workspaces = Some(list.clone());
                let session = Arc::new(Session {
                    principal,
                    credentials: session.credentials.clone(),
                });
                socket_state.replace_session(session.clone());
                session
            }
            None => session,
        };
        let ctx = Ctx {
            state: state.clone(),
            chat: chat.clone(),
            socket,
        };
        recheck(&ctx, &session).await;
    }
}

/// Leaves the joined workspace and node rooms `session` may no longer read; how many.
async fn recheck(ctx: &Ctx, session: &Session) -> usize {
    let joined = ctx.joined();
    let watched: Vec<(Uuid, WorkspaceId)> = joined.with(|rooms| {
        rooms
            .values()
            .filter_map(|room| Some((room.uuid, room.workspace.clone()?)))
            .collect()
    });
    let mut revoked = 0;
    for (room, workspace) in watched {
        if ctx.state.auth.may_keep(session, &workspace).await {
            continue;
        }
        if joined.with(|rooms| rooms.remove(&room)).is_none() {
            continue;
        }
        revoked += 1;
        ctx.socket.leave(socket_room(&room));
        let left = ctx.chat.presence.leave(
            room,
            &session.principal.user,
            crate::socketio::subscriber::subscriber_id(ctx.socket.id),
        );
        released(&ctx.state, &ctx.chat, room, &session.principal.user, left).await;
        let reason = "access_revoked";
        ctx.state.slow.emit(
            &ctx.socket,
            protocol::ROOM_REVOKED,
            &RoomRevoked { room, reason },
        );
    }
    revoked
}
