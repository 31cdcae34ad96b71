//! [`Deliverer`]: logs a stamped event in its target rooms and emits it on `/public` to the
//! union of those rooms, each socket once. The replaying side, which puts a socket in rooms
//! after sending what it missed there, is [`replay`]; the rooms of an event and their order are
//! a [`RoomPlan`].
//!
//! Both sides take one lock, so no event falls between a replay and the live stream and none is
//! sent twice: an event is either logged before the join (and replayed) or delivered after it
//! (and live). A replay can be longer than a socket's queue, so it is paced by the socket (it
//! waits for room, and a socket that makes no room in time is cut off as slow), outside the
//! lock; live events for a socket whose replay is under way are held for it, in order, and sent
//! after the replay. Each socket's events leave in offset order.
//!
//! Each socket gets `meta` for the room through which it was reached (the first room of the
//! plan it is in). Every event also gets a node-wide sequence number, which is the Socket.IO
//! recovery offset (the last, string argument) when recovery is on. Emits go socket by socket
//! so that a socket whose queue is full is known and cut off as a slow consumer instead of
//! silently missing events.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex as SyncMutex},
};

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::{SendError, SocketError, extract::SocketRef, socket::Sid};
use tokio::sync::{Mutex, watch};

use super::{PublishError, Stamped, room_plan::RoomPlan};
use crate::{
    history::{Appended, EventLog, HistoryError, Position},
    ids::WorkspaceId,
    metrics::Metrics,
    realtime::{Io, slow::SlowPolicy},
};

mod replay;

pub use replay::{Backlog, Joined, LoggedRoom};

/// Second argument of every delivered event.
#[derive(Debug, Serialize)]
pub struct Meta<'a> {
    /// Event id, as returned to the publisher.
    pub id: &'a str,
    /// The workspace through which the socket was reached, or null.
    pub workspace: Option<&'a WorkspaceId>,
    /// Publish time, milliseconds since the epoch.
    pub ts: u64,
    /// The event's offset in the room through which the socket was reached.
    pub offset: u64,
    /// That room's epoch.
    pub epoch: &'a str,
}

impl Meta<'_> {
    /// The meta as JSON text: serialized once per room of an event, then copied into each
    /// member's packet.
    fn to_raw(&self) -> Box<RawValue> {
        // invariant: strings, an optional string and numbers; it always serializes.
        serde_json::value::to_raw_value(self).unwrap_or_else(|_| unreachable!())
    }
}

/// The rooms a socket is in, with the sequence number at which it joined each: a recovered
/// session gets only what happened in a room after it joined.
#[derive(Debug, Default)]
pub struct RoomJoins(SyncMutex<HashMap<String, u64>>);

impl RoomJoins {
    fn note(&self, room: &str, seq: u64) {
        lock(&self.0).insert(room.to_owned(), seq);
    }

    /// The sequence number at which the socket joined `room` (0: not known).
    pub fn joined_at(&self, room: &str) -> u64 {
        lock(&self.0).get(room).copied().unwrap_or(0)
    }
}

fn lock<T>(mutex: &SyncMutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
/// What the delivery lock guards.
#[derive(Debug, Default)]
struct Order {
    /// The number of the last event delivered here.
    seq: u64,
    /// Sockets not yet live (being admitted, or replaying), with the live events held for
    /// each.
    held: HashMap<Sid, Held>,
}

/// The live events held for a socket that is not live yet (being admitted, or replaying).
#[derive(Default)]
struct Held {
    /// The live events held, in order.
    events: Vec<Pending>,
    /// While the socket is being admitted, the socket and its rooms: socketioxide adds it to
    /// its namespace only after the connect middleware, so room queries do not find it yet.
    admitting: Option<(SocketRef, Vec<String>)>,
}

impl Held {
    /// Holds a live event, unless `limit` events already are: then the socket is to be cut
    /// off as slow (`false`).
    fn hold(&mut self, limit: usize, pending: impl FnOnce() -> Pending) -> bool {
        if self.events.len() >= limit {
            return false;
        }
        self.events.push(pending());
        true
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("events", &self.events.len())
            .field("admitting", &self.admitting.is_some())
            .finish()
    }
}

/// Logs and emits events on the browsers' namespace; cheap to clone.
#[derive(Clone)]
pub(crate) struct Deliverer {
    io: Io,
    public_ns: Arc<str>,
    log: Arc<dyn EventLog>,
    slow: SlowPolicy,
    order: Arc<Mutex<Order>>,
    /// The number of the last event delivered here, for those waiting for this node to catch
    /// up with the cluster (a socket recovering from another node).
    delivered: Arc<watch::Sender<u64>>,
    /// Most live events held for one socket that is not live yet before it is cut off as slow.
    hold_limit: usize,
    /// Whether Socket.IO connection state recovery is on: events carry the recovery offset as
    /// their last argument, and sockets note when they joined each room.
    recovery_offsets: bool,
    /// Whether the log is shared by several nodes (cluster): deliveries come from the bus.
    shared_log: bool,
    metrics: Metrics,
}

/// An event owed to one socket, with the meta it is to carry.
#[derive(Debug, Clone)]
struct Pending {
    event: Arc<Stamped>,
    workspace: Option<WorkspaceId>,
    position: Position,
    seq: u64,
}

/// The settings of a [`Deliverer`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeliverySettings {
    /// Most live events held for a socket that is not live yet.
    pub(crate) hold_limit: usize,
    /// Whether events carry the recovery offset.
    pub(crate) recovery_offsets: bool,
    /// Whether the log is shared by several nodes (cluster): deliveries come from the bus.
    pub(crate) shared_log: bool,
}

