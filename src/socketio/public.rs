//! `/public`: browsers. The handshake authenticates; the socket joins its user and group rooms;
//! `register` / `unregister` move it in and out of workspace rooms after an access check.
//!
//! Every event with an ack gets an answer, also when its payload is unusable or the event is
//! unknown; nothing a browser sends disconnects it or affects another socket.

use std::sync::Arc;

use socketioxide::{
    ParserError,
    extract::{AckSender, Event, SocketRef, TryData},
    handler::ConnectHandler,
    socket::DisconnectReason,
};

use super::state::AppState;
use super::{
    ConnectRefusal, Io, counted,
    events::{self, ErrorAck, ErrorCode, OkAck, RefreshAck, RegisterAck, UserPosition},
    guard::{self, throttle},
    recovered,
    reply::{Reply, truncate},
    sequencer::Ticket,
    socket_state::SocketState,
    subscriber::{SocketSubscriber, subscriber_id},
};
use crate::{
    auth::{AuthError, Authenticator, Credentials, RefreshError, Session},
    history::Position,
    metrics::Metrics,
    pipeline::{Backlog, Joined, LoggedRoom},
    rooms,
};

pub(super) fn register(io: &Io, state: AppState) {
    let path = state.cfg.public.path.clone();
    let connected = {
        let state = state.clone();
        move |socket: SocketRef| {
            let state = state.clone();
            async move { on_connect(&state, socket).await }
        }
    };
    let admit = move |socket: SocketRef, TryData(data): TryData<serde_json::Value>| {
        let state = state.clone();
        async move {
            let admitted = admit(&state, &socket, data).await;
            guard::handshake_done(&socket);
            counted(&state.metrics, "public", admitted)
        }
    };
    io.ns(path, connected.with(admit));
}

/// The handshake asked to resume the user room (`auth.since`): the socket joins that room in
/// the connect handler, after the replay, instead of in the middleware.
struct ResumeUser(Option<Position>);

/// Connect middleware: authenticates, then prepares the socket. Everything happens here, before
/// socketioxide sends the CONNECT packet: its connect handler runs only afterwards, in another
/// task, so an event the client emits from its `connect` listener could otherwise arrive
/// before the handlers exist and be lost.
async fn admit(
    state: &AppState,
    socket: &SocketRef,
    data: Result<serde_json::Value, ParserError>,
) -> Result<(), ConnectRefusal> {
    let since = events::parse_handshake_since(data.as_ref().ok());
    let auth = state
        .cfg
        .recovery
        .enabled
        .then(|| data.as_ref().ok().cloned())
        .flatten();
    let session = authenticate(&state.auth, socket, data).await?;
    let since = since.map_err(|message| {
        tracing::debug!(sid = %socket.id, %message, "handshake refused: bad auth.since");
        ConnectRefusal::BadRequest(message)
    })?;
    let user = &session.principal.user;
    let recovered = state.cfg.recovery.enabled
        && recovered::admit(state, socket, &session, auth.as_ref()).await;
    if !recovered {
        if let Some(Some(position)) = &since {
            check_not_beyond(state, user, position).await?;
        }
        let mut own_rooms: Vec<String> = session
            .principal
            .groups
            .iter()
            .map(rooms::group_room)
            .collect();
        match since {
            Some(since) => {
                socket.extensions.insert(Arc::new(ResumeUser(since)));
            }
            None => own_rooms.push(rooms::user_room(user)),
        }
        let subscriber = SocketSubscriber::shared(socket.clone(), state.slow.clone());
        state.deliverer.admit(&subscriber, own_rooms).await;
    }
    let bucket = guard::admitted(state, socket, &session.principal.user);
    SocketState::attach(socket, session, Some(bucket), &state.expiry);
    watch_disconnect(socket, state);
    add_handlers(socket, state);
    Ok(())
}

