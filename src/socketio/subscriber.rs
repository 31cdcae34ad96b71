//! The Socket.IO door as the pipeline sees it: [`SocketIoDoor`] lists a room's sockets on the
//! browsers' namespace, and [`SocketSubscriber`] is one socket, whose outgoing queue is
//! socketioxide's own (`engine.max_buffer_size` packets) and whose full queue is handled by the
//! [`SlowPolicy`].

use std::{borrow::Borrow, sync::Arc};

use serde::Serialize;
use socketioxide::{SendError, SocketError, extract::SocketRef, socket::Sid};

use super::{Io, events, slow::SlowPolicy};
use crate::pipeline::{
    Door, DoorClosed, Outgoing, Resync, RoomJoins, Sent, Subscriber, SubscriberId,
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
}
