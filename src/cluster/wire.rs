//! How an event travels between nodes: JSON in the Redis streams, with the data kept byte for
//! byte. Nodes trust each other (they share the private key's Redis), but what comes back from
//! Redis is still parsed and checked: a corrupt entry is an error, never a panic.

use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, MapAccess, Visitor},
};
use serde_json::value::RawValue;

use crate::{
    event::{Publication, Stamped, Targets},
    history::HistoryError,
};

/// An event as stored in Redis: its stamp, name and data, then its targets' fields
/// ([`Targets`]' own serde form).
#[derive(Debug)]
pub struct WireEvent {
    id: String,
    ts: u64,
    event: String,
    data: Box<RawValue>,
    targets: Targets,
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
                targets: self.targets,
                coalesce_key: None,
                after_held: None,
            },
            accepted: std::time::Instant::now(),
        }
    }
}

/// The JSON of a stamped event.
pub fn encode(stamped: &Stamped) -> String {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        id: &'a str,
        ts: u64,
        event: &'a str,
        data: &'a RawValue,
        #[serde(flatten)]
        targets: &'a Targets,
    }
    let borrowed = Borrowed {
        id: &stamped.id,
        ts: stamped.ts,
        event: &stamped.publication.event,
        data: &stamped.publication.data,
        targets: &stamped.publication.targets,
    };
    // Strings, numbers, lists of ids and an already valid RawValue: serializing cannot fail.
    serde_json::to_string(&borrowed).unwrap_or_default()
}

// By hand rather than derived with `#[serde(flatten)]` for the targets: a flattened struct is
// read through serde's buffer, which cannot hold the data's `RawValue`.
impl<'de> Deserialize<'de> for WireEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = WireEvent;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an event object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<WireEvent, M::Error> {
                let (mut id, mut ts, mut event, mut data) = (None, None, None, None);
                let mut targets = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "id" => set(&mut id, map.next_value()?, "id")?,
                        "ts" => set(&mut ts, map.next_value()?, "ts")?,
                        "event" => set(&mut event, map.next_value()?, "event")?,
                        "data" => set(&mut data, map.next_value()?, "data")?,
                        _ => {
                            if targets.insert(key, map.next_value()?).is_some() {
                                return Err(de::Error::custom("duplicate target field"));
                            }
                        }
                    }
                }
                Ok(WireEvent {
                    id: id.ok_or_else(|| de::Error::missing_field("id"))?,
                    ts: ts.ok_or_else(|| de::Error::missing_field("ts"))?,
                    event: event.ok_or_else(|| de::Error::missing_field("event"))?,
                    data: data.ok_or_else(|| de::Error::missing_field("data"))?,
                    targets: Targets::deserialize(serde_json::Value::Object(targets))
                        .map_err(de::Error::custom)?,
                })
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// Fills a field read once; a second one is an error, as in a derived `Deserialize`.
fn set<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(E::duplicate_field(name)),
    }
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
    fn the_stream_format_is_pinned_and_reads_fields_it_does_not_know() {
        let json = r#"{"event":"e","workspace":"w1","users":["u"],"group":"/g","data":[1]}"#;
        let mut stamped = Stamped::new(Publication::parse(json, 10).unwrap());
        stamped.id = "id-1".into();
        stamped.ts = 7;
        // Other node versions read these bytes: the field names and their order stay.
        assert_eq!(
            encode(&stamped),
            r#"{"id":"id-1","ts":7,"event":"e","data":[1],"workspaces":["w1"],"users":["u"],"groups":["/g"]}"#
        );
        // A newer node's target kind is not this node's: the rooms it knows still count.
        let newer = r#"{"id":"x","ts":1,"event":"e","data":null,"planets":["mars"],"users":["u"]}"#;
        let back = decode(newer).unwrap().into_stamped();
        assert_eq!(back.publication.targets.users.len(), 1);
        assert_eq!(back.publication.targets.len(), 1);
    }

    #[test]
    fn corrupt_entries_are_errors() {
        for body in [
            "",
            "{}",
            r#"{"id":"x","ts":1,"event":"e","data":1,"workspaces":[""]}"#,
            r#"{"id":"x","ts":1,"event":"e","data":1,"scopes":["tree:a//b"]}"#,
            r#"{"id":"x","ts":1,"event":"e","data":1,"users":"u"}"#,
            r#"{"ts":1,"event":"e","data":1}"#,
            r#"{"id":"x","ts":1,"event":"e","data":1,"id":"y"}"#,
            "[1]",
        ] {
            assert!(decode(body).is_err(), "{body}");
        }
        assert!(id_number("7-0").is_ok_and(|n| n == 7));
        assert!(id_number("7-1").is_err());
    }
}