/// Turns handshake credentials into a session, or a refusal that says only "unauthorized".
pub(crate) async fn authenticate(
    auth: &Authenticator,
    socket: &SocketRef,
    data: Result<serde_json::Value, ParserError>,
) -> Result<Session, ConnectRefusal> {
    let parts = socket.req_parts();
    let credentials = Credentials::from_handshake(data.ok().as_ref(), &parts.uri, &parts.headers);
    match auth.open_session(credentials).await {
        Ok(session) => {
            let user = &session.principal.user;
            tracing::debug!(sid = %socket.id, %user, "browser authenticated");
            Ok(session)
        }
        Err(error @ AuthError::Unavailable(_)) => {
            tracing::warn!(sid = %socket.id, %error, "handshake refused: auth backend unavailable");
            Err(ConnectRefusal::Unauthorized)
        }
        Err(error) => {
            tracing::debug!(sid = %socket.id, %error, "handshake refused");
            Err(ConnectRefusal::Unauthorized)
        }
    }
}

/// Refuses a handshake whose `auth.since.user` is ahead of the user room (same epoch).
async fn check_not_beyond(
    state: &AppState,
    user: &crate::ids::UserId,
    since: &Position,
) -> Result<(), ConnectRefusal> {
    match state.deliverer.head(LoggedRoom::User(user)).await {
        Ok(head) if head.epoch == since.epoch && since.offset > head.offset => {
            Err(ConnectRefusal::BadRequest(format!(
                "`auth.since.user` offset {} is beyond the room's latest offset {}",
                since.offset, head.offset
            )))
        }
        Ok(_) => Ok(()),
        Err(error) => {
            // Resuming needs the log; without it, the join in the connect handler says resync.
            tracing::warn!(sid = ?user, %error, "handshake: event log unavailable");
            Ok(())
        }
    }
}

async fn on_connect(state: &AppState, socket: SocketRef) {
    tracing::debug!(sid = %socket.id, transport = ?socket.transport_type(), "browser connected");
    if let Some(recovered) = socket.extensions.get::<Arc<recovered::Recovered>>() {
        let backlog = recovered
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(backlog) = backlog {
            let subscriber = SocketSubscriber::new(socket.clone(), &state.slow);
            state.deliverer.go_live(&subscriber, backlog).await;
        }
        return;
    }
    // Live events that came between the joins in `admit` and now were held.
    let subscriber = SocketSubscriber::new(socket.clone(), &state.slow);
    if !state
        .deliverer
        .go_live(&subscriber, Backlog::default())
        .await
    {
        return;
    }
    let (Some(resume), Some(socket_state)) = (
        socket.extensions.get::<Arc<ResumeUser>>(),
        SocketState::of(&socket),
    ) else {
        return;
    };
    // In turn with `register`s: one replay at a time per socket keeps each room in order.
    let _turn = socket_state.ticket().turn().await;
    let session = socket_state.session();
    let user = LoggedRoom::User(&session.principal.user);
    let head = match state
        .deliverer
        .join(&subscriber, user, resume.0.as_ref())
        .await
    {
        Ok(Joined::Live { head, replayed }) => {
            tracing::debug!(sid = %socket.id, replayed, "user room resumed");
            head
        }
        Ok(Joined::Resync(_) | Joined::Slow) => return,
        Ok(Joined::Beyond(head)) => {
            // Checked in the middleware; the log moved since (it only moves forward, so this
            // is a new epoch): resume from nothing rather than leave the socket outside.
            tracing::debug!(sid = %socket.id, "user room: position beyond the head");
            socket.join(rooms::user_room(&session.principal.user));
            head
        }
        Err(error) => {
            tracing::warn!(sid = %socket.id, %error, "user room not resumed: event log unavailable");
            socket.join(rooms::user_room(&session.principal.user));
            return;
        }
    };
    let position = UserPosition {
        offset: head.offset,
        epoch: head.epoch.as_str(),
    };
    state.slow.emit(&socket, events::USER_POSITION, &position);
}

/// On disconnect: stops the expiry timer, and saves the session for recovery when the
/// transport dropped.
fn watch_disconnect(socket: &SocketRef, state: &AppState) {
    let recovery = state.cfg.recovery.enabled.then(|| state.recovery.clone());
    let state = state.clone();
    socket.on_disconnect(move |socket: SocketRef, reason: DisconnectReason| {
        let (recovery, state) = (recovery.clone(), state.clone());
        async move {
            let socket_state = SocketState::of(&socket);
            if let Some(socket_state) = &socket_state {
                guard::forget(&state, &socket, &socket_state.session().principal.user);
            }
            state.deliverer.forget(subscriber_id(socket.id)).await;
            if let Some(expiry) = socket_state.as_ref().and_then(|s| s.expiry()) {
                expiry.stop();
            }
            if let Some(recovery) = recovery {
                recovered::save(&recovery, &socket, reason).await;
            }
        }
    });
}