impl Deliverer {
    pub(crate) fn new(
        io: Io,
        public_ns: &str,
        log: Arc<dyn EventLog>,
        slow: SlowPolicy,
        settings: DeliverySettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            metrics,
            io,
            public_ns: public_ns.into(),
            log,
            slow,
            order: Arc::new(Mutex::new(Order::default())),
            delivered: Arc::new(watch::Sender::new(0)),
            hold_limit: settings.hold_limit,
            recovery_offsets: settings.recovery_offsets,
            shared_log: settings.shared_log,
        }
    }

    /// Logs the event in its target rooms and delivers it to them, each socket once. In
    /// cluster mode (the log is shared) only logs it: every node's bus reader brings it back,
    /// in the cluster's order, to [`Self::deliver_appended`].
    ///
    /// # Errors
    /// [`PublishError::Unavailable`] when the namespace is gone (shutting down) or the log
    /// cannot be written.
    #[tracing::instrument(level = "debug", skip_all, fields(event = %stamped.publication.event, id = %stamped.id))]
    pub(crate) async fn deliver(&self, stamped: Stamped) -> Result<(), PublishError> {
        let stamped = Arc::new(stamped);
        let names = RoomPlan::of(&stamped.publication.targets).names();
        let append = |error: HistoryError| {
            tracing::error!(%error, "event not logged");
            PublishError::Unavailable
        };
        if self.shared_log {
            self.log.append(&names, &stamped).await.map_err(append)?;
            return Ok(());
        }
        let mut order = self.order.lock().await;
        let appended = self.log.append(&names, &stamped).await.map_err(append)?;
        self.emit(&mut order, &stamped, appended)
    }

    /// Delivers an event that the shared log numbered (cluster mode), unless it was already.
    pub(crate) async fn deliver_appended(&self, stamped: Stamped, appended: Appended) {
        let stamped = Arc::new(stamped);
        let mut order = self.order.lock().await;
        if appended.seq <= order.seq {
            return;
        }
        if let Err(error) = self.emit(&mut order, &stamped, appended) {
            tracing::debug!(%error, "cluster event not delivered here");
        }
    }

    /// Sets the number of the last event delivered here (a bus reader starting).
    pub(crate) async fn start_at(&self, seq: u64) {
        self.order.lock().await.seq = seq;
        self.delivered.send_replace(seq);
    }

    /// Emits a logged event to the sockets of its rooms, each once.
    fn emit(
        &self,
        order: &mut Order,
        stamped: &Arc<Stamped>,
        appended: Appended,
    ) -> Result<(), PublishError> {
        let Appended { seq, positions } = appended;
        let plan = RoomPlan::of(&stamped.publication.targets);
        let Some(plan) = plan.with_positions(positions) else {
            tracing::error!(
                seq,
                "the log numbered the event in other rooms; not delivered"
            );
            return Err(PublishError::Unavailable);
        };
        order.seq = seq;
        self.delivered.send_replace(seq);
        let ns = self
            .io
            .of(&*self.public_ns)
            .ok_or(PublishError::Unavailable)?;

        let data: &RawValue = &stamped.publication.data;
        let event = &stamped.publication.event;
        let offset = self.recovery_offsets.then(|| seq.to_string());
        // Each socket once, through the first targeted room it is in. Sockets are collected
        // room by room and not every leave takes this lock (socketioxide empties a departing
        // socket's rooms itself), so the rule is kept by socket id: excluding the sockets of
        // the earlier rooms would miss one that left them in between.
        let mut served: HashSet<Sid> = HashSet::new();
        let holding = !order.held.is_empty();
        let admitting = order.held.values().any(|held| held.admitting.is_some());
        let dedupe = plan.len() > 1 || admitting;
        let mut slow_sockets = Vec::new();
        let mut delivered = 0;
        for (room, position) in plan {
            let meta = Meta {
                id: &stamped.id,
                workspace: room.workspace,
                ts: stamped.ts,
                offset: position.offset,
                epoch: position.epoch.as_str(),
            }
            .to_raw();
            let meta: &RawValue = &meta;
            let pending = || Pending {
                event: stamped.clone(),
                workspace: room.workspace.cloned(),
                position: position.clone(),
                seq,
            };
            let sockets = ns.clone().to(room.name.clone()).sockets();
            for socket in sockets {
                if dedupe && !served.insert(socket.id) {
                    continue;
                }
                // No lookup per member while every socket is live (the usual case).
                let held = holding.then(|| order.held.get_mut(&socket.id)).flatten();
                if let Some(held) = held {
                    if !held.hold(self.hold_limit, pending) {
                        slow_sockets.push(socket);
                    }
                    continue;
                }
                let sent = match &offset {
                    Some(offset) => send(&socket, event, &(data, meta, offset)),
                    None => send(&socket, event, &(data, meta)),
                };
                match sent {
                    Sent::Done => delivered += 1,
                    Sent::Full => slow_sockets.push(socket),
                    Sent::Gone => {}
                }
            }
            if admitting {
                for (sid, held) in &mut order.held {
                    let Some((socket, rooms)) = &held.admitting else {
                        continue;
                    };
                    if !rooms.contains(&room.name) || !served.insert(*sid) {
                        continue;
                    }
                    let socket = socket.clone();
                    if !held.hold(self.hold_limit, pending) {
                        slow_sockets.push(socket);
                    }
                }
            }
        }
        self.metrics.delivered.inc_by(delivered);
        self.metrics
            .publish_to_emit
            .observe(stamped.accepted.elapsed().as_secs_f64());
        for socket in slow_sockets {
            self.cut_off(&socket, "queue full during delivery");
        }
        Ok(())
    }

    /// The current position of a logged room.
    pub(crate) async fn head(&self, room: LoggedRoom<'_>) -> Result<Position, HistoryError> {
        let upto = self.order.lock().await.seq;
        self.log.head(&room.name(), upto).await
    }
    /// Takes `socket` out of `rooms` between two deliveries: whatever the socket is told
    /// after this returns (an `unregister` ack, `access_revoked`) comes after every event it
    /// got through those rooms, and nothing from them follows.
    pub(crate) async fn leave(&self, socket: &SocketRef, rooms: Vec<String>) {
        let _order = self.order.lock().await;
        socket.leave(rooms);
    }
}

