//! The WebSocket upgrade of the polling session (`transport=websocket&sid=...`, probe
//! `2probe`/`3probe`, then `5`), as socket.io-client does it, and the Engine.IO framing on the
//! upgraded socket.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures_util::{SinkExt as _, StreamExt as _};
use rustls::ClientConfig;
use tokio::time::Instant;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message, client::IntoClientRequest as _, http::HeaderValue, protocol::WebSocketConfig,
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
const NGINX_CONF: &str = "deploy/nginx/herald.conf";

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
    let mut request = url.as_str().into_client_request().map_err(|e| {
        Failure::new(
            format!("cannot build the upgrade request: {e}"),
            "a bug in herald doctor",
        )
    })?;
    if let Some(origin) = origin {
        let value = HeaderValue::from_str(origin).map_err(|_| {
            Failure::new(
                "the --origin value is not a valid header",
                "give scheme://host[:port]",
            )
        })?;
        request.headers_mut().insert("Origin", value);
    }
    let stream = open(target, addr, tls, timeout).await?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let handshake = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
    let mut ws = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok((ws, _response))) => ws,
        Ok(Err(e)) => return Err(explain_handshake(&path, e)),
        Err(_) => {
            return Err(Failure::new(
                format!(
                    "GET {path} (Upgrade: websocket): no answer within {}",
                    secs(timeout)
                ),
                format!(
                    "a proxy holds the upgrade request: it must speak HTTP/1.1 to herald and \
                     pass the Upgrade/Connection headers (nginx: proxy_http_version 1.1, see \
                     {NGINX_CONF})"
                ),
            ));
        }
    };
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

/// The hint for an upgrade that never reached herald as one.
fn stripped() -> String {
    format!(
        "the WebSocket upgrade is stripped by a proxy: clients will be stuck on long-polling; \
         add proxy_http_version 1.1 and the Upgrade/Connection headers (see {NGINX_CONF})"
    )
}

fn explain_handshake(path: &str, error: tungstenite::Error) -> Failure {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let what = format!(
                "GET {path} (Upgrade: websocket) answered {status} instead of 101 Switching \
                 Protocols{}",
                if body.is_empty() {
                    String::new()
                } else {
                    format!(": {:?}", snippet(&body, 80))
                }
            );
            let hint = match status.as_u16() {
                502..=504 => format!(
                    "the proxy lost herald while upgrading; with nginx, check the engine path's \
                     location against {NGINX_CONF}"
                ),
                403 => "the upgrade is refused by an origin check or a firewall in front of \
                        herald"
                    .to_owned(),
                404 => "the proxy does not route WebSocket requests for the engine path to \
                        herald"
                    .to_owned(),
                _ => stripped(),
            };
            Failure::new(what, hint)
        }
        tungstenite::Error::Protocol(e) => Failure::new(
            format!("GET {path} (Upgrade: websocket): broken upgrade answer: {e}"),
            stripped(),
        ),
        other => Failure::new(
            format!("GET {path} (Upgrade: websocket) failed: {other}"),
            stripped(),
        ),
    }
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

/// Sends one text frame.
pub(crate) async fn send(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("sending failed: {e}"))
}

/// What [`next_text`] says when nothing came before the deadline.
pub(crate) const NO_ANSWER: &str = "no answer in time";

/// The next Engine.IO text packet other than a ping (answered) or a noop, before `deadline`.
pub(crate) async fn next_text(ws: &mut Ws, deadline: Instant) -> Result<String, String> {
    loop {
        let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(NO_ANSWER.to_owned()),
            Ok(None) => return Err("the server closed the WebSocket".to_owned()),
            Ok(Some(Err(e))) => return Err(format!("the WebSocket broke: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        match frame {
            Message::Text(text) => match text.as_str() {
                "2" => send(ws, "3").await?,
                "6" => {}
                "1" => return Err("the server closed the Engine.IO session".to_owned()),
                other => return Ok(other.to_owned()),
            },
            Message::Close(frame) => {
                let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                return Err(format!("the server closed the WebSocket {why}")
                    .trim_end()
                    .to_owned());
            }
            // Binary attachments, pings and pongs are not part of what doctor asks for.
            _ => {}
        }
    }
}