fn add_handlers(socket: &SocketRef, state: &AppState) {
    let st = state.clone();
    socket.on(
        events::REGISTER,
        move |socket: SocketRef,
              ticket: Ticket,
              TryData(data): TryData<serde_json::Value>,
              ack: AckSender| {
            let state = st.clone();
            async move {
                if let Err(reply) = throttle(&state, &socket) {
                    return reply.send(ack);
                }
                let _turn = ticket.turn().await;
                let (reply, outcome) = on_register(&state, &socket, data).await;
                Metrics::count(&state.metrics.registers, "public", outcome);
                reply.send(ack);
            }
        },
    );
    socket.on(events::UNREGISTER, {
        let state = state.clone();
        move |socket: SocketRef,
              ticket: Ticket,
              TryData(data): TryData<serde_json::Value>,
              ack: AckSender| {
            let state = state.clone();
            async move {
                if let Err(reply) = throttle(&state, &socket) {
                    return reply.send(ack);
                }
                let _turn = ticket.turn().await;
                on_unregister(&state, &socket, data).await.send(ack);
            }
        }
    });
    socket.on(events::REFRESH, {
        let state = state.clone();
        move |socket: SocketRef,
              ticket: Ticket,
              TryData(data): TryData<serde_json::Value>,
              ack: AckSender| {
            let state = state.clone();
            async move {
                if let Err(reply) = throttle(&state, &socket) {
                    return reply.send(ack);
                }
                let _turn = ticket.turn().await;
                on_refresh(&state, &socket, data).await.send(ack);
            }
        }
    });
    let state = state.clone();
    socket.on_fallback(
        move |socket: SocketRef, Event(event): Event, ack: AckSender| {
            let state = state.clone();
            async move {
                if let Err(reply) = throttle(&state, &socket) {
                    return reply.send(ack);
                }
                tracing::debug!(sid = %socket.id, event = %truncate(&event), "unknown event");
                Reply::error(&ErrorAck::with_message(
                    ErrorCode::BadRequest,
                    "unknown event",
                ))
                .send(ack);
            }
        },
    );
}

async fn on_register(
    state: &AppState,
    socket: &SocketRef,
    data: Result<serde_json::Value, ParserError>,
) -> (Reply, &'static str) {
    let parsed = data
        .map_err(|_| "expected a JSON argument".to_owned())
        .and_then(events::parse_register_arg);
    let (workspace, since) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => {
            let reply = Reply::error(&ErrorAck::with_message(ErrorCode::BadRequest, message));
            return (reply, "bad_request");
        }
    };
    let Some(session) = SocketState::of(socket).map(|s| s.session()) else {
        return (
            Reply::error(&ErrorAck::new(ErrorCode::Forbidden)),
            "forbidden",
        );
    };
    if let Err(reply) = guard::room_for_workspace(state, socket, &workspace) {
        return (reply, "too_many_workspaces");
    }
    match state.auth.can_read(&session, &workspace).await {
        Ok(true) => {
            let room = LoggedRoom::Workspace(&workspace);
            let subscriber = SocketSubscriber::new(socket.clone(), &state.slow);
            let head = match state
                .deliverer
                .join(&subscriber, room, since.as_ref())
                .await
            {
                Ok(Joined::Live { head, .. } | Joined::Resync(head)) => head,
                Ok(Joined::Beyond(head)) => {
                    let message = format!(
                        "`since` offset is beyond the workspace's latest offset {}",
                        head.offset
                    );
                    let reply =
                        Reply::error(&ErrorAck::with_message(ErrorCode::BadRequest, message));
                    return (reply, "bad_request");
                }
                Ok(Joined::Slow) => {
                    let reply = Reply::error(&ErrorAck::with_message(
                        ErrorCode::Unavailable,
                        "too much to replay at once: reconnect and resume from the last offset received",
                    ));
                    return (reply, "slow");
                }
                Err(error) => {
                    tracing::warn!(sid = %socket.id, %error, "register: event log unavailable");
                    return (
                        Reply::error(&ErrorAck::new(ErrorCode::Unavailable)),
                        "unavailable",
                    );
                }
            };
            // Disconnected while the check ran: socketioxide has already dropped its rooms, so
            // this join would leave a stale entry. (Not `socket.connected()`: that flag is set
            // only after CONNECT is sent, and a register can arrive before it is.)
            let still_here = state
                .io
                .of(&state.cfg.public.path)
                .and_then(|ns| ns.get_socket(socket.id))
                .is_some();
            if !still_here {
                socket.leave_all();
            }
            tracing::debug!(sid = %socket.id, %workspace, "registered");
            let reply = Reply::ok(&RegisterAck {
                ok: true,
                workspace: &workspace,
                offset: head.offset,
                epoch: head.epoch.as_str(),
            });
            (reply, "ok")
        }
        Ok(false) => {
            tracing::debug!(sid = %socket.id, %workspace, "register forbidden");
            (
                Reply::error(&ErrorAck::new(ErrorCode::Forbidden)),
                "forbidden",
            )
        }
        Err(error) => {
            tracing::warn!(sid = %socket.id, %error, "register: access check unavailable");
            (
                Reply::error(&ErrorAck::new(ErrorCode::Unavailable)),
                "unavailable",
            )
        }
    }
}

