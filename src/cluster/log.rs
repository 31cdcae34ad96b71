//! [`RedisLog`]: the event log of a cluster, in Redis Streams, shared by every node.
//!
//! Keys, under `cluster.prefix`:
//! - `<p>:seq`: the last event number given, cluster-wide;
//! - `<p>:generation`: set by the first append: another value means Redis lost its data and
//!   numbering started again;
//! - `<p>:bus`: every event, entry id `<seq>-0`, trimmed to `cluster.bus_size`; every node
//!   reads it in order and delivers to its own sockets ([`super::bus`]);
//! - `<p>:room:<room>`: the room's events, entry id `<offset>-0`, trimmed to `history.size`,
//!   with `<p>:room:<room>:head` (its last offset) and `<p>:room:<room>:epoch`; the three
//!   expire together `history.ttl` after the room's last event or read, and the room then
//!   comes back under a new epoch.
//!
//! An append is one Lua script, so numbers, offsets and the bus order agree on every node.
//! Reads stop at `upto`, the last event this node has delivered: newer ones come live.

use std::{sync::Arc, time::Duration};

use futures_util::future::{BoxFuture, FutureExt};
use redis::{AsyncCommands, Script, streams::StreamRangeReply};

use super::{Commands, wire};
use crate::{
    event::Stamped,
    history::{self, Appended, Epoch, EventLog, HistoryError, Logged, Missed, Position, Resume},
};

/// Appends an event. KEYS = generation, seq, bus, then for each room its stream, head and
/// epoch; ARGV = history size, ttl (s), bus size, candidate epoch, event JSON. Returns
/// `{seq, offset1, epoch1, offset2, epoch2, …}`. Every key is declared (a Redis Cluster routes
/// the script by them and runs it only if they share one slot, which the `{prefix}` hash tag
/// makes so).
const APPEND: &str = r"
local size, ttl, bus_size, candidate, body = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
redis.call('SET', KEYS[1], candidate, 'NX')
local seq = redis.call('INCR', KEYS[2])
local out = {seq}
local positions = {}
for i = 4, #KEYS, 3 do
  local stream, head, epoch_key = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  redis.call('SET', epoch_key, candidate, 'NX')
  local epoch = redis.call('GET', epoch_key)
  local offset = redis.call('INCR', head)
  redis.call('XADD', stream, 'MAXLEN', '~', size, offset .. '-0', 's', seq, 'e', body)
  for _, k in ipairs({stream, head, epoch_key}) do redis.call('EXPIRE', k, ttl) end
  table.insert(out, offset)
  table.insert(out, epoch)
  table.insert(positions, offset .. ':' .. epoch)
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', bus_size, seq .. '-0', 'e', body, 'p', table.concat(positions, ' '))
return out
";

/// Starts a room's log if it has none and returns `{head, epoch}`. KEYS = the room's stream,
/// head and epoch; ARGV = ttl, candidate epoch.
const HEAD: &str = r"
redis.call('SET', KEYS[3], ARGV[2], 'NX')
for _, k in ipairs(KEYS) do redis.call('EXPIRE', k, ARGV[1]) end
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('GET', KEYS[3])}
";

/// The shared event log of a cluster.
#[derive(Clone)]
pub(crate) struct RedisLog {
    redis: Commands,
    prefix: Arc<str>,
    size: usize,
    ttl: Duration,
    bus_size: usize,
    append: Arc<Script>,
    head: Arc<Script>,
}

impl std::fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLog")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// One entry of a room's stream.
struct RoomEntry {
    offset: u64,
    seq: u64,
    event: Arc<Stamped>,
}

fn unavailable(error: &redis::RedisError) -> HistoryError {
    HistoryError::Unavailable(error.to_string())
}

