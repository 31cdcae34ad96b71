//! [`RawArg`]: the first argument of an event, byte for byte.
//!
//! socketioxide's `Data<T>` goes through its own deserializer, which cannot produce a
//! `serde_json::value::RawValue`, and `serde_json::Value` would round large integers and
//! re-format numbers. Publishers expect browsers to receive `data` exactly as published, so the
//! publish handler reads the packet's JSON text itself.

use std::{convert::Infallible, sync::Arc};

use serde_json::value::RawValue;
use socketioxide::{
    adapter::Adapter,
    handler::{FromMessageParts, Value},
    socket::Socket,
};

/// Why the first argument could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawArgError {
    /// The event carried no argument.
    Missing,
    /// Binary attachments are not accepted where exact JSON is required.
    Binary,
    /// The packet is not a JSON array (cannot happen after socketioxide's parser).
    Malformed,
}

/// The first argument of the event (after the event name), unparsed.
#[derive(Debug)]
pub(crate) struct RawArg(pub(crate) Result<Box<RawValue>, RawArgError>);

impl<A: Adapter> FromMessageParts<A> for RawArg {
    type Error = Infallible;

    fn from_message_parts(
        _: &Arc<Socket<A>>,
        value: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Self(match value {
            Value::Str(_, Some(binaries)) if !binaries.is_empty() => Err(RawArgError::Binary),
            Value::Str(text, _) => first_argument(text.as_str()),
            Value::Bytes(_) => Err(RawArgError::Binary),
        }))
    }
}

/// `["event", arg0, ...]` → `arg0`.
fn first_argument(packet: &str) -> Result<Box<RawValue>, RawArgError> {
    let items: Vec<&RawValue> = serde_json::from_str(packet).map_err(|_| RawArgError::Malformed)?;
    items
        .get(1)
        .map(|arg| (*arg).to_owned())
        .ok_or(RawArgError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_argument_text() {
        let arg = first_argument(r#"["publish",{"n":18446744073709551616,"f":1.50},2]"#).unwrap();
        assert_eq!(arg.get(), r#"{"n":18446744073709551616,"f":1.50}"#);
    }

    #[test]
    fn missing_and_malformed() {
        assert_eq!(
            first_argument(r#"["publish"]"#).unwrap_err(),
            RawArgError::Missing
        );
        assert_eq!(first_argument("nope").unwrap_err(), RawArgError::Malformed);
    }
}
