//! From a delivered event to the frames the Cells web UI expects, for one session.
//!
//! An event is parsed once ([`Parsed::of`], cached per event by the door): what every
//! recipient gets the same (task, idm, activity) is encoded once and shared; a node event is
//! kept parsed and rendered per session, one frame per workspace of the session that sees the
//! node, with the node's paths as that workspace shows them.

use serde::ser::{Serialize, SerializeMap, Serializer};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::{
    auth::cells::WorkspaceRoots,
    event::cells::{
        Kind, activity_delivered,
        node::{ChangeType, Node, NodeChange},
    },
    ids::{Login, TreePath},
};

/// An event as the door keeps it between its recipients.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A node event, rendered per session.
    Node(Box<NodeChange>),
    /// The same frame for every recipient.
    Shared(Utf8Bytes),
    /// An activity: the same frame, except for the session of its actor.
    Activity {
        frame: Utf8Bytes,
        actor: Option<String>,
    },
    /// Not for this door (an event of no Cells kind), or unreadable.
    Nothing,
}

impl Parsed {
    /// Parses an event of `name` with `data` as published (and checked at publish).
    pub(crate) fn of(name: &str, data: &str) -> Self {
        let Ok(Some(kind)) = Kind::of(name) else {
            return Self::Nothing;
        };
        match kind {
            Kind::Node => {
                NodeChange::parse(data).map_or(Self::Nothing, |c| Self::Node(Box::new(c)))
            }
            Kind::Task => Self::Shared(data.to_owned().into()),
            Kind::Idm => Self::Shared(typed_frame("idm", data).into()),
            Kind::Activity => {
                let Ok(activity) = serde_json::from_str::<serde_json::Value>(data) else {
                    return Self::Nothing;
                };
                if !activity_delivered(&activity) {
                    return Self::Nothing;
                }
                let actor = (activity.pointer("/Activity/actor/id"))
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                Self::Activity {
                    frame: typed_frame("activity", data).into(),
                    actor,
                }
            }
        }
    }

    /// The frames for a session with `login` and `workspaces`.
    pub(crate) fn frames(
        &self,
        login: Option<&Login>,
        workspaces: &[WorkspaceRoots],
        out: &mut Vec<Utf8Bytes>,
    ) {
        match self {
            Self::Nothing => {}
            Self::Shared(frame) => out.push(frame.clone()),
            Self::Activity { frame, actor } => {
                let own = actor
                    .as_deref()
                    .is_some_and(|actor| login.is_some_and(|login| login.as_str() == actor));
                if !own {
                    out.push(frame.clone());
                }
            }
            Self::Node(change) => {
                for workspace in workspaces {
                    if let Some(frame) = node_frame(change, workspace) {
                        out.push(frame.into());
                    }
                }
            }
        }
    }
}

/// `{"@type":<kind>, ...data}`: the data is an object (checked at publish).
pub(crate) fn typed_frame(kind: &str, data: &str) -> String {
    let inner = data.trim();
    let rest = inner.strip_prefix('{').unwrap_or("}").trim_start();
    if rest.starts_with('}') {
        format!(r#"{{"@type":"{kind}"}}"#)
    } else {
        format!(r#"{{"@type":"{kind}",{rest}"#)
    }
}

/// The `idm` frame without content: the UI reloads its workspaces and subscribes again.
pub(crate) const RELOAD: &str = r#"{"@type":"idm"}"#;

/// Where a node sits in a workspace, if the workspace sees it.
struct Placed<'a> {
    node: &'a Node,
    path: String,
    at_root: bool,
}

fn place<'a>(node: &'a Node, workspace: &WorkspaceRoots) -> Option<Placed<'a>> {
    let several = workspace.roots.len() > 1;
    workspace.roots.iter().find_map(|root| {
        let below = node.path.below(&root.path)?;
        let mut path = workspace.slug.clone();
        if several {
            path.push('/');
            path.push_str(root.key());
        }
        if !below.is_empty() {
            path.push('/');
            path.push_str(below);
        }
        Some(Placed {
            node,
            path,
            at_root: below.is_empty() && !several,
        })
    })
}

/// The frame of a node event for one workspace; `None` when the workspace sees neither node
/// the event's type needs.
fn node_frame(change: &NodeChange, workspace: &WorkspaceRoots) -> Option<String> {
    let source = change.source.as_ref().and_then(|n| place(n, workspace));
    let target = change.target.as_ref().and_then(|n| place(n, workspace));
    let (kind, source, target) = match (change.kind, source, target) {
        (ChangeType::Delete, Some(source), _) => (ChangeType::Delete, Some(source), None),
        (ChangeType::Create, _, Some(target)) => (ChangeType::Create, None, Some(target)),
        (ChangeType::UpdatePath, Some(source), Some(target)) => {
            (ChangeType::UpdatePath, Some(source), Some(target))
        }
        // A move across the workspace's boundary: it appears, or it goes.
        (ChangeType::UpdatePath, None, Some(target)) => (ChangeType::Create, None, Some(target)),
        (ChangeType::UpdatePath, Some(source), None) => (ChangeType::Delete, Some(source), None),
        (
            kind
            @ (ChangeType::UpdateContent | ChangeType::UpdateMeta | ChangeType::UpdateUserMeta),
            source,
            Some(target),
        ) => (kind, source, Some(target)),
        _ => return None,
    };
    let id = serde_json::to_string(workspace.id.as_str()).ok()?;
    serde_json::to_string(&Frame {
        kind,
        source,
        target,
        workspace: &id,
    })
    .ok()
}

struct Frame<'a> {
    kind: ChangeType,
    source: Option<Placed<'a>>,
    target: Option<Placed<'a>>,
    /// The workspace id, as JSON text.
    workspace: &'a str,
}

struct AsNode<'a>(&'a Placed<'a>, &'a str);

impl Serialize for AsNode<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Self(placed, workspace) = self;
        let at_root = [("EventWorkspaceId", *workspace), ("ws_root", "true")];
        let extra = if placed.at_root {
            &at_root[..]
        } else {
            &at_root[..1]
        };
        placed.node.serialize_as(s, &placed.path, extra)
    }
}

impl Serialize for Frame<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if let Some(name) = self.kind.name() {
            map.serialize_entry("Type", name)?;
        }
        if let Some(source) = &self.source {
            map.serialize_entry("Source", &AsNode(source, self.workspace))?;
        }
        if let Some(target) = &self.target {
            map.serialize_entry("Target", &AsNode(target, self.workspace))?;
        }
        map.end()
    }
}

/// The root paths of a session's workspaces: the `tree:` rooms it sits in.
pub(crate) fn root_paths(workspaces: &[WorkspaceRoots]) -> impl Iterator<Item = &TreePath> {
    workspaces
        .iter()
        .flat_map(|workspace| workspace.roots.iter().map(|root| &root.path))
}

#[cfg(test)]
mod tests;
