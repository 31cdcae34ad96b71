//! [`ChatDoor`]: what a front door does for the chat, so that a room's notices reach its
//! connections on every door. The Socket.IO chat namespace is one (`socketio/chat/`); a door
//! attaches itself to the [`super::Chat`] it serves, and every notice delivered on this node
//! (from a connection here, or from another node) goes to each attached door.

use super::notice::Notice;
use crate::pipeline::SubscriberId;

/// A front door's side of the chat.
pub(crate) trait ChatDoor: Send + Sync + std::fmt::Debug {
    /// Delivers a notice to this door's connections in its room on this node, but `except`
    /// (the connection whose call caused it: it learns the outcome from its answer). Never
    /// waits: a connection whose queue is full is the door's to handle.
    fn deliver(&self, notice: &Notice, except: Option<SubscriberId>);
}
