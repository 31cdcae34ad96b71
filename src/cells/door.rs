//! [`CellsDoor`]: the door's side of the pipeline. It knows every open socket ([`CellsSocket`])
//! and which rooms each sits in, answers the pipeline's `members` and a user's subscribers, and
//! renders each event once for all its recipients. A socket told of an access change gets an
//! idm frame (the UI reloads its workspaces and subscribes again); one whose session ends is
//! closed 1008.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, OnceLock, RwLock, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::{
    frames::CloseReason,
    render::{self, Parsed},
};
use crate::{
    auth::{Session, cells::CellsIdentity},
    ids::{Login, UserId, WorkspaceId},
    limits::UserSockets,
    pipeline::{
        Door, DoorClosed, Outgoing, Resync, RoomJoins, Sent, Subscriber, SubscriberId, Turn,
    },
    rooms::{self, Scope},
};

/// Sockets of this door, by room; cheap to share.
#[derive(Debug, Default)]
pub(crate) struct CellsDoor {
    rooms: RwLock<HashMap<String, HashMap<SubscriberId, Arc<CellsSocket>>>>,
    sockets: Mutex<HashMap<SubscriberId, Arc<CellsSocket>>>,
    /// Subscribed event sockets per user, oldest first, for `limits.max_sockets_per_user`.
    users: UserSockets<SubscriberId>,
    /// The last event parsed, by id: delivery goes member by member, so every recipient after
    /// the first finds it here.
    last: Mutex<Option<(Box<str>, Arc<Parsed>)>>,
    next: AtomicU64,
    closed: AtomicBool,
    /// How many sockets are open, for [`Self::close_all`] to wait for none.
    open: tokio::sync::watch::Sender<usize>,
}

impl CellsDoor {
    /// A new socket of this door, with a queue of `queue` frames; its frames come out of the
    /// receiver. An event socket (`events`) sits in its session's rooms; a chat socket in none.
    pub(crate) fn open(
        self: &Arc<Self>,
        queue: usize,
        events: bool,
    ) -> (Arc<CellsSocket>, mpsc::Receiver<Utf8Bytes>) {
        let (sender, receiver) = mpsc::channel(queue.max(1));
        // The high bit marks a door's own numbering (see `SubscriberId`).
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = SubscriberId::from_bytes((u128::from(n) | (1 << 127)).to_be_bytes());
        let socket = Arc::new_cyclic(|me| CellsSocket {
            id,
            me: me.clone(),
            door: Arc::downgrade(self),
            queue: sender,
            events,
            turn: Arc::default(),
            identity: RwLock::new(None),
            rooms: Mutex::new(HashSet::new()),
            closing: CancellationToken::new(),
            reason: OnceLock::new(),
        });
        let mut sockets = lock(&self.sockets);
        sockets.insert(id, socket.clone());
        self.open.send_replace(sockets.len());
        drop(sockets);
        (socket, receiver)
    }

    /// Forgets a socket that ended: out of its rooms and its user's count.
    pub(crate) fn forget(&self, socket: &CellsSocket) {
        let rooms: Vec<String> = lock(&socket.rooms).drain().collect();
        self.remove(&rooms, socket.id);
        if let Some(identity) = socket.identity() {
            self.uncount(&identity.user, socket.id);
        }
        let mut sockets = lock(&self.sockets);
        sockets.remove(&socket.id);
        self.open.send_replace(sockets.len());
    }

    /// Counts a subscribed socket for its user; returns the user's oldest sockets beyond `max`.
    pub(crate) fn count(
        &self,
        user: &UserId,
        id: SubscriberId,
        max: usize,
    ) -> Vec<Arc<CellsSocket>> {
        let evicted = self.users.add(user, id, max);
        let sockets = lock(&self.sockets);
        evicted
            .iter()
            .filter_map(|id| sockets.get(id).cloned())
            .collect()
    }

    /// Stops counting a socket for `user`.
    pub(crate) fn uncount(&self, user: &UserId, id: SubscriberId) {
        self.users.remove(user, id);
    }

