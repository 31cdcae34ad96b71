//! The Socket.IO door as the pipeline sees it: [`SocketIoDoor`] lists a room's sockets on the
//! browsers' namespace, and [`SocketSubscriber`] is one socket, whose outgoing queue is
//! socketioxide's own (`engine.max_buffer_size` packets) and whose full queue is handled by the
//! [`SlowPolicy`]. Its session and turn are its [`SocketState`]'s; it is told of a lost
//! workspace with `access_revoked`, and of an ended session with `session_invalid` before the
//! server disconnects it.

use std::{borrow::Borrow, collections::HashSet, sync::Arc};

use futures_util::future::BoxFuture;
use serde::Serialize;
use socketioxide::{SendError, SocketError, extract::SocketRef, socket::Sid};

use super::{
    Io,
    events::{self, AccessRevoked, SessionInvalid},
    slow::SlowPolicy,
    socket_state::SocketState,
};
use crate::{
    auth::Session,
    ids::{UserId, WorkspaceId},
    pipeline::{
        Door, DoorClosed, Outgoing, Resync, RoomJoins, Sent, Subscriber, SubscriberId, Turn,
    },
    rooms,
};

/// The pipeline's id of a socket.
pub(crate) fn subscriber_id(sid: Sid) -> SubscriberId {
    let mut bytes = [0; 16];
    // invariant: a session id is 16 ASCII characters; were it ever shorter, the rest stays 0.
    for (byte, from) in bytes.iter_mut().zip(sid.as_str().bytes()) {
        *byte = from;
    }
    SubscriberId::from_bytes(bytes)
}

/// The browsers' namespace, as a door of the pipeline.
#[derive(Debug, Clone)]
pub(crate) struct SocketIoDoor {
    io: Io,
    namespace: Arc<str>,
    slow: SlowPolicy,
}

impl SocketIoDoor {
    /// The door of namespace `namespace` of `io`, cutting off slow sockets with `slow`.
    pub(crate) fn new(io: Io, namespace: &str, slow: SlowPolicy) -> Self {
        Self {
            io,
            namespace: namespace.into(),
            slow,
        }
    }
}

impl Door for SocketIoDoor {
    fn members(&self, room: &str, each: &mut dyn FnMut(&dyn Subscriber)) -> Result<(), DoorClosed> {
        let namespace = self.io.of(&*self.namespace).ok_or(DoorClosed)?;
        for socket in namespace.to(room.to_owned()).sockets() {
            each(&SocketSubscriber::new(socket, &self.slow));
        }
        Ok(())
    }

    fn subscribers_of(&self, user: &UserId) -> Vec<Arc<dyn Subscriber>> {
        let Some(namespace) = self.io.of(&*self.namespace) else {
            return Vec::new();
        };
        let sockets = namespace.within(rooms::user_room(user)).sockets();
        (sockets.into_iter())
            .map(|socket| SocketSubscriber::shared(socket, self.slow.clone()))
            .collect()
    }
}

/// One socket as a subscriber. `P` is how it holds the [`SlowPolicy`]: borrowed while a
/// delivery walks a room, owned when the pipeline keeps it (a socket being admitted).
#[derive(Debug)]
pub(crate) struct SocketSubscriber<P: Borrow<SlowPolicy> = SlowPolicy> {
    socket: SocketRef,
    slow: P,
}

impl<P: Borrow<SlowPolicy>> SocketSubscriber<P> {
    /// `socket`, cut off by `slow` when its queue is full.
    pub(crate) fn new(socket: SocketRef, slow: P) -> Self {
        Self { socket, slow }
    }

    fn emit<T: ?Sized + Serialize>(&self, event: &str, data: &T) -> Sent {
        match self.socket.emit(event, data) {
            Ok(()) => Sent::Done,
            Err(SendError::Socket(SocketError::Closed)) => Sent::Gone,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => Sent::Full,
            Err(error) => {
                // Raw JSON and structs of strings and numbers always encode.
                tracing::error!(sid = %self.socket.id, %error, event, "event not encoded");
                Sent::Done
            }
        }
    }
}

impl SocketSubscriber {
    /// `socket` as a subscriber the pipeline can keep.
    pub(crate) fn shared(socket: SocketRef, slow: SlowPolicy) -> Arc<dyn Subscriber> {
        Arc::new(Self::new(socket, slow))
    }
}

impl<P: Borrow<SlowPolicy> + Send + Sync> Subscriber for SocketSubscriber<P> {
    fn id(&self) -> SubscriberId {
        subscriber_id(self.socket.id)
    }

    fn send(&self, outgoing: &Outgoing<'_>) -> Sent {
        let Outgoing {
            event,
            data,
            meta,
            offset,
            ..
        } = *outgoing;
        match offset {
            Some(offset) => self.emit(event, &(data, meta, offset)),
            None => self.emit(event, &(data, meta)),
        }
    }

    fn resync(&self, resync: &Resync<'_>) -> Sent {
        self.emit(events::RESYNC, resync)
    }

    fn cut_off(&self, why: &'static str) {
        self.slow.borrow().cut_off(&self.socket, why);
    }

    fn join(&self, rooms: &[String]) {
        self.socket.join(rooms.to_vec());
    }

    fn leave(&self, rooms: &[String]) {
        self.socket.leave(rooms.to_vec());
    }

    fn room_joins(&self) -> Option<Arc<RoomJoins>> {
        if let Some(joins) = self.socket.extensions.get::<Arc<RoomJoins>>() {
            return Some(joins);
        }
        let joins = Arc::new(RoomJoins::default());
        self.socket.extensions.insert(joins.clone());
        Some(joins)
    }

    fn session(&self) -> Option<Arc<Session>> {
        SocketState::of(&self.socket).map(|state| state.session())
    }

    fn workspaces(&self) -> Vec<WorkspaceId> {
        (self.socket.rooms().iter())
            .filter_map(|room| rooms::workspace_of(room))
            .collect()
    }

    fn turn(&self) -> BoxFuture<'static, Turn> {
        // The ticket is taken now, behind every event already received from the socket.
        let ticket = SocketState::of(&self.socket).map(|state| state.ticket());
        Box::pin(async move {
            let turn = match ticket {
                Some(ticket) => ticket.turn().await,
                None => None,
            };
            Box::new(turn) as Turn
        })
    }

    fn adopt(&self, session: Arc<Session>, lost: &[WorkspaceId]) {
        let Some(state) = SocketState::of(&self.socket) else {
            return;
        };
        let old = state.session();
        let (old_groups, new_groups): (HashSet<_>, HashSet<_>) = (
            old.principal.groups.iter().map(rooms::group_room).collect(),
            session
                .principal
                .groups
                .iter()
                .map(rooms::group_room)
                .collect(),
        );
        let mut leave: Vec<String> = old_groups.difference(&new_groups).cloned().collect();
        leave.extend(lost.iter().map(rooms::workspace_room));
        self.socket.leave(leave);
        self.socket.join(
            new_groups
                .difference(&old_groups)
                .cloned()
                .collect::<Vec<_>>(),
        );
        state.replace_session(session);
        let slow = self.slow.borrow();
        for workspace in lost {
            slow.emit(
                &self.socket,
                events::ACCESS_REVOKED,
                &AccessRevoked { workspace },
            );
        }
    }

    fn end_session(&self, reason: &str) {
        let slow = self.slow.borrow();
        if slow.emit(
            &self.socket,
            events::SESSION_INVALID,
            &SessionInvalid { reason },
        ) {
            slow.disconnect(&self.socket);
        }
    }
}