impl RedisLog {
    /// A log on `redis` under `prefix`, keeping `size` events per room for `ttl`, and
    /// `bus_size` events in the shared stream.
    pub(crate) fn new(
        redis: Commands,
        prefix: &str,
        size: usize,
        ttl: Duration,
        bus_size: usize,
    ) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            size,
            ttl,
            bus_size,
            append: Arc::new(Script::new(APPEND)),
            head: Arc::new(Script::new(HEAD)),
        }
    }

    fn room_key(&self, room: &str) -> String {
        format!("{}:room:{room}", self.prefix)
    }

    /// Declares a room's three keys to a script, in the order the scripts read them: stream,
    /// head, epoch.
    fn key_room(&self, invocation: &mut redis::ScriptInvocation<'_>, room: &str) {
        let stream = self.room_key(room);
        invocation
            .key(&stream)
            .key(format!("{stream}:head"))
            .key(format!("{stream}:epoch"));
    }

    fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs().max(1)
    }

    async fn append_now(
        &self,
        rooms: &[String],
        event: &Stamped,
    ) -> Result<Appended, HistoryError> {
        let body = wire::encode(event);
        let mut invocation = self.append.prepare_invoke();
        invocation
            .key(format!("{}:generation", self.prefix))
            .key(format!("{}:seq", self.prefix))
            .key(format!("{}:bus", self.prefix));
        for room in rooms {
            self.key_room(&mut invocation, room);
        }
        invocation
            .arg(self.size)
            .arg(self.ttl_secs())
            .arg(self.bus_size)
            .arg(Epoch::generate().as_str())
            .arg(&body);
        let mut redis = self.redis.clone();
        let reply: Vec<redis::Value> = invocation
            .invoke_async(&mut redis)
            .await
            .map_err(|e| unavailable(&e))?;
        parse_appended(&reply, rooms.len())
    }

    /// The room's log start: `(head, epoch)`.
    async fn start(&self, room: &str) -> Result<(u64, Epoch), HistoryError> {
        let mut redis = self.redis.clone();
        let mut invocation = self.head.prepare_invoke();
        self.key_room(&mut invocation, room);
        let (head, epoch): (u64, String) = invocation
            .arg(self.ttl_secs())
            .arg(Epoch::generate().as_str())
            .invoke_async(&mut redis)
            .await
            .map_err(|e| unavailable(&e))?;
        let epoch = Epoch::parse(&epoch)
            .ok_or_else(|| HistoryError::Unavailable("a stored epoch is unusable".into()))?;
        Ok((head, epoch))
    }

    /// Entries of the room with an offset of at least `from`, oldest first.
    async fn entries_from(&self, room: &str, from: u64) -> Result<Vec<RoomEntry>, HistoryError> {
        let mut redis = self.redis.clone();
        let reply: StreamRangeReply = redis
            .xrange(self.room_key(room), format!("{from}-0"), "+")
            .await
            .map_err(|e| unavailable(&e))?;
        reply
            .ids
            .iter()
            .map(|entry| {
                let offset = wire::id_number(&entry.id)?;
                let seq: u64 = entry.get("s").ok_or_else(|| wire::corrupt("no s"))?;
                let body: String = entry.get("e").ok_or_else(|| wire::corrupt("no e"))?;
                let event = Arc::new(wire::decode(&body)?.into_stamped());
                Ok(RoomEntry { offset, seq, event })
            })
            .collect()
    }

    /// The offset of the oldest event still held, if any.
    async fn oldest(&self, room: &str) -> Result<Option<u64>, HistoryError> {
        let mut redis = self.redis.clone();
        let reply: StreamRangeReply = redis
            .xrange_count(self.room_key(room), "-", "+", 1)
            .await
            .map_err(|e| unavailable(&e))?;
        reply
            .ids
            .first()
            .map(|entry| wire::id_number(&entry.id))
            .transpose()
    }

    /// How many of the room's newest events are numbered after `upto`.
    async fn newer_than(&self, room: &str, upto: u64) -> Result<u64, HistoryError> {
        let mut redis = self.redis.clone();
        let reply: StreamRangeReply = redis
            .xrevrange_count(self.room_key(room), "+", "-", 64)
            .await
            .map_err(|e| unavailable(&e))?;
        let mut newer = 0;
        for entry in &reply.ids {
            let seq: u64 = entry.get("s").ok_or_else(|| wire::corrupt("no s"))?;
            if seq <= upto {
                break;
            }
            newer += 1;
        }
        Ok(newer)
    }

    async fn head_now(&self, room: &str, upto: u64) -> Result<Position, HistoryError> {
        let (head, epoch) = self.start(room).await?;
        let newer = self.newer_than(room, upto).await?;
        Ok(Position {
            offset: head.saturating_sub(newer),
            epoch,
        })
    }

    async fn resume_now(
        &self,
        room: &str,
        since: &Position,
        upto: u64,
    ) -> Result<Resume, HistoryError> {
        let (head, epoch) = self.start(room).await?;
        let newer = self.newer_than(room, upto).await?;
        let current = Position {
            offset: head.saturating_sub(newer),
            epoch: epoch.clone(),
        };
        if since.epoch != epoch {
            return Ok(Resume::Resync(current));
        }
        if since.offset > current.offset {
            return Ok(Resume::Beyond(current));
        }
        let oldest = self.oldest(room).await?.unwrap_or(head + 1);
        if since.offset + 1 < oldest {
            return Ok(Resume::Resync(current));
        }
        let events = self
            .entries_from(room, since.offset + 1)
            .await?
            .into_iter()
            .filter(|entry| entry.seq <= upto)
            .map(|entry| Logged {
                offset: entry.offset,
                seq: entry.seq,
                event: entry.event,
            })
            .collect();
        Ok(Resume::Replay {
            events,
            head: current,
        })
    }

    async fn missed_now(
        &self,
        rooms: &[(String, u64)],
        upto: u64,
    ) -> Result<Option<Vec<Missed>>, HistoryError> {
        let mut missed = Vec::new();
        for (room, after) in rooms {
            let (_, epoch) = self.start(room).await?;
            let entries = self.entries_from(room, 0).await?;
            // Something after `after` may have been trimmed unless the oldest held is at or
            // before it, or nothing was ever trimmed (offset 1 still held).
            let complete = entries
                .first()
                .is_none_or(|first| first.offset == 1 || first.seq <= *after);
            if !complete {
                return Ok(None);
            }
            missed.extend(
                entries
                    .into_iter()
                    .filter(|entry| entry.seq > *after && entry.seq <= upto)
                    .map(|entry| Missed {
                        room: room.clone(),
                        position: Position {
                            offset: entry.offset,
                            epoch: epoch.clone(),
                        },
                        seq: entry.seq,
                        event: entry.event,
                    }),
            );
        }
        Ok(Some(history::in_sequence(missed)))
    }
}

