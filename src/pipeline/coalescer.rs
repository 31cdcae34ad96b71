//! Coalescing (Pydio Cells' NodeEventsBatcher, Open-Xchange's remote-message buffer): bursts of
//! events about the same thing become one delivery.
//!
//! A publication with a `coalesce_key` is held under (targets, event, key). Another one with the
//! same triple replaces its data (the last one wins: id, ts and data; a Pydio Cells node event
//! is merged the way Cells batches, `event::cells::node::merge`), and the delivery moves to
//! `coalesce.delay` after it, but never later than `coalesce.max_delay` after the first. A
//! publication with `after_held` goes out at once, after the held ones of its event and key
//! (a Cells node's batch, before the node moves or goes). Other events never come here. At most
//! `coalesce.max_pending` triples are held; past that an event goes out at once rather than
//! grow memory.
//!
//! [`Coalescer`] is the pure part (no I/O, tested with tokio's paused clock); [`spawn`] runs it
//! as one task fed by a bounded channel, handing due events to the [`Deliverer`].

use std::{collections::HashMap, future::poll_fn, time::Duration};

use prometheus_client::metrics::counter::Counter;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::time::{DelayQueue, delay_queue};

use super::delivery::Deliverer;
use crate::event::{
    Publication, Stamped, Targets,
    cells::{NODE_EVENT, node},
};

/// Publications waiting to enter the coalescer; a full queue makes publishers wait.
const QUEUE: usize = 1024;

/// The coalescing settings (`[coalesce]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    pub(crate) delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) max_pending: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    targets: Targets,
    event: String,
    coalesce_key: String,
}

#[derive(Debug)]
struct Held {
    latest: Stamped,
    first_at: Instant,
    slot: delay_queue::Key,
    merged: u64,
}

/// The held events and their deadlines.
#[derive(Debug)]
pub(crate) struct Coalescer {
    windows: Windows,
    held: HashMap<Key, Held>,
    due: DelayQueue<Key>,
    /// Publications merged into a later one, ever.
    merged: u64,
}

impl Coalescer {
    pub(crate) fn new(windows: Windows) -> Self {
        Self {
            windows,
            held: HashMap::new(),
            due: DelayQueue::new(),
            merged: 0,
        }
    }

    /// How many publications were merged into a later one, ever.
    pub(crate) fn merged(&self) -> u64 {
        self.merged
    }

    /// Takes a publication; returns what must go out now, in order: it (no key, or full), or
    /// the held events it comes after, then it.
    pub(crate) fn offer(&mut self, stamped: Stamped) -> Vec<Stamped> {
        if let Some(after) = &stamped.publication.after_held {
            let mut out = self.take_held(&stamped.publication.event, after);
            out.push(stamped);
            return out;
        }
        let Some(coalesce_key) = stamped.publication.coalesce_key.clone() else {
            return vec![stamped];
        };
        let key = Key {
            targets: stamped.publication.targets.clone(),
            event: stamped.publication.event.clone(),
            coalesce_key,
        };
        let now = Instant::now();
        if let Some(held) = self.held.get_mut(&key) {
            held.latest = merge(&held.latest, stamped);
            held.merged += 1;
            self.merged += 1;
            let deadline = (now + self.windows.delay).min(held.first_at + self.windows.max_delay);
            self.due.reset_at(&held.slot, deadline);
            return Vec::new();
        }
        if self.held.len() >= self.windows.max_pending {
            return vec![stamped];
        }
        let deadline = now + self.windows.delay.min(self.windows.max_delay);
        let slot = self.due.insert_at(key.clone(), deadline);
        self.held.insert(
            key,
            Held {
                latest: stamped,
                first_at: now,
                slot,
                merged: 0,
            },
        );
        Vec::new()
    }

    /// Takes out the held events of `event` with `coalesce_key`, oldest first, whatever their
    /// targets.
    fn take_held(&mut self, event: &str, coalesce_key: &str) -> Vec<Stamped> {
        let keys: Vec<Key> = (self.held.keys())
            .filter(|key| key.event == event && key.coalesce_key == coalesce_key)
            .cloned()
            .collect();
        let mut taken: Vec<Held> = keys
            .iter()
            .filter_map(|key| self.held.remove(key))
            .collect();
        for held in &taken {
            self.due.remove(&held.slot);
        }
        taken.sort_by_key(|held| held.first_at);
        taken.into_iter().map(|held| held.latest).collect()
    }

    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Waits for the next held event to come due. Pending forever when nothing is held.
    pub(crate) async fn next_due(&mut self) -> Stamped {
        loop {
            if self.held.is_empty() {
                std::future::pending::<()>().await;
            }
            let Some(expired) = poll_fn(|cx| self.due.poll_expired(cx)).await else {
                continue;
            };
            if let Some(held) = self.held.remove(expired.get_ref()) {
                if held.merged > 0 {
                    tracing::debug!(event = %held.latest.publication.event, merged = held.merged, "coalesced");
                }
                return held.latest;
            }
        }
    }

