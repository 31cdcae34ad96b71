//! The replaying side of delivery: a subscriber put in rooms after it is sent what it missed
//! there ([`Deliverer::join`] for `since`, [`Deliverer::recover`] for Socket.IO connection
//! state recovery), and a subscriber being admitted, whose live events are held until it is
//! connected ([`Deliverer::admit`]). [`Deliverer::go_live`] sends a subscriber its [`Backlog`]
//! paced by the subscriber, then the live events held for it meanwhile, in order; then it takes
//! live events like every other subscriber.

use std::{sync::Arc, time::Duration};

use super::{Deliverer, Pending};
use crate::{
    history::{HistoryError, Position, Resume},
    ids::{UserId, WorkspaceId},
    pipeline::subscriber::{Resync, Sent, Subscriber, SubscriberId},
    rooms,
};

/// A logged room a subscriber can join from a position.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LoggedRoom<'a> {
    /// A workspace room (`register`).
    Workspace(&'a WorkspaceId),
    /// The subscriber's own user room (`auth.since.user`).
    User(&'a UserId),
}

impl LoggedRoom<'_> {
    pub(super) fn name(self) -> String {
        match self {
            Self::Workspace(id) => rooms::workspace_room(id),
            Self::User(id) => rooms::user_room(id),
        }
    }
}

/// How a join went.
#[derive(Debug)]
pub(crate) enum Joined {
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
    /// The subscriber's queue stayed full during the replay; it was cut off as slow.
    Slow,
}

/// What a subscriber missed, sent to it before it goes live: by `Deliverer::go_live`.
#[derive(Debug, Default)]
pub(crate) struct Backlog(pub(super) Vec<Pending>);

impl Backlog {
    /// How many events.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// How long a replay waits for room in a subscriber's queue before cutting it off as slow.
const REPLAY_STALL: Duration = Duration::from_secs(10);
/// How often a paced replay looks for room again.
const REPLAY_RETRY: Duration = Duration::from_millis(5);
/// How long a recovery waits for this node to deliver the events a subscriber already got from
/// another node (cluster mode: each node's bus reader runs at its own pace).
const CATCH_UP: Duration = Duration::from_secs(2);

impl Deliverer {
    /// Puts a subscriber that is being admitted in rooms (no replay), noting when it joined
    /// them. Until it is connected, its door may refuse sends to it, so live events for it are
    /// kept until [`Self::go_live`] (once it is connected).
    pub(crate) async fn admit(&self, subscriber: &Arc<dyn Subscriber>, names: Vec<String>) {
        let mut order = self.order.lock().await;
        for name in &names {
            self.note_join(subscriber.as_ref(), name, order.seq);
        }
        subscriber.join(&names);
        order.held.entry(subscriber.id()).or_default().admitting =
            Some((subscriber.clone(), names));
    }

    /// Forgets a subscriber that went away (what was held for it).
    pub(crate) async fn forget(&self, id: SubscriberId) {
        self.order.lock().await.held.remove(&id);
    }

