//! The Pydio Cells kinds of publish: the events named `cells:node`, `cells:task`, `cells:idm`
//! and `cells:activity` carry Cells' own messages (protojson). Each is checked here once, at
//! publish, and gets the rooms of the sessions that may see it ([`Scope`]s, besides the targets
//! the publisher named); the Cells door renders them as the frames the Cells web UI expects.

use serde_json::{Map, Value, value::RawValue};

use super::{PublishError, Targets};
use crate::{
    ids::{Login, Profile, RoleId, UserId, WorkspaceId},
    rooms::Scope,
};

pub(crate) mod node;

/// Prefix of the Cells kinds' event names.
const PREFIX: &str = "cells:";
/// The event name of node events.
pub(crate) const NODE_EVENT: &str = "cells:node";
/// The login Cells runs its own tasks as; their updates go to administrators.
pub(crate) const SYSTEM_USER: &str = "pydio.system.user";
/// The profile that receives the system user's tasks.
pub(crate) const ADMIN_PROFILE: &str = "admin";

/// How a Cells event waits for the others of its node (Cells' batching per node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Batching {
    /// Goes out at once.
    Never,
    /// Held and merged with the node's other batched events under this coalescing key.
    Hold(String),
    /// Goes out at once, after the node's batch held under this key, if any.
    After(String),
}

/// The coalescing key of a node's batch.
fn batch_key(uuid: &str) -> String {
    format!("node:{uuid}")
}

/// Which Cells message an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `cells:node`: a change in the tree.
    Node,
    /// `cells:task`: a job's task progressed.
    Task,
    /// `cells:idm`: users, roles, workspaces or ACLs changed.
    Idm,
    /// `cells:activity`: an activity for a user's inbox.
    Activity,
}

impl Kind {
    /// The kind an event name names; `None` for an event that is not a Cells kind.
    ///
    /// # Errors
    /// A `cells:` name that is no kind.
    pub(crate) fn of(event: &str) -> Result<Option<Self>, PublishError> {
        let Some(name) = event.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        Ok(Some(match name {
            "node" => Self::Node,
            "task" => Self::Task,
            "idm" => Self::Idm,
            "activity" => Self::Activity,
            _ => {
                return Err(PublishError::BadRequest(format!(
                    "{event:?}: the Cells kinds are cells:node, cells:task, cells:idm and \
                     cells:activity"
                )));
            }
        }))
    }

