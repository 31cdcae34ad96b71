//! One Cells WebSocket from its upgrade to its end: the upgrade request's checks, then one task
//! that reads the client's frames, writes the queued ones, pings, authenticates subscribes
//! without stopping the rest, hands a chat socket's requests to the chat in order, and keeps the
//! session's clocks (token expiry, unsubscribed time, the chat's presence).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::{sync::OwnedMutexGuard, time::Instant};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message, Utf8Bytes,
        error::{CapacityError, Error as WsError},
        handshake::derive_accept_key,
        protocol::{CloseFrame, Role, WebSocketConfig, frame::coding::CloseCode},
    },
};

use super::{
    CellsContext, chat,
    door::{CellsSocket, Identity},
    frames::{self, CloseReason, ErrorCode, Request as ClientRequest},
    render,
};
use crate::{
    auth::{AuthError, Credentials, Session},
    error::ApiError,
    limits::{Ticket, rate::Bucket, rate::Verdict},
};

/// Most chat frames kept while a subscribe is being checked; more are refused as over the rate.
const MAX_WAITING_FRAMES: usize = 32;

/// How often a chat socket's rooms are checked for a missing PING.
const PRESENCE_SWEEP: Duration = Duration::from_secs(5);

/// How long before the token's expiry herald asks the UI to subscribe again: the UI refreshes
/// its token only when less than 5 s are left, and re-subscribes 500 ms after an `idm` frame.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(4);