    /// Open sockets and how many of them are subscribed.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let sockets = lock(&self.sockets);
        let subscribed = sockets.values().filter(|s| s.identity().is_some()).count();
        (sockets.len(), subscribed)
    }

    /// Closes every socket (the node shuts down) and waits until they are gone; the door
    /// lists no members from now on. Each close is bounded (`engine.ping_timeout`), so this is.
    pub(crate) async fn close_all(&self) {
        self.closed.store(true, Ordering::Release);
        for socket in lock(&self.sockets).values() {
            socket.close(CloseReason::ShuttingDown);
        }
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
    }

    /// The subscribed sockets of `user`, on the event and the chat path alike (chat sockets
    /// sit in no room).
    fn sockets_of(&self, user: &UserId) -> Vec<Arc<CellsSocket>> {
        lock(&self.sockets)
            .values()
            .filter(|socket| socket.identity().is_some_and(|i| i.user == *user))
            .cloned()
            .collect()
    }

    fn add(&self, names: &[String], socket: &Arc<CellsSocket>) {
        let mut rooms = write(&self.rooms);
        for name in names {
            rooms
                .entry(name.clone())
                .or_default()
                .insert(socket.id, socket.clone());
        }
    }

    fn remove(&self, names: &[String], id: SubscriberId) {
        let mut rooms = write(&self.rooms);
        for name in names {
            if let Some(members) = rooms.get_mut(name) {
                members.remove(&id);
                if members.is_empty() {
                    rooms.remove(name);
                }
            }
        }
    }

    /// The event parsed, once per event.
    fn parsed(&self, outgoing: &Outgoing<'_>) -> Arc<Parsed> {
        let mut last = lock(&self.last);
        if let Some((id, parsed)) = last.as_ref()
            && **id == *outgoing.id
        {
            return parsed.clone();
        }
        let parsed = Arc::new(Parsed::of(outgoing.event, outgoing.data.get()));
        *last = Some((outgoing.id.into(), parsed.clone()));
        parsed
    }
}

impl Door for CellsDoor {
    fn members(&self, room: &str, each: &mut dyn FnMut(&dyn Subscriber)) -> Result<(), DoorClosed> {
        if self.closed.load(Ordering::Acquire) {
            return Err(DoorClosed);
        }
        if let Some(members) = read(&self.rooms).get(room) {
            for member in members.values() {
                each(&**member);
            }
        }
        Ok(())
    }

    fn subscribers_of(&self, user: &UserId) -> Vec<Arc<dyn Subscriber>> {
        (self.sockets_of(user).into_iter())
            .map(|socket| socket as Arc<dyn Subscriber>)
            .collect()
    }
}

/// What a subscribed socket is: whose, what it sees, which rooms it sits in.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) user: UserId,
    pub(crate) login: Option<Login>,
    /// The session it was made of: the chat's checks forward its credentials.
    pub(crate) session: Arc<Session>,
    /// The Cells identity (workspaces and their roots).
    pub(crate) cells: Arc<CellsIdentity>,
    /// The workspaces the user may read.
    pub(crate) workspaces: HashSet<WorkspaceId>,
    /// The token's expiry, seconds since the epoch.
    pub(crate) expires_at: Option<u64>,
    /// The rooms this identity sits in.
    pub(crate) rooms: Vec<String>,
}

impl Identity {
    /// The identity of a session, with its rooms: its user and groups, its workspaces, its
    /// login, roles and profile, and the root of each workspace.
    pub(crate) fn of(session: Arc<Session>) -> Self {
        Self::without(session, &[])
    }

    /// The identity of a session without the workspaces of `lost` (an access change took
    /// them, whatever the token still says).
    fn without(session: Arc<Session>, lost: &[WorkspaceId]) -> Self {
        let principal = &session.principal;
        // The session's own Cells identity unless workspaces were lost: one copy per session.
        let cells = match &principal.cells {
            Some(cells) if lost.is_empty() => cells.clone(),
            cells => {
                let mut narrowed = cells.as_deref().cloned().unwrap_or_default();
                narrowed.workspace_roots.retain(|w| !lost.contains(&w.id));
                Arc::new(narrowed)
            }
        };
        let workspaces: HashSet<WorkspaceId> = (principal.workspaces.iter().flatten())
            .chain(cells.workspace_roots.iter().map(|w| &w.id))
            .filter(|workspace| !lost.contains(workspace))
            .cloned()
            .collect();
        let mut names = vec![rooms::user_room(&principal.user)];
        names.extend(principal.groups.iter().map(rooms::group_room));
        let mut sorted: Vec<&WorkspaceId> = workspaces.iter().collect();
        sorted.sort();
        names.extend(sorted.into_iter().map(rooms::workspace_room));
        let scopes = (cells.login.iter().cloned().map(Scope::Login))
            .chain(cells.roles.iter().cloned().map(Scope::Role))
            .chain(cells.profile.iter().cloned().map(Scope::Profile))
            .chain(
                render::root_paths(&cells.workspace_roots)
                    .cloned()
                    .map(Scope::Tree),
            );
        names.extend(scopes.map(|scope| scope.room()));
        names.sort();
        names.dedup();
        Self {
            user: principal.user.clone(),
            login: cells.login.clone(),
            workspaces,
            expires_at: principal.expires_at,
            rooms: names,
            cells,
            session,
        }
    }
}

/// One WebSocket of the door, as the pipeline sees it.
#[derive(Debug)]
pub(crate) struct CellsSocket {
    id: SubscriberId,
    me: Weak<CellsSocket>,
    door: Weak<CellsDoor>,
    queue: mpsc::Sender<Utf8Bytes>,
    /// Whether it sits in its session's rooms (an event socket) or in none (a chat socket).
    events: bool,
    /// Held while a subscribe is checked and installed, and while the server changes the
    /// session (see [`Subscriber::turn`]).
    turn: Arc<tokio::sync::Mutex<()>>,
    identity: RwLock<Option<Arc<Identity>>>,
    rooms: Mutex<HashSet<String>>,
    closing: CancellationToken,
    reason: OnceLock<CloseReason>,
}

