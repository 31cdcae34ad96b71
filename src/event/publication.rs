//! Parsing and validation of a publish request, shared by `/private` `publish` and
//! `POST /api/v1/publish`, into a [`Publication`] the pipeline can deliver, and the rules it
//! keeps: name and key lengths, the event names a publisher may not use.

use std::{collections::HashSet, hash::Hash};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::cells::Batching;
use crate::{
    ids::{GroupPath, IdError, UserId, WorkspaceId},
    rooms::{self, Scope, ScopeError},
};

/// Longest event name, in bytes.
pub const MAX_EVENT_BYTES: usize = 128;
/// Longest coalescing key, in bytes.
pub const MAX_COALESCE_KEY_BYTES: usize = 256;

/// Names a publisher may not use: Socket.IO and EventEmitter reserve them on the client.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Why a publish request was refused. Each has a stable code and a message for the publisher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Not JSON, wrong types, unknown fields, invalid ids.
    #[error("{0}")]
    BadRequest(String),
    /// Event name empty, too long or with control characters.
    #[error("`event` must be 1 to {MAX_EVENT_BYTES} bytes without control characters")]
    InvalidEvent,
    /// Event name reserved by Socket.IO.
    #[error("`event` {0:?} is reserved by Socket.IO")]
    ReservedEvent(String),
    /// No workspace, user or group named.
    #[error("name at least one target: workspace, workspaces, user, users or group")]
    NoTarget,
    /// More target rooms than `publish.max_targets`.
    #[error("at most {0} targets per publish")]
    TooManyTargets(usize),
    /// The event could not be handed to the delivery layer.
    #[error("delivery is unavailable")]
    Unavailable,
}

impl PublishError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::InvalidEvent => "invalid_event",
            Self::ReservedEvent(_) => "reserved_event",
            Self::NoTarget => "no_target",
            Self::TooManyTargets(_) => "too_many_targets",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The wire form; fields are validated while deserializing (ids) and after (rules).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    event: String,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    workspace: Option<WorkspaceId>,
    #[serde(default)]
    workspaces: Vec<WorkspaceId>,
    #[serde(default)]
    user: Option<UserId>,
    #[serde(default)]
    users: Vec<UserId>,
    #[serde(default)]
    group: Option<GroupPath>,
    #[serde(default)]
    coalesce_key: Option<String>,
}

/// Where an event goes: the union of these rooms, each socket once.
///
/// Its serde form is how the cluster's stream carries it (one field per kind, absent when
/// empty, unknown fields ignored, so that every node version reads every event): a new kind
/// is a new field here, and the stream needs no change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Targets {
    /// Workspace rooms, in the publisher's order, without duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<WorkspaceId>,
    /// User rooms, without duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserId>,
    /// Group rooms, without duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupPath>,
    /// Rooms herald derived from a Pydio Cells event (`super::cells`), without duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<Scope>,
}

/// Why a room name is not a publish target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RoomError {
    /// Not a workspace, user, group or scope room.
    #[error("room {0:?} is not a workspace:, user:, group:, login:, role:, profile: or tree: room")]
    NotATarget(String),
    /// A scope room whose id is not valid.
    #[error("room {room:?}: {error}")]
    InvalidScope {
        /// The room name, cut to 64 characters.
        room: String,
        /// What is wrong with it.
        error: String,
    },
    /// A target room whose id is not valid.
    #[error("room {room:?}: the id {error}")]
    InvalidId {
        /// The room name, cut to 64 characters.
        room: String,
        /// What is wrong with its id.
        error: IdError,
    },
}

impl Targets {
    /// Targets from Socket.IO room names (the npm redis-emitter's `rooms`), each once.
    ///
    /// # Errors
    /// The first name that is not a valid target room.
    pub(crate) fn from_rooms<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, RoomError> {
        let (mut workspaces, mut users, mut groups) = (Vec::new(), Vec::new(), Vec::new());
        let mut scopes = Vec::new();
        for name in names {
            let invalid = |error| RoomError::InvalidId {
                room: name.chars().take(64).collect(),
                error,
            };
            if let Some(id) = name.strip_prefix(rooms::WORKSPACE_PREFIX) {
                workspaces.push(WorkspaceId::parse(id).map_err(invalid)?);
            } else if let Some(id) = name.strip_prefix(rooms::USER_PREFIX) {
                users.push(UserId::parse(id).map_err(invalid)?);
            } else if let Some(path) = name.strip_prefix(rooms::GROUP_PREFIX) {
                groups.push(GroupPath::parse(path).map_err(invalid)?);
            } else {
                match Scope::from_room(name) {
                    Ok(scope) => scopes.push(scope),
                    Err(ScopeError::NotAScope) => {
                        return Err(RoomError::NotATarget(name.chars().take(64).collect()));
                    }
                    Err(ScopeError::Invalid(error)) => {
                        return Err(RoomError::InvalidScope {
                            room: name.chars().take(64).collect(),
                            error,
                        });
                    }
                }
            }
        }
        Ok(Self::new(workspaces, users, groups).with_scopes(scopes))
    }

