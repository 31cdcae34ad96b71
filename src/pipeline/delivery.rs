//! [`Deliverer`]: logs a stamped event in its target rooms and emits it on `/public` to the
//! union of those rooms, each socket once; and the other side of the seam, which puts a socket
//! in rooms after sending what it missed there ([`Deliverer::join`] for `since`,
//! [`Deliverer::recover`] for Socket.IO connection state recovery).
//!
//! Both take one lock, so no event falls between a replay and the live stream and none is sent
//! twice: an event is either logged before the join (and replayed) or delivered after it (and
//! live). A replay can be longer than a socket's queue, so it is paced by the socket (it waits
//! for room, and a socket that makes no room for `REPLAY_STALL` is cut off as slow), outside
//! the lock; live events for a socket whose replay is under way are kept aside for it, in
//! order, and sent after the replay. Each socket's events leave in offset order.
//!
//! Each socket gets `meta` for the room through which it was reached: workspace rooms first,
//! then user rooms, then groups (a socket in several targeted rooms is reached through the
//! first). Every event also gets a node-wide sequence number, which is the Socket.IO recovery
//! offset (the last, string argument) when recovery is on. Emits go socket by socket so that a
//! socket whose queue is full is known and cut off as a slow consumer instead of silently
//! missing events.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex as SyncMutex},
    time::Duration,
};

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::{SendError, SocketError, extract::SocketRef, socket::Sid};
use tokio::sync::{Mutex, watch};

use super::{PublishError, Stamped};
use crate::{
    history::{Appended, EventLog, HistoryError, Position, Resume},
    ids::{UserId, WorkspaceId},
    metrics::Metrics,
    realtime::{Io, events, rooms, slow::SlowPolicy},
};

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

/// A logged room a socket can join from a position.
#[derive(Debug, Clone, Copy)]
pub enum LoggedRoom<'a> {
    /// A workspace room (`register`).
    Workspace(&'a WorkspaceId),
    /// The socket's own user room (`auth.since.user`).
    User(&'a UserId),
}

impl LoggedRoom<'_> {
    fn name(self) -> String {
        match self {
            Self::Workspace(id) => rooms::workspace_room(id),
            Self::User(id) => rooms::user_room(id),
        }
    }
}

/// How a join went.
#[derive(Debug)]
pub enum Joined {
    /// Joined; the missed events (if a position was given) were sent. The room's head.
    Live {
        /// The room's position, to resume from later.
        head: Position,
        /// How many events were replayed.
        replayed: usize,
    },
    /// Joined, but the position could not be served: `resync` was sent. The room's head.
    Resync(Position),
    /// Not joined: the offset is beyond the head of that epoch.
    Beyond(Position),
    /// The socket's queue stayed full during the replay; it was cut off as slow.
    Slow,
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

/// Events owed to a socket whose replay is under way; sent by [`super::Publisher::finish`].
#[derive(Debug, Default)]
pub struct Owed(Vec<Pending>);

impl Owed {
    /// How many events.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Payload of `resync`.
#[derive(Debug, Serialize)]
struct ResyncPayload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace: Option<&'a WorkspaceId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a UserId>,
    epoch: &'a str,
    offset: u64,
}

/// What the delivery lock guards.
#[derive(Debug, Default)]
struct Order {
    /// The number of the last event delivered here.
    seq: u64,
    /// Sockets whose replay is under way, with the live events kept aside for each.
    replays: HashMap<Sid, Replay>,
}

/// A socket whose live events are kept aside (being admitted, or replaying).
#[derive(Default)]
struct Replay {
    /// The live events kept aside, in order.
    aside: Vec<Pending>,
    /// While the socket is being admitted, the socket and its rooms: socketioxide adds it to
    /// its namespace only after the connect middleware, so room queries do not find it yet.
    admitting: Option<(SocketRef, Vec<String>)>,
}

impl Replay {
    /// Keeps a live event aside, unless `limit` events already are: then the socket is to be
    /// cut off as slow (`false`).
    fn keep_aside(&mut self, limit: usize, pending: impl FnOnce() -> Pending) -> bool {
        if self.aside.len() >= limit {
            return false;
        }
        self.aside.push(pending());
        true
    }
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("aside", &self.aside.len())
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
    /// Most live events kept aside for one replaying socket before it is cut off as slow.
    aside_limit: usize,
    /// Whether Socket.IO connection state recovery is on: events carry the recovery offset as
    /// their last argument, and sockets note when they joined each room.
    recovery_offsets: bool,
    /// Whether the log is shared by several nodes (cluster): deliveries come from the bus.
    shared_log: bool,
    metrics: Metrics,
}

/// How long a replay waits for room in a socket's queue before cutting it off as slow.
const REPLAY_STALL: Duration = Duration::from_secs(10);
/// How often a paced replay looks for room again.
const REPLAY_RETRY: Duration = Duration::from_millis(5);
/// How long a recovery waits for this node to deliver the events a socket already got from
/// another node (cluster mode: each node's bus reader runs at its own pace).
const CATCH_UP: Duration = Duration::from_secs(2);

/// An event owed to one socket, with the meta it is to carry.
#[derive(Debug, Clone)]
struct Pending {
    event: Arc<Stamped>,
    workspace: Option<WorkspaceId>,
    position: Position,
    seq: u64,
}

/// One target room, in delivery order, with its position.
struct Target<'a> {
    room: &'a str,
    workspace: Option<&'a WorkspaceId>,
    position: Position,
}

