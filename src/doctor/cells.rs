//! `herald doctor --cells`: the Pydio Cells door (`cells.event_path`, `/ws/event` by default)
//! checked the way the Cells web UI uses it, after the shared URL, DNS, TCP and TLS steps.
//!
//! `cells_upgrade` opens a plain WebSocket on the door's path (no subprotocol, no query) with
//! `websocket::open_client` and explains a refusal (404: the door is off, 403: the origin, 503:
//! limits, anything else: a proxy that does not pass the upgrade on). `cells_subscribe` sends
//! the UI's `{"@type":"subscribe","jwt":…}`: herald answers a good subscribe with nothing and a
//! refused one with an error frame, so a bounded wait ([`SUBSCRIBE_WAIT`]) without one passes,
//! and a refusal is explained with [`TokenCheck`] as the Socket.IO `connect` step does.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rustls::ClientConfig;
use serde::Deserialize;
use tokio::time::Instant;

use super::{
    Options,
    net::secs,
    report::{Failure, Passed, Report, Step, snippet},
    target::{Target, normalize},
    token::TokenCheck,
    websocket::{self, NGINX_CONF, Next, OpenError, Ws},
};

/// How long `cells_subscribe` waits for a refusal (at most the step timeout). herald verifies a
/// JWT in microseconds and asks an auth backend within `auth.backend_timeout`; the UI itself
/// treats silence as success, so a longer wait would only slow every run down.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// The door's path for the `url` step: `path` (from `--cells`, or the configuration's
/// `cells.event_path`), refused when the URL itself names another path, which the user most
/// likely meant.
pub(crate) fn door_path(target: &Target, path: &str) -> Result<String, Failure> {
    let path = normalize(path)?;
    match &target.url_path {
        Some(url_path) if *url_path != path => Err(Failure::new(
            format!("the URL's path {url_path} is not the Cells door's path {path}"),
            format!(
                "with --cells, doctor checks the path given to --cells, else the configuration's \
                 cells.event_path ({path} here): give --cells {url_path} to check the URL's \
                 path, or leave the path out of the URL"
            ),
        )),
        _ => Ok(path),
    }
}

/// The `url` step's line in `--cells` mode.
pub(crate) fn describe(target: &Target, path: &str) -> String {
    format!("{}, Cells door {path}", target.http_base())
}

/// The Cells steps, recorded in `report`: the Socket.IO steps skipped, then `cells_upgrade`
/// and `cells_subscribe`, and the verdict when they pass.
pub(crate) async fn check(
    report: &mut Report,
    target: &Target,
    path: &str,
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    opts: &Options,
) {
    let instead = "--cells: the Pydio Cells door is checked instead of Socket.IO";
    for step in [
        Step::Polling,
        Step::Websocket,
        Step::Connect,
        Step::Register,
    ] {
        report.skip(step, instead);
    }
    let url = target.ws_url_at(path);
    let origin = opts.origin.as_deref();
    let opened = websocket::open_client(target, addr, tls, origin, &url, opts.timeout).await;
    let opened = opened
        .map(|ws| {
            Passed::new(
                ws,
                format!("GET {path} (Upgrade: websocket): 101 Switching Protocols"),
            )
        })
        .map_err(|e| explain_upgrade(path, e, origin, opts.timeout));
    let Some(mut ws) = report.record(Step::CellsUpgrade, opened) else {
        return;
    };
    let Some(secret) = &opts.token else {
        report.skip(
            Step::CellsSubscribe,
            "no token given (--token, --token-file or HERALD_DOCTOR_TOKEN)",
        );
        report.conclude(format!(
            "OK: the Cells door {url} accepts WebSocket upgrades; the subscribe not checked (no \
             token)"
        ));
        websocket::close(&mut ws).await;
        return;
    };
    let token = TokenCheck::new(secret.expose(), opts.verifier.as_ref(), opts.leeway);
    let subscribed = subscribe(&mut ws, &token, opts.timeout.min(SUBSCRIBE_WAIT)).await;
    websocket::close(&mut ws).await;
    if report.record(Step::CellsSubscribe, subscribed).is_some() {
        report.conclude(format!(
            "OK: the Pydio Cells UI can open {url} and subscribe with the token"
        ));
    }
}

