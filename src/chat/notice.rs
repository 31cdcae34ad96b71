//! [`Notice`]: something that happened in a chat room (a message, a deletion, who is in it),
//! for the room's connections on every node and of every door. It is stored first (the message
//! is in the store before anyone is told), so a notice only carries the live update; it travels
//! between nodes on the cluster's control stream as the command kind `chat`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    protocol::{self, MessageRef, RoomMembers},
    store::Message,
};
use crate::cluster::control::Command;

/// Something that happened in a room, for its connections on every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub(crate) enum Notice {
    /// A new message (`message`).
    Message(Message),
    /// A deleted message (`message_deleted`).
    Deleted(MessageRef),
    /// Who is in the room now (`room_members`).
    Members(RoomMembers),
}

impl Command for Notice {
    const KIND: &'static str = "chat";
}

impl Notice {
    /// The event name Socket.IO sockets receive it as.
    pub(crate) fn event(&self) -> &'static str {
        match self {
            Self::Message(_) => protocol::MESSAGE,
            Self::Deleted(_) => protocol::MESSAGE_DELETED,
            Self::Members(_) => protocol::ROOM_MEMBERS,
        }
    }

    /// The room it is about.
    pub(crate) fn room(&self) -> Uuid {
        match self {
            Self::Message(message) => message.room,
            Self::Deleted(target) => target.room,
            Self::Members(members) => members.room,
        }
    }
}