/// `{seq, offset1, epoch1, …}` from the append script.
fn parse_appended(reply: &[redis::Value], rooms: usize) -> Result<Appended, HistoryError> {
    use redis::FromRedisValue;
    let number = |value: &redis::Value| {
        u64::from_redis_value(value.clone()).map_err(|_| wire::corrupt("append: not a number"))
    };
    let (Some(seq), rest) = (reply.first(), reply.get(1..).unwrap_or_default()) else {
        return Err(wire::corrupt("append: empty reply"));
    };
    if rest.len() != rooms * 2 {
        return Err(wire::corrupt("append: wrong reply length"));
    }
    let positions = rest
        .chunks(2)
        .map(|pair| {
            let epoch = String::from_redis_value(pair[1].clone())
                .ok()
                .and_then(|e| Epoch::parse(&e))
                .ok_or_else(|| wire::corrupt("append: bad epoch"))?;
            Ok(Position {
                offset: number(&pair[0])?,
                epoch,
            })
        })
        .collect::<Result<_, HistoryError>>()?;
    Ok(Appended {
        seq: number(seq)?,
        positions,
    })
}

impl EventLog for RedisLog {
    fn append<'a>(
        &'a self,
        rooms: &'a [String],
        event: &'a Arc<Stamped>,
    ) -> BoxFuture<'a, Result<Appended, HistoryError>> {
        self.append_now(rooms, event).boxed()
    }

    fn head<'a>(
        &'a self,
        room: &'a str,
        upto: u64,
    ) -> BoxFuture<'a, Result<Position, HistoryError>> {
        self.head_now(room, upto).boxed()
    }

    fn resume<'a>(
        &'a self,
        room: &'a str,
        since: &'a Position,
        upto: u64,
    ) -> BoxFuture<'a, Result<Resume, HistoryError>> {
        self.resume_now(room, since, upto).boxed()
    }

    fn missed<'a>(
        &'a self,
        rooms: &'a [(String, u64)],
        upto: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<Missed>>, HistoryError>> {
        self.missed_now(rooms, upto).boxed()
    }
}
