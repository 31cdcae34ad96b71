//! Publishes made with the npm `@socket.io/redis-emitter` (`cluster.emitter_key`): decoded by
//! [`super::emitter`], turned into ordinary publications (validated like any publish, given
//! offsets), and handed to the pipeline.
//!
//! The emitter PUBLISHes on Redis pub/sub, which every node would receive: one node at a time
//! (the holder of the `<prefix>:emitter-leader` lease, renewed every 2 s) takes them in,
//! so each emit becomes one event, delivered on every node through the bus. When Redis is lost,
//! the node tries again every 200 ms, and logs once that Redis is back. Pub/sub keeps
//! nothing: emits made while no node is subscribed (a failover, a Redis outage) are lost, as
//! they are with the npm adapter.

use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::{
    Redis,
    emitter::{self, EmitterMessage},
};
use crate::{
    event::{self, Publication, RoomError, Targets},
    pipeline::Publisher,
};

/// How long the lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(6);
/// How often the holder renews it (and the others try to take it).
const RENEW: Duration = Duration::from_secs(2);
/// Pause before trying again when Redis failed: short, so that emits are taken in again
/// within a second of Redis coming back.
const RETRY: Duration = Duration::from_millis(200);

/// Why an emit is not delivered.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("no room named: herald delivers to workspace:, user: or group: rooms only")]
    NoRoom,
    #[error(transparent)]
    Room(#[from] RoomError),
    #[error("`except` is not supported")]
    Except,
    #[error("{0} arguments: a herald event carries one data argument")]
    Arguments(usize),
    #[error("{0}")]
    Invalid(String),
}

/// Who holds the lease, as far as this node can tell.
enum Lease {
    /// This node: it takes the emits in.
    Held,
    /// Another node.
    Elsewhere,
    /// Redis did not answer.
    Unreachable(redis::RedisError),
}

/// Whether Redis was lost, so that its loss and its return are each logged once.
#[derive(Default)]
struct Outage {
    down: bool,
}

impl Outage {
    fn lost(&mut self, error: &redis::RedisError) {
        if !self.down {
            tracing::warn!(%error, "redis-emitter: Redis unreachable; emits are not taken in until it is back");
            self.down = true;
        }
    }

    fn back(&mut self, what: &str) {
        if self.down {
            tracing::info!("redis-emitter: Redis is back; {what}");
            self.down = false;
        }
    }
}

/// Takes in the emitter's publishes while this node holds the lease, until `shutdown`.
pub(crate) fn spawn(
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
        let mut outage = Outage::default();
        let mut pause = Duration::ZERO;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            match hold_lease(&redis, &lease, &node_id).await {
                Lease::Held => {}
                Lease::Elsewhere => {
                    outage.back("another node takes in redis-emitter publishes");
                    pause = RENEW;
                    continue;
                }
                Lease::Unreachable(error) => {
                    outage.lost(&error);
                    pause = RETRY;
                    continue;
                }
            }
            let messages = match subscribe(&redis, &key, &namespace).await {
                Ok(messages) => messages,
                Err(error) => {
                    outage.lost(&error);
                    pause = RETRY;
                    continue;
                }
            };
            if outage.down {
                outage.back("taking in redis-emitter publishes on this node again");
            } else {
                tracing::info!(%key, %namespace, "taking in redis-emitter publishes on this node");
            }
            let taking = take_in(messages, &key, max_targets, &publisher);
            let renewing = keep_lease(&redis, &lease, &node_id);
            pause = tokio::select! {
                () = shutdown.cancelled() => return,
                () = taking => {
                    tracing::warn!("redis-emitter: subscription lost; subscribing again");
                    outage.down = true;
                    RETRY
                }
                lost = renewing => match lost {
                    Lease::Unreachable(error) => {
                        outage.lost(&error);
                        RETRY
                    }
                    _ => {
                        tracing::warn!("redis-emitter: lease lost; another node takes over");
                        RENEW
                    }
                },
            };
        }
    });
}

/// Takes or renews the lease.
async fn hold_lease(redis: &Redis, lease: &str, node_id: &str) -> Lease {
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
    match taken {
        Ok(Some(_)) => return Lease::Held,
        Ok(None) => {}
        Err(error) => return Lease::Unreachable(error),
    }
    let holder: Option<String> = match commands.get(lease).await {
        Ok(holder) => holder,
        Err(error) => return Lease::Unreachable(error),
    };
    if holder.as_deref() != Some(node_id) {
        return Lease::Elsewhere;
    }
    match commands
        .pexpire::<_, bool>(lease, i64::try_from(ms).unwrap_or(i64::MAX))
        .await
    {
        Ok(true) => Lease::Held,
        Ok(false) => Lease::Elsewhere,
        Err(error) => Lease::Unreachable(error),
    }
}

