//! The WebSocket upgrade of the polling session (`transport=websocket&sid=...`, probe
//! `2probe`/`3probe`, then `5`), as socket.io-client does it, and the Engine.IO framing on the
//! upgraded socket. The client WebSocket itself ([`open_client`], [`next_frame`]) is shared
//! with the Cells door's check (`cells`), which opens a plain WebSocket on another path.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures_util::{SinkExt as _, StreamExt as _};
use rustls::ClientConfig;
use tokio::time::Instant;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        client::IntoClientRequest as _,
        http::{HeaderValue, StatusCode},
        protocol::WebSocketConfig,
    },
};

use super::{
    net::secs,
    report::{Failure, Passed, snippet},
    target::Target,
    tls::{Stream, open},
};

/// The upgraded Engine.IO session.
pub(crate) type Ws = WebSocketStream<Box<dyn Stream>>;

/// The largest message doctor accepts: its answers are a few hundred bytes, and a server that
/// sends more is not let near this process's memory.
const MAX_MESSAGE: usize = 1024 * 1024;

/// Where the shipped nginx configuration is, for hints.
pub(crate) const NGINX_CONF: &str = "deploy/nginx/herald.conf";

/// Upgrades the session `sid` to a WebSocket.
pub(crate) async fn upgrade(
    target: &Target,
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    origin: Option<&str>,
    sid: &str,
    timeout: Duration,
) -> Result<Passed<Ws>, Failure> {
    let sid_query = serde_urlencoded::to_string([("transport", "websocket"), ("sid", sid)])
        .map_err(|e| Failure::new(format!("bad session id: {e}"), "a bug in herald doctor"))?;
    let url = target.ws_url(&sid_query);
    let path = target.engine_query("transport=websocket&sid=…");
    let mut ws = open_client(target, addr, tls, origin, &url, timeout)
        .await
        .map_err(|e| explain_handshake(&path, e, timeout))?;
    // Probe, as socket.io-client does before it moves the session.
    let deadline = Instant::now() + timeout;
    let closed = |e: String| probe_failure(ProbeError::Closed(e));
    send(&mut ws, "2probe").await.map_err(closed)?;
    let pong = match next_text(&mut ws, deadline).await {
        Ok(pong) => pong,
        Err(e) if e == NO_ANSWER => return Err(probe_failure(ProbeError::Silent)),
        Err(e) => return Err(closed(e)),
    };
    if pong != "3probe" {
        return Err(probe_failure(ProbeError::Unexpected(pong)));
    }
    send(&mut ws, "5").await.map_err(closed)?;
    Ok(Passed::new(
        ws,
        format!("GET {path}: 101 Switching Protocols, probe answered, session upgraded"),
    ))
}

/// Why a client WebSocket did not open.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The request could not be made (a bad `--origin`, TCP or TLS failed): already explained.
    Setup(Failure),
    /// The server answered, but not with 101 Switching Protocols.
    Refused {
        /// Its status.
        status: StatusCode,
        /// The start of its body, from the network.
        body: String,
    },
    /// No answer to the upgrade request within the timeout.
    Silent,
    /// An answer that is no valid upgrade.
    Protocol(String),
    /// The connection broke.
    Broken(String),
}

impl OpenError {
    /// What happened to `GET <path>` with `Upgrade: websocket`, in plain words.
    pub(crate) fn what(&self, path: &str, timeout: Duration) -> String {
        match self {
            Self::Setup(failure) => failure.what.clone(),
            Self::Refused { status, body } => format!(
                "GET {path} (Upgrade: websocket) answered {status} instead of 101 Switching \
                 Protocols{}",
                if body.is_empty() {
                    String::new()
                } else {
                    format!(": {:?}", snippet(body, 80))
                }
            ),
            Self::Silent => format!(
                "GET {path} (Upgrade: websocket): no answer within {}",
                secs(timeout)
            ),
            Self::Protocol(e) => {
                format!("GET {path} (Upgrade: websocket): broken upgrade answer: {e}")
            }
            Self::Broken(e) => format!("GET {path} (Upgrade: websocket) failed: {e}"),
        }
    }
}

/// Opens a client WebSocket to `url` through `addr` (TLS when `tls` is given), sending
/// `origin` as a browser page would; the handshake is bounded by `timeout`.
pub(crate) async fn open_client(
    target: &Target,
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    origin: Option<&str>,
    url: &str,
    timeout: Duration,
) -> Result<Ws, OpenError> {
    let mut request = url.into_client_request().map_err(|e| {
        OpenError::Setup(Failure::new(
            format!("cannot build the upgrade request: {e}"),
            "a bug in herald doctor",
        ))
    })?;
    if let Some(origin) = origin {
        let value = HeaderValue::from_str(origin).map_err(|_| {
            OpenError::Setup(Failure::new(
                "the --origin value is not a valid header",
                "give scheme://host[:port]",
            ))
        })?;
        request.headers_mut().insert("Origin", value);
    }
    let stream = open(target, addr, tls, timeout)
        .await
        .map_err(OpenError::Setup)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let handshake = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => Err(OpenError::Refused {
            status: response.status(),
            body: response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned(),
        }),
        Ok(Err(tungstenite::Error::Protocol(e))) => Err(OpenError::Protocol(e.to_string())),
        Ok(Err(other)) => Err(OpenError::Broken(other.to_string())),
        Err(_) => Err(OpenError::Silent),
    }
}

