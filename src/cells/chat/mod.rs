//! The Pydio Cells chat on `cells.chat_path` (`/ws/chat`): the Cells UI's chat requests on
//! herald's chat (its store, rooms and presence), as a [`ChatDoor`] beside the Socket.IO chat
//! namespace, so both see the same workspace rooms live.
//!
//! A socket holds the rooms it joined; it stays present in one while it pings it (the UI sends
//! a JOIN `PING` every 15 s): a room not pinged for [`PRESENCE_TIMEOUT`] is released, as Cells
//! drops a user 20 s after their last ping. Requests of one socket are handled in order.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;
use uuid::Uuid;

use super::{door::CellsSocket, frames::ErrorCode};
use crate::{
    auth::{Authenticator, Session},
    chat::{
        Chat, door::ChatDoor, notice::Notice, now_ms, protocol::RoomMembers, room::Room,
        room::RoomKind, store::Deleted, store::Message,
    },
    cluster::{Redis, control},
    ids::UserId,
    pipeline::SubscriberId,
};

pub(crate) mod protocol;

use protocol::{ChatRequest, RoomRef};

/// How deep HISTORY reads a room, in messages from the newest: bounds the store reads one
/// request makes.
pub(crate) const MAX_HISTORY_DEPTH: usize = 10_000;

/// How long a room stays held without a JOIN or PING from its socket.
pub(crate) const PRESENCE_TIMEOUT: Duration = Duration::from_secs(20);

/// The chat's limits this door applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_text: usize,
    pub(crate) history_page: usize,
    pub(crate) max_history_limit: usize,
}

/// The Cells chat sockets of this node and the rooms they hold.
#[derive(Debug)]
pub(crate) struct CellsChat {
    chat: Chat,
    auth: Arc<Authenticator>,
    /// Cluster mode: where notices go to the other nodes, and this node's id.
    cluster: Option<(Redis, String)>,
    limits: Limits,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    /// Each room's name and the sockets holding it.
    rooms: HashMap<Uuid, (RoomRef, HashMap<SubscriberId, Arc<CellsSocket>>)>,
    /// Each socket's rooms, with its last JOIN or PING of each.
    sockets: HashMap<SubscriberId, HashMap<Uuid, Instant>>,
}

impl CellsChat {
    /// The door on `chat`, telling the other nodes through `cluster` when given.
    pub(crate) fn new(
        chat: Chat,
        auth: Arc<Authenticator>,
        cluster: Option<(Redis, String)>,
        limits: Limits,
    ) -> Self {
        Self {
            chat,
            auth,
            cluster,
            limits,
            held: Mutex::default(),
        }
    }

    /// The chat store's limit on a text.
    pub(crate) fn max_text(&self) -> usize {
        self.limits.max_text
    }

    /// Handles one request of a subscribed socket.
    ///
    /// # Errors
    /// The [`ErrorCode`] to answer.
    pub(crate) async fn handle(
        &self,
        socket: &Arc<CellsSocket>,
        session: &Session,
        request: ChatRequest,
    ) -> Result<(), ErrorCode> {
        let user = &session.principal.user;
        match request {
            ChatRequest::Join { room, ping } => {
                let uuid = room_uuid(&room);
                if ping && self.touch(socket.subscriber_id(), uuid) {
                    return Ok(());
                }
                self.check(session, socket, &room).await?;
                self.open(&room).await?;
                self.hold(socket, uuid, &room, user).await;
                Ok(())
            }
            ChatRequest::History {
                room,
                offset,
                limit,
            } => {
                self.check(session, socket, &room).await?;
                let uuid = room_uuid(&room);
                let members = self.chat.presence.members(&uuid);
                socket.push(protocol::room_update(&uuid, &room, &members, now_ms() / 1000).into());
                let limit = limit
                    .unwrap_or(self.limits.history_page)
                    .min(self.limits.max_history_limit);
                for message in self.newest(&uuid, offset, limit).await? {
                    socket.push(protocol::message(&message).into());
                }
                Ok(())
            }
            ChatRequest::Post { room, text } => {
                self.holding(socket, room)?;
                let message = Message {
                    uuid: Uuid::new_v4(),
                    room,
                    author: user.clone(),
                    text,
                    ts: now_ms(),
                };
                (self.chat.store.post(&message).await).map_err(|_| ErrorCode::Unavailable)?;
                self.deliver_everywhere(Notice::Message(message)).await;
                Ok(())
            }
            ChatRequest::Delete(target) => {
                self.holding(socket, target.room)?;
                let deleted = self
                    .chat
                    .store
                    .delete(&target.room, &target.uuid, user)
                    .await;
                match deleted.map_err(|_| ErrorCode::Unavailable)? {
                    Deleted::Done => self.deliver_everywhere(Notice::Deleted(target)).await,
                    Deleted::NotAuthor => return Err(ErrorCode::Forbidden),
                    Deleted::NotFound => {}
                }
                Ok(())
            }
            ChatRequest::Leave(room) => {
                self.release(socket.subscriber_id(), room_uuid(&room), user)
                    .await;
                Ok(())
            }
        }
    }

