//! [`Deliverer`]: emits a stamped event on `/public` to the union of its target rooms, each
//! socket once, with `meta.workspace` naming the workspace through which the socket was reached
//! (`null` when reached through its user or group room only).

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::BroadcastError;

use super::{PublishError, Stamped};
use crate::{
    ids::WorkspaceId,
    realtime::{Io, rooms},
};

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

/// Emits events on the browsers' namespace; cheap to clone.
#[derive(Clone)]
pub(crate) struct Deliverer {
    io: Io,
    public_ns: Arc<str>,
}

impl Deliverer {
    pub(crate) fn new(io: Io, public_ns: &str) -> Self {
        Self {
            io,
            public_ns: public_ns.into(),
        }
    }

    /// Delivers to the target rooms, each socket once.
    ///
    /// # Errors
    /// [`PublishError::Unavailable`] when the namespace is gone (shutting down).
    #[tracing::instrument(level = "debug", skip_all, fields(event = %stamped.publication.event, id = %stamped.id))]
    pub(crate) async fn deliver(&self, stamped: &Stamped) -> Result<(), PublishError> {
        let ns = self
            .io
            .of(&*self.public_ns)
            .ok_or(PublishError::Unavailable)?;
        let Stamped {
            id,
            ts,
            publication,
        } = stamped;
        let (event, targets) = (&publication.event, &publication.targets);
        let data: &RawValue = &publication.data;

        // Workspace rooms first, each excluding the rooms already served, so a socket in
        // several targeted rooms gets the event once, tagged with the first workspace.
        let mut served: Vec<String> = Vec::with_capacity(targets.len());
        let mut dropped = 0usize;
        for workspace in &targets.workspaces {
            let room = rooms::workspace_room(workspace);
            let meta = Meta {
                id,
                workspace: Some(workspace),
                ts: *ts,
            };
            let result = ns
                .clone()
                .to(room.clone())
                .except(served.clone())
                .emit(event, &(data, &meta))
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
                id,
                workspace: None,
                ts: *ts,
            };
            let result = ns
                .to(others)
                .except(served)
                .emit(event, &(data, &meta))
                .await;
            dropped += count_dropped(result)?;
        }
        if dropped > 0 {
            tracing::warn!(event_id = %id, dropped, "event dropped for sockets whose send buffer is full");
        }
        Ok(())
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
