//! Cluster mode (`cluster.redis_url`): several herald nodes behind one load balancer, joined by
//! Redis.
//!
//! herald emits socket by socket (slow consumers, per-socket meta, the replay seam), so the
//! nodes do not share Socket.IO broadcasts: they share the event log. A publish accepted by any
//! node is appended to Redis Streams ([`log`]), which numbers it cluster-wide and gives it its
//! offsets; every node reads the shared stream in order ([`bus`]) and delivers to its own
//! sockets. Offsets and epochs live in Redis, so a client may resume on any node and epochs
//! survive restarts. Socket.IO recovery sessions live in Redis too ([`sessions`]), so a client
//! recovers on any node. Nodes announce themselves with a heartbeat ([`nodes`]). Backends using
//! the npm `@socket.io/redis-emitter` are understood too ([`emitter`]).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub mod bus;
pub mod control;
pub mod emitter;
pub mod ingest;
mod link;
pub mod log;
pub mod nodes;
pub mod sessions;
pub mod wire;

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is not a Redis URL.
    #[error("cluster.redis_url is not a usable Redis URL: {0}")]
    Url(String),
}

/// The Redis side of a node: a client and a shared connection for short commands.
#[derive(Clone)]
pub struct Redis {
    /// For connections of their own (the bus reader blocks on its connection).
    pub client: redis::Client,
    /// Short commands: appends, reads, heartbeats. Reconnects by itself; fails fast while
    /// Redis is away.
    pub commands: ConnectionManager,
    /// Prefix of every key.
    pub prefix: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// How long a command may take before it fails (Redis unreachable: fail fast, never hang).
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1500);

/// A lazily connecting manager: a node starts (and serves its own sockets) while Redis is away.
pub fn manager(
    client: &redis::Client,
    response_timeout: Duration,
) -> Result<ConnectionManager, ClusterError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(250));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|e| ClusterError::Url(e.to_string()))
}

impl Redis {
    /// Opens (lazily) the node's Redis side.
    ///
    /// # Errors
    /// An unusable URL.
    pub fn open(url: &str, prefix: &str) -> Result<Self, ClusterError> {
        let client = redis::Client::open(url).map_err(|e| ClusterError::Url(e.to_string()))?;
        Ok(Self {
            commands: manager(&client, COMMAND_TIMEOUT)?,
            client,
            prefix: prefix.to_owned(),
        })
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> bool {
        let mut redis = self.commands.clone();
        let ping = redis::cmd("PING");
        let answer = ping.query_async::<String>(&mut redis);
        matches!(
            tokio::time::timeout(COMMAND_TIMEOUT, answer).await,
            Ok(Ok(_))
        )
    }
}
