//! The WebSocket half of the Engine.IO v3 compatibility: a bridge.
//!
//! herald opens an in-process HTTP connection to the application (a `tokio::io::duplex` served
//! by hyper, the peer address carried over), upgrades that to a WebSocket as a client with the
//! same URI and credentials, then answers the client's upgrade itself (or relays the engine's
//! refusal, an unknown session say, as it was) and pumps frames both ways, rewriting
//! `40/ns?query` CONNECT frames from the client. Only Engine.IO v3 WebSockets
//! take this path; its cost is one extra in-memory hop for those legacy clients.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::{SinkExt, StreamExt};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};

use super::{Eio3Compat, strip_query};
use crate::edge::connection::ConnectionHandle;

/// Buffer of the in-process connection, each way.
const DUPLEX_BUFFER: usize = 64 * 1024;

/// Headers the application reads from the handshake, forwarded on the inner request.
const FORWARDED: [header::HeaderName; 4] = [
    header::COOKIE,
    header::AUTHORIZATION,
    header::ORIGIN,
    header::USER_AGENT,
];

/// Opens the inner WebSocket, then answers the upgrade and spawns the bridge. Anything unusable
/// gets a 400; an inner refusal is relayed.
pub(super) async fn bridge(compat: Eio3Compat, peer: SocketAddr, mut request: Request) -> Response {
    let handle = request.extensions().get::<ConnectionHandle>().cloned();
    let Some(accept) = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|key| derive_accept_key(key.as_bytes()))
    else {
        return (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key").into_response();
    };
    let Some(path_and_query) = request.uri().path_and_query().cloned() else {
        return (StatusCode::BAD_REQUEST, "bad request target").into_response();
    };
    let mut forwarded = Vec::new();
    for name in FORWARDED
        .iter()
        .chain([&header::HeaderName::from_static("x-forwarded-for")])
    {
        for value in request.headers().get_all(name) {
            forwarded.push((name.clone(), value.clone()));
        }
    }
    let inner =
        match connect_inner(&compat, (peer, handle), path_and_query.as_str(), forwarded).await {
            Ok(inner) => inner,
            Err(tokio_tungstenite::tungstenite::Error::Http(refusal)) => {
                let (parts, body) = refusal.into_parts();
                return Response::from_parts(parts, body.unwrap_or_default().into());
            }
            Err(error) => {
                tracing::debug!(%error, "EIO3 bridge: inner connection failed");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let client = match on_upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(error) => {
                tracing::debug!(%error, "EIO3 bridge: upgrade failed");
                return;
            }
        };
        let config = ws_config(compat.max_payload);
        let client = WebSocketStream::from_raw_socket(client, Role::Server, Some(config)).await;
        pump(client, inner).await;
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

fn ws_config(max_payload: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
}

/// Serves the application on an in-process connection and opens a WebSocket through it.
async fn connect_inner(
    compat: &Eio3Compat,
    (peer, handle): (SocketAddr, Option<ConnectionHandle>),
    path_and_query: &str,
    forwarded: Vec<(header::HeaderName, HeaderValue)>,
) -> Result<
    WebSocketStream<impl AsyncRead + AsyncWrite + Unpin + use<>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let (near, far) = tokio::io::duplex(DUPLEX_BUFFER);
    let app = tower::ServiceBuilder::new()
        .map_request(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            // Cutting off a slow bridged socket cuts the client's own connection.
            if let Some(handle) = &handle {
                request.extensions_mut().insert(handle.clone());
            }
            request
        })
        .service(compat.inner.clone());
    tokio::spawn(async move {
        let served = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(far), TowerToHyperService::new(app))
            .with_upgrades()
            .await;
        if let Err(error) = served {
            tracing::debug!(%error, "EIO3 bridge: inner connection ended");
        }
    });
    let mut inner_request =
        format!("ws://herald.internal{path_and_query}").into_client_request()?;
    for (name, value) in forwarded {
        inner_request.headers_mut().append(name, value);
    }
    let config = ws_config(compat.max_payload);
    let (inner, _) =
        tokio_tungstenite::client_async_with_config(inner_request, near, Some(config)).await?;
    Ok(inner)
}

/// Copies frames both ways until either side closes; CONNECT frames from the client lose their
/// namespace query.
async fn pump<C, I>(client: WebSocketStream<C>, inner: WebSocketStream<I>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    I: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_tx, mut client_rx) = client.split();
    let (mut inner_tx, mut inner_rx) = inner.split();
    let upstream = async {
        while let Some(Ok(message)) = client_rx.next().await {
            let message = match message {
                Message::Text(text) => match strip_query(text.as_str()) {
                    Some(stripped) => Message::text(stripped),
                    None => Message::Text(text),
                },
                // tungstenite answers pings itself; frames are reassembled before we see them.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                other => other,
            };
            if inner_tx.send(message).await.is_err() {
                break;
            }
        }
        let _ = inner_tx.close().await;
    };
    let downstream = async {
        while let Some(Ok(message)) = inner_rx.next().await {
            if matches!(
                message,
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_)
            ) {
                continue;
            }
            if client_tx.send(message).await.is_err() {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    tokio::select! {
        () = upstream => {},
        () = downstream => {},
    }
}