    /// The room's messages after skipping the `offset` newest, up to `limit`, oldest first:
    /// read from the newest back, a store page (`chat.max_history_limit`) at a time, at most
    /// [`MAX_HISTORY_DEPTH`] messages deep.
    async fn newest(
        &self,
        room: &Uuid,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Message>, ErrorCode> {
        let wanted = offset.saturating_add(limit).min(MAX_HISTORY_DEPTH);
        let mut read: Vec<Message> = Vec::new();
        let mut before: Option<Uuid> = None;
        while read.len() < wanted {
            let page_size = (wanted - read.len()).min(self.limits.max_history_limit.max(1));
            let page = (self
                .chat
                .store
                .history(room, before.as_ref(), page_size)
                .await)
                .map_err(|_| ErrorCode::Unavailable)?;
            let Some(oldest) = page.messages.first() else {
                break;
            };
            before = Some(oldest.uuid);
            let more = page.more;
            read.splice(0..0, page.messages);
            if !more {
                break;
            }
        }
        let newest_kept = read.len().saturating_sub(offset);
        let from = newest_kept.saturating_sub(limit);
        read.truncate(newest_kept);
        Ok(read.split_off(from))
    }

    /// Releases the rooms `socket` has not pinged for [`PRESENCE_TIMEOUT`].
    pub(crate) async fn sweep(&self, socket: &CellsSocket, user: &UserId) {
        let id = socket.subscriber_id();
        let stale: Vec<Uuid> = {
            let held = lock(&self.held);
            (held.sockets.get(&id).into_iter().flatten())
                .filter(|(_, pinged)| pinged.elapsed() >= PRESENCE_TIMEOUT)
                .map(|(room, _)| *room)
                .collect()
        };
        for room in stale {
            self.release(id, room, user).await;
        }
    }

    /// Releases every room of a socket that ended or was unsubscribed.
    pub(crate) async fn forget(&self, socket: &CellsSocket, user: &UserId) {
        let id = socket.subscriber_id();
        let rooms: Vec<Uuid> = (lock(&self.held).sockets.get(&id))
            .map(|rooms| rooms.keys().copied().collect())
            .unwrap_or_default();
        for room in rooms {
            self.release(id, room, user).await;
        }
        lock(&self.held).sockets.remove(&id);
    }

    /// Whether the session may use the room: a workspace of its own; a node the backend (or,
    /// with JWTs, the session's workspace roots) lets it read.
    async fn check(
        &self,
        session: &Session,
        socket: &CellsSocket,
        room: &RoomRef,
    ) -> Result<(), ErrorCode> {
        let allowed = match room {
            RoomRef::Workspace(id) => socket
                .identity()
                .is_some_and(|identity| identity.workspaces.contains(id)),
            RoomRef::Node(node) => (self.auth.can_read_node(session, node).await)
                .map_err(|_| ErrorCode::Unavailable)?,
        };
        if allowed {
            Ok(())
        } else {
            Err(ErrorCode::Forbidden)
        }
    }

    /// Stores the room unless it exists.
    async fn open(&self, room: &RoomRef) -> Result<(), ErrorCode> {
        let stored = match room {
            RoomRef::Workspace(id) => Room::new(
                RoomKind::Workspace,
                Some(id.to_string()),
                Some(id.clone()),
                Vec::new(),
                None,
                now_ms(),
            ),
            RoomRef::Node(node) => Room::new(
                RoomKind::Node,
                Some(node.clone()),
                None,
                Vec::new(),
                None,
                now_ms(),
            ),
        };
        (self.chat.store.open_room(&stored).await)
            .map(drop)
            .map_err(|_| ErrorCode::Unavailable)
    }

    /// Holds the room for the socket and makes its user present: the room's connections learn
    /// of a change of its users; the socket gets the room either way.
    async fn hold(&self, socket: &Arc<CellsSocket>, uuid: Uuid, room: &RoomRef, user: &UserId) {
        let id = socket.subscriber_id();
        {
            let mut held = lock(&self.held);
            let entry = (held.rooms.entry(uuid)).or_insert_with(|| (room.clone(), HashMap::new()));
            entry.1.insert(id, socket.clone());
            held.sockets
                .entry(id)
                .or_default()
                .insert(uuid, Instant::now());
        }
        let was_present = self.chat.presence.holds(&uuid, user);
        let members = self.chat.presence.join(uuid, user, id);
        if was_present {
            socket.push(protocol::room_update(&uuid, room, &members, now_ms() / 1000).into());
        } else {
            let notice = Notice::Members(RoomMembers {
                room: uuid,
                members,
            });
            self.deliver_everywhere(notice).await;
        }
    }

    /// Notes a PING of a room the socket holds; `false` when it does not hold it.
    fn touch(&self, id: SubscriberId, room: Uuid) -> bool {
        let mut held = lock(&self.held);
        match held
            .sockets
            .get_mut(&id)
            .and_then(|rooms| rooms.get_mut(&room))
        {
            Some(pinged) => {
                *pinged = Instant::now();
                true
            }
            None => false,
        }
    }

    fn holding(&self, socket: &CellsSocket, room: Uuid) -> Result<(), ErrorCode> {
        let held = lock(&self.held);
        let holds = (held.sockets.get(&socket.subscriber_id()))
            .is_some_and(|rooms| rooms.contains_key(&room));
        let allowed = match held.rooms.get(&room).map(|(room, _)| room) {
            Some(RoomRef::Workspace(id)) => socket
                .identity()
                .is_some_and(|identity| identity.workspaces.contains(id)),
            _ => true,
        };
        match (holds, allowed) {
            (true, true) => Ok(()),
            (true, false) => Err(ErrorCode::Forbidden),
            (false, _) => Err(ErrorCode::NotJoined),
        }
    }

    /// The socket no longer holds the room; its user leaves the room's present users when no
    /// other connection of theirs holds it.
    async fn release(&self, id: SubscriberId, room: Uuid, user: &UserId) {
        let held_it = {
            let mut held = lock(&self.held);
            let held_it =
                (held.sockets.get_mut(&id)).is_some_and(|rooms| rooms.remove(&room).is_some());
            if let Some((_, members)) = held.rooms.get_mut(&room) {
                members.remove(&id);
                if members.is_empty() {
                    held.rooms.remove(&room);
                }
            }
            held_it
        };
        if !held_it {
            return;
        }
        if let Some(members) = self.chat.presence.leave(room, user, id) {
            let notice = Notice::Members(RoomMembers { room, members });
            self.deliver_everywhere(notice).await;
        }
    }

    /// Delivers a notice to the room's connections on this node, of every door, and tells the
    /// other nodes.
    async fn deliver_everywhere(&self, notice: Notice) {
        self.chat.deliver_here(&notice, None);
        if let Some((redis, node)) = &self.cluster
            && let Err(error) = control::broadcast(redis, node, &notice).await
        {
            tracing::warn!(%error, room = %notice.room(), "chat notice not sent to the other nodes");
        }
    }
}

impl ChatDoor for CellsChat {
    fn deliver(&self, notice: &Notice, except: Option<SubscriberId>) {
        let held = lock(&self.held);
        let Some((room, members)) = held.rooms.get(&notice.room()) else {
            return;
        };
        let frame: tokio_tungstenite::tungstenite::Utf8Bytes = match notice {
            Notice::Message(message) => protocol::message(message),
            Notice::Deleted(target) => protocol::deleted(target),
            Notice::Members(present) => {
                protocol::room_update(&present.room, room, &present.members, now_ms() / 1000)
            }
        }
        .into();
        for (id, socket) in members {
            if Some(*id) == except {
                continue;
            }
            // A workspace the session lost since it joined: nothing more of that room.
            if let RoomRef::Workspace(workspace) = room
                && !socket
                    .identity()
                    .is_some_and(|identity| identity.workspaces.contains(workspace))
            {
                continue;
            }
            socket.push(frame.clone());
        }
    }
}

/// The room a Cells room name names: a workspace's is the Socket.IO chat's room of that
/// workspace; a node's is keyed by the node alone, as Cells keys it.
fn room_uuid(room: &RoomRef) -> Uuid {
    match room {
        RoomRef::Workspace(id) => {
            Room::new(
                RoomKind::Workspace,
                None,
                Some(id.clone()),
                Vec::new(),
                None,
                0,
            )
            .uuid
        }
        RoomRef::Node(node) => {
            Room::new(
                RoomKind::Node,
                Some(node.clone()),
                None,
                Vec::new(),
                None,
                0,
            )
            .uuid
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain maps, consistent after every statement: a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
