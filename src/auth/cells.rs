//! What a Pydio Cells session needs to know of its user beyond the id: the login that tasks and
//! activities name, the profile, the roles that idm events name, and each workspace with its
//! slug and its root nodes, as resolved for this user. Read from the same JWT claims or backend
//! answer as the rest of the [`super::Principal`].

use serde::Deserialize;

use crate::ids::{Login, Profile, RoleId, TreePath, WorkspaceId};

/// Longest workspace slug or root key, in bytes.
const MAX_SEGMENT_BYTES: usize = 256;
/// Most workspaces listed for one user.
const MAX_WORKSPACES: usize = 1024;
/// Most roots of one workspace.
const MAX_ROOTS: usize = 64;

/// A user's Cells identity. All parts are optional: a token without them opens a session that
/// receives only what names its user id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawIdentity")]
pub struct CellsIdentity {
    /// The login (Cells' `name` claim).
    pub login: Option<Login>,
    /// The profile (`admin`, `standard`, ...).
    pub profile: Option<Profile>,
    /// The roles, in the order given.
    pub roles: Vec<RoleId>,
    /// The workspaces the user can access.
    pub workspace_roots: Vec<WorkspaceRoots>,
}

impl CellsIdentity {
    /// Whether nothing Cells-specific is known.
    pub(crate) fn is_empty(&self) -> bool {
        self.login.is_none()
            && self.profile.is_none()
            && self.roles.is_empty()
            && self.workspace_roots.is_empty()
    }
}

/// One workspace as a user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceRoots {
    /// The workspace uuid (`EventWorkspaceId`).
    pub id: WorkspaceId,
    /// The first segment of every path the browser receives for this workspace.
    pub slug: String,
    /// The workspace's root nodes.
    pub roots: Vec<Root>,
}

/// A root node of a workspace, resolved for the user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    /// The root node's uuid.
    pub uuid: String,
    /// The root node's full path in the tree.
    pub path: TreePath,
    /// The segment naming this root in a workspace with several (default: the last segment
    /// of `path`).
    #[serde(default)]
    pub key: Option<String>,
}

impl Root {
    /// The segment naming this root in a workspace with several roots.
    pub(crate) fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_else(|| {
            let path = self.path.as_str();
            path.rsplit('/').next().unwrap_or(path)
        })
    }
}

/// The claims or answer fields, before their checks.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawIdentity {
    #[serde(default)]
    login: Option<Login>,
    /// Cells' own tokens name the login `name`.
    #[serde(default)]
    name: Option<Login>,
    #[serde(default)]
    profile: Option<Profile>,
    #[serde(default)]
    roles: Vec<RoleId>,
    #[serde(default)]
    workspace_roots: Vec<WorkspaceRoots>,
}

impl TryFrom<RawIdentity> for CellsIdentity {
    type Error = String;

    fn try_from(raw: RawIdentity) -> Result<Self, String> {
        if raw.workspace_roots.len() > MAX_WORKSPACES {
            return Err(format!("at most {MAX_WORKSPACES} workspace_roots"));
        }
        for workspace in &raw.workspace_roots {
            segment(&workspace.slug, "slug")?;
            if workspace.roots.is_empty() || workspace.roots.len() > MAX_ROOTS {
                return Err(format!("a workspace has 1 to {MAX_ROOTS} roots"));
            }
            for root in &workspace.roots {
                segment(root.key(), "root key")?;
            }
        }
        Ok(Self {
            login: raw.login.or(raw.name),
            profile: raw.profile,
            roles: raw.roles,
            workspace_roots: raw.workspace_roots,
        })
    }
}

fn segment(value: &str, what: &str) -> Result<(), String> {
    if value.is_empty()
        || value.len() > MAX_SEGMENT_BYTES
        || value.contains('/')
        || value.chars().any(char::is_control)
    {
        return Err(format!(
            "a {what} is 1 to {MAX_SEGMENT_BYTES} bytes without `/` or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<CellsIdentity, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_cells_claims() {
        let identity = parse(
            r#"{"name":"alice","profile":"admin","roles":["r1"],"workspace_roots":[
                {"id":"ws1","slug":"common-files","roots":[{"uuid":"n1","path":"/pydiods1"}]},
                {"id":"ws2","slug":"two","roots":[{"uuid":"a","path":"ds/a"},{"uuid":"b","path":"ds/b","key":"bee"}]}]}"#,
        )
        .unwrap();
        assert_eq!(identity.login.unwrap().as_str(), "alice");
        assert_eq!(
            identity.workspace_roots[0].roots[0].path.as_str(),
            "pydiods1"
        );
        let keys: Vec<_> = identity.workspace_roots[1]
            .roots
            .iter()
            .map(Root::key)
            .collect();
        assert_eq!(keys, ["a", "bee"]);
        assert!(parse("{}").unwrap().is_empty());
    }

    #[test]
    fn refuses_unusable_workspaces() {
        for bad in [
            r#"{"workspace_roots":[{"id":"w","slug":"a/b","roots":[{"uuid":"n","path":"x"}]}]}"#,
            r#"{"workspace_roots":[{"id":"w","slug":"s","roots":[]}]}"#,
            r#"{"workspace_roots":[{"id":"w","slug":"s","roots":[{"uuid":"n","path":"x//y"}]}]}"#,
            r#"{"workspace_roots":[{"id":"","slug":"s","roots":[{"uuid":"n","path":"x"}]}]}"#,
            r#"{"roles":[""]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