    /// Everything held, oldest first (for a flush on shutdown).
    pub(crate) fn drain(&mut self) -> Vec<Stamped> {
        self.due.clear();
        let mut held: Vec<Held> = self.held.drain().map(|(_, held)| held).collect();
        held.sort_by_key(|held| held.first_at);
        held.into_iter().map(|held| held.latest).collect()
    }
}

enum Command {
    Offer(Box<Stamped>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the coalescing task.
#[derive(Debug, Clone)]
pub(crate) struct CoalescerHandle {
    tx: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Offer(_) => "Offer",
            Self::Flush(_) => "Flush",
        })
    }
}

impl CoalescerHandle {
    /// Hands a keyed publication to the task; `false` when the task is gone.
    pub(crate) async fn offer(&self, stamped: Stamped) -> bool {
        self.tx
            .send(Command::Offer(Box::new(stamped)))
            .await
            .is_ok()
    }

    /// Delivers everything held now and waits until it is out.
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Runs the coalescer as a task; it ends, flushing, when every handle is dropped.
pub(crate) fn spawn(windows: Windows, deliverer: Deliverer, merged: Counter) -> CoalescerHandle {
    let (tx, mut rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let mut coalescer = Coalescer::new(windows);
        loop {
            tokio::select! {
                command = rx.recv() => match command {
                    Some(Command::Offer(stamped)) => {
                        let before = coalescer.merged();
                        let out = coalescer.offer(*stamped);
                        merged.inc_by(coalescer.merged() - before);
                        for now in out {
                            deliver(&deliverer, now).await;
                        }
                    }
                    Some(Command::Flush(done)) => {
                        for stamped in coalescer.drain() {
                            deliver(&deliverer, stamped).await;
                        }
                        let _ = done.send(());
                    }
                    None => break,
                },
                stamped = coalescer.next_due(), if !coalescer.is_empty() => {
                    deliver(&deliverer, stamped).await;
                }
            }
        }
        for stamped in coalescer.drain() {
            deliver(&deliverer, stamped).await;
        }
    });
    CoalescerHandle { tx }
}

/// A held event and a later one with the same key as one: the later one, or for a Cells node
/// event, the two merged as Cells batches them.
fn merge(held: &Stamped, later: Stamped) -> Stamped {
    if held.publication.event != NODE_EVENT {
        return later;
    }
    match node::merge(held.publication.data.get(), later.publication.data.get()) {
        Some(data) => Stamped {
            publication: Publication {
                data,
                ..later.publication
            },
            ..later
        },
        None => later,
    }
}

