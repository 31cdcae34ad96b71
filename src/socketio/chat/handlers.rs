//! The chat namespace: handshake, events, disconnects.
//!
//! The handshake is `/public`'s (the same credentials, the same refusal). Every call of a socket
//! waits for its turn in the socket's sequencer, so calls take effect in the order the client
//! sent them (a `post` right after a `join`, two posts in a row). Every call with an ack gets
//! an answer, also for unusable payloads and unknown events; nothing a browser sends
//! disconnects it or affects another socket.
//!
//! Broadcasts (`message`, `message_deleted`, `room_members`) go to the room's sockets other
//! than the one whose call caused them: that one learns the outcome from its ack. Each goes
//! through [`crate::socketio::slow::SlowPolicy`].

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
};

use serde::Serialize;
use serde_json::Value;
use socketioxide::{
    ParserError,
    extract::{AckSender, Event, SocketRef, TryData},
    handler::ConnectHandler,
};
use uuid::Uuid;

use super::{
    Chat,
    access::{check_access, on_refresh},
    broadcast::{announce_members, deliver, released, watch_disconnect},
    cluster, now_ms,
    protocol::{self, ChatError, ErrorAck, HistoryAck, JoinAck, PostAck},
    room::{Room, socket_room},
    store::{Deleted, Message, StoreError},
};
use crate::{
    auth::Session,
    chat::notice::Notice,
    rooms,
    socketio::state::AppState,
    socketio::{
        ConnectRefusal, Io, authenticate, counted, sequencer::Ticket, socket_state::SocketState,
        subscriber::subscriber_id,
    },
};

/// The rooms a socket has joined, with what they are attached to (for access re-checks).
#[derive(Debug, Default)]
pub(super) struct Joined(Mutex<HashMap<Uuid, Room>>);

impl Joined {
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut HashMap<Uuid, Room>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn contains(&self, room: &Uuid) -> bool {
        self.with(|rooms| rooms.contains_key(room))
    }
}

/// What every chat call works with.
#[derive(Clone)]
pub(super) struct Ctx {
    pub(super) state: AppState,
    pub(super) chat: Chat,
    pub(super) socket: SocketRef,
}

impl Ctx {
    pub(super) fn socket_state(&self) -> Result<Arc<SocketState>, ChatError> {
        SocketState::of(&self.socket).ok_or(ChatError::Unavailable)
    }

    pub(super) fn session(&self) -> Result<Arc<Session>, ChatError> {
        Ok(self.socket_state()?.session())
    }

    pub(super) fn joined(&self) -> Arc<Joined> {
        self.socket
            .extensions
            .get::<Arc<Joined>>()
            .unwrap_or_default()
    }

    fn require_joined(&self, room: &Uuid) -> Result<(), ChatError> {
        if self.joined().contains(room) {
            Ok(())
        } else {
            Err(ChatError::NotJoined)
        }
    }
}

/// Declares the chat namespace (when the chat is enabled).
pub(crate) fn register(io: &Io, state: &AppState) {
    let Some(chat) = state.chat.clone() else {
        return;
    };
    let path = state.cfg.chat.path.clone();
    chat.attach(Arc::new(super::broadcast::SocketIoChat {
        io: io.clone(),
        path: path.clone(),
        slow: state.slow.clone(),
    }));
    let state = state.clone();
    let admit = move |socket: SocketRef, TryData(data): TryData<Value>| {
        let (state, chat) = (state.clone(), chat.clone());
        async move {
            let admitted = admit(state.clone(), chat, &socket, data).await;
            crate::limits::handshake_done(&socket);
            counted(&state.metrics, "chat", admitted)
        }
    };
    io.ns(path, (async || {}).with(admit));
}

/// Connect middleware: authenticates as `/public` does, then prepares the socket (before the
/// CONNECT packet goes out, so the handlers exist for the client's first emit).
async fn admit(
    state: AppState,
    chat: Chat,
    socket: &SocketRef,
    data: Result<Value, ParserError>,
) -> Result<(), ConnectRefusal> {
    let session = authenticate(&state.auth, socket, data).await?;
    socket.join(rooms::user_room(&session.principal.user));
    SocketState::attach(socket, session, None, &state.expiry);
    socket.extensions.insert(Arc::new(Joined::default()));
    let ctx = Ctx {
        state,
        chat,
        socket: socket.clone(),
    };
    watch_disconnect(&ctx);
    on(&ctx, protocol::JOIN, on_join);
    on(&ctx, protocol::LEAVE, on_leave);
    on(&ctx, protocol::POST, on_post);
    on(&ctx, protocol::HISTORY, on_history);
    on(&ctx, protocol::DELETE_MESSAGE, on_delete);
    on(&ctx, protocol::REFRESH, on_refresh);
    socket.on_fallback(async |Event(event): Event, ack: AckSender| {
        let event: String = event.chars().take(64).collect();
        answer(
            ack,
            Err(ChatError::BadRequest(format!("unknown event {event:?}"))),
        );
    });
    Ok(())
}

