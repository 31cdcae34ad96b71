//! The chat contract (docs/protocol.md, "Chat"): event names, typed requests parsed at the edge
//! with their limits, and the payloads herald sends. Handlers in `handlers.rs` only `match`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    room::{Room, RoomKind},
    store::Message,
};
use crate::{
    config::ChatConfig,
    ids::{IdError, UserId, WorkspaceId},
};

/// Browser → server: join (and open, when missing) a room.
pub const JOIN: &str = "join";
/// Browser → server: leave a room.
pub const LEAVE: &str = "leave";
/// Browser → server: post a message to a joined room.
pub const POST: &str = "post";
/// Browser → server: a page of older messages.
pub const HISTORY: &str = "history";
/// Browser → server: delete one's own message.
pub const DELETE_MESSAGE: &str = "delete_message";
/// Browser → server: a new token for the same user.
pub const REFRESH: &str = "refresh";
/// Server → browser: a new message in a joined room.
pub const MESSAGE: &str = "message";
/// Server → browser: a message was deleted.
pub const MESSAGE_DELETED: &str = "message_deleted";
/// Server → browser: who is in a room now.
pub const ROOM_MEMBERS: &str = "room_members";
/// Server → browser: the socket was taken out of a room (its access to the workspace ended).
pub const ROOM_REVOKED: &str = "room_revoked";

/// Longest `target` accepted, in bytes (as any other id).
const MAX_TARGET_BYTES: usize = crate::ids::MAX_ID_BYTES;
/// Longest error message echoed to a client (serde's messages may quote the input).
const MAX_MESSAGE: usize = 200;

/// Why a chat call was refused: `{"ok": false, "error": <code>, "message"?}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The payload has the wrong shape or an invalid value; says what.
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not join the room, or may not touch that message.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The room is not one the socket has joined (unknown rooms included).
    #[error("join the room first")]
    NotJoined,
    /// The message is not in the room (or was deleted).
    #[error("no such message in this room")]
    NotFound,
    /// Storage or the access check is unavailable right now; retry later.
    #[error("try again later")]
    Unavailable,
}

impl ChatError {
    /// The code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Forbidden(_) => "forbidden",
            Self::NotJoined => "not_joined",
            Self::NotFound => "not_found",
            Self::Unavailable => "unavailable",
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Self::BadRequest(message)
    }
}

/// The ack of a refused call.
#[derive(Debug, Serialize)]
pub struct ErrorAck {
    ok: bool,
    error: &'static str,
    message: String,
}

impl From<&ChatError> for ErrorAck {
    fn from(error: &ChatError) -> Self {
        Self {
            ok: false,
            error: error.code(),
            message: error.to_string(),
        }
    }
}

