//! Node heartbeats: each node writes `<prefix>:node:<id>` (its address and connection counts,
//! expiring) and its id in the sorted set `<prefix>:nodes` every [`BEAT`]; `/status` lists the
//! nodes seen within [`ALIVE`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Redis;

/// How often a node announces itself.
pub(crate) const BEAT: Duration = Duration::from_secs(2);
/// A node not heard of for this long is gone.
pub(crate) const ALIVE: Duration = Duration::from_secs(6);

/// What a node says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeInfo {
    /// The node's id (random per process).
    pub id: String,
    /// Its listen address.
    pub addr: String,
    /// Its `/public` connections.
    pub public: u64,
    /// Its `/private` connections.
    pub private: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Announces the node every [`BEAT`] until `shutdown`, then withdraws it. `describe` gives the
/// node's current figures.
pub(crate) fn spawn_heartbeat(
    redis: &Redis,
    describe: impl Fn() -> NodeInfo + Send + 'static,
    shutdown: CancellationToken,
) {
    let redis = redis.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(BEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let id = describe().id;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(error) = beat(&redis, &describe()).await {
                tracing::debug!(%error, "heartbeat not written");
            }
        }
        let mut commands = redis.commands.clone();
        let _: Result<(), _> = commands.zrem(format!("{}:nodes", redis.prefix), &id).await;
    });
}

async fn beat(redis: &Redis, info: &NodeInfo) -> redis::RedisResult<()> {
    let mut commands = redis.commands.clone();
    let now = now_ms();
    let alive_ms = u64::try_from(ALIVE.as_millis()).unwrap_or(u64::MAX);
    let json = serde_json::to_string(info).unwrap_or_default();
    redis::pipe()
        .set_ex(
            format!("{}:node:{}", redis.prefix, info.id),
            json,
            ALIVE.as_secs(),
        )
        .zadd(format!("{}:nodes", redis.prefix), &info.id, now)
        .zrembyscore(
            format!("{}:nodes", redis.prefix),
            0,
            now.saturating_sub(alive_ms),
        )
        .exec_async(&mut commands)
        .await
}

/// The nodes heard of within [`ALIVE`].
///
/// # Errors
/// Redis unreachable.
pub(crate) async fn live(redis: &Redis) -> redis::RedisResult<Vec<NodeInfo>> {
    let mut commands = redis.commands.clone();
    let since = now_ms().saturating_sub(u64::try_from(ALIVE.as_millis()).unwrap_or(u64::MAX));
    let ids: Vec<String> = commands
        .zrangebyscore(format!("{}:nodes", redis.prefix), since, "+inf")
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = ids
        .iter()
        .map(|id| format!("{}:node:{id}", redis.prefix))
        .collect();
    let infos: Vec<Option<String>> = commands.mget(keys).await?;
    Ok(infos
        .into_iter()
        .flatten()
        .filter_map(|json| serde_json::from_str(&json).ok())
        .collect())
}