/// Registers a call: parsed in its turn, answered with its result.
fn on<F, Fut>(ctx: &Ctx, event: &'static str, handler: F)
where
    F: Fn(Ctx, Value) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, ChatError>> + Send + 'static,
{
    let ctx = ctx.clone();
    ctx.socket.clone().on(
        event,
        move |ticket: Ticket, TryData(data): TryData<Value>, ack: AckSender| {
            let (ctx, handler) = (ctx.clone(), handler.clone());
            async move {
                let _turn = ticket.turn().await;
                let result = match data {
                    Ok(value) => handler(ctx, value).await,
                    Err(_) => Err(ChatError::BadRequest("expected a JSON argument".into())),
                };
                if let Err(error) = &result {
                    tracing::debug!(event, code = error.code(), %error, "chat call refused");
                }
                answer(ack, result);
            }
        },
    );
}

fn answer(ack: AckSender, result: Result<Value, ChatError>) {
    let body = match result {
        Ok(body) => body,
        Err(error) => json(&ErrorAck::from(&error)),
    };
    if let Err(error) = ack.send(&body) {
        tracing::debug!(%error, "ack not sent");
    }
}

fn json(body: &impl Serialize) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(unavailable)`
fn unavailable(error: StoreError) -> ChatError {
    tracing::warn!(%error, "chat store unavailable");
    ChatError::Unavailable
}

async fn on_join(ctx: Ctx, value: Value) -> Result<Value, ChatError> {
    let cfg = &ctx.state.cfg.chat;
    let session = ctx.session()?;
    let room = protocol::parse_join(value, cfg, now_ms())?.room;
    let joined = ctx.joined();
    if !joined.contains(&room.uuid) && joined.with(|rooms| rooms.len()) >= cfg.max_rooms_per_socket
    {
        return Err(ChatError::BadRequest(format!(
            "at most {} rooms per socket: leave one first",
            cfg.max_rooms_per_socket
        )));
    }
    check_access(&ctx.state.auth, &session, &room).await?;
    let room = ctx.chat.store.open_room(&room).await.map_err(unavailable)?;
    let page = ctx
        .chat
        .store
        .history(&room.uuid, None, cfg.history_page)
        .await
        .map_err(unavailable)?;
    let user = &session.principal.user;
    ctx.socket.join(socket_room(&room.uuid));
    joined.with(|rooms| rooms.insert(room.uuid, room.clone()));
    ctx.chat
        .presence
        .join(room.uuid, user, subscriber_id(ctx.socket.id));
    // Disconnected while this ran: socketioxide has already dropped its rooms and the
    // disconnect handler may have run before the lines above, so undo rather than leave
    // stale entries (a disconnect handler running after them finds and removes them too).
    if !still_here(&ctx) {
        ctx.socket.leave_all();
        joined.with(HashMap::clear);
        ctx.chat
            .presence
            .leave(room.uuid, user, subscriber_id(ctx.socket.id));
        return Err(ChatError::Unavailable);
    }
    cluster::sync(&ctx.state, &ctx.chat, room.uuid, user).await;
    let members = cluster::members(&ctx.state, &ctx.chat, room.uuid).await;
    announce_members(&ctx.state, room.uuid, members.clone(), Some(ctx.socket.id));
    tracing::debug!(sid = %ctx.socket.id, room = %room.uuid, "chat room joined");
    Ok(json(&JoinAck {
        ok: true,
        room: &room,
        messages: &page.messages,
        more: page.more,
        members: &members,
    }))
}

fn still_here(ctx: &Ctx) -> bool {
    ctx.state
        .io
        .of(&ctx.state.cfg.chat.path)
        .and_then(|ns| ns.get_socket(ctx.socket.id))
        .is_some()
}

async fn on_leave(ctx: Ctx, value: Value) -> Result<Value, ChatError> {
    let room = protocol::parse_room_ref(value)?;
    let session = ctx.session()?;
    if ctx.joined().with(|rooms| rooms.remove(&room)).is_some() {
        ctx.socket.leave(socket_room(&room));
        let user = &session.principal.user;
        let left = ctx
            .chat
            .presence
            .leave(room, user, subscriber_id(ctx.socket.id));
        released(&ctx.state, &ctx.chat, room, user, left).await;
    }
    Ok(json(&crate::socketio::events::OkAck::OK))
}

async fn on_post(ctx: Ctx, value: Value) -> Result<Value, ChatError> {
    let request = protocol::parse_post(value, ctx.state.cfg.chat.max_text)?;
    ctx.require_joined(&request.room)?;
    let session = ctx.session()?;
    let message = Message {
        uuid: Uuid::new_v4(),
        room: request.room,
        author: session.principal.user.clone(),
        text: request.text,
        ts: now_ms(),
    };
    ctx.chat.store.post(&message).await.map_err(unavailable)?;
    deliver(
        &ctx.state,
        Notice::Message(message.clone()),
        Some(ctx.socket.id),
    )
    .await;
    Ok(json(&PostAck {
        ok: true,
        message: &message,
    }))
}

async fn on_history(ctx: Ctx, value: Value) -> Result<Value, ChatError> {
    let cfg = &ctx.state.cfg.chat;
    let request = protocol::parse_history(value, cfg.history_page, cfg.max_history_limit)?;
    ctx.require_joined(&request.room)?;
    let page = ctx
        .chat
        .store
        .history(&request.room, request.before.as_ref(), request.limit)
        .await
        .map_err(|error| match error {
            StoreError::UnknownBefore => ChatError::NotFound,
            error => unavailable(error),
        })?;
    Ok(json(&HistoryAck {
        ok: true,
        messages: &page.messages,
        more: page.more,
    }))
}

async fn on_delete(ctx: Ctx, value: Value) -> Result<Value, ChatError> {
    let target = protocol::parse_message_ref(value)?;
    ctx.require_joined(&target.room)?;
    let session = ctx.session()?;
    let outcome = ctx
        .chat
        .store
        .delete(&target.room, &target.uuid, &session.principal.user)
        .await
        .map_err(unavailable)?;
    match outcome {
        Deleted::Done => {
            deliver(&ctx.state, Notice::Deleted(target), Some(ctx.socket.id)).await;
            Ok(json(&crate::socketio::events::OkAck::OK))
        }
        Deleted::NotAuthor => Err(ChatError::Forbidden("only its author may delete a message")),
        Deleted::NotFound => Err(ChatError::NotFound),
    }
}