/// Sends the subscribe and waits `wait` for an error frame; frames that are not errors (an
/// event, an `idm` nudge) do not end the wait.
async fn subscribe(
    ws: &mut Ws,
    token: &TokenCheck<'_>,
    wait: Duration,
) -> Result<Passed<()>, Failure> {
    let frame = serde_json::json!({ "@type": "subscribe", "jwt": token.token() }).to_string();
    let deadline = Instant::now() + wait;
    let lost = |why: String| {
        Failure::new(
            format!("subscribe: {why}"),
            "the connection ended after the upgrade: a proxy that cuts WebSockets, or herald \
             stopped; see herald's log",
        )
    };
    match tokio::time::timeout_at(deadline, websocket::send(ws, &frame)).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return Err(lost(why)),
        Err(_) => return Err(lost(format!("not sent within {}", secs(wait)))),
    }
    loop {
        match websocket::next_frame(ws, deadline).await {
            Next::Silent => {
                return Ok(Passed::new(
                    (),
                    format!("no refusal within {}: subscribed", secs(wait)),
                ));
            }
            Next::Text(text) => {
                if let Some(error) = ErrorFrame::parse(&text) {
                    return Err(refused(&error, token));
                }
            }
            Next::Closed(frame) => return Err(closed(frame)),
            Next::Broken(why) => return Err(lost(why)),
        }
    }
}

/// herald's error frame: `{"@type":"error","code":…,"error":…}`.
#[derive(Debug, Deserialize)]
struct ErrorFrame {
    #[serde(rename = "@type")]
    kind: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    error: String,
}

impl ErrorFrame {
    /// The error frame in `text`; `None` for any other frame.
    fn parse(text: &str) -> Option<Self> {
        serde_json::from_str::<Self>(text)
            .ok()
            .filter(|f| f.kind == "error")
    }
}

/// Why herald refused the subscribe, and the fix.
fn refused(frame: &ErrorFrame, token: &TokenCheck<'_>) -> Failure {
    let what = format!("subscribe refused: {:?}", frame.code);
    match frame.code.as_str() {
        "unauthorized" => {
            let (why, hint) = token.explain_unauthorized();
            Failure::new(format!("{what}: {why}"), hint)
        }
        "missing_token" => Failure::new(
            format!("{what}: herald got no token"),
            "the token is empty: give the browser's token with --token, --token-file or \
             HERALD_DOCTOR_TOKEN",
        ),
        "auth_unavailable" => Failure::new(
            format!("{what}: herald could not check the token now"),
            "auth.mode = \"backend\": herald could not ask the application (auth.backend_url) \
             about the token; check that the backend is up and reachable from herald",
        ),
        "token_expired" => Failure::new(
            format!("{what}: the token expired while doctor waited"),
            "the application must hand out a fresh token (and refresh it before `exp`)",
        ),
        "bad_message" => Failure::new(
            format!("{what}: the subscribe frame was not understood"),
            "the server on this path is not herald's Cells door (or an older one): route the \
             path to a herald with `[cells] enabled = true`",
        ),
        "rate_limited" => Failure::new(
            format!("{what}: over herald's frame rate"),
            "herald's limits.events_per_second / events_burst allow less than one frame: raise \
             them",
        ),
        _ => Failure::new(
            format!(
                "subscribe answered with the error {:?}: {}",
                snippet(&frame.code, 40),
                snippet(&frame.error, 120)
            ),
            "this server does not answer as herald's Cells door does; its log says why",
        ),
    }
}

/// The server closed the WebSocket instead of keeping the unsubscribed session open.
fn closed(frame: Option<(u16, String)>) -> Failure {
    let how = frame.map_or_else(
        || "without a close code".to_owned(),
        |(code, reason)| format!("with {code} {:?}", snippet(&reason, 80)),
    );
    Failure::new(
        format!("the server closed the WebSocket after the subscribe, {how}"),
        "herald keeps a Cells socket open after any subscribe, refused or not, and closes it only \
         for the reasons docs/protocol.md lists (rate limit, replaced, disconnected, shutting \
         down); herald's log names the reason. Another server than herald may answer on this \
         path",
    )
}

