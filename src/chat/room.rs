//! Room identity: what a `join` names (a workspace, a file node, a set of users) and the room
//! uuid derived from it, so that everyone naming the same thing reaches the same room.
//!
//! The uuid is a UUID v5 of the room's kind and identifying ids: `workspace` rooms by the
//! workspace, `node` rooms by the workspace *and* the node (herald cannot check that a node
//! belongs to a workspace, so a node room is reached only through the workspace it was opened
//! in: naming someone else's node in a workspace of one's own reaches a room of one's own),
//! `users` rooms by their sorted, deduplicated user list and an optional `target` (a topic, so
//! the same people may hold several conversations). Ids cannot contain control characters, so
//! a NUL separator keeps the names unambiguous.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{UserId, WorkspaceId};

/// Namespace of the v5 room uuids (random, fixed forever: changing it would orphan every room).
const ROOM_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c0e_8b5d_4e27_9c41_d2f0_7a83_b915);

/// Prefix of chat rooms' Socket.IO room names on the chat namespace.
const SOCKET_ROOM_PREFIX: &str = "chat:";

/// What a room is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// A workspace: every user who may read it.
    Workspace,
    /// A file node of a workspace: every user who may read that workspace.
    Node,
    /// A fixed set of users: exactly them.
    Users,
}

impl RoomKind {
    /// The kind on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workspace => "workspace",
            Self::Node => "node",
            Self::Users => "users",
        }
    }

    /// Parses a stored kind.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "workspace" => Some(Self::Workspace),
            "node" => Some(Self::Node),
            "users" => Some(Self::Users),
            _ => None,
        }
    }
}

/// A chat room, as stored and as sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// The derived room uuid.
    pub uuid: Uuid,
    /// What it is attached to.
    #[serde(rename = "type")]
    pub kind: RoomKind,
    /// The workspace id (workspace rooms), node id (node rooms), topic or nothing (users rooms).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
    /// The workspace whose readers may join (workspace and node rooms).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub workspace: Option<WorkspaceId>,
    /// The members of a users room, sorted; empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub users: Vec<UserId>,
    /// A display name, set by whoever opened the room first.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub label: Option<String>,
    /// When the room was opened, milliseconds since the Unix epoch.
    pub created: i64,
}

impl Room {
    /// A new room of the given identity (the uuid is derived from it).
    pub fn new(
        kind: RoomKind,
        target: Option<String>,
        workspace: Option<WorkspaceId>,
        mut users: Vec<UserId>,
        label: Option<String>,
        created: i64,
    ) -> Self {
        users.sort();
        users.dedup();
        let uuid = derive_uuid(kind, target.as_deref(), workspace.as_ref(), &users);
        Self {
            uuid,
            kind,
            target,
            workspace,
            users,
            label,
            created,
        }
    }
}

/// The uuid of a room: v5 of its kind and identifying ids (`users` sorted and deduplicated).
fn derive_uuid(
    kind: RoomKind,
    target: Option<&str>,
    workspace: Option<&WorkspaceId>,
    users: &[UserId],
) -> Uuid {
    let mut name = String::from(kind.as_str());
    let mut push = |part: &str| {
        name.push('\0');
        name.push_str(part);
    };
    match kind {
        RoomKind::Workspace => push(workspace.map_or("", WorkspaceId::as_str)),
        RoomKind::Node => {
            push(workspace.map_or("", WorkspaceId::as_str));
            push(target.unwrap_or(""));
        }
        RoomKind::Users => {
            for user in users {
                push(user.as_str());
            }
            // An empty part ends the list, so a topic never reads as one more user.
            push("");
            push(target.unwrap_or(""));
        }
    }
    Uuid::new_v5(&ROOM_NAMESPACE, name.as_bytes())
}

/// The Socket.IO room (on the chat namespace) of a chat room's joined sockets.
pub(crate) fn socket_room(room: &Uuid) -> String {
    format!("{SOCKET_ROOM_PREFIX}{room}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(ids: &[&str]) -> Vec<UserId> {
        ids.iter().map(|id| UserId::parse(*id).unwrap()).collect()
    }

    fn ws(id: &str) -> Option<WorkspaceId> {
        Some(WorkspaceId::parse(id).unwrap())
    }

    #[test]
    fn users_rooms_ignore_order_and_duplicates() {
        let a = Room::new(RoomKind::Users, None, None, users(&["b", "a"]), None, 0);
        let b = Room::new(
            RoomKind::Users,
            None,
            None,
            users(&["a", "b", "a"]),
            None,
            1,
        );
        assert_eq!(a.uuid, b.uuid);
        assert_eq!(a.users, users(&["a", "b"]));
        let topic = Room::new(
            RoomKind::Users,
            Some("plans".into()),
            None,
            users(&["a", "b"]),
            None,
            0,
        );
        assert_ne!(a.uuid, topic.uuid);
        // A topic is not one more user.
        let three = Room::new(
            RoomKind::Users,
            None,
            None,
            users(&["a", "b", "c"]),
            None,
            0,
        );
        let ab_c = Room::new(
            RoomKind::Users,
            Some("c".into()),
            None,
            users(&["a", "b"]),
            None,
            0,
        );
        assert_ne!(three.uuid, ab_c.uuid);
    }

    #[test]
    fn kinds_and_workspaces_never_collide() {
        let workspace = Room::new(
            RoomKind::Workspace,
            Some("x".into()),
            ws("x"),
            vec![],
            None,
            0,
        );
        let node = Room::new(RoomKind::Node, Some("x".into()), ws("x"), vec![], None, 0);
        let user = Room::new(
            RoomKind::Users,
            Some("x".into()),
            None,
            users(&["x"]),
            None,
            0,
        );
        assert_ne!(workspace.uuid, node.uuid);
        assert_ne!(node.uuid, user.uuid);
        let elsewhere = Room::new(RoomKind::Node, Some("x".into()), ws("y"), vec![], None, 0);
        assert_ne!(node.uuid, elsewhere.uuid);
    }

    #[test]
    fn the_uuid_is_stable_and_the_label_not_part_of_it() {
        let a = Room::new(
            RoomKind::Workspace,
            Some("w".into()),
            ws("w"),
            vec![],
            None,
            0,
        );
        let b = Room::new(
            RoomKind::Workspace,
            Some("w".into()),
            ws("w"),
            vec![],
            Some("Team".into()),
            5,
        );
        assert_eq!(a.uuid, b.uuid);
        assert_eq!(a.uuid.get_version_num(), 5);
        assert_eq!(socket_room(&a.uuid), format!("chat:{}", a.uuid));
    }
}
