//! What the room's sockets are told: deliveries (`message`, `message_deleted`,
//! `room_members`) to this node's sockets in a room, each through
//! [`crate::socketio::slow::SlowPolicy`], and to the other nodes; and presence on disconnect (a
//! clean one leaves at once, a lost connection leaves a ghost for `chat.presence_timeout`).

use socketioxide::{
    extract::SocketRef,
    socket::{DisconnectReason, Sid},
};
use uuid::Uuid;

use super::{
    Chat, cluster, handlers::Ctx, presence::Ghost, protocol::RoomMembers, room::socket_room,
};
use crate::{
    chat::{door::ChatDoor, notice::Notice},
    ids::UserId,
    pipeline::SubscriberId,
    socketio::state::AppState,
    socketio::subscriber::subscriber_id,
    socketio::{Io, slow::SlowPolicy},
};

/// On disconnect: a clean one leaves every room at once; a lost connection leaves ghosts that
/// expire after `chat.presence_timeout`.
pub(super) fn watch_disconnect(ctx: &Ctx) {
    let ctx = ctx.clone();
    ctx.socket
        .clone()
        .on_disconnect(move |socket: SocketRef, reason: DisconnectReason| {
            let ctx = ctx.clone();
            async move {
                let Ok(socket_state) = ctx.socket_state() else {
                    return;
                };
                if let Some(expiry) = socket_state.expiry() {
                    expiry.stop();
                }
                let session = socket_state.session();
                let user = &session.principal.user;
                let rooms: Vec<Uuid> = ctx
                    .joined()
                    .with(|rooms| rooms.drain().map(|(uuid, _)| uuid).collect());
                let clean = matches!(
                    reason,
                    DisconnectReason::ClientNSDisconnect | DisconnectReason::ServerNSDisconnect
                );
                for room in rooms {
                    if clean {
                        let left = ctx
                            .chat
                            .presence
                            .leave(room, user, subscriber_id(socket.id));
                        released(&ctx.state, &ctx.chat, room, user, left).await;
                    } else if let Some(ghost) =
                        ctx.chat
                            .presence
                            .vanish(room, user, subscriber_id(socket.id))
                    {
                        lay_to_rest(&ctx, ghost);
                    }
                }
            }
        });
}

/// Removes a ghost once the presence timeout has passed, and says so if its user is gone.
fn lay_to_rest(ctx: &Ctx, ghost: Ghost) {
    let (state, chat) = (ctx.state.clone(), ctx.chat.clone());
    let timeout = state.cfg.chat.presence_timeout;
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        if let Some((room, members)) = chat.presence.expire(&ghost) {
            released(&state, &chat, room, ghost.user(), Some(members)).await;
        }
    });
}

/// A user left a room on this node (`left` is the local list when that changed it): tell the
/// room, cluster-wide.
pub(super) async fn released(
    state: &AppState,
    chat: &Chat,
    room: Uuid,
    user: &UserId,
    left: Option<Vec<UserId>>,
) {
    if left.is_some() {
        cluster::sync(state, chat, room, user).await;
        let members = cluster::members(state, chat, room).await;
        announce_members(state, room, members, None);
    }
}

/// Sends `room_members` to the room's sockets (here, and on the other nodes).
pub(super) fn announce_members(
    state: &AppState,
    room: Uuid,
    members: Vec<UserId>,
    except: Option<Sid>,
) {
    let notice = Notice::Members(RoomMembers { room, members });
    deliver_here(state, &notice, except);
    if state.cluster.is_some() {
        let state = state.clone();
        tokio::spawn(async move { cluster::tell(&state, &notice).await });
    }
}

/// Delivers to this node's sockets in the room and tells the other nodes.
pub(super) async fn deliver(state: &AppState, notice: Notice, except: Option<Sid>) {
    deliver_here(state, &notice, except);
    cluster::tell(state, &notice).await;
}

/// Delivers a notice to this node's connections in its room, of every door, `except` one.
pub(crate) fn deliver_here(state: &AppState, notice: &Notice, except: Option<Sid>) {
    if let Some(chat) = &state.chat {
        chat.deliver_here(notice, except.map(subscriber_id));
    }
}

/// The chat namespace as a door of the chat: a notice goes to its sockets in the room, each
/// through the slow-consumer policy.
#[derive(Debug)]
pub(super) struct SocketIoChat {
    pub(super) io: Io,
    pub(super) path: String,
    pub(super) slow: SlowPolicy,
}

impl ChatDoor for SocketIoChat {
    fn deliver(&self, notice: &Notice, except: Option<SubscriberId>) {
        let Some(ns) = self.io.of(&self.path) else {
            return;
        };
        let (event, room) = (notice.event(), notice.room());
        for socket in ns.within(socket_room(&room)).sockets() {
            if Some(subscriber_id(socket.id)) == except {
                continue;
            }
            match notice {
                Notice::Message(message) => self.slow.emit(&socket, event, message),
                Notice::Deleted(target) => self.slow.emit(&socket, event, target),
                Notice::Members(members) => self.slow.emit(&socket, event, members),
            };
        }
    }
}
