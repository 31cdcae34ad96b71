//! [`Stamped`]: an accepted [`Publication`] with its id and publish time.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::Publication;

/// A publication with its identity: the id returned to the publisher and the publish time.
#[derive(Debug, Clone)]
pub struct Stamped {
    /// The event id (a UUID).
    pub id: String,
    /// Publish time, milliseconds since the epoch.
    pub ts: u64,
    /// What was published.
    pub publication: Publication,
    /// When it was accepted, for the publish-to-emit latency.
    pub accepted: Instant,
}

impl Stamped {
    /// Stamps a publication now.
    pub fn new(publication: Publication) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            ts: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            publication,
            accepted: Instant::now(),
        }
    }
}