    /// The rooms of these targets in delivery order, each with the workspace its members'
    /// `meta` names: workspace rooms first (each naming its workspace), then user rooms, group
    /// rooms and scope rooms (naming none).
    pub(crate) fn rooms(&self) -> impl Iterator<Item = (String, Option<&WorkspaceId>)> {
        let workspaces = (self.workspaces.iter()).map(|id| (rooms::workspace_room(id), Some(id)));
        let users = self.users.iter().map(|id| (rooms::user_room(id), None));
        let groups = self
            .groups
            .iter()
            .map(|path| (rooms::group_room(path), None));
        let scopes = self.scopes.iter().map(|scope| (scope.room(), None));
        workspaces.chain(users).chain(groups).chain(scopes)
    }

    /// The targets named, each once, in the order first named.
    pub fn new(
        workspaces: impl IntoIterator<Item = WorkspaceId>,
        users: impl IntoIterator<Item = UserId>,
        groups: impl IntoIterator<Item = GroupPath>,
    ) -> Self {
        Self {
            workspaces: dedup(workspaces),
            users: dedup(users),
            groups: dedup(groups),
            scopes: Vec::new(),
        }
    }

    /// These targets and `scopes`, each once.
    pub(crate) fn with_scopes(mut self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        self.scopes = dedup(self.scopes.into_iter().chain(scopes));
        self
    }

    /// How many rooms the targets name.
    pub fn len(&self) -> usize {
        self.workspaces.len() + self.users.len() + self.groups.len() + self.scopes.len()
    }

    /// Whether no room is named.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A validated event, ready to deliver.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The event name browsers listen to.
    pub event: String,
    /// The payload, byte for byte as published (`null` when absent).
    pub data: Box<RawValue>,
    /// Where it goes.
    pub targets: Targets,
    /// Events with the same targets, event name and key are merged (see the coalescer).
    pub coalesce_key: Option<String>,
    /// Goes out after the held events of this event name with this coalescing key (a Cells
    /// node's batch, before that node is moved or deleted).
    pub after_held: Option<String>,
}

/// Drops repeated items, keeping the first occurrence and the order.
fn dedup<T: Eq + Hash + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

impl Publication {
    /// Parses and validates a JSON publish request.
    ///
    /// # Errors
    /// A [`PublishError`] saying what to fix.
    pub fn parse(json: &str, max_targets: usize) -> Result<Self, PublishError> {
        let raw: RawPublish =
            serde_json::from_str(json).map_err(|e| PublishError::BadRequest(describe(&e)))?;
        let targets = Targets::new(
            raw.workspace.into_iter().chain(raw.workspaces),
            raw.user.into_iter().chain(raw.users),
            raw.group,
        );
        let data = raw.data.unwrap_or_else(null_data);
        Self::new(raw.event, data, targets, raw.coalesce_key, max_targets)
    }

    /// A publication from parts already parsed (the npm redis-emitter's publishes), checked by
    /// the same rules as [`Self::parse`].
    ///
    /// # Errors
    /// A [`PublishError`] saying what to fix.
    pub fn new(
        event: String,
        data: Box<RawValue>,
        targets: Targets,
        coalesce_key: Option<String>,
        max_targets: usize,
    ) -> Result<Self, PublishError> {
        if event.is_empty() || event.len() > MAX_EVENT_BYTES || event.chars().any(char::is_control)
        {
            return Err(PublishError::InvalidEvent);
        }
        if RESERVED_EVENTS.contains(&event.as_str()) {
            return Err(PublishError::ReservedEvent(event));
        }
        let kind = super::cells::Kind::of(&event)?;
        let (data, targets, batching) = match kind {
            Some(kind) => kind.prepare(&data, targets)?,
            None => (data, targets, Batching::Never),
        };
        let mut after_held = None;
        let mut coalesce_key = coalesce_key;
        match batching {
            Batching::Never => {}
            Batching::Hold(_) | Batching::After(_) if coalesce_key.is_some() => {
                return Err(PublishError::BadRequest(
                    "cells:node events are batched per node by herald: omit `coalesce_key`".into(),
                ));
            }
            Batching::Hold(key) => coalesce_key = Some(key),
            Batching::After(key) => after_held = Some(key),
        }
        // A Cells kind may concern nobody (an idm no rule applies to): accepted, delivered to
        // no one, as Cells does.
        if targets.is_empty() && kind.is_none() {
            return Err(PublishError::NoTarget);
        }
        if targets.len() > max_targets {
            return Err(PublishError::TooManyTargets(max_targets));
        }
        if let Some(key) = &coalesce_key
            && (key.is_empty()
                || key.len() > MAX_COALESCE_KEY_BYTES
                || key.chars().any(char::is_control))
        {
            return Err(PublishError::BadRequest(format!(
                "`coalesce_key` must be 1 to {MAX_COALESCE_KEY_BYTES} bytes without control characters"
            )));
        }
        Ok(Self {
            event,
            data,
            targets,
            coalesce_key,
            after_held,
        })
    }
}

