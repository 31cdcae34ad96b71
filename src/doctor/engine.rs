//! The Engine.IO long-polling handshake (`GET <path>/?EIO=4&transport=polling`), over reqwest,
//! and what its status codes and bodies mean.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use reqwest::{StatusCode, header};
use rustls::ClientConfig;
use serde::Deserialize;

use super::{
    net::secs,
    report::{Failure, Passed, snippet},
    target::Target,
};

/// The most of a response body read for a diagnosis: an open packet is ~120 bytes.
const MAX_BODY: usize = 16 * 1024;

/// The Engine.IO open packet.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Open {
    /// The session id.
    pub(crate) sid: String,
    /// Transports the session may upgrade to.
    #[serde(default)]
    pub(crate) upgrades: Vec<String>,
    #[serde(default)]
    ping_interval: u64,
    #[serde(default)]
    ping_timeout: u64,
}

/// An error body of herald's HTTP API (`{code, message}`) or of Engine.IO (`{code, message}`
/// with a numeric code).
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: serde_json::Value,
    #[serde(default)]
    message: String,
}

/// The polling handshake, through `addr` (the address the TCP step reached).
pub(crate) async fn handshake(
    target: &Target,
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    origin: Option<&str>,
    timeout: Duration,
) -> Result<Passed<Open>, Failure> {
    let path = target.engine_query("transport=polling");
    let url = format!("{}{path}", target.http_base());
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .resolve(&target.host, addr);
    if let Some(config) = tls {
        builder = builder.use_preconfigured_tls((*config).clone());
    }
    let client = builder
        .build()
        .map_err(|e| Failure::new(format!("HTTP client setup: {e}"), "a bug in herald doctor"))?;
    let mut request = client.get(&url);
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| request_failure(&path, &e, timeout))?;
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(ToOwned::to_owned);
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_BODY {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => return Err(request_failure(&path, &e, timeout)),
        }
    }
    let body = String::from_utf8_lossy(&body);
    if status == StatusCode::OK {
        let open = parse_open(&body).ok_or_else(|| not_engine_io(&path, &body))?;
        let detail = format!(
            "GET {path}: 200 with an Engine.IO open packet (upgrades {:?}, ping every {} ms, \
             timeout {} ms)",
            open.upgrades, open.ping_interval, open.ping_timeout
        );
        return Ok(Passed::new(open, detail));
    }
    Err(explain_status(
        target,
        &path,
        status,
        &body,
        location.as_deref(),
        origin,
    ))
}

/// `0{"sid":...}`: the body of a successful handshake.
fn parse_open(body: &str) -> Option<Open> {
    let json = body.strip_prefix('0')?;
    serde_json::from_str::<Open>(json)
        .ok()
        .filter(|o| !o.sid.is_empty())
}

fn not_engine_io(path: &str, body: &str) -> Failure {
    Failure::new(
        format!(
            "GET {path} answered 200 but not with an Engine.IO open packet: {:?}",
            snippet(body, 80)
        ),
        "something other than herald answers on this path (an application page, a catch-all \
         route, another server): route the engine path to herald in the proxy (nginx: \
         `location /socket.io/ { proxy_pass http://herald; }`, see deploy/nginx/herald.conf)",
    )
}

