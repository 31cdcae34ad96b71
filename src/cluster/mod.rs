//! Cluster mode (`cluster.redis_url`): several herald nodes behind one load balancer, joined by
//! Redis.
//!
//! herald emits socket by socket (slow consumers, per-socket meta, the replay seam), so the
//! nodes do not share Socket.IO broadcasts: they share the event log. A publish accepted by any
//! node is appended to Redis Streams (`log`), which numbers it cluster-wide and gives it its
//! offsets; every node reads the shared stream in order (`bus`) and delivers to its own
//! sockets. Offsets and epochs live in Redis, so a client may resume on any node and epochs
//! survive restarts. Socket.IO recovery sessions live in Redis too (`sessions`), so a client
//! recovers on any node. Nodes announce themselves with a heartbeat (`nodes`). Backends using
//! the npm `@socket.io/redis-emitter` are understood too ([`emitter`]). What each node applies
//! to its own sockets (`disconnect_user`, access changes, chat notices) travels on a control
//! stream (`control`) that knows a command only by its kind and JSON body: the doors own the
//! commands and register their handlers.
//!
//! Redis is a single server or a Redis Cluster (`cluster.redis_mode`); `Commands` hides which,
//! and on a Redis Cluster every key carries the hash tag `{prefix}`, so all of herald's keys share
//! one slot (see `key_prefix`).

use std::time::Duration;

use crate::config::RedisMode;

pub(crate) mod bus;
pub(crate) mod commands;
pub(crate) mod control;
pub mod emitter;
pub(crate) mod ingest;
mod link;
pub(crate) mod log;
pub(crate) mod nodes;
pub(crate) mod sessions;
pub mod wire;

pub(crate) use commands::Commands;

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is not a Redis URL.
    #[error("cluster.redis_url is not a usable Redis URL: {0}")]
    Url(String),
}

/// Where Redis is: one server, or the seed nodes of a Redis Cluster.
#[derive(Clone)]
enum Topology {
    Standalone(redis::Client),
    Cluster {
        client: Box<redis::cluster::ClusterClient>,
        /// One client per seed node, for the emitter's pub/sub (which a Redis Cluster forwards
        /// to every node, so any node will do).
        seeds: Vec<redis::Client>,
    },
}

impl Topology {
    fn connection(&self, response_timeout: Duration) -> Result<Commands, ClusterError> {
        match self {
            Self::Standalone(client) => Commands::standalone(client, response_timeout),
            Self::Cluster { client, .. } => Ok(Commands::cluster(client, response_timeout)),
        }
    }
}

/// The Redis side of a node: where Redis is, and a shared connection for short commands.
#[derive(Clone)]
pub(crate) struct Redis {
    topology: Topology,
    /// Short commands: appends, reads, heartbeats. Reconnects by itself; fails fast while
    /// Redis is away.
    pub commands: Commands,
    /// Prefix of every key: `cluster.prefix`, or `{cluster.prefix}` on a Redis Cluster, a hash
    /// tag that puts every key of herald's in one slot (appends touch the shared stream and
    /// the rooms' streams in one script, which a Redis Cluster runs on one slot only).
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
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_millis(1500);

/// The key prefix herald uses on Redis for `cluster.prefix`.
pub(crate) fn key_prefix(prefix: &str, mode: RedisMode) -> String {
    match mode {
        RedisMode::Standalone => prefix.to_owned(),
        RedisMode::Cluster => format!("{{{prefix}}}"),
    }
}

impl Redis {
    /// Opens (lazily) the node's Redis side: `url` is one server's URL, or a comma-separated
    /// list of seed nodes of a Redis Cluster.
    ///
    /// # Errors
    /// An unusable URL.
    pub(crate) fn open(url: &str, prefix: &str, mode: RedisMode) -> Result<Self, ClusterError> {
        let url_error = |e: redis::RedisError| ClusterError::Url(e.to_string());
        let topology = match mode {
            RedisMode::Standalone => {
                Topology::Standalone(redis::Client::open(url).map_err(url_error)?)
            }
            RedisMode::Cluster => {
                let urls: Vec<&str> = url
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .collect();
                let seeds = urls
                    .iter()
                    .map(|url| redis::Client::open(*url))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(url_error)?;
                if seeds.is_empty() {
                    return Err(ClusterError::Url("no seed node given".into()));
                }
                let client = redis::cluster::ClusterClientBuilder::new(urls)
                    .retries(2)
                    .min_retry_wait(50)
                    .max_retry_wait(250)
                    .overall_response_timeout(None)
                    .build()
                    .map_err(url_error)?;
                Topology::Cluster {
                    client: Box::new(client),
                    seeds,
                }
            }
        };
        Ok(Self {
            commands: topology.connection(COMMAND_TIMEOUT)?,
            topology,
            prefix: key_prefix(prefix, mode),
        })
    }

    /// A connection of its own (a reader blocking on it must not hold up others' commands)
    /// whose commands wait at most `response_timeout`.
    ///
    /// # Errors
    /// An unusable URL.
    pub(crate) fn connection(&self, response_timeout: Duration) -> Result<Commands, ClusterError> {
        self.topology.connection(response_timeout)
    }

    /// A pub/sub connection. On a Redis Cluster, the first seed node that answers: a cluster
    /// forwards every PUBLISH to all its nodes.
    ///
    /// # Errors
    /// No server answered.
    pub(crate) async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        match &self.topology {
            Topology::Standalone(client) => client.get_async_pubsub().await,
            Topology::Cluster { seeds, .. } => {
                let mut failure = redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "no seed node answered",
                ));
                for seed in seeds {
                    let attempt = seed.get_async_pubsub();
                    match tokio::time::timeout(commands::CONNECT_TIMEOUT, attempt).await {
                        Ok(Ok(pubsub)) => return Ok(pubsub),
                        Ok(Err(error)) => failure = error,
                        Err(_) => {}
                    }
                }
                Err(failure)
            }
        }
    }

    /// A cheap command answered by the server that holds herald's keys (on a Redis Cluster, the
    /// master of their slot: a PING would ask every master, and fail for one herald never uses).
    pub(crate) fn probe(&self) -> redis::Cmd {
        let mut probe = redis::cmd("EXISTS");
        probe.arg(format!("{}:seq", self.prefix));
        probe
    }

    /// Whether Redis answers for herald's keys now.
    pub(crate) async fn ping(&self) -> bool {
        let mut redis = self.commands.clone();
        let probe = self.probe();
        let answer = probe.query_async::<i64>(&mut redis);
        matches!(
            tokio::time::timeout(COMMAND_TIMEOUT, answer).await,
            Ok(Ok(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_redis_cluster_gets_one_hash_slot_for_every_key() {
        assert_eq!(key_prefix("herald", RedisMode::Standalone), "herald");
        assert_eq!(key_prefix("herald", RedisMode::Cluster), "{herald}");
        let redis = Redis::open("redis://127.0.0.1:1", "herald", RedisMode::Cluster).unwrap();
        assert_eq!(redis.prefix, "{herald}");
    }

    #[tokio::test]
    async fn seed_lists_are_checked() {
        let open = |url| Redis::open(url, "herald", RedisMode::Cluster);
        assert!(open("redis://127.0.0.1:7000, redis://127.0.0.1:7001").is_ok());
        for bad in ["", " , ", "redis://127.0.0.1:7000,http://x", "not a url"] {
            let error = open(bad).unwrap_err();
            assert!(
                error.to_string().starts_with("cluster.redis_url"),
                "{bad}: {error}"
            );
        }
    }
}
