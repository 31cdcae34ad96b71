//! Publishes made with the npm `@socket.io/redis-emitter` (`cluster.emitter_key`): decoded by
//! [`super::emitter`], turned into ordinary publications (validated like any publish, given
//! offsets), and handed to the pipeline.
//!
//! The emitter PUBLISHes on Redis pub/sub, which every node would receive: one node at a time
//! (the holder of the `<prefix>:emitter-leader` lease, renewed every 2 s) takes them in,
//! so each emit becomes one event, delivered on every node through the bus. Pub/sub keeps
//! nothing: emits made while no node is subscribed (a failover, a Redis outage) are lost, as
//! they are with the npm adapter.

use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::{
    Redis,
    emitter::{self, EmitterMessage},
};
use crate::{
    pipeline::{Publication, Publisher},
    realtime::rooms,
};

/// How long the lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(6);
/// How often the holder renews it (and the others try to take it).
const RENEW: Duration = Duration::from_secs(2);

/// Why an emit is not delivered.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("no room named: herald delivers to workspace:, user: or group: rooms only")]
    NoRoom,
    #[error("room {0:?} is not a workspace:, user: or group: room")]
    UnknownRoom(String),
    #[error("`except` is not supported")]
    Except,
    #[error("{0} arguments: a herald event carries one data argument")]
    Arguments(usize),
    #[error("{0}")]
    Invalid(String),
}

/// Takes in the emitter's publishes while this node holds the lease, until `shutdown`.
pub fn spawn(
    redis: &Redis,
    node_id: String,
    key: String,
    namespace: String,
    max_targets: usize,
    publisher: Publisher,
    shutdown: CancellationToken,
) {
    let redis = redis.clone();
    tokio::spawn(async move {
        let lease = format!("{}:emitter-leader", redis.prefix);
        let mut tick = tokio::time::interval(RENEW);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !hold_lease(&redis, &lease, &node_id).await {
                continue;
            }
            tracing::info!(%key, %namespace, "taking in redis-emitter publishes on this node");
            let taking = take_in(&redis, &key, &namespace, max_targets, &publisher);
            let renewing = keep_lease(&redis, &lease, &node_id);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = taking => tracing::warn!("redis-emitter subscription ended; trying again"),
                () = renewing => tracing::warn!("redis-emitter lease lost; another node takes over"),
            }
        }
    });
}

/// Takes or renews the lease; whether this node holds it.
async fn hold_lease(redis: &Redis, lease: &str, node_id: &str) -> bool {
    let mut commands = redis.commands.clone();
    let ms = u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX);
    let taken: redis::RedisResult<Option<String>> = redis::cmd("SET")
        .arg(lease)
        .arg(node_id)
        .arg("NX")
        .arg("PX")
        .arg(ms)
        .query_async(&mut commands)
        .await;
    if matches!(taken, Ok(Some(_))) {
        return true;
    }
    let holder: redis::RedisResult<Option<String>> = commands.get(lease).await;
    if holder.ok().flatten().as_deref() != Some(node_id) {
        return false;
    }
    let renewed: redis::RedisResult<bool> = commands
        .pexpire(lease, i64::try_from(ms).unwrap_or(i64::MAX))
        .await;
    renewed.unwrap_or(false)
}

/// Renews the lease every [`RENEW`]; returns when it is lost.
async fn keep_lease(redis: &Redis, lease: &str, node_id: &str) {
    loop {
        tokio::time::sleep(RENEW).await;
        if !hold_lease(redis, lease, node_id).await {
            return;
        }
    }
}

/// Subscribes and publishes what arrives; returns when the subscription ends.
async fn take_in(
    redis: &Redis,
    key: &str,
    namespace: &str,
    max_targets: usize,
    publisher: &Publisher,
) {
    let mut pubsub = match redis.client.get_async_pubsub().await {
        Ok(pubsub) => pubsub,
        Err(error) => {
            tracing::warn!(%error, "redis-emitter: no subscription connection");
            return;
        }
    };
    for pattern in emitter::subscription_patterns(key, namespace) {
        if let Err(error) = pubsub.psubscribe(&pattern).await {
            tracing::warn!(%error, %pattern, "redis-emitter: subscription refused");
            return;
        }
    }
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let channel = message.get_channel_name().as_bytes().to_vec();
        let decoded = emitter::decode(&channel, message.get_payload_bytes(), key);
        let publication = decoded
            .map_err(|error| Refused::Invalid(error.to_string()))
            .and_then(|emit| to_publication(&emit, max_targets));
        match publication {
            Ok(publication) => {
                if let Err(error) = publisher.publish(publication).await {
                    tracing::warn!(%error, "redis-emitter publish not accepted");
                }
            }
            Err(error) => tracing::warn!(%error, "redis-emitter publish refused"),
        }
    }
}

/// An emit as a herald publication: rooms must be herald's, one data argument at most.
fn to_publication(emit: &EmitterMessage, max_targets: usize) -> Result<Publication, Refused> {
    if !emit.except.is_empty() {
        return Err(Refused::Except);
    }
    if emit.rooms.is_empty() {
        return Err(Refused::NoRoom);
    }
    let data: &RawValue = match emit.args_json.as_slice() {
        [] => serde_json::from_str("null").map_err(|e| Refused::Invalid(e.to_string()))?,
        [data] => data,
        more => return Err(Refused::Arguments(more.len())),
    };
    let (mut workspaces, mut users, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    for room in &emit.rooms {
        if let Some(id) = room.strip_prefix(rooms::WORKSPACE_PREFIX) {
            workspaces.push(id);
        } else if let Some(id) = room.strip_prefix(rooms::USER_PREFIX) {
            users.push(id);
        } else if let Some(path) = room.strip_prefix(rooms::GROUP_PREFIX) {
            groups.push(path);
        } else {
            return Err(Refused::UnknownRoom(room.chars().take(64).collect()));
        }
    }
    if groups.len() > 1 {
        return Err(Refused::Invalid(
            "one group per publish: emit to each group separately".into(),
        ));
    }
    let request = serde_json::json!({
        "event": emit.event,
        "data": data,
        "workspaces": workspaces,
        "users": users,
        "group": groups.first(),
    });
    Publication::parse(&request.to_string(), max_targets)
        .map_err(|e| Refused::Invalid(e.to_string()))
}
