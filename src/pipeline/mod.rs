//! The publishing pipeline: from a validated [`Publication`] to the subscribers of its rooms.
//!
//! [`Publisher`] is the one handle both publishing doors (`/private` and HTTP) call. It stamps
//! the event (`id`, `ts`); events with a `coalesce_key` go through the coalescer
//! (`coalescer.rs`), the others straight to the deliverer (`delivery.rs`), which gives the event
//! its offsets in the event log ([`crate::history`]) and sends it to the union of the target
//! rooms, each subscriber once. The same [`Deliverer`] puts subscribers in rooms
//! ([`Deliverer::join`], the replaying side, for `register` and `auth.since`; `admit`,
//! `recover`, `go_live`, `leave`): the doors hold it beside the publisher. Cluster fan-out
//! slots in between stamping and delivery.
//!
//! The pipeline knows no transport: front doors implement [`Door`] and [`Subscriber`]
//! (`subscriber.rs`).

use std::sync::Arc;

use serde::Serialize;

use crate::{
    config::Config,
    event::{Publication, PublishError, Stamped},
    history::EventLog,
    metrics::Metrics,
};

mod coalescer;
mod delivery;
mod room_plan;
mod subscriber;

pub(crate) use delivery::{AccessCounts, Backlog, Deliverer, Joined, LoggedRoom};
pub(crate) use subscriber::{
    Door, DoorClosed, Outgoing, Resync, RoomJoins, Sent, Subscriber, SubscriberId, Turn,
};

use coalescer::{CoalescerHandle, Windows};
use delivery::DeliverySettings;

/// Handle to the delivery side; cheap to clone.
#[derive(Clone)]
pub(crate) struct Publisher {
    deliverer: Deliverer,
    coalescer: CoalescerHandle,
    metrics: Metrics,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

/// The receipt of an accepted publish.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Receipt {
    /// The event id (a UUID).
    pub id: String,
}

impl Publisher {
    /// A publisher sending to the members of `doors`' rooms, logging in `log`, coalescing
    /// keyed events as `[coalesce]` says, cutting off a subscriber that falls `history.size`
    /// live events behind during a replay, and with `[recovery]` on, giving every event its
    /// Socket.IO recovery offset. Spawns the coalescing task: call from within a tokio runtime.
    pub(crate) fn new(
        doors: Vec<Arc<dyn Door>>,
        cfg: &Config,
        log: Arc<dyn EventLog>,
        metrics: Metrics,
    ) -> Self {
        let settings = DeliverySettings {
            hold_limit: cfg.history.size,
            recovery_offsets: cfg.recovery.enabled,
            shared_log: cfg.cluster.redis_url.is_some(),
        };
        let deliverer = Deliverer::new(doors, log, settings, metrics.clone());
        let windows = Windows {
            delay: cfg.coalesce.delay,
            max_delay: cfg.coalesce.max_delay,
            max_pending: cfg.coalesce.max_pending,
        };
        Self {
            coalescer: coalescer::spawn(windows, deliverer.clone(), metrics.coalesced.clone()),
            deliverer,
            metrics,
        }
    }

    /// The delivery side this publisher hands events to: the doors put subscribers in rooms
    /// through it, and the cluster bus delivers the shared log's events with it.
    pub(crate) fn deliverer(&self) -> &Deliverer {
        &self.deliverer
    }

    /// Accepts a publication: delivered now, or held by the coalescer when it has a
    /// `coalesce_key`. Either way the publisher gets the event id at once.
    ///
    /// # Errors
    /// [`PublishError::Unavailable`] when delivery is shutting down.
    pub(crate) async fn publish(&self, publication: Publication) -> Result<Receipt, PublishError> {
        let stamped = Stamped::new(publication);
        self.metrics.published.inc();
        let receipt = Receipt {
            id: stamped.id.clone(),
        };
        let publication = &stamped.publication;
        if publication.targets.is_empty() {
            // For nobody (a Cells idm no rule applies to): accepted, nothing to deliver.
            return Ok(receipt);
        }
        if publication.coalesce_key.is_some() || publication.after_held.is_some() {
            if !self.coalescer.offer(stamped).await {
                return Err(PublishError::Unavailable);
            }
        } else {
            self.deliverer.deliver(stamped).await?;
        }
        Ok(receipt)
    }

    /// Delivers every held (coalesced) event now; for shutdown.
    pub(crate) async fn flush(&self) {
        self.coalescer.flush().await;
    }
}