/// `GET <cells.event_path>` (and `<cells.chat_path>`): upgrades to a WebSocket served by
/// [`serve`].
pub(crate) async fn upgrade(State(context): State<CellsContext>, request: Request) -> Response {
    let Some(accept) = accept_key(request.headers()) else {
        return ApiError::BadRequest {
            code: "bad_request",
            message: "a WebSocket upgrade (version 13) is expected here".into(),
        }
        .into_response();
    };
    let ticket = request.extensions().get::<Arc<Ticket>>().cloned();
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "cells upgrade failed");
                return;
            }
        };
        if let Some(ticket) = &ticket {
            ticket.admitted();
        }
        let settings = &context.settings;
        let config = WebSocketConfig::default()
            .read_buffer_size(settings.read_buffer_bytes)
            .max_message_size(Some(settings.max_frame_bytes))
            .max_frame_size(Some(settings.max_frame_bytes));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        serve(ws, context).await;
        drop(ticket);
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The `Sec-WebSocket-Accept` of a valid upgrade request; `None` for anything else.
fn accept_key(headers: &HeaderMap) -> Option<String> {
    let has = |name, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let version = headers.get(header::SEC_WEBSOCKET_VERSION)?;
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    (has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket") && version == "13")
        .then(|| derive_accept_key(key.as_bytes()))
}

type Io = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
/// A subscribe being checked, in the socket's turn (an access change waits for it to be
/// installed, and is then applied to it).
type Authenticating =
    Pin<Box<dyn Future<Output = (OwnedMutexGuard<()>, Result<Session, AuthError>)> + Send>>;

/// The clocks of one socket.
#[derive(Debug, Default)]
struct Clocks {
    /// When to ask the UI to subscribe again (before the token expires).
    renew: Option<Instant>,
    /// When the token has expired for good.
    expire: Option<Instant>,
    /// When an unsubscribed socket is closed.
    unsubscribed: Option<Instant>,
}

async fn serve(mut ws: Io, context: CellsContext) {
    let settings = &context.settings;
    let (socket, mut queue) = context.door.open(settings.queue, context.chat.is_none());
    context.metrics.connections.inc();
    let bucket = Bucket::new(&settings.limits, std::time::Instant::now());
    let mut clocks = Clocks {
        unsubscribed: Some(Instant::now() + settings.unsubscribed_timeout),
        ..Clocks::default()
    };
    let mut authenticating: Option<Authenticating> = None;
    // Chat frames that came while a subscribe was being checked.
    let mut waiting: Vec<String> = Vec::new();
    let mut presence = tokio::time::interval(PRESENCE_SWEEP);
    let mut ping = tokio::time::interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    let mut heard = Instant::now();
    let reason = loop {
        tokio::select! {
            biased;
            reason = socket.closed() => break Some(reason),
            frame = queue.recv() => {
                let Some(frame) = frame else { break None };
                // A client that does not read blocks the write: its queue fills meanwhile and it
                // is closed as slow; one that stays blocked is dropped after
                // `engine.ping_timeout`, as one that does not answer pings.
                // Everything queued by then goes out in one write: under a burst, one system
                // call for many frames.
                let write = tokio::time::timeout(settings.ping_timeout, async {
                    ws.feed(Message::Text(frame)).await?;
                    while let Ok(next) = queue.try_recv() {
                        ws.feed(Message::Text(next)).await?;
                    }
                    ws.flush().await
                });
                tokio::select! {
                    sent = write => if !matches!(sent, Ok(Ok(()))) { break None },
                    reason = socket.closed() => break Some(reason),
                }
            }
            incoming = ws.next() => {
                heard = Instant::now();
                let text = match incoming {
                    None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => break None,
                    Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                        break Some(CloseReason::TooLarge);
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "cells socket read failed");
                        break None;
                    }
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => break Some(CloseReason::Binary),
                    Some(Ok(_)) => continue,
                };
                match bucket.take(std::time::Instant::now()) {
                    Verdict::Pass => {}
                    Verdict::Refuse => {
                        socket.push(ErrorCode::RateLimited.frame().into());
                        continue;
                    }
                    Verdict::Disconnect => break Some(CloseReason::RateLimit),
                }
                match frames::parse(&text) {
                    Ok(ClientRequest::Subscribe(Some(token))) => {
                        let auth = context.auth.clone();
                        let credentials = Credentials { token: Some(token), ..Credentials::default() };
                        let turn = socket.turn_owned();
                        authenticating = Some(Box::pin(async move {
                            let turn = turn.await;
                            (turn, auth.open_session(credentials).await)
                        }));
                    }
                    Ok(ClientRequest::Subscribe(None)) => {
                        authenticating = None;
                        for _ in waiting.drain(..) {
                            socket.push(ErrorCode::NotSubscribed.frame().into());
                        }
                        unsubscribe(&context, &socket, &mut clocks).await;
                        socket.push(ErrorCode::MissingToken.frame().into());
                    }
                    Ok(ClientRequest::Unsubscribe) => {
                        authenticating = None;
                        for _ in waiting.drain(..) {
                            socket.push(ErrorCode::NotSubscribed.frame().into());
                        }
                        unsubscribe(&context, &socket, &mut clocks).await;
                    }
                    // The UI sends its JOIN right after its subscribe: while that is being
                    // checked, chat frames wait for it, in order.
                    Err(ErrorCode::BadMessage) if context.chat.is_some() && authenticating.is_some() => {
                        if waiting.len() < MAX_WAITING_FRAMES {
                            waiting.push(text.to_string());
                        } else {
                            socket.push(ErrorCode::RateLimited.frame().into());
                        }
                    }
                    Err(ErrorCode::BadMessage) if context.chat.is_some() => {
                        if let Err(code) = chat_request(&context, &socket, &text).await {
                            socket.push(code.frame().into());
                        }
                    }
                    Err(code) => socket.push(code.frame().into()),
                }
            }
            (turn, answer) = async { authenticating.as_mut().map_or_else(|| unreachable!(), |f| f.as_mut()).await }, if authenticating.is_some() => {
                authenticating = None;
                match answer {
                    Ok(answer) => subscribe(&context, &socket, answer, &mut clocks).await,
                    Err(error) => {
                        tracing::debug!(%error, "cells subscribe refused");
                        unsubscribe(&context, &socket, &mut clocks).await;
                        let code = match error {
                            AuthError::Unavailable(_) => ErrorCode::AuthUnavailable,
                            AuthError::MissingCredentials => ErrorCode::MissingToken,
                            _ => ErrorCode::Unauthorized,
                        };
                        socket.push(code.frame().into());
                    }
                }
                drop(turn);
                for text in std::mem::take(&mut waiting) {
                    if let Err(code) = chat_request(&context, &socket, &text).await {
                        socket.push(code.frame().into());
                    }
                }
            }
            () = sleep_until(clocks.renew), if clocks.renew.is_some() => {
                clocks.renew = None;
                socket.push(render::RELOAD.into());
            }
            () = sleep_until(clocks.expire), if clocks.expire.is_some() => {
                unsubscribe(&context, &socket, &mut clocks).await;
                socket.push(ErrorCode::TokenExpired.frame().into());
            }
            () = sleep_until(clocks.unsubscribed), if clocks.unsubscribed.is_some() => {
                break Some(CloseReason::NotSubscribed);
            }
            _ = presence.tick(), if context.chat.is_some() => {
                if let (Some(chat), Some(identity)) = (&context.chat, socket.identity()) {
                    chat.sweep(&socket, &identity.user).await;
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > settings.ping_interval + settings.ping_timeout {
                    tracing::debug!("cells socket did not answer pings");
                    break None;
                }
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some(reason) = reason {
        context.metrics.close(reason);
        let frame = CloseFrame {
            code: CloseCode::from(reason.code()),
            reason: Utf8Bytes::from_static(reason.reason()),
        };
        // Best effort, bounded: a client that does not read is not waited for.
        let close = async {
            ws.send(Message::Close(Some(frame))).await?;
            while ws.next().await.is_some() {}
            Ok::<_, WsError>(())
        };
        let _ = tokio::time::timeout(settings.ping_timeout, close).await;
    }
    // Sends from now on find the queue closed: the socket is gone.
    queue.close();
    if let (Some(chat), Some(identity)) = (&context.chat, socket.identity()) {
        chat.forget(&socket, &identity.user).await;
    }
    context.door.forget(&socket);
    context.metrics.connections.dec();
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Makes the socket the session's: its identity, rooms and clocks replace what it had.
async fn subscribe(
    context: &CellsContext,
    socket: &Arc<CellsSocket>,
    session: Session,
    clocks: &mut Clocks,
) {
    let identity = Arc::new(Identity::of(Arc::new(session)));
    let before = socket.identity();
    let leave = before.as_ref().map(|i| i.rooms.clone()).unwrap_or_default();
    // A chat socket receives no events: it sits in no room of the pipeline.
    let join = match context.chat {
        Some(_) => Vec::new(),
        None => identity.rooms.clone(),
    };
    let user = identity.user.clone();
    let expires_at = identity.expires_at;
    context
        .deliverer
        .rejoin(&**socket, &leave, &join, || {
            socket.set_identity(Some(identity))
        })
        .await;
    if let Some(before) = before
        && before.user != user
    {
        context.door.uncount(&before.user, socket.subscriber_id());
        if let Some(chat) = &context.chat {
            chat.forget(socket, &before.user).await;
        }
    }
    // Event sockets count against `limits.max_sockets_per_user` (one per tab of the UI), as
    // `/public` sockets do; chat sockets, as `/chat` ones, do not.
    if context.chat.is_none() {
        let max = context.settings.limits.max_sockets_per_user;
        for evicted in context.door.count(&user, socket.subscriber_id(), max) {
            evicted.close(CloseReason::Replaced);
        }
    }
    clocks.unsubscribed = None;
    (clocks.renew, clocks.expire) = match expires_at {
        Some(exp) => {
            let at = instant_of(exp);
            (
                at.checked_sub(RENEW_BEFORE_EXPIRY)
                    .filter(|renew| *renew > Instant::now()),
                Some(at + context.settings.expiry_grace),
            )
        }
        None => (None, None),
    };
}

/// Empties the socket's session; its unsubscribed clock starts, unless already running.
async fn unsubscribe(context: &CellsContext, socket: &CellsSocket, clocks: &mut Clocks) {
    if let Some(before) = socket.identity() {
        if let Some(chat) = &context.chat {
            chat.forget(socket, &before.user).await;
        }
        context
            .deliverer
            .rejoin(socket, &before.rooms, &[], || socket.set_identity(None))
            .await;
        context.door.uncount(&before.user, socket.subscriber_id());
    }
    clocks.renew = None;
    clocks.expire = None;
    clocks
        .unsubscribed
        .get_or_insert_with(|| Instant::now() + context.settings.unsubscribed_timeout);
}

/// A chat frame: handled for a subscribed session.
async fn chat_request(
    context: &CellsContext,
    socket: &Arc<CellsSocket>,
    text: &str,
) -> Result<(), ErrorCode> {
    let Some(chat) = &context.chat else {
        return Err(ErrorCode::BadMessage);
    };
    let request = chat::protocol::parse(text, chat.max_text())?;
    let identity = socket.identity().ok_or(ErrorCode::NotSubscribed)?;
    chat.handle(socket, &identity.session, request).await
}

/// The instant of a time in seconds since the epoch.
fn instant_of(unix_seconds: u64) -> Instant {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at = Duration::from_secs(unix_seconds);
    match at.checked_sub(now) {
        Some(ahead) => Instant::now() + ahead,
        None => Instant::now()
            .checked_sub(now.saturating_sub(at))
            .unwrap_or_else(Instant::now),
    }
}
