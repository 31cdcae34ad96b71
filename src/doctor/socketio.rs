//! The Socket.IO steps over the upgraded WebSocket: CONNECT to the namespace with the token
//! (`40/public,{"token":...}`) and `register` with an ack (`42/public,1["register",...]`).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    report::{Failure, Passed, snippet},
    token::TokenCheck,
    websocket::{Ws, next_text, send},
};

/// The ack id doctor uses for `register`.
const REGISTER_ACK: u64 = 1;

/// A Socket.IO packet inside an Engine.IO message packet (`4...`).
#[derive(Debug, PartialEq)]
struct Packet<'a> {
    kind: u8,
    namespace: &'a str,
    ack: Option<u64>,
    data: &'a str,
}

/// Parses `<type>[<nsp>,][<ack id>]<json>` (the Engine.IO `4` already removed).
fn parse(text: &str) -> Option<Packet<'_>> {
    let kind = text.bytes().next().filter(u8::is_ascii_digit)? - b'0';
    let mut rest = &text[1..];
    let mut namespace = "/";
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        namespace = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = rest[..digits].parse().ok();
    Some(Packet {
        kind,
        namespace,
        ack,
        data: &rest[digits..],
    })
}

/// `/public,` for a namespace other than `/`.
fn prefix(namespace: &str) -> String {
    if namespace == "/" {
        String::new()
    } else {
        format!("{namespace},")
    }
}

/// The next Socket.IO packet for `namespace`, other packets skipped.
async fn next_packet(ws: &mut Ws, namespace: &str, deadline: Instant) -> Result<String, String> {
    loop {
        let text = next_text(ws, deadline).await?;
        let Some(sio) = text.strip_prefix('4') else {
            continue;
        };
        if parse(sio).is_some_and(|p| p.namespace == namespace) {
            return Ok(sio.to_owned());
        }
    }
}

/// CONNECT to `namespace` with `auth: {token}`.
pub(crate) async fn connect(
    ws: &mut Ws,
    namespace: &str,
    token: &TokenCheck<'_>,
    timeout: Duration,
) -> Result<Passed<()>, Failure> {
    let auth = json!({ "token": token.token() });
    let packet = format!("40{}{auth}", prefix(namespace));
    let deadline = Instant::now() + timeout;
    let lost = |e: String| {
        Failure::new(
            format!("CONNECT {namespace}: {e}"),
            "herald closed the session or did not answer the namespace's CONNECT: see its log",
        )
    };
    send(ws, &packet).await.map_err(lost)?;
    loop {
        let text = next_packet(ws, namespace, deadline).await.map_err(lost)?;
        let Some(p) = parse(&text) else { continue };
        match p.kind {
            0 => {
                return Ok(Passed::new(
                    (),
                    format!("connected to {namespace} with the token"),
                ));
            }
            4 => return Err(refused(namespace, p.data, token)),
            _ => {}
        }
    }
}

fn refused(namespace: &str, data: &str, token: &TokenCheck<'_>) -> Failure {
    let message = serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(Value::as_str)
                .map(ToOwned::to_owned)
        })
        .unwrap_or_else(|| snippet(data, 80));
    let what = format!("CONNECT {namespace} refused: {message:?}");
    if message == "unauthorized" {
        let (why, hint) = token.explain_unauthorized();
        return Failure::new(format!("{what}: {why}"), hint);
    }
    if message.starts_with("bad_request") {
        return Failure::new(
            what,
            "herald refused the handshake's other fields (auth.since)",
        );
    }
    if message == "Invalid namespace" {
        return Failure::new(
            what,
            "herald serves browsers on public.path (default /public): give that with \
             --namespace",
        );
    }
    Failure::new(what, "herald refused the connection; its log says why")
}

/// `register` of `workspace`, awaiting the ack.
pub(crate) async fn register(
    ws: &mut Ws,
    namespace: &str,
    workspace: &str,
    token: &TokenCheck<'_>,
    timeout: Duration,
) -> Result<Passed<()>, Failure> {
    let args = json!(["register", { "workspace": workspace }]);
    let packet = format!("42{}{REGISTER_ACK}{args}", prefix(namespace));
    let deadline = Instant::now() + timeout;
    let lost = |e: String| {
        Failure::new(
            format!("register {workspace:?}: {e}"),
            "herald did not acknowledge register: an older herald, or it lost the session; see \
             its log",
        )
    };
    send(ws, &packet).await.map_err(lost)?;
    let ack = loop {
        let text = next_packet(ws, namespace, deadline).await.map_err(lost)?;
        match parse(&text) {
            Some(p) if p.kind == 3 && p.ack == Some(REGISTER_ACK) => break p.data.to_owned(),
            Some(p) if p.kind == 1 => return Err(lost("herald disconnected the socket".into())),
            _ => {}
        }
    };
    let reply = serde_json::from_str::<Value>(&ack)
        .ok()
        .and_then(|v| v.get(0).cloned())
        .unwrap_or(Value::Null);
    if reply.get("ok") == Some(&Value::Bool(true)) {
        let offset = reply.get("offset").and_then(Value::as_u64).unwrap_or(0);
        return Ok(Passed::new(
            (),
            format!("registered to workspace {workspace:?} (its latest offset is {offset})"),
        ));
    }
    let error = reply.get("error").and_then(Value::as_str).unwrap_or("");
    let message = reply.get("message").and_then(Value::as_str).unwrap_or("");
    let what = format!("register {workspace:?} refused: {error}");
    Err(match error {
        "forbidden" => Failure::new(what, token.explain_forbidden(workspace)),
        "bad_request" => Failure::new(
            format!("{what}: {message}"),
            "a workspace id is a string of 1 to 256 bytes without control characters",
        ),
        "unavailable" => Failure::new(
            what,
            "backend mode: herald could not ask the application (auth.backend_url) whether the \
             user may read the workspace; check that the backend is up and reachable from herald",
        ),
        _ => Failure::new(
            format!(
                "register {workspace:?}: unexpected ack {}",
                snippet(&ack, 120)
            ),
            "this server does not answer register as herald does",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets() {
        assert_eq!(
            parse(r#"0/public,{"sid":"x"}"#),
            Some(Packet {
                kind: 0,
                namespace: "/public",
                ack: None,
                data: r#"{"sid":"x"}"#
            })
        );
        assert_eq!(
            parse(r#"3/public,1[{"ok":true}]"#),
            Some(Packet {
                kind: 3,
                namespace: "/public",
                ack: Some(1),
                data: r#"[{"ok":true}]"#
            })
        );
        assert_eq!(
            parse(r#"4{"message":"m"}"#),
            Some(Packet {
                kind: 4,
                namespace: "/",
                ack: None,
                data: r#"{"message":"m"}"#
            })
        );
        assert_eq!(
            parse("1/public"),
            Some(Packet {
                kind: 1,
                namespace: "/public",
                ack: None,
                data: ""
            })
        );
        assert_eq!(parse(""), None);
        assert_eq!(parse("x"), None);
        assert_eq!(prefix("/"), "");
        assert_eq!(prefix("/public"), "/public,");
    }
}