/// A refused upgrade of the door's `path`, explained.
fn explain_upgrade(
    path: &str,
    error: OpenError,
    origin: Option<&str>,
    timeout: Duration,
) -> Failure {
    let what = error.what(path, timeout);
    let (status, body) = match error {
        OpenError::Setup(failure) => return failure,
        OpenError::Silent => return Failure::new(what, websocket::held()),
        OpenError::Protocol(_) | OpenError::Broken(_) => {
            return Failure::new(what, not_passed_on(path));
        }
        OpenError::Refused { status, body } => (status.as_u16(), body),
    };
    let code = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("code")?.as_str().map(ToOwned::to_owned));
    let (why, hint) = match (status, code.as_deref()) {
        (404, code) => (
            if code == Some("not_found") {
                "herald answered, but serves no Cells door there"
            } else {
                "nothing is there"
            },
            format!(
                "turn the door on in herald's configuration: `[cells] enabled = true` (with \
                 `event_path` if the UI's ENDPOINT_WEBSOCKET is not /ws/event), or give the \
                 door's path with --cells PATH. Behind a proxy, the location for {path} must \
                 pass it to herald"
            ),
        ),
        (403, Some("forbidden_origin")) => (
            "herald refused the origin",
            format!(
                "add the Cells UI's origin (scheme://host[:port] of the page, here {}) to \
                 herald's allowed_origins",
                origin.unwrap_or("none sent")
            ),
        ),
        (403, _) => (
            "refused before herald",
            "the server or a proxy in front of it refuses this request (an allow-list, a web \
             application firewall, an origin check)"
                .to_owned(),
        ),
        (503, Some("server_full")) => (
            "herald is full",
            "this node holds limits.max_connections sessions (every door counts): raise it, or \
             add nodes"
                .to_owned(),
        ),
        (503, Some("overloaded")) => (
            "herald is overloaded",
            "limits.max_handshakes_in_flight handshakes are in flight (a reconnect storm): it \
             passes; raise the limit if it lasts"
                .to_owned(),
        ),
        (503, Some("shutting_down")) => (
            "this herald node is shutting down",
            "retry when it (or another node behind the proxy) serves again".to_owned(),
        ),
        (503, _) => (
            "the service is unavailable",
            "herald or the proxy's upstream is down or overloaded; check that herald runs and \
             answers GET /health"
                .to_owned(),
        ),
        (502 | 504, _) => (
            "the proxy could not reach herald",
            format!(
                "herald is down, or the proxy's upstream for {path} is wrong or times out; \
                 compare the proxy's location for {path} with {NGINX_CONF}"
            ),
        ),
        (401 | 407, _) => (
            "authentication is required before herald",
            format!(
                "a proxy in front of herald asks for credentials (basic auth, SSO): exempt \
                 {path}, the UI's WebSocket cannot answer it"
            ),
        ),
        (300..=399, _) => (
            "a redirect",
            "the UI's WebSocket does not follow redirects: use the final URL (often https:// \
             instead of http://)"
                .to_owned(),
        ),
        (400, Some("bad_request")) => (
            "herald got the request without its upgrade headers",
            not_passed_on(path),
        ),
        _ => ("not an upgrade", not_passed_on(path)),
    };
    Failure::new(format!("{what}: {why}"), hint)
}

