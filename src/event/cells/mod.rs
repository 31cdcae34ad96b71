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
                let owner = string_at(&object, &["OwnerId"])?
                    .ok_or_else(|| bad("`OwnerId` must be a string".into()))?;
                let owner = id(Login::parse(owner), "OwnerId")?;
                for key in ["OwnerType", "BoxName"] {
                    string_at(&object, &[key])?;
                }
                string_at(&object, &["Activity", "actor", "id"])?;
                let Some(Value::Object(activity)) = object.get_mut("Activity") else {
                    return Err(bad("`Activity` must be an object".into()));
                };
                for part in ["object", "origin", "target"] {
                    let name = activity
                        .get_mut(part)
                        .and_then(Value::as_object_mut)
                        .and_then(|part| part.get_mut("name"));
                    if let Some(Value::String(name)) = name {
                        *name = basename(name).to_owned();
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

/// Whether Cells' gateway delivers an activity at all: one for a user's inbox, or about a user
/// (`OwnerType` USER; absent is NODE, protojson's zero).
pub(crate) fn activity_delivered(activity: &Value) -> bool {
    activity.get("BoxName").and_then(Value::as_str) == Some("inbox")
        || activity.get("OwnerType").and_then(Value::as_str) == Some("USER")
}

/// The string at `path` in `object`: `None` when absent or null; an error naming the field when
/// it, or an object on the way, has another type.
fn string_at<'a>(
    object: &'a Map<String, Value>,
    path: &[&str],
) -> Result<Option<&'a str>, PublishError> {
    let name = path.join(".");
    let wrong = |what: &str| PublishError::BadRequest(format!("cells: `{name}` must be {what}"));
    let Some((last, parents)) = path.split_last() else {
        return Ok(None);
    };
    let mut current = object;
    for (depth, key) in parents.iter().enumerate() {
        match current.get(*key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(inner)) => current = inner,
            Some(_) => {
                return Err(PublishError::BadRequest(format!(
                    "cells: `{}` must be an object",
                    path[..=depth].join(".")
                )));
            }
        }
    }
    match current.get(*last) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(wrong("a string")),
    }
}

/// The recipients of an idm event, by the first rule of Cells' gateway that applies; none
/// when no rule applies (the event is accepted and reaches nobody, as in Cells).
fn idm_recipients(event: &Map<String, Value>, targets: Targets) -> Result<Targets, PublishError> {
    let field = |path: &[&str]| -> Result<Option<&str>, PublishError> {
        Ok(string_at(event, path)?.filter(|s| !s.is_empty()))
    };
    let acl_action = field(&["Acl", "Action", "Name"])?.unwrap_or("");
    let acl_role = field(&["Acl", "RoleID"])?
        .filter(|_| !acl_action.starts_with("parameter:") && !acl_action.starts_with("action:"));
    let role = field(&["Role", "Uuid"])?;
    let login = field(&["User", "Login"])?;
    let user = field(&["User", "Uuid"])?;
    let workspace = field(&["Workspace", "UUID"])?;
    if let Some(role) = acl_role.or(role) {
        return Ok(targets.with_scopes([Scope::Role(id(RoleId::parse(role), "role")?)]));
    }
    if let Some(login) = login {
        return Ok(targets.with_scopes([Scope::Login(id(Login::parse(login), "User.Login")?)]));
    }
    if let Some(user) = user {
        let user = id(UserId::parse(user), "User.Uuid")?;
        return Ok(Targets::new(
            targets.workspaces,
            targets.users.into_iter().chain([user]),
            targets.groups,
        )
        .with_scopes(targets.scopes));
    }
    if let Some(workspace) = workspace {
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
