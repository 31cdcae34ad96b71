//! Event names and payloads of the Socket.IO contract (docs/protocol.md), defined once.
//!
//! Incoming payloads are parsed here into typed requests; replies are serde structs, so the
//! handlers in `public.rs` and `private.rs` only `match`.

use serde::{Deserialize, Serialize};

use super::reply;
use crate::{
    event::PublishError,
    history::{Epoch, MAX_EPOCH_BYTES, Position},
    ids::{IdError, UserId, WorkspaceId},
};

/// Browser → server: join a workspace room after an access check.
pub const REGISTER: &str = "register";
/// Browser → server: leave a workspace room.
pub const UNREGISTER: &str = "unregister";
/// Backend → server: publish an event.
pub const PUBLISH: &str = "publish";
/// Backend → server: disconnect all sockets of a user.
pub const DISCONNECT_USER: &str = "disconnect_user";
/// Server → browser: the session ended (sent before the server disconnects the socket).
pub const SESSION_INVALID: &str = "session_invalid";
/// Backend → server: replace a user's allowed workspaces (or, in backend mode, re-ask).
pub const ACCESS: &str = "access";
/// Server → browser: a registered workspace was taken away; the socket left it.
pub const ACCESS_REVOKED: &str = "access_revoked";
/// Server → browser: the token expires soon; send `refresh`.
pub const TOKEN_EXPIRING: &str = "token_expiring";
/// Browser → server: a new token for the same user.
pub const REFRESH: &str = "refresh";
/// Server → browser: a `since` position cannot be served; reload that room's state.
pub const RESYNC: &str = "resync";
/// Server → browser: the user room's position after a handshake with `auth.since`.
pub const USER_POSITION: &str = "user_position";

/// Error codes of `/public` calls, carried in `{"ok": false, "error": <code>}` acks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The payload has the wrong shape or an invalid value.
    BadRequest,
    /// The caller may not access the workspace.
    Forbidden,
    /// Access could not be checked right now (backend unreachable); retry later.
    Unavailable,
    /// The presented token is not valid.
    Unauthorized,
    /// The socket sent events faster than `limits.events_per_second`; retry later.
    RateLimited,
    /// The socket is registered to `limits.max_workspaces_per_socket` workspaces already.
    TooManyWorkspaces,
}

impl ErrorCode {
    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Forbidden => "forbidden",
            Self::Unavailable => "unavailable",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::TooManyWorkspaces => "too_many_workspaces",
        }
    }
}

/// Ack of a refused request: `{"ok": false, "error": <code>, "message"?: <for people>}`.
#[derive(Debug, Serialize)]
pub struct ErrorAck {
    ok: bool,
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl ErrorAck {
    /// A refusal with a code only.
    pub fn new(error: ErrorCode) -> Self {
        Self {
            ok: false,
            error: error.as_str(),
            message: None,
        }
    }

    /// A refusal with a human-readable explanation (never internal error text).
    pub fn with_message(error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: error.as_str(),
            message: Some(message.into()),
        }
    }
}

impl From<&PublishError> for ErrorAck {
    fn from(error: &PublishError) -> Self {
        Self {
            ok: false,
            error: error.code(),
            message: Some(error.to_string()),
        }
    }
}

/// Ack of an accepted `publish`.
#[derive(Debug, Serialize)]
pub struct PublishAck<'a> {
    /// Always true.
    pub ok: bool,
    /// The event id.
    pub id: &'a str,
}

/// Ack of a successful `register`.
#[derive(Debug, Serialize)]
pub struct RegisterAck<'a> {
    /// Always true.
    pub ok: bool,
    /// The workspace now registered.
    pub workspace: &'a WorkspaceId,
    /// The workspace room's latest offset: resume from here with `since`.
    pub offset: u64,
    /// The workspace room's epoch.
    pub epoch: &'a str,
}

/// Payload of `user_position`: where the user room stands after a handshake with `auth.since`.
#[derive(Debug, Serialize)]
pub struct UserPosition<'a> {
    /// The user room's latest offset.
    pub offset: u64,
    /// The user room's epoch.
    pub epoch: &'a str,
}

/// Ack of a successful `unregister` (and other calls with nothing to report).
#[derive(Debug, Serialize)]
pub struct OkAck {
    /// Always true.
    pub ok: bool,
}

impl OkAck {
    /// `{"ok": true}`.
    pub const OK: Self = Self { ok: true };
}

