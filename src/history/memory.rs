//! [`MemoryLog`]: the event log of a single node, in memory.
//!
//! Each room keeps its latest `history.size` events for `history.ttl`. A room's log (its epoch
//! and head offset) outlives its events while the room has members, and for `history.ttl`
//! after it was last seen with members; then it is forgotten, and a client that still names
//! its epoch is told to resync. Everything is lost with the process: a restarted node hands
//! out new epochs.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures_util::future::{BoxFuture, FutureExt};
use tokio::time::Instant;

use super::{Epoch, EventLog, HistoryError, Logged, Missed, Position, Resume};
use crate::pipeline::Stamped;

/// The in-memory logs of every room.
#[derive(Debug)]
pub struct MemoryLog {
    size: usize,
    ttl: Duration,
    rooms: Mutex<HashMap<String, RoomLog>>,
}

#[derive(Debug)]
struct RoomLog {
    epoch: Epoch,
    head: u64,
    entries: VecDeque<Entry>,
    /// The highest sequence number dropped from `entries` (expired or over the size).
    dropped_through: u64,
    /// Last append, read, or sweep that found members.
    seen: Instant,
}

#[derive(Debug)]
struct Entry {
    offset: u64,
    seq: u64,
    at: Instant,
    event: Arc<Stamped>,
}

impl RoomLog {
    fn new(now: Instant) -> Self {
        Self {
            epoch: Epoch::generate(),
            head: 0,
            entries: VecDeque::new(),
            dropped_through: 0,
            seen: now,
        }
    }

    fn position(&self) -> Position {
        Position {
            offset: self.head,
            epoch: self.epoch.clone(),
        }
    }

    fn expire(&mut self, now: Instant, ttl: Duration) {
        while self
            .entries
            .front()
            .is_some_and(|entry| now.duration_since(entry.at) >= ttl)
        {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.dropped_through = self.dropped_through.max(entry.seq);
        }
    }
}

impl MemoryLog {
    /// Logs keeping at most `size` events per room, each for at most `ttl`.
    pub fn new(size: usize, ttl: Duration) -> Self {
        Self {
            size,
            ttl,
            rooms: Mutex::new(HashMap::new()),
        }
    }

    /// Drops expired events, and forgets rooms without events that have had no members
    /// (`occupied` says which have some now) for `history.ttl`. Returns how many rooms it forgot.
    pub fn sweep(&self, occupied: impl Fn(&str) -> bool) -> usize {
        let now = Instant::now();
        let mut rooms = self.lock();
        let before = rooms.len();
        rooms.retain(|room, log| {
            log.expire(now, self.ttl);
            if occupied(room) {
                log.seen = now;
            }
            !log.entries.is_empty() || now.duration_since(log.seen) < self.ttl
        });
        before - rooms.len()
    }

    /// How many rooms have a log.
    pub fn rooms(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, RoomLog>> {
        // A panic while holding this lock leaves plain data, consistent after each statement.
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn room<'r>(
        rooms: &'r mut HashMap<String, RoomLog>,
        room: &str,
        now: Instant,
    ) -> &'r mut RoomLog {
        let log = rooms
            .entry(room.to_owned())
            .or_insert_with(|| RoomLog::new(now));
        log.seen = now;
        log
    }

    fn append_now(&self, rooms: &[String], event: &Arc<Stamped>, seq: u64) -> Vec<Position> {
        let now = Instant::now();
        let mut logs = self.lock();
        rooms
            .iter()
            .map(|room| {
                let log = Self::room(&mut logs, room, now);
                log.expire(now, self.ttl);
                log.head += 1;
                log.entries.push_back(Entry {
                    offset: log.head,
                    seq,
                    at: now,
                    event: event.clone(),
                });
                if log.entries.len() > self.size {
                    log.drop_oldest();
                }
                log.position()
            })
            .collect()
    }

    fn head_now(&self, room: &str) -> Position {
        let mut logs = self.lock();
        Self::room(&mut logs, room, Instant::now()).position()
    }

