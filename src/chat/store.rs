//! [`ChatStore`]: where rooms and messages are kept. One trait, two backends: SQLite on a
//! single node (`sqlite.rs`), Redis in cluster mode (`redis.rs`). Handlers hold an
//! `Arc<dyn ChatStore>` and never know which.

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::room::Room;
use crate::ids::UserId;

/// A stored chat message, as sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Set by the server.
    pub uuid: Uuid,
    /// The room it was posted to.
    pub room: Uuid,
    /// The authenticated user of the posting socket.
    pub author: UserId,
    /// The text, control characters stripped.
    pub text: String,
    /// When it was stored, milliseconds since the Unix epoch.
    pub ts: i64,
}

/// A page of a room's messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Page {
    /// Oldest first.
    pub messages: Vec<Message>,
    /// Whether older messages exist.
    pub more: bool,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deleted {
    /// The message is gone.
    Done,
    /// No such message in the room.
    NotFound,
    /// The message belongs to someone else; it stays.
    NotAuthor,
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Redis failed or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The database thread is gone (shutting down).
    #[error("the chat store is closed")]
    Closed,
    /// `before` names no message of the room.
    #[error("`before` is not a message of this room")]
    UnknownBefore,
    /// A stored value could not be read back.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The database file could not be prepared.
    #[error("cannot open the chat database: {0}")]
    Open(String),
}

/// Rooms and messages, persisted.
pub(crate) trait ChatStore: Send + Sync + std::fmt::Debug {
    /// Stores `room` unless a room with its uuid exists; returns the stored room (the first
    /// opener's label and creation time win).
    fn open_room<'a>(&'a self, room: &'a Room) -> BoxFuture<'a, Result<Room, StoreError>>;

    /// Appends a message to its room.
    fn post<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Up to `limit` messages of `room` older than `before` (or the latest), oldest first.
    fn history<'a>(
        &'a self,
        room: &'a Uuid,
        before: Option<&'a Uuid>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, StoreError>>;

    /// Deletes a message of `room` if `author` wrote it.
    fn delete<'a>(
        &'a self,
        room: &'a Uuid,
        message: &'a Uuid,
        author: &'a UserId,
    ) -> BoxFuture<'a, Result<Deleted, StoreError>>;
}