impl Deliverer {
    fn cut_off(&self, socket: &SocketRef, why: &'static str) {
        self.slow.cut_off(socket, why);
    }

    /// Notes when `socket` joined `room`, for a recovery of its session. Only recovery reads
    /// it: with recovery off, sockets carry no [`RoomJoins`] (a map and a copy of each room
    /// name per socket).
    fn note_join(&self, socket: &SocketRef, room: &str, seq: u64) {
        if self.recovery_offsets {
            joins_of(socket).note(room, seq);
        }
    }
}

/// The socket's [`RoomJoins`], created on first use.
fn joins_of(socket: &SocketRef) -> Arc<RoomJoins> {
    if let Some(joins) = socket.extensions.get::<Arc<RoomJoins>>() {
        return joins;
    }
    let joins = Arc::new(RoomJoins::default());
    socket.extensions.insert(joins.clone());
    joins
}

/// What became of one emit.
enum Sent {
    /// Queued for the socket.
    Done,
    /// The socket is gone: nothing more is owed to it.
    Gone,
    /// The socket's queue is full.
    Full,
}

fn send<T: ?Sized + Serialize>(socket: &SocketRef, event: &str, data: &T) -> Sent {
    match socket.emit(event, data) {
        Ok(()) => Sent::Done,
        Err(SendError::Socket(SocketError::Closed)) => Sent::Gone,
        Err(SendError::Socket(SocketError::InternalChannelFull)) => Sent::Full,
        Err(error) => {
            // Encoding a RawValue and a struct of strings and numbers cannot fail.
            tracing::error!(sid = %socket.id, %error, event, "event not encoded");
            Sent::Done
        }
    }
}