impl CellsSocket {
    /// Who it is, when subscribed.
    pub(crate) fn identity(&self) -> Option<Arc<Identity>> {
        read(&self.identity).clone()
    }

    /// Sets who it is; called between two deliveries (`Deliverer::rejoin`).
    pub(crate) fn set_identity(&self, identity: Option<Arc<Identity>>) {
        *write(&self.identity) = identity;
    }

    /// Its id among every door's subscribers.
    pub(crate) fn subscriber_id(&self) -> SubscriberId {
        self.id
    }

    /// Its turn, for a subscribe: waits while the server changes the session.
    pub(crate) fn turn_owned(
        &self,
    ) -> impl Future<Output = tokio::sync::OwnedMutexGuard<()>> + Send + use<> {
        self.turn.clone().lock_owned()
    }

    /// Queues a frame of herald's own; a full queue closes the socket.
    pub(crate) fn push(&self, frame: Utf8Bytes) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(frame) {
            self.close(CloseReason::SlowConsumer);
        }
    }

    /// Asks the socket's task to close it with `reason` (the first reason given wins).
    pub(crate) fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.closing.cancel();
    }

    /// Resolves once [`Self::close`] was called; the reason.
    pub(crate) async fn closed(&self) -> CloseReason {
        self.closing.cancelled().await;
        self.reason
            .get()
            .copied()
            .unwrap_or(CloseReason::ShuttingDown)
    }
}

impl Subscriber for CellsSocket {
    fn id(&self) -> SubscriberId {
        self.id
    }

    fn send(&self, outgoing: &Outgoing<'_>) -> Sent {
        if self.queue.is_closed() {
            return Sent::Gone;
        }
        let (Some(door), Some(identity)) = (self.door.upgrade(), self.identity()) else {
            return Sent::Done;
        };
        let parsed = door.parsed(outgoing);
        let mut frames = Vec::new();
        parsed.frames(
            identity.login.as_ref(),
            &identity.cells.workspace_roots,
            &mut frames,
        );
        for frame in frames {
            match self.queue.try_send(frame) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => return Sent::Full,
                Err(mpsc::error::TrySendError::Closed(_)) => return Sent::Gone,
            }
        }
        Sent::Done
    }

    fn resync(&self, _resync: &Resync<'_>) -> Sent {
        // Cells sessions join no room at a position: there is nothing to resync.
        Sent::Done
    }

    fn cut_off(&self, why: &'static str) {
        tracing::info!(subscriber = ?self.id, why, "cells socket closed as a slow consumer");
        self.close(CloseReason::SlowConsumer);
    }

    fn join(&self, names: &[String]) {
        let (Some(door), Some(me)) = (self.door.upgrade(), self.me.upgrade()) else {
            return;
        };
        lock(&self.rooms).extend(names.iter().cloned());
        door.add(names, &me);
    }

    fn leave(&self, names: &[String]) {
        let Some(door) = self.door.upgrade() else {
            return;
        };
        let mut held = lock(&self.rooms);
        for name in names {
            held.remove(name);
        }
        drop(held);
        door.remove(names, self.id);
    }

    fn room_joins(&self) -> Option<Arc<RoomJoins>> {
        None
    }

    fn session(&self) -> Option<Arc<Session>> {
        self.identity().map(|identity| identity.session.clone())
    }

    fn workspaces(&self) -> Vec<WorkspaceId> {
        (self.identity().iter())
            .flat_map(|identity| identity.workspaces.iter().cloned())
            .collect()
    }

    fn turn(&self) -> BoxFuture<'static, Turn> {
        let turn = self.turn_owned();
        Box::pin(async move { Box::new(turn.await) as Turn })
    }

    fn adopt(&self, session: Arc<Session>, lost: &[WorkspaceId]) {
        let Some(before) = self.identity() else {
            return;
        };
        let after = Identity::without(session, lost);
        if self.events {
            let leave: Vec<String> = (before.rooms.iter())
                .filter(|room| !after.rooms.contains(room))
                .cloned()
                .collect();
            let join: Vec<String> = (after.rooms.iter())
                .filter(|room| !before.rooms.contains(room))
                .cloned()
                .collect();
            self.leave(&leave);
            self.join(&join);
        }
        self.set_identity(Some(Arc::new(after)));
        // The UI reloads its workspaces and subscribes again.
        self.push(render::RELOAD.into());
    }

    fn end_session(&self, reason: &str) {
        tracing::debug!(subscriber = ?self.id, reason, "cells session ended");
        self.close(CloseReason::Kicked);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data, consistent after every statement: a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
