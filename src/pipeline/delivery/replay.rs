//! The replaying side of delivery: a socket put in rooms after it is sent what it missed there
//! ([`Deliverer::join`] for `since`, [`Deliverer::recover`] for Socket.IO connection state
//! recovery), and a socket being admitted, whose live events are held until it is connected
//! ([`Deliverer::admit`]). [`Deliverer::go_live`] sends a socket its [`Backlog`] paced by the
//! socket, then the live events held for it meanwhile, in order; then it takes live events
//! like every other socket.

use std::time::Duration;

use serde::Serialize;
use socketioxide::{extract::SocketRef, socket::Sid};

use serde_json::value::RawValue;

use super::{Deliverer, Meta, Pending, Sent, joins_of, send};
use crate::{
    history::{HistoryError, Position, Resume},
    ids::{UserId, WorkspaceId},
    realtime::events,
    rooms,
};

/// A logged room a socket can join from a position.
#[derive(Debug, Clone, Copy)]
pub enum LoggedRoom<'a> {
    /// A workspace room (`register`).
    Workspace(&'a WorkspaceId),
    /// The socket's own user room (`auth.since.user`).
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

/// What a socket missed, sent to it before it goes live: by `Deliverer::go_live`.
#[derive(Debug, Default)]
pub struct Backlog(pub(super) Vec<Pending>);

impl Backlog {
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

/// How long a replay waits for room in a socket's queue before cutting it off as slow.
const REPLAY_STALL: Duration = Duration::from_secs(10);
/// How often a paced replay looks for room again.
const REPLAY_RETRY: Duration = Duration::from_millis(5);
/// How long a recovery waits for this node to deliver the events a socket already got from
/// another node (cluster mode: each node's bus reader runs at its own pace).
const CATCH_UP: Duration = Duration::from_secs(2);

impl Deliverer {
    /// Puts a socket that is being admitted in rooms (no replay), noting when it joined them.
    /// Until it is connected, socketioxide refuses emits to it, so live events for it are kept
    /// until [`Self::go_live`] (from the connect handler).
    pub(crate) async fn admit(&self, socket: &SocketRef, names: Vec<String>) {
        let mut order = self.order.lock().await;
        for name in &names {
            self.note_join(socket, name, order.seq);
        }
        order.held.entry(socket.id).or_default().admitting = Some((socket.clone(), names.clone()));
        socket.join(names);
    }

    /// Forgets a socket that went away (what was held for it).
    pub(crate) async fn forget(&self, sid: Sid) {
        self.order.lock().await.held.remove(&sid);
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
                        order.held.entry(socket.id).or_default();
                    }
                    (events, head)
                }
            }
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
        if self.go_live(socket, backlog).await {
            Ok(Joined::Live { head, replayed })
        } else {
            Ok(Joined::Slow)
        }
    }

    /// Socket.IO recovery, first half: when the log still holds every event after the given
    /// sequence number in each room, puts `socket` back in those rooms and returns what it
    /// missed (live events for it are held from now on); `None` when it cannot be served.
    /// The socket need not be connected yet: [`Self::go_live`] sends once it is.
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
    ) -> Result<Option<Backlog>, HistoryError> {
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
        order.held.entry(socket.id).or_default().admitting = Some((socket.clone(), names.clone()));
        socket.join(names);
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

    /// Sends a socket its backlog, paced by it, then the live events held meanwhile,
    /// and returns it to the live stream. `false` when it was cut off as slow.
    pub(crate) async fn go_live(&self, socket: &SocketRef, backlog: Backlog) -> bool {
        let mut owed = backlog.0;
        // First the backlog, then the live events held meanwhile.
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
                        self.order.lock().await.held.remove(&socket.id);
                        return true;
                    }
                    Sent::Full => {
                        self.order.lock().await.held.remove(&socket.id);
                        self.cut_off(socket, "no room for the replay");
                        return false;
                    }
                }
            }
            let mut order = self.order.lock().await;
            let held = order
                .held
                .get_mut(&socket.id)
                .map(|held| {
                    held.admitting = None;
                    std::mem::take(&mut held.events)
                })
                .unwrap_or_default();
            if held.is_empty() {
                order.held.remove(&socket.id);
                return true;
            }
            owed = held;
            replaying = false;
        }
    }

    /// Sends one event of a backlog, waiting up to [`REPLAY_STALL`] for room in the socket's queue.
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
