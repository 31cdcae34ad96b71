//! How an event travels between nodes: JSON in the Redis streams, with the data kept byte for
//! byte. Nodes trust each other (they share the private key's Redis), but what comes back from
//! Redis is still parsed and checked: a corrupt entry is an error, never a panic.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    event::{Publication, Stamped, Targets},
    history::HistoryError,
    ids::{GroupPath, UserId, WorkspaceId},
    rooms::Scope,
};

/// An event as stored in Redis.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireEvent {
    id: String,
    ts: u64,
    event: String,
    data: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    workspaces: Vec<WorkspaceId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    users: Vec<UserId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<GroupPath>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    scopes: Vec<Scope>,
}

impl WireEvent {
    /// The event, stamped as it was on the node that accepted it (its latency clock starts
    /// here).
    pub fn into_stamped(self) -> Stamped {
        Stamped {
            id: self.id,
            ts: self.ts,
            publication: Publication {
                event: self.event,
                data: self.data,
                targets: Targets {
                    workspaces: self.workspaces,
                    users: self.users,
                    groups: self.groups,
                    scopes: self.scopes,
                },
                coalesce_key: None,
                after_held: None,
            },
            accepted: std::time::Instant::now(),
        }
    }
}

/// The JSON of a stamped event.
pub fn encode(stamped: &Stamped) -> String {
    let targets = &stamped.publication.targets;
    #[derive(Serialize)]
    struct Borrowed<'a> {
        id: &'a str,
        ts: u64,
        event: &'a str,
        data: &'a RawValue,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        workspaces: &'a [WorkspaceId],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        users: &'a [UserId],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        groups: &'a [GroupPath],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        scopes: &'a [Scope],
    }
    let borrowed = Borrowed {
        id: &stamped.id,
        ts: stamped.ts,
        event: &stamped.publication.event,
        data: &stamped.publication.data,
        workspaces: &targets.workspaces,
        users: &targets.users,
        groups: &targets.groups,
        scopes: &targets.scopes,
    };
    // Strings, numbers and an already valid RawValue: serializing cannot fail.
    serde_json::to_string(&borrowed).unwrap_or_default()
}

/// Parses an event read from Redis.
///
/// # Errors
/// A corrupt entry.
pub fn decode(body: &str) -> Result<WireEvent, HistoryError> {
    serde_json::from_str(body).map_err(|e| corrupt(&format!("event: {e}")))
}

/// The number of a stream entry id `<n>-0`.
///
/// # Errors
/// Another shape of id.
pub fn id_number(id: &str) -> Result<u64, HistoryError> {
    id.strip_suffix("-0")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| corrupt("unexpected stream entry id"))
}

/// A corrupt or unexpected value read from Redis.
pub fn corrupt(what: &str) -> HistoryError {
    HistoryError::Unavailable(format!("corrupt data in Redis: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_the_trip_byte_for_byte() {
        let json = r#"{"event":"e","workspaces":["w1","w2"],"user":"u","group":"/g","data":{"b":1.50,"a":[ ]}}"#;
        let stamped = Stamped::new(Publication::parse(json, 10).unwrap());
        let back = decode(&encode(&stamped)).unwrap().into_stamped();
        assert_eq!(back.id, stamped.id);
        assert_eq!(back.ts, stamped.ts);
        assert_eq!(back.publication.data.get(), r#"{"b":1.50,"a":[ ]}"#);
        assert_eq!(back.publication.targets, stamped.publication.targets);
        let cells =
            r#"{"event":"cells:task","data":{"TaskUpdated":{"TriggerOwner":"al"},"Job":{}}}"#;
        let stamped = Stamped::new(Publication::parse(cells, 10).unwrap());
        let encoded = encode(&stamped);
        assert!(encoded.contains(r#""scopes":["login:al"]"#), "{encoded}");
        let back = decode(&encoded).unwrap().into_stamped();
        assert_eq!(back.publication.targets, stamped.publication.targets);
    }

    #[test]
    fn corrupt_entries_are_errors() {
        for body in [
            "",
            "{}",
            r#"{"id":"x","ts":1,"event":"e","data":1,"workspaces":[""]}"#,
            r#"{"id":"x","ts":1,"event":"e","data":1,"scopes":["tree:a//b"]}"#,
        ] {
            assert!(decode(body).is_err(), "{body}");
        }
        assert!(id_number("7-0").is_ok_and(|n| n == 7));
        assert!(id_number("7-1").is_err());
    }
}
