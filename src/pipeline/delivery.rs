//! [`Deliverer`]: logs a stamped event in its target rooms and sends it to the union of those
//! rooms' subscribers ([`Door::members`]), each once. The replaying side, which puts a
//! subscriber in rooms after sending what it missed there, is [`replay`]; the rooms of an event
//! and their order are a [`RoomPlan`]. What a backend changes for a user (access, kicks) is
//! applied to the user's subscribers in [`access`].
//!
//! Both sides take one lock, so no event falls between a replay and the live stream and none is
//! sent twice: an event is either logged before the join (and replayed) or delivered after it
//! (and live). A replay can be longer than a subscriber's queue, so it is paced by the
//! subscriber (it waits for room, and one that makes no room in time is cut off as slow),
//! outside the lock; live events for a subscriber whose replay is under way are held for it, in
//! order, and sent after the replay. Each subscriber's events leave in offset order.
//!
//! Each subscriber gets `meta` for the room through which it was reached (the first room of the
//! plan it is in). Every event also gets a node-wide sequence number, which is the Socket.IO
//! recovery offset (the last, string argument) when recovery is on. Sends go member by member
//! so that a subscriber whose queue is full is known and cut off as a slow consumer instead of
//! silently missing events.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use tokio::sync::{Mutex, watch};

use super::{
    room_plan::RoomPlan,
    subscriber::{Door, Meta, Outgoing, Sent, Subscriber, SubscriberId},
};
use crate::{
    event::{PublishError, Stamped},
    history::{Appended, EventLog, HistoryError, Position},
    ids::WorkspaceId,
    metrics::Metrics,
};

mod access;
mod replay;

pub(crate) use access::AccessCounts;
pub(crate) use replay::{Backlog, Joined, LoggedRoom};

/// What the delivery lock guards.
#[derive(Debug, Default)]
struct Order {
    /// The number of the last event delivered here.
    seq: u64,
    /// Subscribers not yet live (being admitted, or replaying), with the live events held for
    /// each.
    held: HashMap<SubscriberId, Held>,
}

/// The live events held for a subscriber that is not live yet (being admitted, or replaying).
#[derive(Default)]
struct Held {
    /// The live events held, in order.
    events: Vec<Pending>,
    /// While the subscriber is being admitted, the subscriber and its rooms: a door may not
    /// list it among its rooms' members yet (socketioxide adds a socket to its namespace only
    /// after the connect middleware).
    admitting: Option<(Arc<dyn Subscriber>, Vec<String>)>,
}

impl Held {
    /// Holds a live event, unless `limit` events already are: then the subscriber is to be
    /// cut off as slow (`false`).
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

/// Logs events and sends them to the members of their rooms, and puts subscribers in rooms
/// between two deliveries; cheap to clone.
#[derive(Clone)]
pub(crate) struct Deliverer {
    doors: Arc<[Arc<dyn Door>]>,
    log: Arc<dyn EventLog>,
    order: Arc<Mutex<Order>>,
    /// The number of the last event delivered here, for those waiting for this node to catch
    /// up with the cluster (a subscriber recovering from another node).
    delivered: Arc<watch::Sender<u64>>,
    /// Most live events held for one subscriber that is not live yet before it is cut off as
    /// slow.
    hold_limit: usize,
    /// Whether Socket.IO connection state recovery is on: events carry the recovery offset as
    /// their last argument, and subscribers note when they joined each room.
    recovery_offsets: bool,
    /// Whether the log is shared by several nodes (cluster): deliveries come from the bus.
    shared_log: bool,
    metrics: Metrics,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer").finish_non_exhaustive()
    }
}

/// An event owed to one subscriber, with the meta it is to carry.
#[derive(Debug, Clone)]
struct Pending {
    event: Arc<Stamped>,
    workspace: Option<WorkspaceId>,
    position: Position,
    seq: u64,
}

impl Pending {
    fn meta(&self) -> Meta<'_> {
        Meta {
            id: &self.event.id,
            workspace: self.workspace.as_ref(),
            ts: self.event.ts,
            offset: self.position.offset,
            epoch: self.position.epoch.as_str(),
        }
    }
}

/// The settings of a [`Deliverer`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeliverySettings {
    /// Most live events held for a subscriber that is not live yet.
    pub(crate) hold_limit: usize,
    /// Whether events carry the recovery offset.
    pub(crate) recovery_offsets: bool,
    /// Whether the log is shared by several nodes (cluster): deliveries come from the bus.
    pub(crate) shared_log: bool,
}

