//! [`Deliverer`]: logs a stamped event in its target rooms and emits it on `/public` to the
//! union of those rooms, each socket once; and [`Deliverer::join`], the other side of the seam,
//! which puts a socket in a room after replaying what it missed there.
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
//! first). Workspace and user rooms are logged (`meta.offset`, `meta.epoch`); group rooms are
//! not (both `null`). Emits go socket by socket so that a socket whose queue is full is known
//! and cut off as a slow consumer instead of silently missing events.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::{SendError, SocketError, extract::SocketRef, socket::Sid};
use tokio::sync::Mutex;

use super::{PublishError, Stamped};
use crate::{
    connection::Connections,
    history::{EventLog, HistoryError, Position, Resume},
    ids::{UserId, WorkspaceId},
    realtime::{Io, events, rooms, slow},
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
    /// The event's offset in the room through which the socket was reached (null: a group).
    pub offset: Option<u64>,
    /// That room's epoch (null: a group).
    pub epoch: Option<&'a str>,
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
    /// Not joined: the socket's queue filled up during the replay; it was cut off as slow.
    Slow,
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

/// Logs and emits events on the browsers' namespace; cheap to clone.
#[derive(Clone)]
pub(crate) struct Deliverer {
    io: Io,
    public_ns: Arc<str>,
    log: Arc<dyn EventLog>,
    connections: Connections,
    /// Held around append + emit and around resume + join: the seam. Holds the live events
    /// kept aside for sockets whose replay is under way.
    order: Arc<Mutex<Replays>>,
    /// Most live events kept aside for one replaying socket before it is cut off as slow.
    aside_limit: usize,
}

/// Sockets whose replay is under way, with the live events kept aside for each.
type Replays = HashMap<Sid, Vec<Pending>>;

/// How long a replay waits for room in a socket's queue before cutting it off as slow.
const REPLAY_STALL: Duration = Duration::from_secs(10);
/// How often a paced replay looks for room again.
const REPLAY_RETRY: Duration = Duration::from_millis(5);

/// An event owed to one socket, with the meta it is to carry.
#[derive(Debug, Clone)]
struct Pending {
    event: Arc<Stamped>,
    workspace: Option<WorkspaceId>,
    position: Option<Position>,
}

impl Pending {
    fn meta(&self) -> Meta<'_> {
        Meta {
            id: &self.event.id,
            workspace: self.workspace.as_ref(),
            ts: self.event.ts,
            offset: self.position.as_ref().map(|p| p.offset),
            epoch: self.position.as_ref().map(|p| p.epoch.as_str()),
        }
    }

    fn send(&self, socket: &SocketRef) -> Sent {
        let publication = &self.event.publication;
        let data: &RawValue = &publication.data;
        send(socket, &publication.event, &(data, &self.meta()))
    }
}

/// One target room, in delivery order, with its position when it is logged.
struct Target<'a> {
    room: String,
    workspace: Option<&'a WorkspaceId>,
    position: Option<Position>,
}

impl Deliverer {
    pub(crate) fn new(
        io: Io,
        public_ns: &str,
        log: Arc<dyn EventLog>,
        connections: Connections,
        aside_limit: usize,
    ) -> Self {
        Self {
            io,
            public_ns: public_ns.into(),
            log,
            connections,
            order: Arc::new(Mutex::new(HashMap::new())),
            aside_limit,
        }
    }