/// A validated `join`: the room it names (uuid derived), before any access check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The room as it would be opened.
    pub room: Room,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinArg {
    room: RoomArg,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomArg {
    #[serde(rename = "type")]
    kind: RoomKind,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    users: Option<Vec<String>>,
    #[serde(default)]
    label: Option<String>,
}

/// Parses a `join` argument into the room it names, created at `now` if it is new.
///
/// # Errors
/// [`ChatError::BadRequest`] saying what is wrong.
pub fn parse_join(
    value: serde_json::Value,
    cfg: &ChatConfig,
    now: i64,
) -> Result<JoinRequest, ChatError> {
    let JoinArg { room } = serde_json::from_value(value).map_err(|e| {
        ChatError::bad(format!(
            "expected {{\"room\": {{\"type\", \"target\", ...}}}}: {e}"
        ))
    })?;
    let target = room
        .target
        .map(|target| check_id("room.target", &target).map(|()| target))
        .transpose()?;
    let workspace = room
        .workspace
        .map(|ws| WorkspaceId::parse(ws).map_err(|e| id_error("room.workspace", e)))
        .transpose()?;
    let label = room
        .label
        .map(|label| {
            let label = strip_controls(&label, false);
            if label.len() > cfg.max_label {
                Err(ChatError::bad(format!(
                    "`room.label` must be at most {} bytes",
                    cfg.max_label
                )))
            } else {
                Ok(label)
            }
        })
        .transpose()?
        .filter(|label| !label.is_empty());
    let (target, workspace, users) = match room.kind {
        RoomKind::Workspace => {
            let target = target.ok_or_else(|| ChatError::bad("`room.target` is required"))?;
            let ws = WorkspaceId::parse(target.clone()).map_err(|e| id_error("room.target", e))?;
            if workspace.as_ref().is_some_and(|w| *w != ws) {
                return Err(ChatError::bad(
                    "`room.workspace` must be absent or equal `room.target` in a workspace room",
                ));
            }
            if room.users.is_some() {
                return Err(ChatError::bad("`room.users` applies to users rooms only"));
            }
            (Some(target), Some(ws), Vec::new())
        }
        RoomKind::Node => {
            let target = target.ok_or_else(|| ChatError::bad("`room.target` is required"))?;
            let workspace = workspace.ok_or_else(|| {
                ChatError::bad("`room.workspace` is required in a node room: the node's workspace")
            })?;
            if room.users.is_some() {
                return Err(ChatError::bad("`room.users` applies to users rooms only"));
            }
            (Some(target), Some(workspace), Vec::new())
        }
        RoomKind::Users => {
            if workspace.is_some() {
                return Err(ChatError::bad(
                    "`room.workspace` applies to workspace and node rooms only",
                ));
            }
            let raw = room
                .users
                .ok_or_else(|| ChatError::bad("`room.users` is required in a users room"))?;
            if raw.is_empty() || raw.len() > cfg.max_room_users {
                return Err(ChatError::bad(format!(
                    "`room.users` must list 1 to {} users",
                    cfg.max_room_users
                )));
            }
            let users = raw
                .into_iter()
                .map(|user| UserId::parse(user).map_err(|e| id_error("room.users", e)))
                .collect::<Result<Vec<_>, _>>()?;
            (target, None, users)
        }
    };
    Ok(JoinRequest {
        room: Room::new(room.kind, target, workspace, users, label, now),
    })
}

/// A `post`: the room and the cleaned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRequest {
    /// The joined room.
    pub room: Uuid,
    /// The text, control characters stripped.
    pub text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostArg {
    room: Uuid,
    text: String,
}

/// Parses a `post`.
///
/// # Errors
/// [`ChatError::BadRequest`]: wrong shape, empty or over-long text.
pub fn parse_post(value: serde_json::Value, max_text: usize) -> Result<PostRequest, ChatError> {
    let PostArg { room, text } = serde_json::from_value(value).map_err(|e| {
        ChatError::bad(format!(
            "expected {{\"room\": \"<uuid>\", \"text\": \"...\"}}: {e}"
        ))
    })?;
    let text = strip_controls(&text, true);
    if text.trim().is_empty() {
        return Err(ChatError::bad("`text` must not be empty"));
    }
    if text.len() > max_text {
        return Err(ChatError::bad(format!(
            "`text` must be at most {max_text} bytes"
        )));
    }
    Ok(PostRequest { room, text })
}

/// A `history` page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRequest {
    /// The joined room.
    pub room: Uuid,
    /// Messages strictly older than this one; `None`: the latest.
    pub before: Option<Uuid>,
    /// How many, at most.
    pub limit: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryArg {
    room: Uuid,
    #[serde(default)]
    before: Option<Uuid>,
    #[serde(default)]
    limit: Option<serde_json::Value>,
}

/// Parses a `history` request; `limit` defaults to `page` and may be 1 to `max_limit`.
///
/// # Errors
/// [`ChatError::BadRequest`]: wrong shape or limit.
pub fn parse_history(
    value: serde_json::Value,
    page: usize,
    max_limit: usize,
) -> Result<HistoryRequest, ChatError> {
    let HistoryArg {
        room,
        before,
        limit,
    } = serde_json::from_value(value).map_err(|e| {
        ChatError::bad(format!(
            "expected {{\"room\": \"<uuid>\", \"before\"?: \"<message uuid>\", \"limit\"?: n}}: {e}"
        ))
    })?;
    let limit = match limit {
        None | Some(serde_json::Value::Null) => page,
        Some(value) => value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=max_limit).contains(n))
            .ok_or_else(|| {
                ChatError::bad(format!("`limit` must be an integer from 1 to {max_limit}"))
            })?,
    };
    Ok(HistoryRequest {
        room,
        before,
        limit,
    })
}

