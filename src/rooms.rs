//! Room names: the only place where herald turns ids into Socket.IO room names.
//!
//! Browsers on `/public` sit in `user:<id>`, `group:<path>` and, after a successful `register`,
//! `workspace:<id>`. Pydio Cells sessions (`/ws/event`) sit in those and in their [`Scope`]
//! rooms: `login:<login>`, `role:<id>`, `profile:<profile>` and `tree:<path>` for each root of
//! their workspaces. Publishing targets are resolved to these names by the pipeline.

use crate::ids::{GroupPath, IdError, Login, Profile, RoleId, TreePath, UserId, WorkspaceId};

/// Prefix of workspace rooms.
pub(crate) const WORKSPACE_PREFIX: &str = "workspace:";
/// Prefix of user rooms.
pub(crate) const USER_PREFIX: &str = "user:";
/// Prefix of group rooms.
pub(crate) const GROUP_PREFIX: &str = "group:";

/// The room of a workspace's registered sockets.
pub(crate) fn workspace_room(id: &WorkspaceId) -> String {
    format!("{WORKSPACE_PREFIX}{id}")
}

/// The room of all of a user's sockets.
pub(crate) fn user_room(id: &UserId) -> String {
    format!("{USER_PREFIX}{id}")
}

/// The room of all sockets of a group's members.
pub(crate) fn group_room(path: &GroupPath) -> String {
    format!("{GROUP_PREFIX}{path}")
}

/// A room that herald derives from what a Pydio Cells event is about, rather than one a
/// publisher names: the sessions of a login, of a role, of a profile, or with a workspace root
/// at a node path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Sessions whose login this is.
    Login(Login),
    /// Sessions with this role.
    Role(RoleId),
    /// Sessions with this profile.
    Profile(Profile),
    /// Sessions with a workspace whose root is this node.
    Tree(TreePath),
}

/// Why a room name is not a [`Scope`] room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScopeError {
    /// Another kind of room.
    #[error("not a scope room")]
    NotAScope,
    /// A scope room whose id is invalid.
    #[error("{0}")]
    Invalid(String),
}

impl Scope {
    /// The room's name.
    pub(crate) fn room(&self) -> String {
        match self {
            Self::Login(login) => format!("login:{login}"),
            Self::Role(role) => format!("role:{role}"),
            Self::Profile(profile) => format!("profile:{profile}"),
            Self::Tree(path) => format!("tree:{path}"),
        }
    }

    /// The scope a room name names.
    ///
    /// # Errors
    /// [`ScopeError::NotAScope`] for another kind of room; [`ScopeError::Invalid`] for a scope
    /// room whose id is not valid.
    pub(crate) fn from_room(name: &str) -> Result<Self, ScopeError> {
        let id = |e: IdError| ScopeError::Invalid(e.to_string());
        let (kind, rest) = name.split_once(':').ok_or(ScopeError::NotAScope)?;
        match kind {
            "login" => Login::parse(rest).map(Self::Login).map_err(id),
            "role" => RoleId::parse(rest).map(Self::Role).map_err(id),
            "profile" => Profile::parse(rest).map(Self::Profile).map_err(id),
            "tree" => TreePath::parse(rest)
                .map(Self::Tree)
                .map_err(|e| ScopeError::Invalid(e.to_string())),
            _ => Err(ScopeError::NotAScope),
        }
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.room())
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::from_room(&name).map_err(|e| serde::de::Error::custom(format!("room {name:?}: {e}")))
    }
}

/// Whether a room name is a workspace room (for counting workspaces in `/status`).
pub(crate) fn is_workspace_room(room: &str) -> bool {
    room.starts_with(WORKSPACE_PREFIX)
}

/// The workspace of a workspace room; `None` for any other room.
pub(crate) fn workspace_of(room: &str) -> Option<WorkspaceId> {
    WorkspaceId::parse(room.strip_prefix(WORKSPACE_PREFIX)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_of_different_kinds_never_collide() {
        let ws = workspace_room(&WorkspaceId::parse("x").unwrap());
        let user = user_room(&UserId::parse("x").unwrap());
        let group = group_room(&GroupPath::parse("x").unwrap());
        assert_eq!(
            [ws.as_str(), user.as_str(), group.as_str()],
            ["workspace:x", "user:x", "group:x"]
        );
        assert!(is_workspace_room(&ws) && !is_workspace_room(&user));
        assert_eq!(workspace_of(&ws).unwrap().as_str(), "x");
        assert_eq!(workspace_of(&user), None);
    }

    #[test]
    fn scopes_survive_their_room_names() {
        let scopes = [
            Scope::Login(Login::parse("alice").unwrap()),
            Scope::Role(RoleId::parse("ADMINS").unwrap()),
            Scope::Profile(Profile::parse("admin").unwrap()),
            Scope::Tree(TreePath::parse("ds/a:b").unwrap()),
        ];
        for scope in scopes {
            assert_eq!(Scope::from_room(&scope.room()).unwrap(), scope);
        }
        assert_eq!(
            Scope::from_room("workspace:x").unwrap_err(),
            ScopeError::NotAScope
        );
        assert!(matches!(
            Scope::from_room("tree:a//b"),
            Err(ScopeError::Invalid(_))
        ));
    }
}
