//! The Cells chat's frames: what the UI sends (Cells' `chat.WebSocketMessage`, parsed into a
//! [`ChatRequest`]) and what herald answers (`ROOM_UPDATE`, bare messages, `DELETE_MSG`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::super::frames::ErrorCode;
use crate::{
    chat::{
        protocol::{MessageRef, strip_controls},
        store::Message,
    },
    ids::{UserId, WorkspaceId},
};

/// Longest node uuid accepted, in bytes.
const MAX_NODE_BYTES: usize = 256;
/// The UI's heartbeat: a JOIN whose message is this.
const PING: &str = "PING";

/// A chat room as the UI names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum RoomRef {
    /// A workspace's room.
    Workspace(WorkspaceId),
    /// A file node's room (its comments), by node uuid.
    Node(String),
}

impl RoomRef {
    /// Cells' `Type`.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Self::Workspace(_) => "WORKSPACE",
            Self::Node(_) => "NODE",
        }
    }

    /// Cells' `RoomTypeObject`.
    pub(crate) fn object(&self) -> &str {
        match self {
            Self::Workspace(id) => id.as_str(),
            Self::Node(node) => node,
        }
    }
}

/// A chat frame, understood.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChatRequest {
    /// JOIN (`ping`: the UI's heartbeat for a room it holds).
    Join { room: RoomRef, ping: bool },
    /// HISTORY: skip the `offset` newest, then up to `limit` (`None`: the default page).
    History {
        room: RoomRef,
        offset: usize,
        limit: Option<usize>,
    },
    /// POST of a text to a room the socket holds.
    Post { room: Uuid, text: String },
    /// DELETE_MSG of a message of a room the socket holds.
    Delete(MessageRef),
    /// LEAVE.
    Leave(RoomRef),
}

#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "@type", default)]
    kind: Option<String>,
    #[serde(rename = "Room", default)]
    room: Option<RawRoom>,
    #[serde(rename = "Message", default)]
    message: Option<RawMessage>,
}

#[derive(Deserialize)]
struct RawRoom {
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "RoomTypeObject", default)]
    object: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(rename = "Message", default)]
    text: Option<String>,
    #[serde(rename = "RoomUuid", default)]
    room: Option<String>,
    #[serde(rename = "Uuid", default)]
    uuid: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Paging {
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    limit: usize,
}

/// Parses a chat frame; `max_text` bounds a POST's text (after control characters are stripped).
///
/// # Errors
/// The [`ErrorCode`] to answer: `bad_message`, `unsupported_room`, `too_long`.
pub(crate) fn parse(text: &str, max_text: usize) -> Result<ChatRequest, ErrorCode> {
    let raw: RawFrame = serde_json::from_str(text).map_err(|_| ErrorCode::BadMessage)?;
    let room = || room_ref(raw.room.as_ref());
    let message = raw.message.as_ref();
    let uuid = |value: Option<&String>| {
        value
            .and_then(|value| Uuid::parse_str(value).ok())
            .ok_or(ErrorCode::BadMessage)
    };
    match raw.kind.as_deref() {
        // JOIN is protojson's zero: absent when the client omits it.
        Some("JOIN") | None if raw.room.is_some() => Ok(ChatRequest::Join {
            room: room()?,
            ping: message.and_then(|m| m.text.as_deref()) == Some(PING),
        }),
        Some("HISTORY") => {
            let paging = match message.and_then(|m| m.text.as_deref()) {
                None | Some("") => Paging {
                    offset: 0,
                    limit: 0,
                },
                Some(json) => serde_json::from_str(json).map_err(|_| ErrorCode::BadMessage)?,
            };
            Ok(ChatRequest::History {
                room: room()?,
                offset: paging.offset,
                limit: (paging.limit > 0).then_some(paging.limit),
            })
        }
        Some("POST") => {
            let message = message.ok_or(ErrorCode::BadMessage)?;
            let text = strip_controls(message.text.as_deref().unwrap_or(""), true);
            if text.trim().is_empty() {
                return Err(ErrorCode::BadMessage);
            }
            if text.len() > max_text {
                return Err(ErrorCode::TooLong);
            }
            Ok(ChatRequest::Post {
                room: uuid(message.room.as_ref())?,
                text,
            })
        }
        Some("DELETE_MSG") => {
            let message = message.ok_or(ErrorCode::BadMessage)?;
            Ok(ChatRequest::Delete(MessageRef {
                room: uuid(message.room.as_ref())?,
                uuid: uuid(message.uuid.as_ref())?,
            }))
        }
        Some("LEAVE") => Ok(ChatRequest::Leave(room()?)),
        _ => Err(ErrorCode::BadMessage),
    }
}

fn room_ref(raw: Option<&RawRoom>) -> Result<RoomRef, ErrorCode> {
    let raw = raw.ok_or(ErrorCode::BadMessage)?;
    let object = raw.object.as_deref().unwrap_or("");
    match raw.kind.as_deref() {
        Some("WORKSPACE") => WorkspaceId::parse(object)
            .map(RoomRef::Workspace)
            .map_err(|_| ErrorCode::BadMessage),
        Some("NODE") => {
            if object.is_empty()
                || object.len() > MAX_NODE_BYTES
                || object.chars().any(char::is_control)
            {
                return Err(ErrorCode::BadMessage);
            }
            Ok(RoomRef::Node(object.to_owned()))
        }
        // GLOBAL is protojson's zero.
        None | Some("GLOBAL" | "USER" | "ANY") => Err(ErrorCode::UnsupportedRoom),
        Some(_) => Err(ErrorCode::BadMessage),
    }
}

