//! The subscriber seam: what the pipeline delivers to, without knowing the transport.
//!
//! A front door (the Socket.IO namespace, the Pydio Cells WebSocket) implements [`Door`], which
//! answers the members of a room and a user's subscribers, and [`Subscriber`] for each of its
//! connections: an id, a bounded outgoing queue the pipeline writes to without waiting
//! ([`Subscriber::send`] says whether the event was queued, the subscriber is gone, or its
//! queue is full), the one policy for a full queue ([`Subscriber::cut_off`]), room membership,
//! the rooms' join points for a recovery, and who the subscriber is: its [`Session`] (user,
//! groups, what it may read) and the workspaces it holds, which access changes and kicks act
//! on (`delivery/access.rs`).
//!
//! What is sent is built once per room of an event ([`Outgoing`]) and handed to every member
//! reached through that room: the data as published (raw JSON), the `meta` already encoded,
//! and the recovery offset. A door encodes its frame from those parts.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{
    auth::Session,
    ids::{UserId, WorkspaceId},
};

/// Identifies one subscriber among those of every door.
///
/// A Socket.IO socket's id is its session id's 16 ASCII bytes; a door of its own numbering
/// sets the high bit, which ASCII never does, so the two never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SubscriberId(u128);

impl SubscriberId {
    /// The id made of 16 bytes.
    pub(crate) const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(bytes))
    }
}

/// What became of one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Queued for the subscriber.
    Done,
    /// The subscriber is gone: nothing more is owed to it.
    Gone,
    /// The subscriber's queue is full.
    Full,
}

/// Second argument of every delivered event.
#[derive(Debug, Serialize)]
pub(crate) struct Meta<'a> {
    /// Event id, as returned to the publisher.
    pub id: &'a str,
    /// The workspace through which the subscriber was reached, or null.
    pub workspace: Option<&'a WorkspaceId>,
    /// Publish time, milliseconds since the epoch.
    pub ts: u64,
    /// The event's offset in the room through which the subscriber was reached.
    pub offset: u64,
    /// That room's epoch.
    pub epoch: &'a str,
}

impl Meta<'_> {
    /// The meta as JSON text: encoded once per room of an event, then copied into each
    /// member's frame.
    pub(crate) fn to_raw(&self) -> Box<RawValue> {
        // invariant: strings, an optional string and numbers; it always serializes.
        serde_json::value::to_raw_value(self).unwrap_or_else(|_| unreachable!())
    }
}

/// One event as sent to the members of one room.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    /// The event id, as returned to the publisher: the same for every room and member, so a
    /// door that renders an event its own way can do it once per event.
    pub id: &'a str,
    /// The event name.
    pub event: &'a str,
    /// The data, as published.
    pub data: &'a RawValue,
    /// The [`Meta`] for this room, encoded.
    pub meta: &'a RawValue,
    /// The node-wide sequence number as the Socket.IO recovery offset, when recovery is on.
    pub offset: Option<&'a str>,
}

/// Payload of `resync`: the position a subscriber asked for cannot be served; here is the
/// room's head to start again from.
#[derive(Debug, Serialize)]
pub(crate) struct Resync<'a> {
    /// The workspace room's workspace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<&'a WorkspaceId>,
    /// The user room's user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a UserId>,
    /// The room's epoch.
    pub epoch: &'a str,
    /// The room's head offset.
    pub offset: u64,
}

/// One connection of a front door, as the pipeline sees it.
pub(crate) trait Subscriber: Send + Sync {
    /// Which subscriber this is.
    fn id(&self) -> SubscriberId;

    /// Queues an event without waiting.
    fn send(&self, outgoing: &Outgoing<'_>) -> Sent;

    /// Queues a `resync` without waiting.
    fn resync(&self, resync: &Resync<'_>) -> Sent;

    /// Ends a subscriber whose queue is full, so its client reconnects and resumes; `why` goes
    /// to the log.
    fn cut_off(&self, why: &'static str);

    /// Puts the subscriber in rooms.
    fn join(&self, rooms: &[String]);

    /// Takes the subscriber out of rooms.
    fn leave(&self, rooms: &[String]);

    /// Where to note when it joined each room, for a recovery of its session; `None` when the
    /// door has no recovery.
    fn room_joins(&self) -> Option<Arc<RoomJoins>>;

    /// Who it is and what it may read; `None` before it has a session (a Cells socket before
    /// its first subscribe).
    fn session(&self) -> Option<Arc<Session>>;

    /// The workspaces it holds: the rooms it was let into after an access check.
    fn workspaces(&self) -> Vec<WorkspaceId>;

    /// Its turn to be changed by the server: resolves once the requests it sent before this
    /// call are done, and its later requests wait until the [`Turn`] is dropped. So a
    /// `register` that raced an access change cannot re-join a workspace just taken away.
    fn turn(&self) -> BoxFuture<'static, Turn>;

    /// Installs `session` in place of its own; called between two deliveries, in its turn.
    /// Its user and group rooms follow the session, the workspaces in `lost` are left, and the
    /// client is told in its door's words.
    fn adopt(&self, session: Arc<Session>, lost: &[WorkspaceId]);

    /// Ends its session for `reason` (its credentials were refused on a check, or a backend
    /// disconnected its user): the client is told, and the connection closed.
    fn end_session(&self, reason: &str);
}

/// Held while the server changes a subscriber (see [`Subscriber::turn`]); dropping it lets the
/// subscriber's own requests go on.
pub(crate) type Turn = Box<dyn Send>;

/// A door's rooms are gone: it is shutting down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the door is closed")]
pub(crate) struct DoorClosed;

/// A front door: answers who is in a room, and which subscribers are a user's.
pub(crate) trait Door: Send + Sync {
    /// Calls `each` for every member of `room`.
    ///
    /// # Errors
    /// [`DoorClosed`] when the door is shutting down.
    fn members(&self, room: &str, each: &mut dyn FnMut(&dyn Subscriber)) -> Result<(), DoorClosed>;

    /// Every subscriber of `user` with a session, for access changes and kicks.
    fn subscribers_of(&self, user: &UserId) -> Vec<Arc<dyn Subscriber>>;
}

/// The rooms a subscriber is in, with the sequence number at which it joined each: a
/// recovered session gets only what happened in a room after it joined.
#[derive(Debug, Default)]
pub(crate) struct RoomJoins(Mutex<HashMap<String, u64>>);

impl RoomJoins {
    pub(crate) fn note(&self, room: &str, seq: u64) {
        lock(&self.0).insert(room.to_owned(), seq);
    }

    /// The sequence number at which the subscriber joined `room` (0: not known).
    pub(crate) fn joined_at(&self, room: &str) -> u64 {
        lock(&self.0).get(room).copied().unwrap_or(0)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