/// JSON `null`, the data of a publish that has none.
pub fn null_data() -> Box<RawValue> {
    // invariant: "null" is valid JSON.
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!())
}

/// serde_json's message, which says what and where, capped in length.
fn describe(e: &serde_json::Error) -> String {
    let mut msg = e.to_string();
    if msg.len() > 200 {
        let mut cut = 200;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Publication, PublishError> {
        Publication::parse(json, 10)
    }

    #[test]
    fn data_is_kept_byte_for_byte() {
        let p = parse(
            r#"{"event":"e","workspace":"w","data":{"b":1.50,"a":[1e3,18446744073709551616]}}"#,
        )
        .unwrap();
        assert_eq!(p.data.get(), r#"{"b":1.50,"a":[1e3,18446744073709551616]}"#);
        assert_eq!(
            parse(r#"{"event":"e","user":"u"}"#).unwrap().data.get(),
            "null"
        );
    }

    #[test]
    fn targets_are_merged_and_deduplicated() {
        let p = parse(r#"{"event":"e","workspace":"a","workspaces":["b","a"],"user":"u","users":["u","v"],"group":"/g"}"#).unwrap();
        let ws: Vec<_> = p
            .targets
            .workspaces
            .iter()
            .map(WorkspaceId::as_str)
            .collect();
        assert_eq!(ws, ["a", "b"]);
        assert_eq!(p.targets.users.len(), 2);
        assert_eq!(p.targets.len(), 5);
    }

    #[test]
    fn each_rule_has_its_code() {
        let code = |json: &str| parse(json).unwrap_err().code();
        assert_eq!(code("not json"), "bad_request");
        assert_eq!(code(r#"{"event":"e","workspace":5}"#), "bad_request");
        assert_eq!(code(r#"{"event":"e","workspace":""}"#), "bad_request");
        assert_eq!(
            code(r#"{"event":"e","workspace":"w","extra":1}"#),
            "bad_request"
        );
        assert_eq!(code(r#"{"workspace":"w"}"#), "bad_request");
        assert_eq!(code(r#"{"event":"","workspace":"w"}"#), "invalid_event");
        assert_eq!(
            code(&format!(
                r#"{{"event":"{}","workspace":"w"}}"#,
                "x".repeat(129)
            )),
            "invalid_event"
        );
        assert_eq!(
            code(r#"{"event":"disconnect","workspace":"w"}"#),
            "reserved_event"
        );
        assert_eq!(code(r#"{"event":"e"}"#), "no_target");
        assert_eq!(code(r#"{"event":"e","workspaces":[]}"#), "no_target");
        let many: Vec<String> = (0..11).map(|i| format!("\"w{i}\"")).collect();
        assert_eq!(
            code(&format!(
                r#"{{"event":"e","workspaces":[{}]}}"#,
                many.join(",")
            )),
            "too_many_targets"
        );
    }

    #[test]
    fn coalesce_keys_are_checked() {
        let p = parse(r#"{"event":"e","workspace":"w","coalesce_key":"node-1"}"#).unwrap();
        assert_eq!(p.coalesce_key.as_deref(), Some("node-1"));
        assert_eq!(
            parse(r#"{"event":"e","workspace":"w"}"#)
                .unwrap()
                .coalesce_key,
            None
        );
        for bad in [r#""""#, "5", &format!(r#""{}""#, "k".repeat(257))] {
            let json = format!(r#"{{"event":"e","workspace":"w","coalesce_key":{bad}}}"#);
            assert_eq!(parse(&json).unwrap_err().code(), "bad_request", "{bad}");
        }
    }

    #[test]
    fn event_name_of_128_bytes_is_fine() {
        assert!(
            parse(&format!(
                r#"{{"event":"{}","workspace":"w"}}"#,
                "x".repeat(128)
            ))
            .is_ok()
        );
    }
}