/// `refresh {"token"}`: a new token for the same user replaces the session (JWT mode).
async fn on_refresh(
    state: &AppState,
    socket: &SocketRef,
    data: Result<serde_json::Value, ParserError>,
) -> Reply {
    let token = data
        .ok()
        .and_then(|value| value.get("token")?.as_str().map(str::to_owned));
    let Some(token) = token else {
        return Reply::error(&ErrorAck::with_message(
            ErrorCode::BadRequest,
            "expected {\"token\": \"<jwt>\"}",
        ));
    };
    let Some(socket_state) = SocketState::of(socket) else {
        return Reply::error(&ErrorAck::new(ErrorCode::Unauthorized));
    };
    let session = socket_state.session();
    let principal = match state.auth.refresh(&session, &token) {
        Ok(principal) => principal,
        Err(RefreshError::NotApplicable) => {
            let refusal = RefreshError::NotApplicable.to_string();
            return Reply::error(&ErrorAck::with_message(ErrorCode::BadRequest, refusal));
        }
        Err(RefreshError::OtherUser) => {
            tracing::debug!(sid = %socket.id, "refresh with another user's token");
            return Reply::error(&ErrorAck::new(ErrorCode::Forbidden));
        }
        Err(RefreshError::Invalid(error)) => {
            tracing::debug!(sid = %socket.id, %error, "refresh refused");
            return Reply::error(&ErrorAck::new(ErrorCode::Unauthorized));
        }
    };
    let exp = principal.expires_at;
    let subscriber = SocketSubscriber::new(socket.clone(), &state.slow);
    let revoked = state
        .deliverer
        .adopt(&state.auth, &subscriber, principal)
        .await;
    if let (Some(expiry), Some(exp)) = (socket_state.expiry(), exp) {
        expiry.extend(exp);
    }
    Reply::ok(&RefreshAck {
        ok: true,
        exp,
        revoked,
    })
}

async fn on_unregister(
    state: &AppState,
    socket: &SocketRef,
    data: Result<serde_json::Value, ParserError>,
) -> Reply {
    match parse_arg(data) {
        Ok(workspace) => {
            // Between two deliveries, so no event of the workspace follows the ack.
            let subscriber = SocketSubscriber::new(socket.clone(), &state.slow);
            let room = rooms::workspace_room(&workspace);
            state.deliverer.leave(&subscriber, &[room]).await;
            Reply::ok(&OkAck::OK)
        }
        Err(reply) => reply,
    }
}

fn parse_arg(
    data: Result<serde_json::Value, ParserError>,
) -> Result<crate::ids::WorkspaceId, Reply> {
    data.map_err(|_| "expected a JSON argument".to_owned())
        .and_then(events::parse_workspace_arg)
        .map_err(|message| Reply::error(&ErrorAck::with_message(ErrorCode::BadRequest, message)))
}
