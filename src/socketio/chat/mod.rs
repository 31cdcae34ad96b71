//! The chat's namespace (`chat.path`, default `/chat`): how browsers reach the chat
//! ([`crate::chat`]) over Socket.IO.
//!
//! - `handlers.rs`: the namespace: handshake (the same as `/public`) and calls;
//! - `access.rs`: who may join, and leaving rooms when access ends;
//! - `broadcast.rs`: what the room's sockets are told, and presence on disconnect;
//! - `cluster.rs`: in cluster mode, what one node tells the others (messages, deletions,
//!   presence) over the cluster's control stream, and presence across nodes in Redis.

use crate::chat::{Chat, now_ms, presence, protocol, room, store};

mod access;
mod broadcast;
pub(crate) mod cluster;
mod handlers;

pub(crate) use access::revoke;
pub(crate) use cluster::spawn_presence;
pub(crate) use handlers::register;
