//! The publishing pipeline: from a validated [`Publication`] to the subscribers of its rooms.
//!
//! [`Publisher`] is the one handle both publishing doors (`/private` and HTTP) call. It stamps
//! the event (`id`, `ts`); events with a `coalesce_key` go through the coalescer
//! (`coalescer.rs`), the others straight to the deliverer (`delivery.rs`), which gives the event
//! its offsets in the event log ([`crate::history`]) and sends it to the union of the target
//! rooms, each subscriber once. [`Publisher::join`] is the replaying side of the same seam, used
//! by `register` and `auth.since`. Cluster fan-out slots in between stamping and delivery.
//!
//! The pipeline knows no transport: front doors implement [`Door`] and [`Subscriber`]
//! (`subscriber.rs`).

use std::sync::Arc;

use serde::Serialize;

use crate::{
    config::Config,
    event::{Publication, PublishError, Stamped},
    history::{Appended, EventLog, HistoryError, Position},
    metrics::Metrics,
};

mod coalescer;
mod delivery;
mod room_plan;
mod subscriber;

pub(crate) use delivery::{Backlog, Joined, LoggedRoom};
pub(crate) use subscriber::{
    Door, DoorClosed, Outgoing, Resync, RoomJoins, Sent, Subscriber, SubscriberId,
};

use coalescer::{CoalescerHandle, Windows};
use delivery::{Deliverer, DeliverySettings};

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
        if stamped.publication.coalesce_key.is_some() {
            if !self.coalescer.offer(stamped).await {
                return Err(PublishError::Unavailable);
            }
        } else {
            self.deliverer.deliver(stamped).await?;
        }
        Ok(receipt)
    }

    /// Puts `subscriber` in a logged room, first replaying what it missed since `since` (or
    /// sending `resync` when that cannot be served). See [`Joined`].
    ///
    /// # Errors
    /// The event log cannot be read.
    pub(crate) async fn join(
        &self,
        subscriber: &dyn Subscriber,
        room: LoggedRoom<'_>,
        since: Option<&Position>,
    ) -> Result<Joined, HistoryError> {
        self.deliverer.join(subscriber, room, since).await
    }

    /// Takes a subscriber out of rooms between two deliveries: what it is told after this
    /// returns comes after every event it got through those rooms, and nothing from them follows.
    pub(crate) async fn leave(&self, subscriber: &dyn Subscriber, rooms: &[String]) {
        self.deliverer.leave(subscriber, rooms).await;
    }

    /// Puts a subscriber being admitted in rooms that need no replay (its user and group
    /// rooms), noting when; live events for it are held until [`Self::go_live`] once it is
    /// connected.
    pub(crate) async fn admit(&self, subscriber: &Arc<dyn Subscriber>, rooms: Vec<String>) {
        self.deliverer.admit(subscriber, rooms).await;
    }

    /// Delivers to this node's sockets an event that the cluster's shared log numbered.
    pub(crate) async fn deliver_appended(&self, stamped: Stamped, appended: Appended) {
        self.deliverer.deliver_appended(stamped, appended).await;
    }

    /// Sets the number of the last event delivered on this node (the cluster bus starting).
    pub(crate) async fn start_at(&self, seq: u64) {
        self.deliverer.start_at(seq).await;
    }

    /// Forgets what was held for a subscriber that went away.
    pub(crate) async fn forget(&self, id: SubscriberId) {
        self.deliverer.forget(id).await;
    }

    /// Socket.IO recovery: puts `subscriber` back in its rooms and returns what it missed
    /// after the given sequence number in each, or `None` when the log no longer holds all of
    /// it. `seen` is the last event number it got (its recovery offset), possibly from
    /// another node. Send it with [`Self::go_live`] once it is connected.
    ///
    /// # Errors
    /// The event log cannot be read.
    pub(crate) async fn recover(
        &self,
        subscriber: &Arc<dyn Subscriber>,
        rooms_after: &[(String, u64)],
        seen: u64,
    ) -> Result<Option<Backlog>, HistoryError> {
        self.deliverer.recover(subscriber, rooms_after, seen).await
    }

    /// Sends a subscriber its backlog (what it missed, after a recovery; nothing after a plain
    /// admission), then the live events held for it meanwhile, and returns it to the live
    /// stream; `false` when it was cut off as slow.
    pub(crate) async fn go_live(&self, subscriber: &dyn Subscriber, backlog: Backlog) -> bool {
        self.deliverer.go_live(subscriber, backlog).await
    }

    /// The current position of a logged room.
    ///
    /// # Errors
    /// The event log cannot be read.
    pub(crate) async fn head(&self, room: LoggedRoom<'_>) -> Result<Position, HistoryError> {
        self.deliverer.head(room).await
    }

    /// Delivers every held (coalesced) event now; for shutdown.
    pub(crate) async fn flush(&self) {
        self.coalescer.flush().await;
    }
}
