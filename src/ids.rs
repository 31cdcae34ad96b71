//! Validated identifiers that arrive from the network: workspace ids, user ids, group paths,
//! and the Pydio Cells logins, roles, profiles and node paths.
//!
//! Every id is parsed once at the edge (handshake claims, `register`, `publish`) into a
//! newtype, so the rest of herald never handles an unchecked string. Room names are built from
//! these types only, in [`crate::rooms`].

use std::fmt;

/// Longest id accepted, in bytes.
pub(crate) const MAX_ID_BYTES: usize = 256;

/// Why a string is not a valid id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty string.
    #[error("must not be empty")]
    Empty,
    /// Over [`MAX_ID_BYTES`].
    #[error("must be at most {MAX_ID_BYTES} bytes")]
    TooLong,
    /// Contains a control character.
    #[error("must not contain control characters")]
    ControlCharacter,
}

fn check(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        Err(IdError::Empty)
    } else if raw.len() > MAX_ID_BYTES {
        Err(IdError::TooLong)
    } else if raw.chars().any(char::is_control) {
        Err(IdError::ControlCharacter)
    } else {
        Ok(())
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an id.
            ///
            /// # Errors
            /// Empty, longer than [`MAX_ID_BYTES`], or with control characters.
            pub fn parse(raw: impl Into<String>) -> Result<Self, IdError> {
                let raw = raw.into();
                check(&raw)?;
                Ok(Self(raw))
            }

            /// The id as sent on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A workspace (Pydio "repository", Cells workspace) that browsers register to.
    WorkspaceId
);
id_type!(
    /// A user, as the `sub` claim or the backend's `user` field names it.
    UserId
);
id_type!(
    /// A group path such as `/engineering/backend`.
    GroupPath
);
id_type!(
    /// A Pydio Cells login (the token's `name`), as tasks and activities name their owner.
    Login
);
id_type!(
    /// A Pydio Cells role id, as idm events name the role they change.
    RoleId
);
id_type!(
    /// A Pydio Cells user profile (`admin`, `standard`, `shared`, `anon`).
    Profile
);

/// Longest node path accepted, in bytes.
pub(crate) const MAX_TREE_PATH_BYTES: usize = 1024;
/// Most segments in a node path: each is a room an event about the node is delivered to.
pub(crate) const MAX_TREE_DEPTH: usize = 32;

/// Why a string is not a node path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TreePathError {
    /// Empty, or only slashes.
    #[error("must not be empty")]
    Empty,
    /// Over [`MAX_TREE_PATH_BYTES`].
    #[error("must be at most {MAX_TREE_PATH_BYTES} bytes")]
    TooLong,
    /// Over [`MAX_TREE_DEPTH`] segments.
    #[error("must have at most {MAX_TREE_DEPTH} segments")]
    TooDeep,
    /// A control character, an empty segment (`a//b`), `.` or `..`.
    #[error("must not contain control characters, empty segments, `.` or `..`")]
    Malformed,
}

/// The full path of a node in a Pydio Cells tree (`pydiods1/folder/a.txt`): segments joined by
/// `/`, without a leading or trailing one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct TreePath(String);

impl TreePath {
    /// Validates a path; one leading and one trailing `/` are dropped.
    ///
    /// # Errors
    /// Empty, too long or deep, or malformed.
    pub fn parse(raw: &str) -> Result<Self, TreePathError> {
        let trimmed = raw.strip_prefix('/').unwrap_or(raw);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(TreePathError::Empty);
        }
        if trimmed.len() > MAX_TREE_PATH_BYTES {
            return Err(TreePathError::TooLong);
        }
        if trimmed.split('/').count() > MAX_TREE_DEPTH {
            return Err(TreePathError::TooDeep);
        }
        let bad_segment = |s: &str| s.is_empty() || s == "." || s == "..";
        if trimmed.chars().any(char::is_control) || trimmed.split('/').any(bad_segment) {
            return Err(TreePathError::Malformed);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path and each of its ancestors, deepest first: `a/b/c`, `a/b`, `a`.
    pub fn self_and_ancestors(&self) -> impl Iterator<Item = &str> {
        let path = self.0.as_str();
        std::iter::once(path).chain(path.rmatch_indices('/').map(move |(at, _)| &path[..at]))
    }

    /// What lies below `root` in this path: `Some("")` for the root itself, `None` when this
    /// path is not `root` or below it.
    pub fn below<'a>(&'a self, root: &TreePath) -> Option<&'a str> {
        let rest = self.0.strip_prefix(root.as_str())?;
        if rest.is_empty() {
            Some(rest)
        } else {
            rest.strip_prefix('/')
        }
    }
}

impl fmt::Display for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TreePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        assert_eq!(WorkspaceId::parse("ws-1").unwrap().as_str(), "ws-1");
        assert!(GroupPath::parse("/a/b c/é").is_ok());
        assert!(UserId::parse("x".repeat(MAX_ID_BYTES)).is_ok());
    }

    #[test]
    fn refuses_empty_long_and_control() {
        assert_eq!(WorkspaceId::parse(""), Err(IdError::Empty));
        assert_eq!(
            WorkspaceId::parse("x".repeat(MAX_ID_BYTES + 1)),
            Err(IdError::TooLong)
        );
        assert_eq!(UserId::parse("a\nb"), Err(IdError::ControlCharacter));
    }

    #[test]
    fn tree_paths_are_normalised_and_walk_up() {
        let path = TreePath::parse("/ds/a/b.txt").unwrap();
        assert_eq!(path.as_str(), "ds/a/b.txt");
        let up: Vec<_> = path.self_and_ancestors().collect();
        assert_eq!(up, ["ds/a/b.txt", "ds/a", "ds"]);
        let root = TreePath::parse("ds/a").unwrap();
        assert_eq!(path.below(&root), Some("b.txt"));
        assert_eq!(root.below(&root), Some(""));
        assert_eq!(TreePath::parse("ds/ab").unwrap().below(&root), None);
        assert_eq!(root.below(&path), None);
        for bad in ["", "/", "a//b", "a/./b", "a/../b", "a\nb"] {
            assert!(TreePath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            TreePath::parse(&vec!["s"; MAX_TREE_DEPTH + 1].join("/")),
            Err(TreePathError::TooDeep)
        );
    }

    #[test]
    fn deserialize_validates() {
        assert!(serde_json::from_str::<WorkspaceId>("\"\"").is_err());
        assert!(serde_json::from_str::<WorkspaceId>("12").is_err());
        assert!(serde_json::from_str::<WorkspaceId>("\"ok\"").is_ok());
    }
}