async fn deliver(deliverer: &Deliverer, stamped: Stamped) {
    let id = stamped.id.clone();
    if let Err(error) = deliverer.deliver(stamped).await {
        tracing::warn!(event_id = %id, %error, "coalesced event not delivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Publication;

    fn windows() -> Windows {
        Windows {
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3),
            max_pending: 2,
        }
    }

    fn stamped(ws: &str, key: Option<&str>, data: &str) -> Stamped {
        let key = key.map_or(String::new(), |k| format!(r#","coalesce_key":"{k}""#));
        let json = format!(r#"{{"event":"tree_changes","workspace":"{ws}","data":{data}{key}}}"#);
        Stamped::new(Publication::parse(&json, 10).unwrap())
    }

    async fn due_after(c: &mut Coalescer, start: Instant) -> (String, Duration) {
        let s = c.next_due().await;
        (s.publication.data.get().to_owned(), start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn unkeyed_events_go_out_at_once() {
        let mut c = Coalescer::new(windows());
        assert_eq!(c.offer(stamped("w", None, "1")).len(), 1);
        assert!(c.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_becomes_one_delivery_of_the_last_data_after_the_quiet_delay() {
        let mut c = Coalescer::new(windows());
        let start = Instant::now();
        assert!(c.offer(stamped("w", Some("n1"), "1")).is_empty());
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(c.offer(stamped("w", Some("n1"), "2")).is_empty());
        let (data, at) = due_after(&mut c, start).await;
        assert_eq!(data, "2");
        assert_eq!(at, Duration::from_millis(1500));
        assert!(c.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_is_released_by_max_delay() {
        let mut c = Coalescer::new(windows());
        let start = Instant::now();
        // One event every 400 ms, each within `delay` of the previous: only max_delay ends it.
        let step = Duration::from_millis(400);
        for i in 0.. {
            assert!(c.offer(stamped("w", Some("n1"), &i.to_string())).is_empty());
            if start.elapsed() + step >= Duration::from_secs(3) {
                break;
            }
            tokio::time::advance(step).await;
        }
        let (data, at) = due_after(&mut c, start).await;
        assert_eq!(at, Duration::from_secs(3), "released at {at:?}");
        assert_eq!(data, "7", "the last offered before the deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn keys_events_and_targets_are_separate() {
        let mut c = Coalescer::new(Windows {
            max_pending: 10,
            ..windows()
        });
        assert!(c.offer(stamped("w", Some("n1"), "1")).is_empty());
        assert!(c.offer(stamped("w", Some("n2"), "2")).is_empty());
        assert!(c.offer(stamped("other", Some("n1"), "3")).is_empty());
        let start = Instant::now();
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(due_after(&mut c, start).await.0);
        }
        out.sort();
        assert_eq!(out, ["1", "2", "3"]);
    }

    #[tokio::test(start_paused = true)]
    async fn past_max_pending_events_go_out_at_once() {
        let mut c = Coalescer::new(windows());
        assert!(c.offer(stamped("w", Some("a"), "1")).is_empty());
        assert!(c.offer(stamped("w", Some("b"), "2")).is_empty());
        assert!(
            c.offer(stamped("w", Some("c"), "3")).len() == 1,
            "a third key over max_pending"
        );
        assert!(
            c.offer(stamped("w", Some("a"), "4")).is_empty(),
            "held keys still merge"
        );
        assert_eq!(c.merged(), 1);
    }

    fn node(data: &str) -> Stamped {
        let json = format!(r#"{{"event":"cells:node","data":{data}}}"#);
        Stamped::new(Publication::parse(&json, 10).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_cells_node_batch_merges_as_cells_does() {
        let mut c = Coalescer::new(windows());
        let create = r#"{"Target":{"Uuid":"u","Path":"ds/a","Etag":"1"}}"#;
        let update = r#"{"Type":"UPDATE_CONTENT","Target":{"Uuid":"u","Path":"ds/a","Etag":"2"}}"#;
        assert!(c.offer(node(create)).is_empty());
        assert!(c.offer(node(update)).is_empty());
        let (data, _) = due_after(&mut c, Instant::now()).await;
        assert_eq!(
            data,
            r#"{"Target":{"Uuid":"u","Path":"ds/a","Etag":"2","MetaStore":{}}}"#
        );
        assert_eq!(c.merged(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_move_or_delete_goes_out_after_its_node_batch() {
        let mut c = Coalescer::new(Windows {
            max_pending: 10,
            ..windows()
        });
        assert!(
            c.offer(node(r#"{"Target":{"Uuid":"u","Path":"ds/a"}}"#))
                .is_empty()
        );
        assert!(
            c.offer(node(r#"{"Target":{"Uuid":"v","Path":"ds/b"}}"#))
                .is_empty()
        );
        let out = c.offer(node(
            r#"{"Type":"UPDATE_PATH","Source":{"Uuid":"u","Path":"ds/a"},"Target":{"Uuid":"u","Path":"ds/c"}}"#,
        ));
        let paths: Vec<&str> = out.iter().map(|s| s.publication.data.get()).collect();
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert!(
            paths[0].starts_with(r#"{"Target":{"Uuid":"u""#),
            "{paths:?}"
        );
        assert!(
            paths[1].starts_with(r#"{"Type":"UPDATE_PATH""#),
            "{paths:?}"
        );
        let deleted = c.offer(node(
            r#"{"Type":"DELETE","Source":{"Uuid":"w","Path":"ds/w"}}"#,
        ));
        assert_eq!(deleted.len(), 1, "no batch of that node: at once");
        let (left, _) = due_after(&mut c, Instant::now()).await;
        assert!(left.contains(r#""Uuid":"v""#), "{left}");
        assert!(c.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn drain_returns_everything_oldest_first() {
        let mut c = Coalescer::new(windows());
        assert!(c.offer(stamped("w", Some("a"), "1")).is_empty());
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(c.offer(stamped("w", Some("b"), "2")).is_empty());
        let drained: Vec<String> = c
            .drain()
            .iter()
            .map(|s| s.publication.data.get().to_owned())
            .collect();
        assert_eq!(drained, ["1", "2"]);
        assert!(c.is_empty());
    }
}
