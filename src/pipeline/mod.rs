//! The publishing pipeline: from a validated [`Publication`] to emits on `/public`.
//!
//! [`Publisher`] is the one handle both publishing doors (`/private` and HTTP) call. It stamps
//! the event (`id`, `ts`) and delivers it to the union of the target rooms so that every socket
//! receives it once, with `meta.workspace` naming the workspace through which it was reached
//! (`null` when reached through its user or group room). Later stages (event log with offsets,
//! coalescing, cluster fan-out) slot in here, between parsing and emitting.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::BroadcastError;

use crate::{
    ids::WorkspaceId,
    realtime::{Io, rooms},
};

pub mod publication;

pub use publication::{Publication, PublishError, Targets};

/// Second argument of every delivered event.
#[derive(Debug, Serialize)]
pub struct Meta<'a> {
    /// Event id, as returned to the publisher.
    pub id: &'a str,
    /// The workspace through which the socket was reached, or null.
    pub workspace: Option<&'a WorkspaceId>,
    /// Publish time, milliseconds since the epoch.
    pub ts: u64,
}

/// Handle to the delivery side; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    io: Io,
    public_ns: Arc<str>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("public_ns", &self.public_ns)
            .finish()
    }
}

/// The receipt of an accepted publish.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    /// The event id (a UUID).
    pub id: String,
}

impl Publisher {
    /// A publisher emitting on the namespace `public_ns` of `io`.
    pub fn new(io: Io, public_ns: &str) -> Self {
        Self {
            io,
            public_ns: public_ns.into(),
        }
    }

    /// Delivers a publication to its target rooms, each socket once.
    ///
    /// # Errors
    /// [`PublishError::Unavailable`] when the namespace is gone (shutting down).
    #[tracing::instrument(level = "debug", skip_all, fields(event = %publication.event, rooms = publication.targets.len()))]
    pub async fn publish(&self, publication: Publication) -> Result<Receipt, PublishError> {
        let ns = self
            .io
            .of(&*self.public_ns)
            .ok_or(PublishError::Unavailable)?;
        let id = uuid::Uuid::new_v4().to_string();
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let Publication {
            event,
            data,
            targets,
        } = publication;
        let data: &RawValue = &data;

        // Workspace rooms first, each excluding the rooms already served, so a socket in
        // several targeted rooms gets the event once, tagged with the first workspace.
        let mut served: Vec<String> = Vec::with_capacity(targets.len());
        let mut dropped = 0usize;
        for workspace in &targets.workspaces {
            let room = rooms::workspace_room(workspace);
            let meta = Meta {
                id: &id,
                workspace: Some(workspace),
                ts,
            };
            let result = ns
                .clone()
                .to(room.clone())
                .except(served.clone())
                .emit(&event, &(data, &meta))
                .await;
            dropped += count_dropped(result)?;
            served.push(room);
        }
        let others: Vec<String> = targets
            .users
            .iter()
            .map(rooms::user_room)
            .chain(targets.groups.iter().map(rooms::group_room))
            .collect();
        if !others.is_empty() {
            let meta = Meta {
                id: &id,
                workspace: None,
                ts,
            };
            let result = ns
                .to(others)
                .except(served)
                .emit(&event, &(data, &meta))
                .await;
            dropped += count_dropped(result)?;
        }
        if dropped > 0 {
            tracing::warn!(event_id = %id, dropped, "event dropped for sockets whose send buffer is full");
        }
        Ok(Receipt { id })
    }
}

/// Sockets whose buffer was full lose this event (counted); anything else is an outage.
fn count_dropped(result: Result<(), BroadcastError>) -> Result<usize, PublishError> {
    match result {
        Ok(()) => Ok(0),
        Err(BroadcastError::Socket(errors)) => Ok(errors.len()),
        Err(e) => {
            tracing::error!(error = %e, "broadcast failed");
            Err(PublishError::Unavailable)
        }
    }
}