fn request_failure(path: &str, error: &reqwest::Error, timeout: Duration) -> Failure {
    if error.is_timeout() {
        return Failure::new(
            format!("GET {path}: no HTTP answer within {}", secs(timeout)),
            "herald (or the proxy) accepts connections but does not answer: it may be \
             overloaded or stuck, or the port serves something that is not HTTP",
        );
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure::new(
        format!("GET {path} failed: {text}"),
        "the connection broke before an HTTP answer: is this port HTTP (and TLS for https)?",
    )
}

fn explain_status(
    target: &Target,
    path: &str,
    status: StatusCode,
    body: &str,
    location: Option<&str>,
    origin: Option<&str>,
) -> Failure {
    let error: Option<ErrorBody> = serde_json::from_str(body).ok();
    let herald_code = error
        .as_ref()
        .and_then(|e| e.code.as_str().map(ToOwned::to_owned));
    let what = format!("GET {path} answered {status}");
    let engine = &target.engine_path;
    match status.as_u16() {
        404 => {
            let who = if herald_code.as_deref() == Some("not_found") {
                "herald answered, but serves no Engine.IO there"
            } else {
                "the server answered that nothing is there"
            };
            Failure::new(
                format!("{what}: wrong engine path {engine} ({who})"),
                "herald serves Engine.IO at its engine_path, /socket.io by default (Open-Xchange \
                 uses /socket.io/appsuite), and clients must use the same `path`; give it in the \
                 URL or with --path. Behind a proxy, the location for that path must pass it \
                 to herald unchanged",
            )
        }
        403 if herald_code.as_deref() == Some("forbidden_origin") => Failure::new(
            format!(
                "{what}: herald refused the origin {}",
                origin.unwrap_or("(none)")
            ),
            "add the page's origin (scheme://host[:port] of the web application) to herald's \
             allowed_origins",
        ),
        403 => Failure::new(
            format!("{what}: {}", snippet(body, 80)),
            "the server or a proxy in front of it refuses this request (an allow-list, a web \
             application firewall, an origin check)",
        ),
        401 | 407 => Failure::new(
            format!("{what}: authentication is required before herald"),
            "a proxy in front of herald asks for credentials (basic auth, SSO): exempt the \
             engine path, browsers' socket.io-client cannot answer it",
        ),
        301 | 302 | 303 | 307 | 308 => Failure::new(
            format!(
                "{what}: redirect to {}",
                location.unwrap_or("(no Location)")
            ),
            "socket.io-client does not follow redirects: use the final URL (often https:// \
             instead of http://, or the path with or without a prefix)",
        ),
        400 => {
            let message = error.as_ref().map_or("", |e| e.message.as_str());
            let hint = match message {
                "Unsupported protocol version" => {
                    "the server speaks only Engine.IO 3 (a socket.io 2.x server?): this is not \
                     herald, or the proxy routes to another server"
                }
                "Transport unknown" => "the server does not allow long-polling",
                _ if body.contains("plain HTTP request was sent to HTTPS port") => {
                    "this port expects TLS: use https:// or wss://"
                }
                _ => "the server refused the handshake request; check its log",
            };
            Failure::new(format!("{what}: {}", snippet(body, 120)), hint)
        }
        502 => Failure::new(
            format!("{what} (Bad Gateway): the proxy could not reach herald"),
            "herald is down, or the proxy's upstream address/port is wrong (nginx: the `server` \
             lines of `upstream herald`); the proxy's error log names the address it tried",
        ),
        503 => Failure::new(
            format!("{what} (Service Unavailable)"),
            "herald or the proxy's upstream is down or overloaded (no healthy upstream); check \
             that herald runs and answers GET /health",
        ),
        504 => Failure::new(
            format!("{what} (Gateway Timeout): herald did not answer the proxy in time"),
            "herald is stuck or unreachable from the proxy (firewall between them?), or the \
             proxy's read timeout is too short",
        ),
        413 | 414 | 431 => Failure::new(
            format!("{what}: the request is too large for the server or proxy"),
            "raise the proxy's limits for the engine path (nginx: client_max_body_size, \
             large_client_header_buffers)",
        ),
        _ => Failure::new(
            format!("{what}: {}", snippet(body, 120)),
            "the server failed the handshake; its log (and the proxy's) says why",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_packet() {
        let open = parse_open(
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
        )
        .unwrap();
        assert_eq!(open.sid, "abc");
        assert_eq!(open.upgrades, vec!["websocket"]);
        assert!(parse_open("<html>").is_none());
        assert!(parse_open(r#"0{"sid":""}"#).is_none());
        assert!(parse_open(r#"96:0{"sid":"abc"}"#).is_none());
    }
}