    /// Logs the event in its workspace and user rooms and delivers it to every target room,
    /// each socket once.
    ///
    /// # Errors
    /// [`PublishError::Unavailable`] when the namespace is gone (shutting down) or the log
    /// cannot be written.
    #[tracing::instrument(level = "debug", skip_all, fields(event = %stamped.publication.event, id = %stamped.id))]
    pub(crate) async fn deliver(&self, stamped: Stamped) -> Result<(), PublishError> {
        let stamped = Arc::new(stamped);
        let targets = &stamped.publication.targets;
        let mut replays = self.order.lock().await;
        let ns = self
            .io
            .of(&*self.public_ns)
            .ok_or(PublishError::Unavailable)?;

        let logged: Vec<String> = targets
            .workspaces
            .iter()
            .map(rooms::workspace_room)
            .chain(targets.users.iter().map(rooms::user_room))
            .collect();
        let positions = self.log.append(&logged, &stamped).await.map_err(|error| {
            tracing::error!(%error, "event not logged");
            PublishError::Unavailable
        })?;
        let workspaces = targets.workspaces.iter().map(Some);
        let users = targets.users.iter().map(|_| None);
        let mut plan: Vec<Target<'_>> = logged
            .into_iter()
            .zip(workspaces.chain(users))
            .zip(positions)
            .map(|((room, workspace), position)| Target {
                room,
                workspace,
                position: Some(position),
            })
            .collect();
        plan.extend(targets.groups.iter().map(|group| Target {
            room: rooms::group_room(group),
            workspace: None,
            position: None,
        }));

        let data: &RawValue = &stamped.publication.data;
        let event = &stamped.publication.event;
        let mut served: Vec<String> = Vec::with_capacity(plan.len());
        let mut slow_sockets = Vec::new();
        for target in plan {
            let meta = Meta {
                id: &stamped.id,
                workspace: target.workspace,
                ts: stamped.ts,
                offset: target.position.as_ref().map(|p| p.offset),
                epoch: target.position.as_ref().map(|p| p.epoch.as_str()),
            };
            let sockets = ns
                .clone()
                .to(target.room.clone())
                .except(served.clone())
                .sockets();
            for socket in sockets {
                if let Some(aside) = replays.get_mut(&socket.id) {
                    if aside.len() >= self.aside_limit {
                        slow_sockets.push(socket);
                    } else {
                        aside.push(Pending {
                            event: stamped.clone(),
                            workspace: target.workspace.cloned(),
                            position: target.position.clone(),
                        });
                    }
                } else if let Sent::Full = send(&socket, event, &(data, &meta)) {
                    slow_sockets.push(socket);
                }
            }
            served.push(target.room);
        }
        for socket in slow_sockets {
            slow::cut_off(&self.connections, &socket, "queue full during delivery");
        }
        Ok(())
    }

    /// The current position of a logged room.
    pub(crate) async fn head(&self, room: LoggedRoom<'_>) -> Result<Position, HistoryError> {
        self.log.head(&room.name()).await
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
            let mut replays = self.order.lock().await;
            let Some(since) = since else {
                let head = self.log.head(&name).await?;
                socket.join(name);
                return Ok(Joined::Live { head, replayed: 0 });
            };
            match self.log.resume(&name, since).await? {
                Resume::Beyond(head) => return Ok(Joined::Beyond(head)),
                Resume::Resync(head) => {
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
                    if let Sent::Full = send(socket, events::RESYNC, &payload) {
                        slow::cut_off(&self.connections, socket, "queue full on resync");
                        return Ok(Joined::Slow);
                    }
                    return Ok(Joined::Resync(head));
                }
                Resume::Replay { events, head } => {
                    socket.join(name);
                    if !events.is_empty() {
                        // From now on, live events for this socket wait for the replay.
                        replays.entry(socket.id).or_default();
                    }
                    (events, head)
                }
            }
        };
        let replayed = events.len();
        if replayed == 0 {
            return Ok(Joined::Live { head, replayed });
        }
        let mut owed: Vec<Pending> = events
            .into_iter()
            .map(|logged| Pending {
                event: logged.event,
                workspace: workspace.clone(),
                position: Some(Position {
                    offset: logged.offset,
                    epoch: head.epoch.clone(),
                }),
            })
            .collect();
        loop {
            for pending in &owed {
                match send_paced(socket, pending).await {
                    Sent::Done => {}
                    Sent::Gone => {
                        self.order.lock().await.remove(&socket.id);
                        return Ok(Joined::Live { head, replayed });
                    }
                    Sent::Full => {
                        self.order.lock().await.remove(&socket.id);
                        slow::cut_off(&self.connections, socket, "no room for the replay");
                        return Ok(Joined::Slow);
                    }
                }
            }
            let mut replays = self.order.lock().await;
            let aside = replays
                .get_mut(&socket.id)
                .map(std::mem::take)
                .unwrap_or_default();
            if aside.is_empty() {
                replays.remove(&socket.id);
                return Ok(Joined::Live { head, replayed });
            }
            owed = aside;
        }
    }
}

/// Sends one owed event, waiting up to [`REPLAY_STALL`] for room in the socket's queue.
async fn send_paced(socket: &SocketRef, pending: &Pending) -> Sent {
    let deadline = tokio::time::Instant::now() + REPLAY_STALL;
    loop {
        match pending.send(socket) {
            Sent::Full if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(REPLAY_RETRY).await;
            }
            sent => return sent,
        }
    }
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