/// The hint for an upgrade of `path` that does not reach herald as one: a proxy answers the
/// path itself, routes it elsewhere, or drops the WebSocket headers.
fn not_passed_on(path: &str) -> String {
    format!(
        "a proxy does not pass WebSocket upgrades on {path} to herald, so the Cells UI gets no \
         events: route {path} to herald with proxy_http_version 1.1 and the Upgrade/Connection \
         headers (nginx: `location = {path} {{ proxy_pass http://herald; proxy_http_version \
         1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \
         $connection_upgrade; }}`, as in {NGINX_CONF})"
    )
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::http::StatusCode;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn refusal(status: u16, body: &str) -> OpenError {
        OpenError::Refused {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.to_owned(),
        }
    }

    fn upgrade(status: u16, body: &str) -> Failure {
        explain_upgrade(
            "/ws/event",
            refusal(status, body),
            Some("https://evil.example.com"),
            WAIT,
        )
    }

    #[test]
    fn upgrade_refusals_name_their_cause() {
        let off = upgrade(404, r#"{"code":"not_found","message":"no route"}"#);
        assert!(off.what.contains("404 Not Found"), "{}", off.what);
        assert!(
            off.what.contains("serves no Cells door there"),
            "{}",
            off.what
        );
        assert!(
            off.hint.contains("`[cells] enabled = true`"),
            "{}",
            off.hint
        );

        let origin = upgrade(
            403,
            r#"{"code":"forbidden_origin","message":"origin not allowed"}"#,
        );
        assert!(
            origin.what.contains("refused the origin"),
            "{}",
            origin.what
        );
        assert!(
            origin
                .hint
                .contains("here https://evil.example.com) to herald's allowed_origins"),
            "{}",
            origin.hint
        );

        for (code, words) in [
            ("server_full", "limits.max_connections"),
            ("overloaded", "limits.max_handshakes_in_flight"),
            ("shutting_down", "another node"),
        ] {
            let full = upgrade(503, &format!(r#"{{"code":"{code}","message":"m"}}"#));
            assert!(full.hint.contains(words), "{code}: {}", full.hint);
        }
        assert!(upgrade(503, "<html>").hint.contains("GET /health"));

        for status in [200, 400, 426] {
            let proxied = upgrade(status, "<html>");
            assert!(
                proxied.hint.contains("location = /ws/event")
                    && proxied.hint.contains("$http_upgrade")
                    && proxied.hint.contains(NGINX_CONF),
                "{status}: {}",
                proxied.hint
            );
        }
        let stripped = upgrade(400, r#"{"code":"bad_request","message":"m"}"#);
        assert!(stripped.what.contains("without its upgrade headers"));
        assert!(upgrade(502, "").hint.contains("upstream for /ws/event"));
        assert!(upgrade(308, "").hint.contains("redirects"));

        let silent = explain_upgrade("/ws/event", OpenError::Silent, None, WAIT);
        assert!(
            silent.what.contains("no answer within 5 s"),
            "{}",
            silent.what
        );
        assert!(silent.hint.contains("proxy holds the upgrade request"));
    }

    #[test]
    fn error_frames_and_their_codes() {
        assert!(ErrorFrame::parse(r#"{"@type":"idm"}"#).is_none());
        assert!(ErrorFrame::parse("not json").is_none());
        let frame = ErrorFrame::parse(
            r#"{"@type":"error","code":"unauthorized","error":"the token was refused"}"#,
        )
        .unwrap();
        let token = TokenCheck::new("garbage", None, Duration::ZERO);
        let failure = refused(&frame, &token);
        assert!(
            failure
                .what
                .starts_with("subscribe refused: \"unauthorized\": the token is not a JWT"),
            "{}",
            failure.what
        );

        for (code, words) in [
            ("missing_token", "--token"),
            ("auth_unavailable", "auth.backend_url"),
            ("bad_message", "[cells] enabled = true"),
            ("rate_limited", "limits.events_per_second"),
        ] {
            let frame = ErrorFrame {
                kind: "error".into(),
                code: code.into(),
                error: String::new(),
            };
            let failure = refused(&frame, &token);
            assert!(failure.what.contains(code), "{}", failure.what);
            assert!(failure.hint.contains(words), "{code}: {}", failure.hint);
        }
        let odd = ErrorFrame {
            kind: "error".into(),
            code: "teapot".into(),
            error: "short and stout".into(),
        };
        assert!(refused(&odd, &token).what.contains("short and stout"));
        assert!(
            closed(Some((1008, "rate limit".into())))
                .what
                .contains("1008 \"rate limit\"")
        );
    }

    #[test]
    fn the_door_path_comes_from_the_flag_and_agrees_with_the_url() {
        let bare = Target::parse("https://cells.example.com", None, "/public").unwrap();
        assert_eq!(door_path(&bare, "ws/event/").unwrap(), "/ws/event");
        assert_eq!(
            describe(&bare, "/ws/event"),
            "https://cells.example.com:443, Cells door /ws/event"
        );
        let same = Target::parse("wss://cells.example.com/ws/event", None, "/public").unwrap();
        assert_eq!(door_path(&same, "/ws/event").unwrap(), "/ws/event");
        let other = Target::parse("wss://cells.example.com/events", None, "/public").unwrap();
        let failure = door_path(&other, "/ws/event").unwrap_err();
        assert!(failure.hint.contains("--cells /events"), "{}", failure.hint);
        assert!(door_path(&bare, "/a b").is_err());
    }
}
