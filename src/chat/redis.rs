//! [`RedisStore`]: the cluster-mode [`ChatStore`], in the cluster's Redis (standalone, 7+),
//! under `<prefix>:chat:`.
//!
//! - `room:<uuid>`: the room, JSON; written with `SET NX GET`, so the first opener wins.
//! - `seq:<uuid>`: the room's message counter.
//! - `order:<uuid>`: sorted set of message uuids scored by their number (paging by score).
//! - `msg:<uuid>`: hash of message uuid → the message, JSON.
//!
//! Posting and deleting are Lua scripts, so a message is always in both the order and the hash,
//! and only its author removes it. Nothing expires: keep Redis persistent (RDB or AOF) for chat
//! history to survive a Redis restart.

use futures_util::{FutureExt, future::BoxFuture};
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use super::{
    room::Room,
    store::{ChatStore, Deleted, Message, Page, StoreError},
};
use crate::{
    cluster::{Commands, Redis},
    ids::UserId,
};

/// `KEYS`: seq, order, msg. `ARGV`: message uuid, message JSON. Returns the message's number.
const POST: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], n, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return n";

/// `KEYS`: order, msg. `ARGV`: message uuid, author. Returns 0 not found, 1 not the author,
/// 2 deleted.
const DELETE: &str = r"
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m then return 0 end
if cjson.decode(m).author ~= ARGV[2] then return 1 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 2";

/// The Redis chat store; cheap to clone.
#[derive(Clone)]
pub(crate) struct RedisStore {
    commands: Commands,
    prefix: String,
    post: Script,
    delete: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on the node's Redis connection.
    pub(crate) fn new(redis: &Redis) -> Self {
        Self {
            commands: redis.commands.clone(),
            prefix: format!("{}:chat", redis.prefix),
            post: Script::new(POST),
            delete: Script::new(DELETE),
        }
    }

    fn key(&self, kind: &str, room: &Uuid) -> String {
        format!("{}:{kind}:{room}", self.prefix)
    }

    async fn open(&self, room: &Room) -> Result<Room, StoreError> {
        let mut redis = self.commands.clone();
        let json = to_json(room)?;
        let existing: Option<String> = redis::cmd("SET")
            .arg(self.key("room", &room.uuid))
            .arg(&json)
            .arg("NX")
            .arg("GET")
            .query_async(&mut redis)
            .await?;
        match existing {
            None => Ok(room.clone()),
            Some(stored) => from_json(&stored),
        }
    }

    async fn append(&self, message: &Message) -> Result<(), StoreError> {
        let mut redis = self.commands.clone();
        let _: i64 = self
            .post
            .key(self.key("seq", &message.room))
            .key(self.key("order", &message.room))
            .key(self.key("msg", &message.room))
            .arg(message.uuid.to_string())
            .arg(to_json(message)?)
            .invoke_async(&mut redis)
            .await?;
        Ok(())
    }

    async fn page(
        &self,
        room: &Uuid,
        before: Option<&Uuid>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let mut redis = self.commands.clone();
        let order = self.key("order", room);
        let max = match before {
            None => "+inf".to_owned(),
            Some(before) => {
                let score: Option<f64> = redis.zscore(&order, before.to_string()).await?;
                format!("({}", score.ok_or(StoreError::UnknownBefore)?)
            }
        };
        let uuids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&order)
            .arg(max)
            .arg("-inf")
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(limit.saturating_add(1))
            .query_async(&mut redis)
            .await?;
        let more = uuids.len() > limit;
        let uuids = &uuids[..uuids.len().min(limit)];
        if uuids.is_empty() {
            return Ok(Page {
                messages: Vec::new(),
                more,
            });
        }
        let stored: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key("msg", room))
            .arg(uuids)
            .query_async(&mut redis)
            .await?;
        // A message deleted between the two reads is simply not in the page.
        let mut messages = stored
            .iter()
            .flatten()
            .map(|json| from_json::<Message>(json))
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(Page { messages, more })
    }

    async fn remove(
        &self,
        room: &Uuid,
        message: &Uuid,
        author: &UserId,
    ) -> Result<Deleted, StoreError> {
        let mut redis = self.commands.clone();
        let outcome: i64 = self
            .delete
            .key(self.key("order", room))
            .key(self.key("msg", room))
            .arg(message.to_string())
            .arg(author.as_str())
            .invoke_async(&mut redis)
            .await?;
        Ok(match outcome {
            2 => Deleted::Done,
            1 => Deleted::NotAuthor,
            _ => Deleted::NotFound,
        })
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl ChatStore for RedisStore {
    fn open_room<'a>(&'a self, room: &'a Room) -> BoxFuture<'a, Result<Room, StoreError>> {
        self.open(room).boxed()
    }

    fn post<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), StoreError>> {
        self.append(message).boxed()
    }

    fn history<'a>(
        &'a self,
        room: &'a Uuid,
        before: Option<&'a Uuid>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        self.page(room, before, limit).boxed()
    }

    fn delete<'a>(
        &'a self,
        room: &'a Uuid,
        message: &'a Uuid,
        author: &'a UserId,
    ) -> BoxFuture<'a, Result<Deleted, StoreError>> {
        self.remove(room, message, author).boxed()
    }
}