    /// Puts `subscriber` in `room`. With a position, first sends what it missed there (in
    /// order, with the meta they were delivered with, paced by the subscriber) or, when that
    /// cannot be served, `resync`.
    ///
    /// # Errors
    /// The log cannot be read.
    pub(crate) async fn join(
        &self,
        subscriber: &dyn Subscriber,
        room: LoggedRoom<'_>,
        since: Option<&Position>,
    ) -> Result<Joined, HistoryError> {
        let name = room.name();
        let (events, head) = {
            let mut order = self.order.lock().await;
            let Some(since) = since else {
                let head = self.log.head(&name, order.seq).await?;
                self.note_join(subscriber, &name, order.seq);
                subscriber.join(&[name]);
                return Ok(Joined::Live { head, replayed: 0 });
            };
            match self.log.resume(&name, since, order.seq).await? {
                Resume::Beyond(head) => return Ok(Joined::Beyond(head)),
                Resume::Resync(head) => {
                    self.note_join(subscriber, &name, order.seq);
                    subscriber.join(&[name]);
                    let (workspace, user) = match room {
                        LoggedRoom::Workspace(id) => (Some(id), None),
                        LoggedRoom::User(id) => (None, Some(id)),
                    };
                    let resync = Resync {
                        workspace,
                        user,
                        epoch: head.epoch.as_str(),
                        offset: head.offset,
                    };
                    self.metrics.resyncs.inc();
                    if let Sent::Full = subscriber.resync(&resync) {
                        subscriber.cut_off("queue full on resync");
                        return Ok(Joined::Slow);
                    }
                    return Ok(Joined::Resync(head));
                }
                Resume::Replay { events, head } => {
                    self.note_join(subscriber, &name, order.seq);
                    subscriber.join(&[name]);
                    if !events.is_empty() {
                        // From now on, live events for this subscriber wait for the replay.
                        order.held.entry(subscriber.id()).or_default();
                    }
                    (events, head)
                }
            }
        };
        let workspace = match room {
            LoggedRoom::Workspace(id) => Some(id.clone()),
            LoggedRoom::User(_) => None,
        };
        let backlog = Backlog(
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
        let replayed = backlog.len();
        if self.go_live(subscriber, backlog).await {
            Ok(Joined::Live { head, replayed })
        } else {
            Ok(Joined::Slow)
        }
    }

    /// Socket.IO recovery, first half: when the log still holds every event after the given
    /// sequence number in each room, puts `subscriber` back in those rooms and returns what it
    /// missed (live events for it are held from now on); `None` when it cannot be served.
    /// The subscriber need not be connected yet: [`Self::go_live`] sends once it is.
    ///
    /// `seen` is the last event number the subscriber got. When it got it from another node
    /// that is ahead of this one, this waits (up to [`CATCH_UP`]) until this node has delivered
    /// it too: otherwise those events would reach it a second time, live.
    ///
    /// # Errors
    /// The log cannot be read.
    pub(crate) async fn recover(
        &self,
        subscriber: &Arc<dyn Subscriber>,
        rooms_after: &[(String, u64)],
        seen: u64,
    ) -> Result<Option<Backlog>, HistoryError> {
        let mut order = self.order.lock().await;
        if seen > order.seq {
            drop(order);
            let mut delivered = self.delivered.subscribe();
            let caught_up = delivered.wait_for(|at| *at >= seen);
            if !matches!(tokio::time::timeout(CATCH_UP, caught_up).await, Ok(Ok(_))) {
                tracing::debug!(seen, "not recovered: this node is behind the offset");
                return Ok(None);
            }
            order = self.order.lock().await;
        }
        let Some(missed) = self.log.missed(rooms_after, order.seq).await? else {
            return Ok(None);
        };
        if let Some(joins) = subscriber.room_joins() {
            for (room, after) in rooms_after {
                joins.note(room, (*after).min(order.seq));
            }
        }
        let names: Vec<String> = rooms_after.iter().map(|(room, _)| room.clone()).collect();
        subscriber.join(&names);
        order.held.entry(subscriber.id()).or_default().admitting =
            Some((subscriber.clone(), names));
        Ok(Some(Backlog(
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

    /// Sends a subscriber its backlog, paced by it, then the live events held meanwhile,
    /// and returns it to the live stream. `false` when it was cut off as slow.
    pub(crate) async fn go_live(&self, subscriber: &dyn Subscriber, backlog: Backlog) -> bool {
        let id = subscriber.id();
        let mut owed = backlog.0;
        // First the backlog, then the live events held meanwhile.
        let mut replaying = true;
        loop {
            for pending in &owed {
                match self.send_paced(subscriber, pending).await {
                    Sent::Done if replaying => {
                        self.metrics.replayed.inc();
                    }
                    Sent::Done => {
                        self.metrics.delivered.inc();
                    }
                    Sent::Gone => {
                        self.order.lock().await.held.remove(&id);
                        return true;
                    }
                    Sent::Full => {
                        self.order.lock().await.held.remove(&id);
                        subscriber.cut_off("no room for the replay");
                        return false;
                    }
                }
            }
            let mut order = self.order.lock().await;
            let held = order
                .held
                .get_mut(&id)
                .map(|held| {
                    held.admitting = None;
                    std::mem::take(&mut held.events)
                })
                .unwrap_or_default();
            if held.is_empty() {
                order.held.remove(&id);
                return true;
            }
            owed = held;
            replaying = false;
        }
    }

    /// Sends one event of a backlog, waiting up to [`REPLAY_STALL`] for room in the
    /// subscriber's queue.
    async fn send_paced(&self, subscriber: &dyn Subscriber, pending: &Pending) -> Sent {
        let deadline = tokio::time::Instant::now() + REPLAY_STALL;
        loop {
            match self.send_pending(subscriber, pending) {
                Sent::Full if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(REPLAY_RETRY).await;
                }
                sent => return sent,
            }
        }
    }
}