impl Deliverer {
    /// A deliverer sending to the members of `doors`' rooms.
    pub(crate) fn new(
        doors: Vec<Arc<dyn Door>>,
        log: Arc<dyn EventLog>,
        settings: DeliverySettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            metrics,
            doors: doors.into(),
            log,
            order: Arc::new(Mutex::new(Order::default())),
            delivered: Arc::new(watch::Sender::new(0)),
            hold_limit: settings.hold_limit,
            recovery_offsets: settings.recovery_offsets,
            shared_log: settings.shared_log,
        }
    }

    /// Logs the event in its target rooms and delivers it to them, each subscriber once. In
    /// cluster mode (the log is shared) only logs it: every node's bus reader brings it back,
    /// in the cluster's order, to [`Self::deliver_appended`].
    ///
    /// # Errors
    /// [`PublishError::Unavailable`] when the doors are closed (shutting down) or the log
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

    /// Sends a logged event to the members of its rooms, each once.
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

        let offset = self.recovery_offsets.then(|| seq.to_string());
        // Each subscriber once, through the first targeted room it is in. Members are listed
        // room by room and not every leave takes this lock (socketioxide empties a departing
        // socket's rooms itself), so the rule is kept by id: excluding the members of the
        // earlier rooms would miss one that left them in between.
        let mut served: HashSet<SubscriberId> = HashSet::new();
        let holding = !order.held.is_empty();
        let admitting = order.held.values().any(|held| held.admitting.is_some());
        let dedupe = plan.len() > 1 || admitting;
        let mut delivered = 0;
        // Unavailable only when every door said it is closed.
        let mut open = plan.is_empty() || self.doors.is_empty();
        for (room, position) in plan {
            let meta = Meta {
                id: &stamped.id,
                workspace: room.workspace,
                ts: stamped.ts,
                offset: position.offset,
                epoch: position.epoch.as_str(),
            }
            .to_raw();
            let outgoing = Outgoing {
                id: &stamped.id,
                event: &stamped.publication.event,
                data: &stamped.publication.data,
                meta: &meta,
                offset: offset.as_deref(),
            };
            let pending = || Pending {
                event: stamped.clone(),
                workspace: room.workspace.cloned(),
                position: position.clone(),
                seq,
            };
            let mut each = |member: &dyn Subscriber| {
                let id = member.id();
                if dedupe && !served.insert(id) {
                    return;
                }
                // No lookup per member while every subscriber is live (the usual case).
                let held = holding.then(|| order.held.get_mut(&id)).flatten();
                if let Some(held) = held {
                    if !held.hold(self.hold_limit, pending) {
                        member.cut_off("queue full during delivery");
                    }
                    return;
                }
                match member.send(&outgoing) {
                    Sent::Done => delivered += 1,
                    Sent::Full => member.cut_off("queue full during delivery"),
                    Sent::Gone => {}
                }
            };
            for door in self.doors.iter() {
                open |= door.members(&room.name, &mut each).is_ok();
            }
            if admitting {
                for (id, held) in &mut order.held {
                    let Some((subscriber, rooms)) = &held.admitting else {
                        continue;
                    };
                    if !rooms.contains(&room.name) || !served.insert(*id) {
                        continue;
                    }
                    let subscriber = subscriber.clone();
                    if !held.hold(self.hold_limit, pending) {
                        subscriber.cut_off("queue full during delivery");
                    }
                }
            }
        }
        self.metrics.delivered.inc_by(delivered);
        self.metrics
            .publish_to_emit
            .observe(stamped.accepted.elapsed().as_secs_f64());
        if open {
            Ok(())
        } else {
            Err(PublishError::Unavailable)
        }
    }

    /// The current position of a logged room.
    pub(crate) async fn head(&self, room: LoggedRoom<'_>) -> Result<Position, HistoryError> {
        let upto = self.order.lock().await.seq;
        self.log.head(&room.name(), upto).await
    }

    /// Takes `subscriber` out of `rooms` between two deliveries: whatever it is told after
    /// this returns (an `unregister` ack, `access_revoked`) comes after every event it got
    /// through those rooms, and nothing from them follows.
    pub(crate) async fn leave(&self, subscriber: &dyn Subscriber, rooms: &[String]) {
        let _order = self.order.lock().await;
        subscriber.leave(rooms);
    }

    /// Moves `subscriber` out of `leave` and into `join` between two deliveries, calling
    /// `between` in the middle: an event reaches it either before (through the rooms it
    /// leaves, as what it was) or after (through the rooms it joins, as what it became).
    pub(crate) async fn rejoin(
        &self,
        subscriber: &dyn Subscriber,
        leave: &[String],
        join: &[String],
        between: impl FnOnce(),
    ) {
        let _order = self.order.lock().await;
        subscriber.leave(leave);
        between();
        subscriber.join(join);
    }

    /// Notes when `subscriber` joined `room`, for a recovery of its session. Only recovery
    /// reads it: with recovery off, nothing is noted (a map and a copy of each room name per
    /// subscriber).
    fn note_join(&self, subscriber: &dyn Subscriber, room: &str, seq: u64) {
        if self.recovery_offsets
            && let Some(joins) = subscriber.room_joins()
        {
            joins.note(room, seq);
        }
    }

    /// Sends one owed event to `subscriber`.
    fn send_pending(&self, subscriber: &dyn Subscriber, pending: &Pending) -> Sent {
        let publication = &pending.event.publication;
        let meta = pending.meta().to_raw();
        let offset = self.recovery_offsets.then(|| pending.seq.to_string());
        subscriber.send(&Outgoing {
            id: &pending.event.id,
            event: &publication.event,
            data: &publication.data,
            meta: &meta,
            offset: offset.as_deref(),
        })
    }
}

#[cfg(test)]
mod tests;
