//! The per-room event log: every delivered event gets, in each logged room, the next `offset`
//! of that room and the room's `epoch`, and stays readable for `history.size` events and
//! `history.ttl`, so a client that comes back can ask for what it missed (`since`).
//!
//! An epoch names one life of a room's log: when a log is lost (a restart without persistence,
//! a room forgotten after it emptied), its room comes back under a new epoch and offsets start
//! over, so a client holding the old epoch is told to `resync` instead of getting a wrong replay.
//!
//! [`EventLog`] is the seam for storage: [`MemoryLog`] on a single node; Redis Streams in
//! cluster mode. Callers serialize appends with deliveries (the pipeline holds one lock around
//! both), so offsets reach each socket in order.

use std::{fmt, sync::Arc};

use futures_util::future::BoxFuture;

use crate::event::Stamped;

mod memory;

pub(crate) use memory::MemoryLog;

/// Longest epoch accepted from a client, in bytes (herald's own are 16).
pub(crate) const MAX_EPOCH_BYTES: usize = 64;

/// A place in a room's log: the offset of its latest event (0: none yet) in a given epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Offset of the latest event; the next one gets `offset + 1`.
    pub offset: u64,
    /// The life of the log this offset belongs to.
    pub epoch: Epoch,
}

/// An epoch: a short opaque string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Epoch(Arc<str>);

impl Epoch {
    /// A fresh random epoch.
    pub fn generate() -> Self {
        Self(format!("{:016x}", rand::random::<u64>()).into())
    }

    /// A client's epoch, if it is short enough to be one.
    pub fn parse(raw: &str) -> Option<Self> {
        (!raw.is_empty() && raw.len() <= MAX_EPOCH_BYTES).then(|| Self(raw.into()))
    }

    /// The epoch as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One logged event of a room.
#[derive(Debug, Clone)]
pub(crate) struct Logged {
    /// Its offset in the room.
    pub offset: u64,
    /// Its node-wide sequence number (the Socket.IO recovery offset).
    pub seq: u64,
    /// The event.
    pub event: Arc<Stamped>,
}

/// An event a recovering socket missed, found in one of its rooms.
#[derive(Debug, Clone)]
pub(crate) struct Missed {
    /// The room it was found in (the first of the socket's rooms that has it).
    pub room: String,
    /// Its position in that room.
    pub position: Position,
    /// Its node-wide sequence number.
    pub seq: u64,
    /// The event.
    pub event: Arc<Stamped>,
}

/// Missed events found room by room, put in sequence order with each event once: an event in
/// several rooms keeps the first room it was found in (the sort is stable).
pub(crate) fn in_sequence(mut missed: Vec<Missed>) -> Vec<Missed> {
    missed.sort_by_key(|m| m.seq);
    missed.dedup_by_key(|m| m.seq);
    missed
}

/// What a client that names a position gets.
#[derive(Debug)]
pub(crate) enum Resume {
    /// Every event after the position, oldest first (possibly none), then the head.
    Replay {
        /// The missed events.
        events: Vec<Logged>,
        /// The room's position after them.
        head: Position,
    },
    /// The position cannot be served (another epoch, or older than the log keeps): the client
    /// must reload from the application. The room's current position.
    Resync(Position),
    /// The offset is beyond the head of the same epoch: the client's state is corrupt.
    Beyond(Position),
}

/// What appending an event gave it.
#[derive(Debug, Clone)]
pub(crate) struct Appended {
    /// Its node-wide (cluster-wide in cluster mode) sequence number.
    pub seq: u64,
    /// Its position in each room it was appended to, in the order given.
    pub positions: Vec<Position>,
}

/// Why the log could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The storage is unreachable.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
}

/// Storage of the per-room logs.
///
/// Reads take `upto`: the last sequence number delivered by this node. In cluster mode the log
/// can hold events that this node has not delivered yet; they are left out of reads (they
/// arrive live), so a replay and the live stream meet without a gap or an overlap.
pub(crate) trait EventLog: Send + Sync + fmt::Debug {
    /// Appends `event` to each of `rooms`, numbering it; returns its number and its position
    /// in each room, in order.
    fn append<'a>(
        &'a self,
        rooms: &'a [String],
        event: &'a Arc<Stamped>,
    ) -> BoxFuture<'a, Result<Appended, HistoryError>>;

    /// The room's position counting events numbered up to `upto` (starting a log for the room
    /// when it has none).
    fn head<'a>(
        &'a self,
        room: &'a str,
        upto: u64,
    ) -> BoxFuture<'a, Result<Position, HistoryError>>;

    /// What a client at `since` missed in `room`, up to event number `upto`.
    fn resume<'a>(
        &'a self,
        room: &'a str,
        since: &'a Position,
        upto: u64,
    ) -> BoxFuture<'a, Result<Resume, HistoryError>>;

    /// Every event numbered after a given number per room and up to `upto`, in number order,
    /// each once (found in the first room listed that has it); `None` when some of them are no
    /// longer held.
    fn missed<'a>(
        &'a self,
        rooms: &'a [(String, u64)],
        upto: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<Missed>>, HistoryError>>;
}
