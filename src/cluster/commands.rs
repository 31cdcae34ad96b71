//! [`Commands`]: one connection type for herald's Redis commands, whether Redis is a single
//! server (`cluster.redis_mode = "standalone"`) or a Redis Cluster (`"cluster"`).
//!
//! Both kinds connect lazily (a node starts and serves its own sockets while Redis is away),
//! reconnect by themselves, and fail a command within its response timeout instead of hanging.
//! A Redis Cluster connection routes each command to the master of its key's slot, following
//! MOVED and ASK redirections and failovers.

use std::time::Duration;

use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClient, ClusterConfig},
    cluster_async::ClusterConnection,
};

use super::ClusterError;

/// How long a connection attempt may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A clonable, multiplexed connection for commands.
#[derive(Clone)]
pub(crate) enum Commands {
    /// A single Redis server.
    Standalone(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl Commands {
    /// A lazy connection to a single server whose commands wait at most `response_timeout`.
    ///
    /// # Errors
    /// The client's URL is unusable.
    pub(crate) fn standalone(
        client: &redis::Client,
        response_timeout: Duration,
    ) -> Result<Self, ClusterError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(250));
        ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map(Self::Standalone)
            .map_err(|e| ClusterError::Url(e.to_string()))
    }

    /// A lazy connection to a Redis Cluster whose commands wait at most `response_timeout`.
    pub(crate) fn cluster(client: &ClusterClient, response_timeout: Duration) -> Self {
        let config = ClusterConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(response_timeout);
        Self::Cluster(client.get_pending_async_connection_with_config(config))
    }
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}