/// Renews the lease every [`RENEW`]; returns why it is no longer held.
async fn keep_lease(redis: &Redis, lease: &str, node_id: &str) -> Lease {
    loop {
        tokio::time::sleep(RENEW).await;
        match hold_lease(redis, lease, node_id).await {
            Lease::Held => {}
            lost => return lost,
        }
    }
}

/// A subscription to the emitter's channels of `namespace`.
async fn subscribe(
    redis: &Redis,
    key: &str,
    namespace: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = redis.pubsub().await?;
    for pattern in emitter::subscription_patterns(key, namespace) {
        pubsub.psubscribe(&pattern).await?;
    }
    Ok(pubsub)
}

/// Publishes what arrives; returns when the subscription ends (Redis lost).
async fn take_in(pubsub: redis::aio::PubSub, key: &str, max_targets: usize, publisher: &Publisher) {
    let mut messages = pubsub.into_on_message();
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
    let data = match emit.args_json.as_slice() {
        [] => event::null_data(),
        [data] => data.clone(),
        more => return Err(Refused::Arguments(more.len())),
    };
    let targets = Targets::from_rooms(emit.rooms.iter().map(String::as_str))?;
    if targets.groups.len() > 1 {
        return Err(Refused::Invalid(
            "one group per publish: emit to each group separately".into(),
        ));
    }
    Publication::new(emit.event.clone(), data, targets, None, max_targets)
        .map_err(|e| Refused::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::{
        cluster::emitter::EmitterFlags,
        ids::{GroupPath, UserId, WorkspaceId},
    };

    fn emit(rooms: &[&str], args: &[&str]) -> EmitterMessage {
        EmitterMessage {
            uid: "emitter".into(),
            namespace: "/public".into(),
            rooms: rooms.iter().map(|room| (*room).to_owned()).collect(),
            except: Vec::new(),
            event: "file.renamed".into(),
            args_json: args
                .iter()
                .map(|arg| RawValue::from_string((*arg).to_owned()).unwrap())
                .collect(),
            flags: EmitterFlags::default(),
        }
    }

    #[test]
    fn rooms_become_targets_each_once_and_data_is_kept_byte_for_byte() {
        let rooms = [
            "workspace:w1",
            "user:u",
            "workspace:w2",
            "workspace:w1",
            "group:/g",
        ];
        let publication = to_publication(&emit(&rooms, &[r#"{"a":1.50}"#]), 10).unwrap();
        let targets = &publication.targets;
        let workspaces: Vec<&str> = targets.workspaces.iter().map(WorkspaceId::as_str).collect();
        assert_eq!(workspaces, ["w1", "w2"]);
        assert_eq!(targets.users, [UserId::parse("u").unwrap()]);
        assert_eq!(targets.groups, [GroupPath::parse("/g").unwrap()]);
        assert_eq!(publication.data.get(), r#"{"a":1.50}"#);
        assert_eq!(publication.event, "file.renamed");
        assert_eq!(publication.coalesce_key, None);
    }

    #[test]
    fn no_argument_is_null_data() {
        let publication = to_publication(&emit(&["user:u"], &[]), 10).unwrap();
        assert_eq!(publication.data.get(), "null");
    }

    #[test]
    fn what_herald_cannot_deliver_is_refused_with_its_reason() {
        let refused = |emit: EmitterMessage| to_publication(&emit, 2).unwrap_err().to_string();
        assert!(refused(emit(&[], &[])).starts_with("no room named"));
        assert!(refused(emit(&["room1"], &[])).contains("\"room1\" is not a workspace:"));
        assert!(refused(emit(&["user:u"], &["1", "2"])).starts_with("2 arguments"));
        assert!(refused(emit(&["group:/a", "group:/b"], &[])).starts_with("one group per publish"));
        assert_eq!(
            refused(emit(&["workspace:"], &[])),
            "room \"workspace:\": the id must not be empty"
        );
        let three = ["user:a", "user:b", "user:c"];
        assert_eq!(refused(emit(&three, &[])), "at most 2 targets per publish");
        let mut except = emit(&["user:u"], &[]);
        except.except.push("user:v".into());
        assert_eq!(refused(except), "`except` is not supported");
        let mut reserved = emit(&["user:u"], &[]);
        reserved.event = "connect".into();
        assert!(refused(reserved).contains("reserved"));
    }
}
