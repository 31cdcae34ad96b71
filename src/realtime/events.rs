//! Event names and payloads of the Socket.IO contract (docs/protocol.md), defined once.
//!
//! Incoming payloads are parsed here into typed requests; replies are serde structs, so the
//! handlers in `public.rs` and `private.rs` only `match`.

use serde::{Deserialize, Serialize};

use crate::{
    ids::{IdError, UserId, WorkspaceId},
    pipeline::PublishError,
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

/// Names a publisher may not use: Socket.IO and EventEmitter reserve them on the client.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

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
}

impl ErrorCode {
    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Forbidden => "forbidden",
            Self::Unavailable => "unavailable",
            Self::Unauthorized => "unauthorized",
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

/// The payload of `disconnect_user`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectUser {
    /// Whose sockets to disconnect.
    pub user: UserId,
    /// Forwarded to the browser in `session_invalid`; defaults to "logout".
    #[serde(default)]
    pub reason: Option<String>,
}

/// The payload of `access` and `POST /api/v1/access`.
#[derive(Debug, Deserialize)]
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
    /// Sockets of the user that were updated.
    pub sockets: usize,
    /// Workspace registrations taken away, over all those sockets.
    pub revoked: usize,
    /// Sockets disconnected because the backend no longer accepts their credentials.
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
