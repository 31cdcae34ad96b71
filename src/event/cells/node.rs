//! `cells:node`: a change in the tree (Cells' `tree.NodeChangeEvent`, as protojson), parsed into
//! a [`NodeChange`] and normalised once at publish: `pydio:` metas dropped, every `MetaStore`
//! value checked to be JSON text, `Size` and `MTime` as strings (int64 in protojson), paths
//! without a leading `/`. The Cells door parses the normalised form again per event to render
//! it for each workspace that sees the node.

use serde::{
    Serialize,
    ser::{SerializeMap, Serializer},
};
use serde_json::{Map, Value};

use crate::ids::TreePath;

/// What happened to the node (Cells' `NodeChangeEvent.EventType`, without `READ`, which is
/// never delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    /// Created (`0`, so absent in protojson).
    Create,
    /// Moved or renamed.
    UpdatePath,
    /// Its content changed.
    UpdateContent,
    /// Its metadata changed.
    UpdateMeta,
    /// One user's metadata on it changed.
    UpdateUserMeta,
    /// Deleted.
    Delete,
}

impl ChangeType {
    fn parse(name: Option<&str>) -> Result<Self, String> {
        Ok(match name {
            None | Some("CREATE") => Self::Create,
            Some("UPDATE_PATH") => Self::UpdatePath,
            Some("UPDATE_CONTENT") => Self::UpdateContent,
            Some("UPDATE_META") => Self::UpdateMeta,
            Some("UPDATE_USER_META") => Self::UpdateUserMeta,
            Some("DELETE") => Self::Delete,
            Some("READ") => return Err("`Type` READ is not delivered".into()),
            Some(other) => return Err(format!("`Type` {other:?} is not a node event type")),
        })
    }

    /// The protojson name; `None` for `CREATE`, which protojson omits.
    pub(crate) fn name(self) -> Option<&'static str> {
        match self {
            Self::Create => None,
            Self::UpdatePath => Some("UPDATE_PATH"),
            Self::UpdateContent => Some("UPDATE_CONTENT"),
            Self::UpdateMeta => Some("UPDATE_META"),
            Self::UpdateUserMeta => Some("UPDATE_USER_META"),
            Self::Delete => Some("DELETE"),
        }
    }
}

/// A node as published: its uuid, its full path in the tree, its metadata (each value JSON
/// text) and the rest of its fields, kept as they came (`Type`, `Size`, `MTime`, `Etag`, ...).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) uuid: String,
    pub(crate) path: TreePath,
    /// Every other field but `MetaStore`, in the order published.
    pub(crate) fields: Map<String, Value>,
    /// `MetaStore`: string values, each of which is JSON text.
    pub(crate) meta: Map<String, Value>,
}

/// Metadata keys Cells keeps to itself (`WithoutReservedMetas`).
const RESERVED_META_PREFIX: &str = "pydio:";

