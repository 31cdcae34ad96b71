//! Room names: the only place where herald turns ids into Socket.IO room names.
//!
//! Browsers on `/public` sit in `user:<id>`, `group:<path>` and, after a successful `register`,
//! `workspace:<id>`. Publishing targets are resolved to these names by the pipeline.

use crate::ids::{GroupPath, UserId, WorkspaceId};

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
}