/// A `delete_message` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRef {
    /// The joined room.
    pub room: Uuid,
    /// The message.
    pub uuid: Uuid,
}

/// Parses a `delete_message` request.
///
/// # Errors
/// [`ChatError::BadRequest`]: wrong shape.
pub fn parse_message_ref(value: serde_json::Value) -> Result<MessageRef, ChatError> {
    serde_json::from_value(value).map_err(|e| {
        ChatError::bad(format!(
            "expected {{\"room\": \"<uuid>\", \"uuid\": \"<message uuid>\"}}: {e}"
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomRefArg {
    room: Uuid,
}

/// Parses a `leave` request: `{"room": "<uuid>"}`.
///
/// # Errors
/// [`ChatError::BadRequest`]: wrong shape.
pub fn parse_room_ref(value: serde_json::Value) -> Result<Uuid, ChatError> {
    serde_json::from_value::<RoomRefArg>(value)
        .map(|arg| arg.room)
        .map_err(|e| ChatError::bad(format!("expected {{\"room\": \"<uuid>\"}}: {e}")))
}

/// Removes control characters; with `keep_lines`, newlines and tabs stay (message text).
pub fn strip_controls(text: &str, keep_lines: bool) -> String {
    text.chars()
        .filter(|c| !c.is_control() || (keep_lines && matches!(c, '\n' | '\t')))
        .collect()
}

fn check_id(key: &str, raw: &str) -> Result<(), ChatError> {
    if raw.is_empty() {
        Err(id_error(key, IdError::Empty))
    } else if raw.len() > MAX_TARGET_BYTES {
        Err(id_error(key, IdError::TooLong))
    } else if raw.chars().any(char::is_control) {
        Err(id_error(key, IdError::ControlCharacter))
    } else {
        Ok(())
    }
}

fn id_error(key: &str, error: IdError) -> ChatError {
    ChatError::bad(format!("`{key}` {error}"))
}

/// Ack of `join`.
#[derive(Debug, Serialize)]
pub struct JoinAck<'a> {
    /// Always true.
    pub ok: bool,
    /// The room, as first opened.
    pub room: &'a Room,
    /// The latest messages, oldest first.
    pub messages: &'a [Message],
    /// Whether older messages exist.
    pub more: bool,
    /// Users present now.
    pub members: &'a [UserId],
}

/// Ack of `post`.
#[derive(Debug, Serialize)]
pub struct PostAck<'a> {
    /// Always true.
    pub ok: bool,
    /// The stored message.
    pub message: &'a Message,
}

/// Ack of `history`.
#[derive(Debug, Serialize)]
pub struct HistoryAck<'a> {
    /// Always true.
    pub ok: bool,
    /// The page, oldest first.
    pub messages: &'a [Message],
    /// Whether older messages exist.
    pub more: bool,
}

/// Payload of `room_members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomMembers {
    /// The room.
    pub room: Uuid,
    /// Users present, sorted, each once.
    pub members: Vec<UserId>,
}

/// Payload of `room_revoked`.
#[derive(Debug, Serialize)]
pub struct RoomRevoked {
    /// The room the socket was taken out of.
    pub room: Uuid,
    /// Why: `"access_revoked"`.
    pub reason: &'static str,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg() -> ChatConfig {
        crate::Config::from_toml("").unwrap().chat
    }

    #[test]
    fn controls_are_stripped_but_lines_kept_in_text() {
        assert_eq!(
            strip_controls("a\u{0}b\u{7}\r\nc\td\u{1b}[31m", true),
            "ab\nc\td[31m"
        );
        assert_eq!(strip_controls("a\nb\tc\u{85}", false), "abc");
    }

    #[test]
    fn posts_are_checked() {
        let room = Uuid::new_v4();
        let ok = parse_post(json!({"room": room, "text": " hi\u{0} "}), 10).unwrap();
        assert_eq!((ok.room, ok.text.as_str()), (room, " hi "));
        for bad in [
            json!({"room": room}),
            json!({"text": "x"}),
            json!({"room": "not-a-uuid", "text": "x"}),
            json!({"room": room, "text": 5}),
            json!({"room": room, "text": "\u{1}\u{2}"}),
            json!({"room": room, "text": "x".repeat(11)}),
            json!({"room": room, "text": "x", "author": "mallory"}),
            json!("x"),
            json!(null),
        ] {
            assert!(
                matches!(parse_post(bad.clone(), 10), Err(ChatError::BadRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn joins_name_their_room() {
        let cfg = cfg();
        let ws = parse_join(
            json!({"room": {"type": "workspace", "target": "w"}}),
            &cfg,
            1,
        )
        .unwrap()
        .room;
        assert_eq!(ws.workspace.as_ref().unwrap().as_str(), "w");
        let node = parse_join(
            json!({"room": {"type": "node", "target": "n1", "workspace": "w", "label": "Spec\u{7}"}}),
            &cfg,
            1,
        )
        .unwrap()
        .room;
        assert_eq!(node.label.as_deref(), Some("Spec"));
        let users = parse_join(
            json!({"room": {"type": "users", "users": ["b", "a", "b"]}}),
            &cfg,
            1,
        )
        .unwrap()
        .room;
        assert_eq!(users.users.len(), 2);
        for bad in [
            json!({}),
            json!({"room": {"type": "galaxy", "target": "w"}}),
            json!({"room": {"type": "workspace"}}),
            json!({"room": {"type": "workspace", "target": ""}}),
            json!({"room": {"type": "workspace", "target": "w", "workspace": "v"}}),
            json!({"room": {"type": "node", "target": "n"}}),
            json!({"room": {"type": "users"}}),
            json!({"room": {"type": "users", "users": []}}),
            json!({"room": {"type": "users", "users": [3]}}),
            json!({"room": {"type": "users", "users": ["a"], "workspace": "w"}}),
            json!({"room": {"type": "workspace", "target": "w", "label": "x".repeat(300)}}),
            json!({"room": {"type": "workspace", "target": "w", "colour": "red"}}),
        ] {
            assert!(parse_join(bad.clone(), &cfg, 1).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=cfg.max_room_users).map(|i| i.to_string()).collect();
        assert!(parse_join(json!({"room": {"type": "users", "users": many}}), &cfg, 1).is_err());
    }

    #[test]
    fn history_limits() {
        let room = Uuid::new_v4();
        let page = parse_history(json!({"room": room}), 50, 200).unwrap();
        assert_eq!((page.limit, page.before), (50, None));
        let before = Uuid::new_v4();
        let page =
            parse_history(json!({"room": room, "before": before, "limit": 3}), 50, 200).unwrap();
        assert_eq!((page.limit, page.before), (3, Some(before)));
        for bad in [json!(0), json!(201), json!(-1), json!(1.5), json!("3")] {
            assert!(
                parse_history(json!({"room": room, "limit": bad}), 50, 200).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn long_serde_messages_are_cut() {
        let huge = "x".repeat(100_000);
        let err = parse_join(json!({"room": {"type": huge}}), &cfg(), 1).unwrap_err();
        assert!(err.to_string().len() < 300, "{err}");
    }
}