/// The payload of `register` / `unregister`: `{"workspace": "<id>"}` or a bare `"<id>"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WorkspaceArg {
    Object { workspace: serde_json::Value },
    Bare(String),
}

/// Parses the workspace argument of `register` / `unregister`.
///
/// # Errors
/// A message for the client: wrong type, missing field, or invalid id.
pub fn parse_workspace_arg(value: serde_json::Value) -> Result<WorkspaceId, String> {
    let raw = match serde_json::from_value::<WorkspaceArg>(value) {
        Ok(WorkspaceArg::Bare(id)) => id,
        Ok(WorkspaceArg::Object {
            workspace: serde_json::Value::String(id),
        }) => id,
        Ok(WorkspaceArg::Object { .. }) => return Err("`workspace` must be a string".into()),
        Err(_) => return Err("expected {\"workspace\": \"<id>\"} or a workspace id string".into()),
    };
    WorkspaceId::parse(raw).map_err(|e: IdError| format!("`workspace` {e}"))
}

/// Parses the argument of `register`: a workspace, and with the object form an optional
/// `since` position (`null` means none).
///
/// # Errors
/// A message for the client, as [`parse_workspace_arg`] and [`parse_position`].
pub fn parse_register_arg(
    value: serde_json::Value,
) -> Result<(WorkspaceId, Option<Position>), String> {
    let since = match &value {
        serde_json::Value::Object(fields) => fields
            .get("since")
            .filter(|since| !since.is_null())
            .map(|since| parse_position(since).map_err(|e| format!("`since` {e}")))
            .transpose()?,
        _ => None,
    };
    Ok((parse_workspace_arg(value)?, since))
}

/// Parses the handshake's `auth.since`: `{"user": <position> | null}`; absent is `None`.
/// Any other room is refused: only the user room is resumed at the handshake.
///
/// # Errors
/// A message for the client.
pub fn parse_handshake_since(
    auth: Option<&serde_json::Value>,
) -> Result<Option<Option<Position>>, String> {
    let Some(since) = auth.and_then(|auth| auth.get("since")) else {
        return Ok(None);
    };
    let Some(rooms) = since.as_object() else {
        return Err(
            "`auth.since` must be an object such as {\"user\": {\"offset\", \"epoch\"}}".into(),
        );
    };
    if let Some(unknown) = rooms.keys().find(|key| *key != "user") {
        return Err(format!(
            "`auth.since` names an unknown room {:?}: only \"user\"",
            reply::truncate(unknown)
        ));
    }
    match rooms.get("user") {
        None | Some(serde_json::Value::Null) => Ok(Some(None)),
        Some(position) => parse_position(position)
            .map(|p| Some(Some(p)))
            .map_err(|e| format!("`auth.since.user` {e}")),
    }
}

/// Parses a client's position `{"offset": <u64>, "epoch": "<string>"}`.
///
/// # Errors
/// What is wrong with it, for the client.
pub fn parse_position(value: &serde_json::Value) -> Result<Position, String> {
    const SHAPE: &str = "must be {\"offset\": <non-negative integer>, \"epoch\": \"<string>\"}";
    let fields = value.as_object().ok_or(SHAPE)?;
    if fields.len() != 2 {
        return Err(SHAPE.into());
    }
    let offset = fields
        .get("offset")
        .and_then(serde_json::Value::as_u64)
        .ok_or(SHAPE)?;
    let epoch = fields
        .get("epoch")
        .and_then(serde_json::Value::as_str)
        .ok_or(SHAPE)?;
    let epoch =
        Epoch::parse(epoch).ok_or_else(|| format!("epoch must be 1 to {MAX_EPOCH_BYTES} bytes"))?;
    Ok(Position { offset, epoch })
}

/// The payload of `disconnect_user`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectUser {
    /// Whose sockets to disconnect.
    pub user: UserId,
    /// Forwarded to the browser in `session_invalid`; defaults to "logout".
    #[serde(default)]
    pub reason: Option<String>,
}

/// The payload of `access` and `POST /api/v1/access`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessChange {
    /// Whose sockets to update.
    pub user: UserId,
    /// The workspaces the user may now read. Absent: ask the auth backend again (backend mode
    /// only).
    #[serde(default)]
    pub workspaces: Option<Vec<WorkspaceId>>,
}

/// Payload of `access_revoked`.
#[derive(Debug, Serialize)]
pub struct AccessRevoked<'a> {
    /// The workspace the socket left.
    pub workspace: &'a WorkspaceId,
}

