//! [`RedisSessions`]: saved Socket.IO sessions of a cluster, in Redis, so a client whose
//! transport dropped on one node recovers on any node.
//!
//! A session is the key `<prefix>:session:<pid>` (JSON: user and rooms with their join
//! numbers), set with an expiry of `recovery.max_disconnection`. Claiming it is one `GETDEL`:
//! atomic, so two nodes never both recover it. Recovery offsets are the cluster's event
//! numbers ([`super::log`]), so the offset a client holds means the same on every node.
//!
//! A client that reconnects at once can reach its new node before the old node has saved its
//! session (both learn of the drop at about the same time): a miss is looked up once more after
//! [`CLAIM_GRACE`].

use std::{sync::Arc, time::Duration};

use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};

use super::{COMMAND_TIMEOUT, Commands};
use crate::{
    ids::UserId,
    recovery::{Saved, SessionError, SessionStore},
};

/// How long a missed claim waits before looking again (the old node may still be saving).
pub(crate) const CLAIM_GRACE: Duration = Duration::from_millis(250);

/// A session as stored in Redis.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// The user.
    u: String,
    /// Rooms and the event number at which the socket joined each.
    r: Vec<(String, u64)>,
}

/// The saved sessions of a cluster.
#[derive(Clone)]
pub(crate) struct RedisSessions {
    redis: Commands,
    prefix: Arc<str>,
    max_disconnection: Duration,
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessions")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: impl std::fmt::Display) -> SessionError {
    SessionError::Unavailable(error.to_string())
}

impl RedisSessions {
    /// Sessions on `redis` under `prefix`, kept for `max_disconnection`.
    pub(crate) fn new(redis: Commands, prefix: &str, max_disconnection: Duration) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            max_disconnection,
        }
    }

    fn key(&self, pid: &str) -> String {
        format!("{}:session:{pid}", self.prefix)
    }

    async fn save_now(&self, pid: &str, saved: Saved) -> Result<(), SessionError> {
        let stored = Stored {
            u: saved.user.as_str().to_owned(),
            r: saved.rooms,
        };
        let body = serde_json::to_string(&stored).map_err(unavailable)?;
        // At least a millisecond: Redis refuses an expiry of zero.
        let ttl = u64::try_from(self.max_disconnection.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut redis = self.redis.clone();
        let mut command = redis::cmd("SET");
        command.arg(self.key(pid)).arg(body).arg("PX").arg(ttl);
        let set = command.exec_async(&mut redis);
        match tokio::time::timeout(COMMAND_TIMEOUT, set).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(unavailable("timed out")),
        }
    }

    /// `GETDEL` of the session, decoded; a stored value that does not decode is no session.
    async fn getdel(&self, pid: &str) -> Result<Option<Saved>, SessionError> {
        let mut redis = self.redis.clone();
        let key = self.key(pid);
        let mut command = redis::cmd("GETDEL");
        command.arg(&key);
        let get = command.query_async::<Option<String>>(&mut redis);
        let body = match tokio::time::timeout(COMMAND_TIMEOUT, get).await {
            Ok(result) => result.map_err(unavailable)?,
            Err(_) => return Err(unavailable("timed out")),
        };
        let Some(body) = body else {
            return Ok(None);
        };
        let decoded = serde_json::from_str::<Stored>(&body)
            .ok()
            .and_then(|stored| Some((UserId::parse(stored.u).ok()?, stored.r)));
        match decoded {
            Some((user, rooms)) => Ok(Some(Saved { user, rooms })),
            None => {
                tracing::error!(%key, "saved session unreadable: not recovered");
                Ok(None)
            }
        }
    }

    async fn take_now(&self, pid: &str) -> Result<Option<Saved>, SessionError> {
        if let Some(saved) = self.getdel(pid).await? {
            return Ok(Some(saved));
        }
        tokio::time::sleep(CLAIM_GRACE).await;
        self.getdel(pid).await
    }
}

impl SessionStore for RedisSessions {
    fn save<'a>(&'a self, pid: &'a str, saved: Saved) -> BoxFuture<'a, Result<(), SessionError>> {
        self.save_now(pid, saved).boxed()
    }

    fn take<'a>(&'a self, pid: &'a str) -> BoxFuture<'a, Result<Option<Saved>, SessionError>> {
        self.take_now(pid).boxed()
    }

    fn outlives_process(&self) -> bool {
        true
    }
}