    fn resume_now(&self, room: &str, since: &Position) -> Resume {
        let now = Instant::now();
        let mut logs = self.lock();
        let log = Self::room(&mut logs, room, now);
        log.expire(now, self.ttl);
        let head = log.position();
        if since.epoch != log.epoch {
            return Resume::Resync(head);
        }
        if since.offset > log.head {
            return Resume::Beyond(head);
        }
        // The first offset still held; with nothing held, only a client at the head is served.
        let oldest = log.entries.front().map_or(log.head + 1, |e| e.offset);
        if since.offset + 1 < oldest {
            return Resume::Resync(head);
        }
        let events = log
            .entries
            .iter()
            .filter(|entry| entry.offset > since.offset)
            .map(|entry| Logged {
                offset: entry.offset,
                seq: entry.seq,
                event: entry.event.clone(),
            })
            .collect();
        Resume::Replay { events, head }
    }

    fn missed_now(&self, rooms: &[(String, u64)]) -> Option<Vec<Missed>> {
        let now = Instant::now();
        let mut logs = self.lock();
        let mut missed: Vec<Missed> = Vec::new();
        for (room, after) in rooms {
            let log = Self::room(&mut logs, room, now);
            log.expire(now, self.ttl);
            if log.dropped_through > *after {
                return None;
            }
            missed.extend(
                log.entries
                    .iter()
                    .filter(|entry| entry.seq > *after)
                    .map(|entry| Missed {
                        room: room.clone(),
                        position: Position {
                            offset: entry.offset,
                            epoch: log.epoch.clone(),
                        },
                        seq: entry.seq,
                        event: entry.event.clone(),
                    }),
            );
        }
        // Stable: for an event in several rooms, the first room listed stays first.
        missed.sort_by_key(|m| m.seq);
        missed.dedup_by_key(|m| m.seq);
        Some(missed)
    }
}