impl Node {
    fn parse(which: &str, value: Value) -> Result<Self, String> {
        let Value::Object(mut fields) = value else {
            return Err(format!("`{which}` must be an object"));
        };
        let uuid = match fields.shift_remove("Uuid") {
            Some(Value::String(uuid)) if !uuid.is_empty() => uuid,
            _ => return Err(format!("`{which}.Uuid` must be a non-empty string")),
        };
        let path = match fields.shift_remove("Path") {
            Some(Value::String(path)) => {
                TreePath::parse(&path).map_err(|e| format!("`{which}.Path` {e}"))?
            }
            _ => return Err(format!("`{which}.Path` must be a string")),
        };
        let mut meta = Map::new();
        match fields.shift_remove("MetaStore") {
            None | Some(Value::Null) => {}
            Some(Value::Object(store)) => {
                for (key, value) in store {
                    if key.starts_with(RESERVED_META_PREFIX) {
                        continue;
                    }
                    let Value::String(text) = &value else {
                        return Err(format!("`{which}.MetaStore.{key}` must be a string"));
                    };
                    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
                        return Err(format!("`{which}.MetaStore.{key}` must be JSON text"));
                    }
                    meta.insert(key, value);
                }
            }
            Some(_) => return Err(format!("`{which}.MetaStore` must be an object")),
        }
        for key in ["Size", "MTime"] {
            if let Some(value) = fields.get_mut(key) {
                match value {
                    Value::Number(n) if n.is_i64() || n.is_u64() => {
                        *value = Value::String(n.to_string());
                    }
                    Value::String(s) if s.parse::<i64>().is_ok() => {}
                    _ => return Err(format!("`{which}.{key}` must be an integer")),
                }
            }
        }
        Ok(Self {
            uuid,
            path,
            fields,
            meta,
        })
    }

    /// Writes the node with `path` in place of its own and `extra` metadata after its own.
    pub(crate) fn serialize_as<S: Serializer>(
        &self,
        s: S,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<S::Ok, S::Error> {
        struct Meta<'a>(&'a Map<String, Value>, &'a [(&'a str, &'a str)]);
        impl Serialize for Meta<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                for (key, value) in self.0 {
                    if !self.1.iter().any(|(extra, _)| extra == key) {
                        map.serialize_entry(key, value)?;
                    }
                }
                for (key, value) in self.1 {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("Uuid", &self.uuid)?;
        map.serialize_entry("Path", path)?;
        for (key, value) in &self.fields {
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry("MetaStore", &Meta(&self.meta, extra))?;
        map.end()
    }

    /// Takes what a later event says of the same node, as Cells' batcher does: its `Etag`,
    /// `Type`, `MTime` and `Size`, and its metadata (later wins).
    pub(crate) fn absorb(&mut self, later: &Self) {
        for key in ["Etag", "Type", "MTime", "Size"] {
            if let Some(value) = later.fields.get(key) {
                self.fields.insert(key.to_owned(), value.clone());
            }
        }
        for (key, value) in &later.meta {
            self.meta.insert(key.clone(), value.clone());
        }
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_as(s, self.path.as_str(), &[])
    }
}

/// A node event, checked: the nodes its type needs are there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeChange {
    pub(crate) kind: ChangeType,
    pub(crate) source: Option<Node>,
    pub(crate) target: Option<Node>,
}

impl NodeChange {
    /// Parses and checks a node event. `Metadata`, `Silent`, `Optimistic` and unknown fields
    /// are dropped, as Cells drops them before sending.
    ///
    /// # Errors
    /// What is wrong, naming the field.
    pub(crate) fn parse(data: &str) -> Result<Self, String> {
        let Ok(Value::Object(mut raw)) = serde_json::from_str(data) else {
            return Err("`data` must be a node event object".into());
        };
        let kind = match raw.shift_remove("Type") {
            None | Some(Value::Null) => ChangeType::parse(None)?,
            Some(Value::String(name)) => ChangeType::parse(Some(&name))?,
            Some(_) => return Err("`Type` must be a string".into()),
        };
        let mut node = |which| match raw.shift_remove(which) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => Node::parse(which, value).map(Some),
        };
        let mut source = node("Source")?;
        let target = node("Target")?;
        let needs = |present: bool, which: &str| {
            if present {
                Ok(())
            } else {
                Err(format!(
                    "a {:?} node event needs `{which}`",
                    kind_label(kind)
                ))
            }
        };
        match kind {
            ChangeType::Create
            | ChangeType::UpdateContent
            | ChangeType::UpdateMeta
            | ChangeType::UpdateUserMeta => needs(target.is_some(), "Target")?,
            ChangeType::Delete => needs(source.is_some(), "Source")?,
            ChangeType::UpdatePath => {
                needs(source.is_some(), "Source")?;
                needs(target.is_some(), "Target")?;
            }
        }
        if kind == ChangeType::UpdateUserMeta {
            source = None;
        }
        Ok(Self {
            kind,
            source,
            target,
        })
    }

    /// The nodes' paths, target first.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &TreePath> {
        (self.target.iter().chain(&self.source)).map(|node| &node.path)
    }
}

/// Two events of one node as one, as Cells' batcher merges them: the later one's `Type` and
/// `Source`, the earlier one's `Target` with what the later one says of it, and `CREATE` if
/// either was: the node is new to everyone who had not seen it yet. `None` when either is not
/// a node event (cannot happen for events checked at publish).
pub(crate) fn merge(earlier: &str, later: &str) -> Option<Box<serde_json::value::RawValue>> {
    let earlier = NodeChange::parse(earlier).ok()?;
    let later = NodeChange::parse(later).ok()?;
    let created = earlier.kind == ChangeType::Create || later.kind == ChangeType::Create;
    let target = match (earlier.target, &later.target) {
        (Some(mut target), Some(newer)) => {
            target.absorb(newer);
            Some(target)
        }
        (target, newer) => target.or_else(|| newer.clone()),
    };
    let merged = NodeChange {
        kind: if created {
            ChangeType::Create
        } else {
            later.kind
        },
        source: if created { None } else { later.source },
        target,
    };
    serde_json::value::to_raw_value(&merged).ok()
}

/// Whether Cells batches events of this type per node (those with a `Target` it updates in
/// place); the others go out at once, after the node's pending batch.
pub(crate) fn batched(kind: ChangeType) -> bool {
    matches!(
        kind,
        ChangeType::Create | ChangeType::UpdateContent | ChangeType::UpdateMeta
    )
}

fn kind_label(kind: ChangeType) -> &'static str {
    kind.name().unwrap_or("CREATE")
}