/// `{"@type":"ROOM_UPDATE","Room":{…}}`.
pub(crate) fn room_update(uuid: &Uuid, room: &RoomRef, users: &[UserId], now_s: i64) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Room<'a> {
        uuid: &'a Uuid,
        #[serde(rename = "Type")]
        kind: &'a str,
        room_type_object: &'a str,
        users: &'a [UserId],
        last_updated: i64,
    }
    #[derive(Serialize)]
    struct Frame<'a> {
        #[serde(rename = "@type")]
        kind: &'a str,
        #[serde(rename = "Room")]
        room: Room<'a>,
    }
    serde_json::to_string(&Frame {
        kind: "ROOM_UPDATE",
        room: Room {
            uuid,
            kind: room.type_name(),
            room_type_object: room.object(),
            users,
            last_updated: now_s,
        },
    })
    .unwrap_or_default()
}

/// A message, bare, as Cells sends them: `Timestamp` in seconds, as a string (int64).
pub(crate) fn message(message: &Message) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Frame<'a> {
        uuid: &'a Uuid,
        room_uuid: &'a Uuid,
        message: &'a str,
        author: &'a UserId,
        timestamp: String,
    }
    serde_json::to_string(&Frame {
        uuid: &message.uuid,
        room_uuid: &message.room,
        message: &message.text,
        author: &message.author,
        timestamp: (message.ts / 1000).to_string(),
    })
    .unwrap_or_default()
}

/// `{"@type":"DELETE_MSG","Message":{"Uuid","RoomUuid"}}`.
pub(crate) fn deleted(target: &MessageRef) -> String {
    serde_json::json!({
        "@type": "DELETE_MSG",
        "Message": {"Uuid": target.uuid, "RoomUuid": target.room},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ChatRequest, ErrorCode> {
        super::parse(text, 16)
    }

    #[test]
    fn reads_what_the_chat_ui_sends() {
        let join = r#"{"@type":"JOIN","Room":{"Type":"NODE","RoomTypeObject":"n1"}}"#;
        assert_eq!(
            parse(join),
            Ok(ChatRequest::Join {
                room: RoomRef::Node("n1".into()),
                ping: false
            })
        );
        let ping = r#"{"@type":"JOIN","Room":{"Type":"WORKSPACE","RoomTypeObject":"w"},"Message":{"Message":"PING"}}"#;
        assert!(matches!(
            parse(ping),
            Ok(ChatRequest::Join { ping: true, .. })
        ));
        let history = r#"{"@type":"HISTORY","Room":{"Type":"NODE","RoomTypeObject":"n"},"Message":{"Message":"{\"Offset\":2,\"Limit\":40}"}}"#;
        assert!(matches!(
            parse(history),
            Ok(ChatRequest::History {
                offset: 2,
                limit: Some(40),
                ..
            })
        ));
        let room = "0b7e3c52-5d7f-4a59-9d55-3f3c3c8a0e11";
        let post =
            format!(r#"{{"@type":"POST","Message":{{"RoomUuid":"{room}","Message":"hi\u0007"}}}}"#);
        assert!(matches!(parse(&post), Ok(ChatRequest::Post { text, .. }) if text == "hi"));
        let delete = format!(
            r#"{{"@type":"DELETE_MSG","Message":{{"Uuid":"{room}","RoomUuid":"{room}","Author":"x"}}}}"#
        );
        assert!(matches!(parse(&delete), Ok(ChatRequest::Delete(_))));
    }

    #[test]
    fn refusals_have_their_codes() {
        let room = "0b7e3c52-5d7f-4a59-9d55-3f3c3c8a0e11";
        for (frame, code) in [
            ("garbage", ErrorCode::BadMessage),
            (r#"{"@type":"JOIN"}"#, ErrorCode::BadMessage),
            (
                r#"{"@type":"JOIN","Room":{"Type":"USER","RoomTypeObject":"u"}}"#,
                ErrorCode::UnsupportedRoom,
            ),
            (r#"{"@type":"JOIN","Room":{}}"#, ErrorCode::UnsupportedRoom),
            (
                r#"{"@type":"HISTORY","Room":{"Type":"NODE","RoomTypeObject":"n"},"Message":{"Message":"nope"}}"#,
                ErrorCode::BadMessage,
            ),
            (
                &format!(
                    r#"{{"@type":"POST","Message":{{"RoomUuid":"{room}","Message":"{}"}}}}"#,
                    "x".repeat(17)
                ),
                ErrorCode::TooLong,
            ),
            (
                r#"{"@type":"POST","Message":{"RoomUuid":"nope","Message":"hi"}}"#,
                ErrorCode::BadMessage,
            ),
            (r#"{"@type":"DELETE_ROOM"}"#, ErrorCode::BadMessage),
        ] {
            assert_eq!(parse(frame), Err(code), "{frame}");
        }
    }

    #[test]
    fn frames_read_as_cells_writes_them() {
        let room: Uuid = "0b7e3c52-5d7f-4a59-9d55-3f3c3c8a0e11".parse().unwrap();
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(
            room_update(
                &room,
                &RoomRef::Node("n".into()),
                std::slice::from_ref(&alice),
                7
            ),
            format!(
                r#"{{"@type":"ROOM_UPDATE","Room":{{"Uuid":"{room}","Type":"NODE","RoomTypeObject":"n","Users":["alice"],"LastUpdated":7}}}}"#
            )
        );
        let text = message(&Message {
            uuid: room,
            room,
            author: alice,
            text: "hi".into(),
            ts: 1_700_000_000_999,
        });
        assert_eq!(
            text,
            format!(
                r#"{{"Uuid":"{room}","RoomUuid":"{room}","Message":"hi","Author":"alice","Timestamp":"1700000000"}}"#
            )
        );
    }
}