impl EventLog for MemoryLog {
    fn append<'a>(
        &'a self,
        rooms: &'a [String],
        event: &'a Arc<Stamped>,
        seq: u64,
    ) -> BoxFuture<'a, Result<Vec<Position>, HistoryError>> {
        let positions = self.append_now(rooms, event, seq);
        async move { Ok(positions) }.boxed()
    }

    fn missed<'a>(
        &'a self,
        rooms: &'a [(String, u64)],
    ) -> BoxFuture<'a, Result<Option<Vec<Missed>>, HistoryError>> {
        let missed = self.missed_now(rooms);
        async move { Ok(missed) }.boxed()
    }

    fn head<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Position, HistoryError>> {
        let head = self.head_now(room);
        async move { Ok(head) }.boxed()
    }

    fn resume<'a>(
        &'a self,
        room: &'a str,
        since: &'a Position,
    ) -> BoxFuture<'a, Result<Resume, HistoryError>> {
        let resume = self.resume_now(room, since);
        async move { Ok(resume) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Publication;

    fn event(n: u32) -> Arc<Stamped> {
        let json = format!(r#"{{"event":"e","workspace":"w","data":{n}}}"#);
        Arc::new(Stamped::new(Publication::parse(&json, 10).unwrap()))
    }

    fn next_seq() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        SEQ.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn rooms(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn replayed(resume: Resume) -> Vec<u64> {
        match resume {
            Resume::Replay { events, .. } => events.iter().map(|e| e.offset).collect(),
            other => panic!("expected a replay, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn offsets_are_contiguous_per_room() {
        let log = MemoryLog::new(100, Duration::from_secs(600));
        let a = log.append_now(&rooms(&["a", "b"]), &event(1), next_seq());
        let b = log.append_now(&rooms(&["a"]), &event(2), next_seq());
        let c = log.append_now(&rooms(&["b", "a"]), &event(3), next_seq());
        assert_eq!(
            [
                a[0].offset,
                a[1].offset,
                b[0].offset,
                c[0].offset,
                c[1].offset
            ],
            [1, 1, 2, 2, 3]
        );
        assert_ne!(a[0].epoch, a[1].epoch, "each room has its own epoch");
        assert_eq!(a[0].epoch, b[0].epoch);
    }

    #[tokio::test(start_paused = true)]
    async fn resume_replays_what_follows_the_position() {
        let log = MemoryLog::new(100, Duration::from_secs(600));
        let start = log.head_now("a");
        assert_eq!(start.offset, 0);
        for n in 1..=5 {
            log.append_now(&rooms(&["a"]), &event(n), next_seq());
        }
        assert_eq!(replayed(log.resume_now("a", &start)), [1, 2, 3, 4, 5]);
        let at3 = Position {
            offset: 3,
            ..start.clone()
        };
        assert_eq!(replayed(log.resume_now("a", &at3)), [4, 5]);
        let at5 = Position { offset: 5, ..start };
        assert!(replayed(log.resume_now("a", &at5)).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn another_epoch_or_a_position_out_of_the_window_is_a_resync() {
        let log = MemoryLog::new(3, Duration::from_secs(600));
        let start = log.head_now("a");
        for n in 1..=5 {
            log.append_now(&rooms(&["a"]), &event(n), next_seq());
        }
        // Held: 3, 4, 5. A client at 2 misses nothing that was dropped; at 1 it missed 2.
        let at = |offset| Position {
            offset,
            ..start.clone()
        };
        assert_eq!(replayed(log.resume_now("a", &at(2))), [3, 4, 5]);
        assert!(matches!(log.resume_now("a", &at(1)), Resume::Resync(p) if p.offset == 5));
        let other = Position {
            offset: 5,
            epoch: Epoch::parse("elsewhere").unwrap(),
        };
        assert!(matches!(log.resume_now("a", &other), Resume::Resync(p) if p == at(5)));
        assert!(matches!(log.resume_now("a", &at(6)), Resume::Beyond(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn events_expire_after_the_ttl() {
        let log = MemoryLog::new(100, Duration::from_secs(60));
        let start = log.head_now("a");
        log.append_now(&rooms(&["a"]), &event(1), next_seq());
        tokio::time::advance(Duration::from_secs(30)).await;
        log.append_now(&rooms(&["a"]), &event(2), next_seq());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(
            matches!(log.resume_now("a", &start), Resume::Resync(p) if p.offset == 2),
            "event 1 expired"
        );
        let at1 = Position { offset: 1, ..start };
        assert_eq!(replayed(log.resume_now("a", &at1)), [2]);
    }

    #[tokio::test(start_paused = true)]
    async fn missed_events_merge_rooms_in_sequence_order_once_each() {
        let log = MemoryLog::new(3, Duration::from_secs(600));
        log.append_now(&rooms(&["a"]), &event(1), 1);
        log.append_now(&rooms(&["a", "b"]), &event(2), 2);
        log.append_now(&rooms(&["b"]), &event(3), 3);
        log.append_now(&rooms(&["c"]), &event(4), 4);
        log.append_now(&rooms(&["a"]), &event(5), 5);
        let wanted = [("b".to_owned(), 0), ("a".to_owned(), 1)];
        let missed = log.missed_now(&wanted).expect("all held");
        let found: Vec<(u64, &str, u64)> = missed
            .iter()
            .map(|m| (m.seq, m.room.as_str(), m.position.offset))
            .collect();
        assert_eq!(found, [(2, "b", 1), (3, "b", 2), (5, "a", 3)]);

        // Room a holds 1, 2 and 5 (size 3): a fourth drops 1.
        log.append_now(&rooms(&["a"]), &event(6), 6);
        assert!(
            log.missed_now(&[("a".to_owned(), 0)]).is_none(),
            "seq 1 was dropped from a"
        );
        assert_eq!(log.missed_now(&[("a".to_owned(), 1)]).unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn sweep_forgets_empty_rooms_without_members_after_the_ttl() {
        let log = MemoryLog::new(100, Duration::from_secs(60));
        let kept = log.head_now("occupied");
        let start = log.head_now("empty");
        log.append_now(&rooms(&["busy"]), &event(1), next_seq());
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(log.sweep(|room| room == "occupied"), 0);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(log.sweep(|room| room == "occupied"), 2, "empty and busy");
        assert_eq!(log.rooms(), 1);
        assert_eq!(log.head_now("occupied"), kept);
        // A client of the forgotten room holds an epoch that no longer exists.
        assert!(matches!(log.resume_now("empty", &start), Resume::Resync(p) if p.offset == 0));
    }
}
