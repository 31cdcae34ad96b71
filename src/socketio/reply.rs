//! [`Reply`]: the answer to an acked event, and small helpers shared by the namespaces.

use serde::Serialize;
use socketioxide::extract::AckSender;

use super::events::ErrorAck;

/// An ack payload, serialized once.
pub(crate) struct Reply(serde_json::Value);

impl Reply {
    pub(crate) fn ok(body: &impl Serialize) -> Self {
        Self(serde_json::to_value(body).unwrap_or(serde_json::Value::Null))
    }

    pub(crate) fn error(body: &ErrorAck) -> Self {
        Self::ok(body)
    }

    /// Answers the ack, if the client asked for one.
    pub(crate) fn send(self, ack: AckSender) {
        if let Err(error) = ack.send(&self.0) {
            tracing::debug!(%error, "ack not sent");
        }
    }
}

/// Event names come from the client: cap what reaches the log.
pub(crate) fn truncate(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
