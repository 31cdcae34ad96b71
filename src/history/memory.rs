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

use super::{Appended, Epoch, EventLog, HistoryError, Logged, Missed, Position, Resume};
use crate::event::Stamped;

/// The in-memory logs of every room.
#[derive(Debug)]
pub(crate) struct MemoryLog {
    size: usize,
    ttl: Duration,
    rooms: Mutex<Rooms>,
}

/// The logs, and the last sequence number given.
#[derive(Debug, Default)]
struct Rooms {
    by_name: HashMap<String, RoomLog>,
    seq: u64,
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

    /// The position counting only events numbered up to `upto` (the newest are the others).
    fn position_upto(&self, upto: u64) -> Position {
        let later = self
            .entries
            .iter()
            .rev()
            .take_while(|entry| entry.seq > upto)
            .count();
        Position {
            offset: self.head - later as u64,
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
    pub(crate) fn new(size: usize, ttl: Duration) -> Self {
        Self {
            size,
            ttl,
            rooms: Mutex::new(Rooms::default()),
        }
    }

    /// Drops expired events, and forgets rooms without events that have had no members
    /// (`occupied` says which have some now) for `history.ttl`. Returns how many rooms it forgot.
    pub(crate) fn sweep(&self, occupied: impl Fn(&str) -> bool) -> usize {
        let now = Instant::now();
        let mut rooms = self.lock();
        let rooms = &mut rooms.by_name;
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
    pub(crate) fn rooms(&self) -> usize {
        self.lock().by_name.len()
    }

    fn lock(&self) -> MutexGuard<'_, Rooms> {
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

    fn append_now(&self, rooms: &[String], event: &Arc<Stamped>) -> Appended {
        let now = Instant::now();
        let mut logs = self.lock();
        logs.seq += 1;
        let seq = logs.seq;
        let by_name = &mut logs.by_name;
        let positions = rooms
            .iter()
            .map(|room| {
                let log = Self::room(by_name, room, now);
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
            .collect();
        Appended { seq, positions }
    }

    fn head_now(&self, room: &str, upto: u64) -> Position {
        let mut logs = self.lock();
        Self::room(&mut logs.by_name, room, Instant::now()).position_upto(upto)
    }

    fn resume_now(&self, room: &str, since: &Position, upto: u64) -> Resume {
        let now = Instant::now();
        let mut logs = self.lock();
        let log = Self::room(&mut logs.by_name, room, now);
        log.expire(now, self.ttl);
        let head = log.position_upto(upto);
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
            .filter(|entry| entry.offset > since.offset && entry.seq <= upto)
            .map(|entry| Logged {
                offset: entry.offset,
                seq: entry.seq,
                event: entry.event.clone(),
            })
            .collect();
        Resume::Replay { events, head }
    }

    fn missed_now(&self, rooms: &[(String, u64)], upto: u64) -> Option<Vec<Missed>> {
        let now = Instant::now();
        let mut logs = self.lock();
        let mut missed: Vec<Missed> = Vec::new();
        for (room, after) in rooms {
            let log = Self::room(&mut logs.by_name, room, now);
            log.expire(now, self.ttl);
            if log.dropped_through > *after {
                return None;
            }
            missed.extend(
                log.entries
                    .iter()
                    .filter(|entry| entry.seq > *after && entry.seq <= upto)
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
        Some(super::in_sequence(missed))
    }
}

impl EventLog for MemoryLog {
    fn append<'a>(
        &'a self,
        rooms: &'a [String],
        event: &'a Arc<Stamped>,
    ) -> BoxFuture<'a, Result<Appended, HistoryError>> {
        let appended = self.append_now(rooms, event);
        async move { Ok(appended) }.boxed()
    }

    fn missed<'a>(
        &'a self,
        rooms: &'a [(String, u64)],
        upto: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<Missed>>, HistoryError>> {
        let missed = self.missed_now(rooms, upto);
        async move { Ok(missed) }.boxed()
    }

    fn head<'a>(
        &'a self,
        room: &'a str,
        upto: u64,
    ) -> BoxFuture<'a, Result<Position, HistoryError>> {
        let head = self.head_now(room, upto);
        async move { Ok(head) }.boxed()
    }

    fn resume<'a>(
        &'a self,
        room: &'a str,
        since: &'a Position,
        upto: u64,
    ) -> BoxFuture<'a, Result<Resume, HistoryError>> {
        let resume = self.resume_now(room, since, upto);
        async move { Ok(resume) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Publication;

    fn event(n: u32) -> Arc<Stamped> {
        let json = format!(r#"{{"event":"e","workspace":"w","data":{n}}}"#);
        Arc::new(Stamped::new(Publication::parse(&json, 10).unwrap()))
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
        let a = log.append_now(&rooms(&["a", "b"]), &event(1)).positions;
        let b = log.append_now(&rooms(&["a"]), &event(2)).positions;
        let c = log.append_now(&rooms(&["b", "a"]), &event(3)).positions;
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
        let start = log.head_now("a", u64::MAX);
        assert_eq!(start.offset, 0);
        for n in 1..=5 {
            log.append_now(&rooms(&["a"]), &event(n));
        }
        assert_eq!(
            replayed(log.resume_now("a", &start, u64::MAX)),
            [1, 2, 3, 4, 5]
        );
        let at3 = Position {
            offset: 3,
            ..start.clone()
        };
        assert_eq!(replayed(log.resume_now("a", &at3, u64::MAX)), [4, 5]);
        let at5 = Position { offset: 5, ..start };
        assert!(replayed(log.resume_now("a", &at5, u64::MAX)).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn another_epoch_or_a_position_out_of_the_window_is_a_resync() {
        let log = MemoryLog::new(3, Duration::from_secs(600));
        let start = log.head_now("a", u64::MAX);
        for n in 1..=5 {
            log.append_now(&rooms(&["a"]), &event(n));
        }
        // Held: 3, 4, 5. A client at 2 misses nothing that was dropped; at 1 it missed 2.
        let at = |offset| Position {
            offset,
            ..start.clone()
        };
        assert_eq!(replayed(log.resume_now("a", &at(2), u64::MAX)), [3, 4, 5]);
        assert!(
            matches!(log.resume_now("a", &at(1), u64::MAX), Resume::Resync(p) if p.offset == 5)
        );
        let other = Position {
            offset: 5,
            epoch: Epoch::parse("elsewhere").unwrap(),
        };
        assert!(matches!(log.resume_now("a", &other, u64::MAX), Resume::Resync(p) if p == at(5)));
        assert!(matches!(
            log.resume_now("a", &at(6), u64::MAX),
            Resume::Beyond(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn events_expire_after_the_ttl() {
        let log = MemoryLog::new(100, Duration::from_secs(60));
        let start = log.head_now("a", u64::MAX);
        log.append_now(&rooms(&["a"]), &event(1));
        tokio::time::advance(Duration::from_secs(30)).await;
        log.append_now(&rooms(&["a"]), &event(2));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(
            matches!(log.resume_now("a", &start, u64::MAX), Resume::Resync(p) if p.offset == 2),
            "event 1 expired"
        );
        let at1 = Position { offset: 1, ..start };
        assert_eq!(replayed(log.resume_now("a", &at1, u64::MAX)), [2]);
    }

    #[tokio::test(start_paused = true)]
    async fn missed_events_merge_rooms_in_sequence_order_once_each() {
        let log = MemoryLog::new(3, Duration::from_secs(600));
        log.append_now(&rooms(&["a"]), &event(1));
        log.append_now(&rooms(&["a", "b"]), &event(2));
        log.append_now(&rooms(&["b"]), &event(3));
        log.append_now(&rooms(&["c"]), &event(4));
        log.append_now(&rooms(&["a"]), &event(5));
        let wanted = [("b".to_owned(), 0), ("a".to_owned(), 1)];
        let missed = log.missed_now(&wanted, u64::MAX).expect("all held");
        let found: Vec<(u64, &str, u64)> = missed
            .iter()
            .map(|m| (m.seq, m.room.as_str(), m.position.offset))
            .collect();
        assert_eq!(found, [(2, "b", 1), (3, "b", 2), (5, "a", 3)]);

        // Room a holds 1, 2 and 5 (size 3): a fourth drops 1.
        log.append_now(&rooms(&["a"]), &event(6));
        assert!(
            log.missed_now(&[("a".to_owned(), 0)], u64::MAX).is_none(),
            "seq 1 was dropped from a"
        );
        assert_eq!(
            log.missed_now(&[("a".to_owned(), 1)], u64::MAX)
                .unwrap()
                .len(),
            3
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reads_leave_out_events_numbered_after_upto() {
        let log = MemoryLog::new(100, Duration::from_secs(600));
        let start = log.head_now("a", u64::MAX);
        for n in 1..=4 {
            log.append_now(&rooms(&["a"]), &event(n));
        }
        // Events 3 and 4 are logged but not delivered here yet: they come live.
        assert_eq!(log.head_now("a", 2).offset, 2);
        assert_eq!(replayed(log.resume_now("a", &start, 2)), [1, 2]);
        let missed = log.missed_now(&[("a".to_owned(), 0)], 2).unwrap();
        assert_eq!(missed.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn sweep_forgets_empty_rooms_without_members_after_the_ttl() {
        let log = MemoryLog::new(100, Duration::from_secs(60));
        let kept = log.head_now("occupied", u64::MAX);
        let start = log.head_now("empty", u64::MAX);
        log.append_now(&rooms(&["busy"]), &event(1));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(log.sweep(|room| room == "occupied"), 0);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(log.sweep(|room| room == "occupied"), 2, "empty and busy");
        assert_eq!(log.rooms(), 1);
        assert_eq!(log.head_now("occupied", u64::MAX), kept);
        // A client of the forgotten room holds an epoch that no longer exists.
        assert!(
            matches!(log.resume_now("empty", &start, u64::MAX), Resume::Resync(p) if p.offset == 0)
        );
    }
}
