//! `/private`: application backends. The handshake checks the private key and the peer's host;
//! `publish` hands events to the [`crate::pipeline::Publisher`]; `disconnect_user` ends a user's
//! browser sessions (as Open-Xchange does on logout).

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use serde_json::value::RawValue;
use socketioxide::{
    ParserError,
    extract::{AckSender, Event, SocketRef, TryData},
    handler::ConnectHandler,
};

use super::state::AppState;
use super::{
    ConnectRefusal, Io,
    access::{self, AccessError},
    counted,
    events::{
        self, AccessChange, DisconnectUser, DisconnectUserAck, ErrorAck, ErrorCode, PublishAck,
    },
    raw_arg::{RawArg, RawArgError},
    reply::{Reply, truncate},
};
use crate::{
    auth::{credentials::bearer, private::PrivateAccess},
    cluster::control,
    event::{Publication, PublishError},
};

pub(super) fn register(io: &Io, state: AppState) {
    let path = state.cfg.private.path.clone();
    let admit = move |socket: SocketRef, TryData(data): TryData<serde_json::Value>| {
        let state = state.clone();
        async move {
            let admitted = check(&state.private, &socket, data);
            super::guard::handshake_done(&socket);
            if admitted.is_ok() {
                // Before the CONNECT packet goes out: see `public::admit`.
                add_handlers(&socket, &state);
            }
            counted(&state.metrics, "private", admitted)
        }
    };
    io.ns(path, on_connect.with(admit));
}

/// The key (`auth.key` or `Authorization: Bearer`) and the host.
fn check(
    access: &PrivateAccess,
    socket: &SocketRef,
    data: Result<serde_json::Value, ParserError>,
) -> Result<(), ConnectRefusal> {
    let parts = socket.req_parts();
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied() else {
        tracing::error!("no peer address on a /private handshake");
        return Err(ConnectRefusal::Unauthorized);
    };
    let data = data.ok();
    let key = data
        .as_ref()
        .and_then(|d| d.get("key"))
        .and_then(serde_json::Value::as_str)
        .or_else(|| {
            parts
                .headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer)
        });
    access.admit(peer, &parts.headers, key).map_err(|error| {
        tracing::warn!(%peer, %error, "backend refused on /private");
        ConnectRefusal::Unauthorized
    })
}

async fn on_connect(socket: SocketRef) {
    tracing::info!(sid = %socket.id, "backend connected");
}

fn add_handlers(socket: &SocketRef, state: &AppState) {
    let st = state.clone();
    socket.on(
        events::PUBLISH,
        move |socket: SocketRef, RawArg(data): RawArg, ack: AckSender| {
            let state = st.clone();
            async move { on_publish(&state, &socket, data).await.send(ack) }
        },
    );
    socket.on(events::DISCONNECT_USER, {
        let state = state.clone();
        move |TryData(data): TryData<DisconnectUser>, ack: AckSender| {
            let state = state.clone();
            async move { on_disconnect_user(&state, data).await.send(ack) }
        }
    });
    socket.on(events::ACCESS, {
        let state = state.clone();
        move |TryData(data): TryData<AccessChange>, ack: AckSender| {
            let state = state.clone();
            async move { on_access(&state, data).await.send(ack) }
        }
    });
    socket.on_fallback(async |socket: SocketRef, Event(event): Event, ack: AckSender| {
        tracing::debug!(sid = %socket.id, event = %truncate(&event), "unknown event on /private");
        Reply::error(&ErrorAck::with_message(ErrorCode::BadRequest, "unknown event")).send(ack);
    });
}

async fn on_publish(
    state: &AppState,
    socket: &SocketRef,
    data: Result<Box<RawValue>, RawArgError>,
) -> Reply {
    let result = match data {
        Ok(raw) => Publication::parse(raw.get(), state.cfg.publish.max_targets),
        Err(RawArgError::Binary) => Err(PublishError::BadRequest(
            "binary attachments are not supported".into(),
        )),
        Err(_) => Err(PublishError::BadRequest(
            "expected a JSON object argument".into(),
        )),
    };
    let result = match result {
        Ok(publication) => state.publisher.publish(publication).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(receipt) => Reply::ok(&PublishAck {
            ok: true,
            id: &receipt.id,
        }),
        Err(error) => {
            tracing::debug!(sid = %socket.id, %error, "publish refused");
            Reply::error(&ErrorAck::from(&error))
        }
    }
}

async fn on_access(state: &AppState, data: Result<AccessChange, ParserError>) -> Reply {
    let Ok(change) = data else {
        return Reply::error(&ErrorAck::with_message(
            ErrorCode::BadRequest,
            "expected {\"user\": \"<id>\", \"workspaces\"?: [\"<id>\", ...]}",
        ));
    };
    match access::change(state, change).await {
        Ok(outcome) => Reply::ok(&outcome),
        Err(error @ AccessError::WorkspacesRequired) => Reply::error(&ErrorAck::with_message(
            ErrorCode::BadRequest,
            error.to_string(),
        )),
        Err(AccessError::Unavailable) => Reply::error(&ErrorAck::new(ErrorCode::Unavailable)),
    }
}

async fn on_disconnect_user(state: &AppState, data: Result<DisconnectUser, ParserError>) -> Reply {
    let Ok(request) = data else {
        return Reply::error(&ErrorAck::with_message(
            ErrorCode::BadRequest,
            "expected {\"user\": \"<id>\", \"reason\"?: \"...\"}",
        ));
    };
    if let Some(redis) = &state.cluster
        && let Err(error) = control::broadcast(redis, &state.node_id, &request).await
    {
        tracing::warn!(%error, "disconnect_user not sent to the other nodes");
        return Reply::error(&ErrorAck::new(ErrorCode::Unavailable));
    }
    match disconnect_user_here(state, &request).await {
        Ok(sockets) => Reply::ok(&DisconnectUserAck { ok: true, sockets }),
        Err(()) => Reply::error(&ErrorAck::new(ErrorCode::Unavailable)),
    }
}

/// Ends every session of the user on this node, on every door (a Socket.IO socket is told
/// `session_invalid`, then disconnected); how many there were. `Err` when the node shuts down.
pub(crate) async fn disconnect_user_here(
    state: &AppState,
    request: &DisconnectUser,
) -> Result<usize, ()> {
    if state.io.of(&state.cfg.public.path).is_none() {
        return Err(());
    }
    // Credentials the user presents from now on are asked of the backend again, not taken
    // from its cached answer (this node's cache: the other nodes apply the same command).
    state.auth.forget_user(&request.user).await;
    // This node's sessions, on every door: the other nodes apply the same command (cluster
    // control).
    let reason = request.reason.as_deref().unwrap_or("logout");
    let count = state.deliverer.disconnect_user(&request.user, reason);
    tracing::info!(user = %request.user, sockets = count, "user disconnected by backend");
    Ok(count)
}
