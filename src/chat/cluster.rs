//! Cluster mode: what one node tells the others about the chat. Messages are stored (in Redis)
//! before anyone is told, so a notice only has to reach the sockets: it travels on the
//! cluster's control stream ([`crate::cluster::control`]) as a [`Notice`], and each other node
//! delivers it to its own sockets in the room. On a single node these are no-ops.
//!
//! Presence is per node ([`super::presence`]); `members` is this node's view. A notice lost
//! while Redis is away costs a live update only: the message is in `history`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Chat, protocol, protocol::MessageRef, protocol::RoomMembers, store::Message};
use crate::{
    cluster::control::{self, Command},
    ids::UserId,
    state::AppState,
};

/// Something that happened in a room, for its sockets on every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Notice {
    /// A new message (`message`).
    Message(Message),
    /// A deleted message (`message_deleted`).
    Deleted(MessageRef),
    /// Who is in the room now (`room_members`).
    Members(RoomMembers),
}

impl Notice {
    /// The event name its sockets receive.
    pub fn event(&self) -> &'static str {
        match self {
            Self::Message(_) => protocol::MESSAGE,
            Self::Deleted(_) => protocol::MESSAGE_DELETED,
            Self::Members(_) => protocol::ROOM_MEMBERS,
        }
    }

    /// The room it is about.
    pub fn room(&self) -> Uuid {
        match self {
            Self::Message(message) => message.room,
            Self::Deleted(target) => target.room,
            Self::Members(members) => members.room,
        }
    }
}

/// Tells the other nodes (cluster mode); a failure is logged: the notice is a live update of
/// something already stored.
pub(crate) async fn tell(state: &AppState, notice: &Notice) {
    let Some(redis) = &state.cluster else {
        return;
    };
    let command = Command::Chat(notice.clone());
    if let Err(error) = control::broadcast(redis, &state.node_id, &command).await {
        tracing::warn!(%error, room = %notice.room(), "chat notice not sent to the other nodes");
    }
}

/// [`tell`] without waiting (from disconnect paths).
pub(crate) fn spawn_tell(state: &AppState, notice: Notice) {
    if state.cluster.is_none() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move { tell(&state, &notice).await });
}

/// A notice from another node: deliver it to this node's sockets.
pub(crate) fn apply(state: &AppState, notice: &Notice) {
    super::handlers::deliver_here(state, notice, None);
}

/// The room's members as this node knows them.
pub(crate) async fn members(_state: &AppState, chat: &Chat, room: Uuid) -> Vec<UserId> {
    chat.presence.members(&room)
}