impl Serialize for NodeChange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if let Some(name) = self.kind.name() {
            map.serialize_entry("Type", name)?;
        }
        if let Some(source) = &self.source {
            map.serialize_entry("Source", source)?;
        }
        if let Some(target) = &self.target {
            map.serialize_entry("Target", target)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_what_cells_would() {
        let change = NodeChange::parse(
            r#"{"Type":"UPDATE_PATH","Silent":true,
            "Source":{"Uuid":"u","Path":"/ds/a.txt","MetaStore":{"name":"\"a.txt\""}},
            "Target":{"Uuid":"u","Path":"ds/b.txt","Type":"LEAF","Size":12,"MTime":"17",
                      "MetaStore":{"name":"\"b.txt\"","pydio:secret":"1"}}}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&change).unwrap(),
            r#"{"Type":"UPDATE_PATH","Source":{"Uuid":"u","Path":"ds/a.txt","MetaStore":{"name":"\"a.txt\""}},"Target":{"Uuid":"u","Path":"ds/b.txt","Type":"LEAF","Size":"12","MTime":"17","MetaStore":{"name":"\"b.txt\""}}}"#
        );
        let create = NodeChange::parse(r#"{"Target":{"Uuid":"u","Path":"ds/x"}}"#).unwrap();
        assert_eq!(create.kind, ChangeType::Create);
        assert_eq!(
            serde_json::to_string(&create).unwrap(),
            r#"{"Target":{"Uuid":"u","Path":"ds/x","MetaStore":{}}}"#
        );
    }

    #[test]
    fn refusals_name_the_field() {
        for (data, says) in [
            ("[]", "node event object"),
            (
                r#"{"Type":"READ","Target":{"Uuid":"u","Path":"a"}}"#,
                "READ",
            ),
            (r#"{"Type":"MOVE"}"#, "MOVE"),
            (r#"{"Type":"DELETE"}"#, "`Source`"),
            (
                r#"{"Type":"UPDATE_PATH","Target":{"Uuid":"u","Path":"a"}}"#,
                "`Source`",
            ),
            (r#"{"Target":{"Path":"a"}}"#, "Target.Uuid"),
            (r#"{"Target":{"Uuid":"u","Path":"a//b"}}"#, "Target.Path"),
            (
                r#"{"Target":{"Uuid":"u","Path":"a","MetaStore":{"k":"not json"}}}"#,
                "Target.MetaStore.k",
            ),
            (
                r#"{"Target":{"Uuid":"u","Path":"a","MetaStore":{"k":1}}}"#,
                "Target.MetaStore.k",
            ),
            (
                r#"{"Target":{"Uuid":"u","Path":"a","Size":"big"}}"#,
                "Target.Size",
            ),
        ] {
            let error = NodeChange::parse(data).unwrap_err();
            assert!(error.contains(says), "{data}: {error}");
        }
    }

    #[test]
    fn user_meta_changes_lose_their_source() {
        let change = NodeChange::parse(
            r#"{"Type":"UPDATE_USER_META","Source":{"Uuid":"u","Path":"a"},"Target":{"Uuid":"u","Path":"a"}}"#,
        )
        .unwrap();
        assert!(change.source.is_none());
    }

    #[test]
    fn a_batch_is_a_create_if_any_event_was() {
        let create = r#"{"Target":{"Uuid":"u","Path":"a","Etag":"1","MetaStore":{"x":"1"}}}"#;
        let update = r#"{"Type":"UPDATE_CONTENT","Source":{"Uuid":"u","Path":"a"},"Target":{"Uuid":"u","Path":"a","Etag":"2","Size":5}}"#;
        let meta =
            r#"{"Type":"UPDATE_META","Target":{"Uuid":"u","Path":"a","MetaStore":{"y":"2"}}}"#;
        assert_eq!(
            merge(create, update).unwrap().get(),
            r#"{"Target":{"Uuid":"u","Path":"a","Etag":"2","Size":"5","MetaStore":{"x":"1"}}}"#
        );
        assert_eq!(
            merge(update, meta).unwrap().get(),
            r#"{"Type":"UPDATE_META","Target":{"Uuid":"u","Path":"a","Etag":"2","Size":"5","MetaStore":{"y":"2"}}}"#
        );
        assert!(merge("[]", meta).is_none());
    }

    #[test]
    fn a_later_event_is_absorbed_as_cells_batches() {
        let mut first = Node::parse(
            "Target",
            serde_json::json!({"Uuid":"u","Path":"a","Etag":"1","Size":1,"MetaStore":{"x":"1","y":"1"}}),
        )
        .unwrap();
        let later = Node::parse(
            "Target",
            serde_json::json!({"Uuid":"u","Path":"a","Etag":"2","Size":2,"Mode":7,"MetaStore":{"y":"2"}}),
        )
        .unwrap();
        first.absorb(&later);
        assert_eq!(
            serde_json::to_string(&first).unwrap(),
            r#"{"Uuid":"u","Path":"a","Etag":"2","Size":"2","MetaStore":{"x":"1","y":"2"}}"#
        );
    }
}