/// Result of an access change: ack of `access`, body of `POST /api/v1/access`.
#[derive(Debug, Default, Serialize)]
pub struct AccessOutcome {
    /// Always true.
    pub ok: bool,
    /// Sessions of the user that were updated, on every door (Socket.IO `/public` sockets,
    /// Cells sockets).
    pub sockets: usize,
    /// Workspace registrations taken away, over all those sockets.
    pub revoked: usize,
    /// Sessions ended because the backend no longer accepts their credentials.
    pub disconnected: usize,
}

/// Payload of `token_expiring`.
#[derive(Debug, Serialize)]
pub struct TokenExpiring {
    /// The token's `exp`, seconds since the epoch.
    pub exp: u64,
}

/// Ack of a successful `refresh`.
#[derive(Debug, Serialize)]
pub struct RefreshAck {
    /// Always true.
    pub ok: bool,
    /// The new `exp`.
    pub exp: Option<u64>,
    /// Registered workspaces the new token no longer allows (left, with `access_revoked`).
    pub revoked: usize,
}

/// Payload of `session_invalid`.
#[derive(Debug, Serialize)]
pub struct SessionInvalid<'a> {
    /// Why the session ended.
    pub reason: &'a str,
}

/// Ack of `disconnect_user`.
#[derive(Debug, Serialize)]
pub struct DisconnectUserAck {
    /// Always true.
    pub ok: bool,
    /// How many sockets were disconnected.
    pub sockets: usize,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn workspace_arg_accepts_object_and_bare_string() {
        assert_eq!(
            parse_workspace_arg(json!({"workspace": "a"}))
                .unwrap()
                .as_str(),
            "a"
        );
        assert_eq!(parse_workspace_arg(json!("b")).unwrap().as_str(), "b");
    }

    #[test]
    fn register_takes_an_optional_since() {
        let (ws, since) = parse_register_arg(json!("a")).unwrap();
        assert_eq!((ws.as_str(), since), ("a", None));
        let (_, since) = parse_register_arg(json!({"workspace": "a", "since": null})).unwrap();
        assert_eq!(since, None);
        let (_, since) =
            parse_register_arg(json!({"workspace": "a", "since": {"offset": 7, "epoch": "e"}}))
                .unwrap();
        let since = since.unwrap();
        assert_eq!((since.offset, since.epoch.as_str()), (7, "e"));
    }

    #[test]
    fn positions_of_the_wrong_shape_are_refused() {
        for bad in [
            json!(7),
            json!({}),
            json!({"offset": 1}),
            json!({"offset": -1, "epoch": "e"}),
            json!({"offset": 1.5, "epoch": "e"}),
            json!({"offset": "1", "epoch": "e"}),
            json!({"offset": 1, "epoch": 2}),
            json!({"offset": 1, "epoch": ""}),
            json!({"offset": 1, "epoch": "e".repeat(10_000)}),
            json!({"offset": 1, "epoch": "e", "more": true}),
        ] {
            let arg = json!({"workspace": "a", "since": bad});
            assert!(parse_register_arg(arg).is_err(), "accepted since {bad}");
        }
    }

    #[test]
    fn handshake_since_names_the_user_room_only() {
        assert_eq!(parse_handshake_since(None).unwrap(), None);
        assert_eq!(
            parse_handshake_since(Some(&json!({"token": "t"}))).unwrap(),
            None
        );
        assert_eq!(
            parse_handshake_since(Some(&json!({"since": {}}))).unwrap(),
            Some(None)
        );
        let since = parse_handshake_since(Some(
            &json!({"since": {"user": {"offset": 3, "epoch": "e"}}}),
        ))
        .unwrap()
        .unwrap()
        .unwrap();
        assert_eq!(since.offset, 3);
        for bad in [
            json!({"since": 1}),
            json!({"since": {"workspace:a": {"offset": 1, "epoch": "e"}}}),
            json!({"since": {"user": {"offset": 1}}}),
        ] {
            assert!(parse_handshake_since(Some(&bad)).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn workspace_arg_refuses_bad_shapes() {
        for bad in [
            json!(null),
            json!(1),
            json!({}),
            json!({"workspace": 3}),
            json!({"workspace": ""}),
            json!({"workspace": "x".repeat(257)}),
            json!(["a"]),
        ] {
            assert!(parse_workspace_arg(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_ack_shape() {
        let v = serde_json::to_value(ErrorAck::new(ErrorCode::Forbidden)).unwrap();
        assert_eq!(v, json!({"ok": false, "error": "forbidden"}));
    }
}