/// The hint for an upgrade request a proxy holds instead of passing it on.
pub(crate) fn held() -> String {
    format!(
        "a proxy holds the upgrade request: it must speak HTTP/1.1 to herald and pass the \
         Upgrade/Connection headers (nginx: proxy_http_version 1.1, see {NGINX_CONF})"
    )
}

/// The hint for an upgrade that never reached herald as one.
pub(crate) fn stripped() -> String {
    format!(
        "the WebSocket upgrade is stripped by a proxy: clients will be stuck on long-polling; \
         add proxy_http_version 1.1 and the Upgrade/Connection headers (see {NGINX_CONF})"
    )
}

fn explain_handshake(path: &str, error: OpenError, timeout: Duration) -> Failure {
    let what = error.what(path, timeout);
    let hint = match error {
        OpenError::Setup(failure) => return failure,
        OpenError::Silent => held(),
        OpenError::Refused { status, .. } => match status.as_u16() {
            502..=504 => format!(
                "the proxy lost herald while upgrading; with nginx, check the engine path's \
                 location against {NGINX_CONF}"
            ),
            403 => "the upgrade is refused by an origin check or a firewall in front of herald"
                .to_owned(),
            404 => "the proxy does not route WebSocket requests for the engine path to herald"
                .to_owned(),
            _ => stripped(),
        },
        OpenError::Protocol(_) | OpenError::Broken(_) => stripped(),
    };
    Failure::new(what, hint)
}

/// Why the probe failed.
enum ProbeError {
    /// Nothing came back in time.
    Silent,
    /// The connection closed or broke.
    Closed(String),
    /// Something other than `3probe` came back.
    Unexpected(String),
}

fn probe_failure(error: ProbeError) -> Failure {
    match error {
        // What nginx without the headers does: it passes herald's 101 on, but herald never
        // saw an upgrade request and closes the connection.
        ProbeError::Closed(why) => Failure::new(
            format!("the WebSocket answered 101, then closed before the Engine.IO probe: {why}"),
            format!(
                "{}. (With several herald nodes, an upgrade that reaches another node than the \
                 polling session's ends the same way: the proxy must pin sessions, nginx ip_hash)",
                stripped()
            ),
        ),
        ProbeError::Silent => Failure::new(
            "the WebSocket opened, but the Engine.IO probe got no answer in time",
            format!(
                "something between the client and herald does not pass WebSocket frames \
                 through; with nginx compare the engine path's location with {NGINX_CONF}"
            ),
        ),
        ProbeError::Unexpected(text) => Failure::new(
            format!(
                "the WebSocket opened, but the Engine.IO probe was answered {:?} instead of \
                 \"3probe\"",
                snippet(&text, 60)
            ),
            "another server than herald answers WebSocket requests on this path",
        ),
    }
}

/// Ends the WebSocket politely, without waiting long for the server.
pub(crate) async fn close(ws: &mut Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}

/// Sends one text frame.
pub(crate) async fn send(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("sending failed: {e}"))
}

/// What [`next_text`] says when nothing came before the deadline.
pub(crate) const NO_ANSWER: &str = "no answer in time";

/// A frame [`next_frame`] read, or why none came.
#[derive(Debug)]
pub(crate) enum Next {
    /// A text frame.
    Text(String),
    /// Nothing before the deadline.
    Silent,
    /// The server closed the WebSocket: the close code and reason, when it sent them.
    Closed(Option<(u16, String)>),
    /// The WebSocket broke, or ended without a close frame.
    Broken(String),
}

/// The next text frame before `deadline`; binary frames, pings and pongs are skipped (none is
/// part of what doctor asks for; tungstenite answers pings itself).
pub(crate) async fn next_frame(ws: &mut Ws, deadline: Instant) -> Next {
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Next::Silent,
            Ok(None) => return Next::Broken("the server closed the WebSocket".to_owned()),
            Ok(Some(Err(e))) => return Next::Broken(format!("the WebSocket broke: {e}")),
            Ok(Some(Ok(Message::Text(text)))) => return Next::Text(text.as_str().to_owned()),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Next::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The next Engine.IO text packet other than a ping (answered) or a noop, before `deadline`.
pub(crate) async fn next_text(ws: &mut Ws, deadline: Instant) -> Result<String, String> {
    loop {
        let text = match next_frame(ws, deadline).await {
            Next::Text(text) => text,
            Next::Silent => return Err(NO_ANSWER.to_owned()),
            Next::Broken(why) => return Err(why),
            Next::Closed(frame) => {
                let why = frame.map(|(_, reason)| reason).unwrap_or_default();
                return Err(format!("the server closed the WebSocket {why}")
                    .trim_end()
                    .to_owned());
            }
        };
        match text.as_str() {
            "2" => send(ws, "3").await?,
            "6" => {}
            "1" => return Err("the server closed the Engine.IO session".to_owned()),
            _ => return Ok(text),
        }
    }
}
