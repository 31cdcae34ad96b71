//! Validated identifiers that arrive from the network: workspace ids, user ids, group paths.
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
    fn deserialize_validates() {
        assert!(serde_json::from_str::<WorkspaceId>("\"\"").is_err());
        assert!(serde_json::from_str::<WorkspaceId>("12").is_err());
        assert!(serde_json::from_str::<WorkspaceId>("\"ok\"").is_ok());
    }
}
