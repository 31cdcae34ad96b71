//! The publishing pipeline: from a validated [`Publication`] to emits on `/public`.
//!
//! [`Publisher`] is the one handle both publishing doors (`/private` and HTTP) call. It stamps
//! the event (`id`, `ts`); events with a `coalesce_key` go through the coalescer
//! (`coalescer.rs`), the others straight to the deliverer (`delivery.rs`), which gives the event
//! its offsets in the event log ([`crate::history`]) and emits it to the union of the target
//! rooms, each socket once. [`Publisher::join`] is the replaying side of the same seam, used
//! by `register` and `auth.since`. Cluster fan-out slots in between stamping and delivery.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

use socketioxide::extract::SocketRef;

use crate::{
    config::Config,
    history::{Appended, EventLog, HistoryError, Position},
    metrics::Metrics,
    realtime::{Io, slow::SlowPolicy},
};

mod coalescer;
mod delivery;
pub mod publication;
mod room_plan;

pub use delivery::{Backlog, Joined, LoggedRoom, Meta, RoomJoins};
pub use publication::{Publication, PublishError, Targets};

use coalescer::{CoalescerHandle, Windows};
use delivery::{Deliverer, DeliverySettings};

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
    pub accepted: std::time::Instant,
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
            accepted: std::time::Instant::now(),
        }
    }
}

/// Handle to the delivery side; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
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
pub struct Receipt {
    /// The event id (a UUID).
    pub id: String,
}

impl Publisher {
    /// A publisher emitting on the browsers' namespace of `io`, logging in `log`, coalescing
    /// keyed events as `[coalesce]` says, cutting off slow sockets with `slow`
    /// (among them a socket that falls `history.size` live events behind during a replay),
    /// and with `[recovery]` on, giving every event its Socket.IO recovery offset.
    /// Spawns the coalescing task: call from within a tokio runtime.
    pub fn new(
        io: Io,
        cfg: &Config,
        log: Arc<dyn EventLog>,
        slow: SlowPolicy,
        metrics: Metrics,
    ) -> Self {
        let settings = DeliverySettings {
            hold_limit: cfg.history.size,
            recovery_offsets: cfg.recovery.enabled,
            shared_log: cfg.cluster.redis_url.is_some(),
        };
        let deliverer = Deliverer::new(io, &cfg.public.path, log, slow, settings, metrics.clone());
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
    pub async fn publish(&self, publication: Publication) -> Result<Receipt, PublishError> {
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

    /// Puts `socket` in a logged room, first replaying what it missed since `since` (or
    /// sending `resync` when that cannot be served). See [`Joined`].
    ///
    /// # Errors
    /// The event log cannot be read.
    pub async fn join(
        &self,
        socket: &SocketRef,
        room: LoggedRoom<'_>,
        since: Option<&Position>,
    ) -> Result<Joined, HistoryError> {
        self.deliverer.join(socket, room, since).await
    }

    /// Takes a socket out of rooms between two deliveries: what the socket is told after this
    /// returns comes after every event it got through those rooms, and nothing from them follows.
    pub async fn leave(&self, socket: &SocketRef, rooms: Vec<String>) {
        self.deliverer.leave(socket, rooms).await;
    }

    /// Puts a socket being admitted in rooms that need no replay (its user and group rooms),
    /// noting when; live events for it are held until [`Self::go_live`] once it is connected.
    pub async fn admit(&self, socket: &SocketRef, rooms: Vec<String>) {
        self.deliverer.admit(socket, rooms).await;
    }

    /// Delivers to this node's sockets an event that the cluster's shared log numbered.
    pub async fn deliver_appended(&self, stamped: Stamped, appended: Appended) {
        self.deliverer.deliver_appended(stamped, appended).await;
    }

    /// Sets the number of the last event delivered on this node (the cluster bus starting).
    pub async fn start_at(&self, seq: u64) {
        self.deliverer.start_at(seq).await;
    }

    /// Forgets what was held for a socket that went away.
    pub async fn forget(&self, sid: socketioxide::socket::Sid) {
        self.deliverer.forget(sid).await;
    }

    /// Socket.IO recovery: puts `socket` back in its rooms and returns what it missed after
    /// the given sequence number in each, or `None` when the log no longer holds all of it.
    /// `seen` is the last event number the socket got (its recovery offset), possibly from
    /// another node. Send it with [`Self::go_live`] once the socket is connected.
    ///
    /// # Errors
    /// The event log cannot be read.
    pub async fn recover(
        &self,
        socket: &SocketRef,
        rooms_after: &[(String, u64)],
        seen: u64,
    ) -> Result<Option<Backlog>, HistoryError> {
        self.deliverer.recover(socket, rooms_after, seen).await
    }

    /// Sends a socket its backlog (what it missed, after a recovery; nothing after a plain
    /// admission), then the live events held for it meanwhile, and returns it to the live
    /// stream; `false` when it was cut off as slow.
    pub async fn go_live(&self, socket: &SocketRef, backlog: Backlog) -> bool {
        self.deliverer.go_live(socket, backlog).await
    }

    /// The current position of a logged room.
    ///
    /// # Errors
    /// The event log cannot be read.
    pub async fn head(&self, room: LoggedRoom<'_>) -> Result<Position, HistoryError> {
        self.deliverer.head(room).await
    }

    /// Delivers every held (coalesced) event now; for shutdown.
    pub async fn flush(&self) {
        self.coalescer.flush().await;
    }
}