    /// Checks the data of this kind, normalises it where the kind says so, adds the rooms of
    /// the sessions that may see it to `targets`, and says how it is batched.
    ///
    /// # Errors
    /// [`PublishError::BadRequest`] naming what is wrong.
    pub(crate) fn prepare(
        self,
        data: &RawValue,
        targets: Targets,
    ) -> Result<(Box<RawValue>, Targets, Batching), PublishError> {
        let bad = |message: String| PublishError::BadRequest(format!("cells: {message}"));
        match self {
            Self::Node => {
                let change = node::NodeChange::parse(data.get()).map_err(bad)?;
                let scopes: Vec<Scope> = if change.kind == node::ChangeType::UpdateUserMeta {
                    if targets.users.is_empty() {
                        return Err(bad(
                            "an UPDATE_USER_META node event is one user's: name `user`".into(),
                        ));
                    }
                    Vec::new()
                } else {
                    let mut paths: Vec<&str> = change
                        .paths()
                        .flat_map(|p| p.self_and_ancestors())
                        .collect();
                    paths.sort_unstable();
                    paths.dedup();
                    paths
                        .into_iter()
                        .filter_map(|path| crate::ids::TreePath::parse(path).ok())
                        .map(Scope::Tree)
                        .collect()
                };
                let batching = match (&change.target, &change.source) {
                    (Some(target), _) if node::batched(change.kind) => {
                        Batching::Hold(batch_key(&target.uuid))
                    }
                    (Some(node), _) | (None, Some(node)) => Batching::After(batch_key(&node.uuid)),
                    (None, None) => Batching::Never,
                };
                Ok((to_raw(&change), targets.with_scopes(scopes), batching))
            }
            Self::Task => {
                let object = object(data).map_err(bad)?;
                let owner = object
                    .get("TaskUpdated")
                    .and_then(Value::as_object)
                    .and_then(|task| task.get("TriggerOwner"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("`TaskUpdated.TriggerOwner` must be a string".into()))?;
                if !object.get("Job").is_some_and(Value::is_object) {
                    return Err(bad("`Job` must be an object".into()));
                }
                let scope = if owner == SYSTEM_USER {
                    Scope::Profile(id(Profile::parse(ADMIN_PROFILE), "profile")?)
                } else {
                    Scope::Login(id(Login::parse(owner), "TaskUpdated.TriggerOwner")?)
                };
                Ok((
                    data.to_owned(),
                    targets.with_scopes([scope]),
                    Batching::Never,
                ))
            }
            Self::Idm => {
                let object = object(data).map_err(bad)?;
                let targets = idm_recipients(&object, targets)?;
                Ok((data.to_owned(), targets, Batching::Never))
            }
            Self::Activity => {
                let mut object = object(data).map_err(bad)?;
                let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("");
                if text("BoxName") != "inbox" && text("OwnerType") != "USER" {
                    return Err(bad(
                        "an activity is delivered for `BoxName` \"inbox\" or `OwnerType` \"USER\""
                            .into(),
                    ));
                }
                let owner = id(Login::parse(text("OwnerId")), "OwnerId")?;
                if let Some(activity) = object.get_mut("Activity").and_then(Value::as_object_mut) {
                    for part in ["object", "origin", "target"] {
                        let name = activity
                            .get_mut(part)
                            .and_then(Value::as_object_mut)
                            .and_then(|part| part.get_mut("name"));
                        if let Some(Value::String(name)) = name {
                            *name = basename(name).to_owned();
                        }
                    }
                }
                let data = to_raw(&Value::Object(object));
                Ok((
                    data,
                    targets.with_scopes([Scope::Login(owner)]),
                    Batching::Never,
                ))
            }
        }
    }
}

/// The recipients of an idm event, by the first rule of Cells' gateway that applies.
fn idm_recipients(event: &Map<String, Value>, targets: Targets) -> Result<Targets, PublishError> {
    let field = |object: &str, key: &str| {
        event
            .get(object)
            .and_then(Value::as_object)
            .and_then(|o| o.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let acl_action = event
        .get("Acl")
        .and_then(|acl| acl.get("Action"))
        .and_then(|action| action.get("Name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let acl_role = field("Acl", "RoleID")
        .filter(|_| !acl_action.starts_with("parameter:") && !acl_action.starts_with("action:"));
    if let Some(role) = acl_role.or_else(|| field("Role", "Uuid")) {
        return Ok(targets.with_scopes([Scope::Role(id(RoleId::parse(role), "role")?)]));
    }
    if let Some(login) = field("User", "Login") {
        return Ok(targets.with_scopes([Scope::Login(id(Login::parse(login), "User.Login")?)]));
    }
    if let Some(user) = field("User", "Uuid") {
        let user = id(UserId::parse(user), "User.Uuid")?;
        return Ok(Targets::new(
            targets.workspaces,
            targets.users.into_iter().chain([user]),
            targets.groups,
        )
        .with_scopes(targets.scopes));
    }
    if let Some(workspace) = field("Workspace", "UUID") {
        let workspace = id(WorkspaceId::parse(workspace), "Workspace.UUID")?;
        return Ok(Targets::new(
            targets.workspaces.into_iter().chain([workspace]),
            targets.users,
            targets.groups,
        )
        .with_scopes(targets.scopes));
    }
    Ok(targets)
}

fn object(data: &RawValue) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(data.get()) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err("`data` must be an object".into()),
    }
}

fn id<T>(parsed: Result<T, crate::ids::IdError>, what: &str) -> Result<T, PublishError> {
    parsed.map_err(|e| PublishError::BadRequest(format!("cells: `{what}` {e}")))
}

/// The last segment of a path.
fn basename(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

fn to_raw<T: serde::Serialize>(value: &T) -> Box<RawValue> {
    // invariant: maps of strings and JSON values; they always serialize.
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests;