/// The settings of a [`Deliverer`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeliverySettings {
    /// Most live events kept aside for a replaying socket.
    pub(crate) aside_limit: usize,
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
            aside_limit: settings.aside_limit,
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
        let names = room_names(&stamped);
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
        self.emit(&mut order, &stamped, &names, appended)
    }

    /// Delivers an event that the shared log numbered (cluster mode), unless it was already.
    pub(crate) async fn deliver_appended(&self, stamped: Stamped, appended: Appended) {
        let stamped = Arc::new(stamped);
        let names = room_names(&stamped);
        let mut order = self.order.lock().await;
        if appended.seq <= order.seq || appended.positions.len() != names.len() {
            return;
        }
        if let Err(error) = self.emit(&mut order, &stamped, &names, appended) {
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
        names: &[String],
        appended: Appended,
    ) -> Result<(), PublishError> {
        let Appended { seq, positions } = appended;
        order.seq = seq;
        self.delivered.send_replace(seq);
        let ns = self
            .io
            .of(&*self.public_ns)
            .ok_or(PublishError::Unavailable)?;
        let targets = &stamped.publication.targets;
        let workspaces = targets.workspaces.iter().map(Some);
        let others = std::iter::repeat_n(None, names.len() - targets.workspaces.len());
        let plan = names
            .iter()
            .zip(workspaces.chain(others))
            .zip(positions)
            .map(|((room, workspace), position)| Target {
                room,
                workspace,
                position,
            });

        let data: &RawValue = &stamped.publication.data;
        let event = &stamped.publication.event;
        let offset = self.recovery_offsets.then(|| seq.to_string());
        // Each socket once, through the first targeted room it is in. Sockets are collected
        // room by room and not every leave takes this lock (socketioxide empties a departing
        // socket's rooms itself), so the rule is kept by socket id: excluding the sockets of
        // the earlier rooms would miss one that left them in between.
        let mut served: HashSet<Sid> = HashSet::new();
        let replaying = !order.replays.is_empty();
        let admitting = order.replays.values().any(|r| r.admitting.is_some());
        let dedupe = names.len() > 1 || admitting;
        let mut slow_sockets = Vec::new();
        let mut delivered = 0;
        for target in plan {
            let meta = Meta {
                id: &stamped.id,
                workspace: target.workspace,
                ts: stamped.ts,
                offset: target.position.offset,
                epoch: target.position.epoch.as_str(),
            }
            .to_raw();
            let meta: &RawValue = &meta;
            let pending = || Pending {
                event: stamped.clone(),
                workspace: target.workspace.cloned(),
                position: target.position.clone(),
                seq,
            };
            let sockets = ns.clone().to(target.room.to_owned()).sockets();
            for socket in sockets {
                if dedupe && !served.insert(socket.id) {
                    continue;
                }
                // No lookup per member while no socket is replaying (the usual case).
                let replay = replaying
                    .then(|| order.replays.get_mut(&socket.id))
                    .flatten();
                if let Some(replay) = replay {
                    if !replay.keep_aside(self.aside_limit, pending) {
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
                for (sid, replay) in &mut order.replays {
                    let Some((socket, rooms)) = &replay.admitting else {
                        continue;
                    };
                    if !rooms.iter().any(|room| room == target.room) || !served.insert(*sid) {
                        continue;
                    }
                    let socket = socket.clone();
                    if !replay.keep_aside(self.aside_limit, pending) {
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

    /// Puts a socket that is being admitted in rooms (no replay), noting when it joined them.
    /// Until it is connected, socketioxide refuses emits to it, so live events for it are kept
    /// aside until [`Self::finish`] (from the connect handler).
    pub(crate) async fn enter(&self, socket: &SocketRef, names: Vec<String>) {
        let mut order = self.order.lock().await;
        for name in &names {
            self.note_join(socket, name, order.seq);
        }
        order.replays.entry(socket.id).or_default().admitting =
            Some((socket.clone(), names.clone()));
        socket.join(names);
    }

    /// Takes `socket` out of `rooms` between two deliveries: whatever the socket is told
    /// after this returns (an `unregister` ack, `access_revoked`) comes after every event it
    /// got through those rooms, and nothing from them follows.
    pub(crate) async fn leave(&self, socket: &SocketRef, rooms: Vec<String>) {
        let _order = self.order.lock().await;
        socket.leave(rooms);
    }

    /// Forgets a socket that went away (what was kept aside for it).
    pub(crate) async fn forget(&self, sid: Sid) {
        self.order.lock().await.replays.remove(&sid);
    }

    /// Puts `socket` in `room`. With a position, first sends what it missed there (in order,
    /// with the meta they were delivered with, paced by the socket) or, when that cannot be
    /// served, `resync`.
    ///
    /// # Errors
    /// The log cannot be read.
    pub(crate) async fn join(
        &self,
        socket: &SocketRef,
        room: LoggedRoom<'_>,
        since: Option<&Position>,
    ) -> Result<Joined, HistoryError> {
        let name = room.name();
        let workspace = match room {
            LoggedRoom::Workspace(id) => Some(id.clone()),
            LoggedRoom::User(_) => None,
        };
        let (events, head) = {
            let mut order = self.order.lock().await;
            let Some(since) = since else {
                let head = self.log.head(&name, order.seq).await?;
                self.note_join(socket, &name, order.seq);
                socket.join(name);
                return Ok(Joined::Live { head, replayed: 0 });
            };
            match self.log.resume(&name, since, order.seq).await? {
                Resume::Beyond(head) => return Ok(Joined::Beyond(head)),
                Resume::Resync(head) => {
                    self.note_join(socket, &name, order.seq);
                    socket.join(name);
                    let (workspace, user) = match room {
                        LoggedRoom::Workspace(id) => (Some(id), None),
                        LoggedRoom::User(id) => (None, Some(id)),
                    };
                    let payload = ResyncPayload {
                        workspace,
                        user,
                        epoch: head.epoch.as_str(),
                        offset: head.offset,
                    };
                    self.metrics.resyncs.inc();
                    if let Sent::Full = send(socket, events::RESYNC, &payload) {
                        self.cut_off(socket, "queue full on resync");
                        return Ok(Joined::Slow);
                    }
                    return Ok(Joined::Resync(head));
                }
                Resume::Replay { events, head } => {
                    self.note_join(socket, &name, order.seq);
                    socket.join(name);
                    if !events.is_empty() {
                        // From now on, live events for this socket wait for the replay.
                        order.replays.entry(socket.id).or_default();
                    }
                    (events, head)
                }
            }
        };
        let owed = Owed(
            events
                .into_iter()
                .map(|logged| Pending {
                    event: logged.event,
                    workspace: workspace.clone(),
                    position: Position {
                        offset: logged.offset,
                        epoch: head.epoch.clone(),
                    },
                    seq: logged.seq,
                })
                .collect(),
        );
        let replayed = owed.len();
        if self.finish(socket, owed).await {
            Ok(Joined::Live { head, replayed })
        } else {
            Ok(Joined::Slow)
        }
    }

    /// Socket.IO recovery, first half: when the log still holds every event after the given
    /// sequence number in each room, puts `socket` back in those rooms and returns what it
    /// missed (live events for it are kept aside from now on); `None` when it cannot be served.
    /// The socket need not be connected yet: [`Self::finish`] sends once it is.
    ///
    /// `seen` is the last event number the socket got. When it got it from another node that
    /// is ahead of this one, this waits (up to [`CATCH_UP`]) until this node has delivered it
    /// too: otherwise those events would reach the socket a second time, live.
    ///
    /// # Errors
    /// The log cannot be read.
    pub(crate) async fn recover(
        &self,
        socket: &SocketRef,
        rooms_after: &[(String, u64)],
        seen: u64,
    ) -> Result<Option<Owed>, HistoryError> {
        let mut order = self.order.lock().await;
        if seen > order.seq {
            drop(order);
            let mut delivered = self.delivered.subscribe();
            let caught_up = delivered.wait_for(|at| *at >= seen);
            if !matches!(tokio::time::timeout(CATCH_UP, caught_up).await, Ok(Ok(_))) {
                tracing::debug!(sid = %socket.id, seen, "not recovered: this node is behind the offset");
                return Ok(None);
            }
            order = self.order.lock().await;
        }
        let Some(missed) = self.log.missed(rooms_after, order.seq).await? else {
            return Ok(None);
        };
        let joins = joins_of(socket);
        for (room, after) in rooms_after {
            joins.note(room, (*after).min(order.seq));
        }
        let names: Vec<String> = rooms_after.iter().map(|(room, _)| room.clone()).collect();
        order.replays.entry(socket.id).or_default().admitting =
            Some((socket.clone(), names.clone()));
        socket.join(names);
        Ok(Some(Owed(
            missed
                .into_iter()
                .map(|missed| Pending {
                    workspace: rooms::workspace_of(&missed.room),
                    event: missed.event,
                    position: missed.position,
                    seq: missed.seq,
                })
                .collect(),
        )))
    }

    /// Sends what a socket is owed, paced by it, then the live events kept aside meanwhile,
    /// and returns it to the live stream. `false` when it was cut off as slow.
    pub(crate) async fn finish(&self, socket: &SocketRef, owed: Owed) -> bool {
        let mut owed = owed.0;
        // First the replay, then live events kept aside.
        let mut replaying = true;
        loop {
            for pending in &owed {
                match self.send_paced(socket, pending).await {
                    Sent::Done if replaying => {
                        self.metrics.replayed.inc();
                    }
                    Sent::Done => {
                        self.metrics.delivered.inc();
                    }
                    Sent::Gone => {
                        self.order.lock().await.replays.remove(&socket.id);
                        return true;
                    }
                    Sent::Full => {
                        self.order.lock().await.replays.remove(&socket.id);
                        self.cut_off(socket, "no room for the replay");
                        return false;
                    }
                }
            }
            let mut order = self.order.lock().await;
            let aside = order
                .replays
                .get_mut(&socket.id)
                .map(|replay| {
                    replay.admitting = None;
                    std::mem::take(&mut replay.aside)
                })
                .unwrap_or_default();
            if aside.is_empty() {
                order.replays.remove(&socket.id);
                return true;
            }
            owed = aside;
            replaying = false;
        }
    }

    /// Sends one owed event, waiting up to [`REPLAY_STALL`] for room in the socket's queue.
    async fn send_paced(&self, socket: &SocketRef, pending: &Pending) -> Sent {
        let deadline = tokio::time::Instant::now() + REPLAY_STALL;
        loop {
            match self.send_pending(socket, pending) {
                Sent::Full if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(REPLAY_RETRY).await;
                }
                sent => return sent,
            }
        }
    }

    fn send_pending(&self, socket: &SocketRef, pending: &Pending) -> Sent {
        let publication = &pending.event.publication;
        let data: &RawValue = &publication.data;
        let meta = Meta {
            id: &pending.event.id,
            workspace: pending.workspace.as_ref(),
            ts: pending.event.ts,
            offset: pending.position.offset,
            epoch: pending.position.epoch.as_str(),
        };
        if self.recovery_offsets {
            let offset = pending.seq.to_string();
            send(socket, &publication.event, &(data, &meta, offset))
        } else {
            send(socket, &publication.event, &(data, &meta))
        }
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

/// The rooms of an event, in delivery order: workspaces, users, groups.
fn room_names(stamped: &Stamped) -> Vec<String> {
    let targets = &stamped.publication.targets;
    targets
        .workspaces
        .iter()
        .map(rooms::workspace_room)
        .chain(targets.users.iter().map(rooms::user_room))
        .chain(targets.groups.iter().map(rooms::group_room))
        .collect()
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
