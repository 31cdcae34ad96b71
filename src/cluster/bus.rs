//! The bus reader: every node reads the shared stream `<prefix>:bus` in order and delivers each
//! event to its own sockets. Entry ids are the events' numbers, so the reader knows exactly
//! where it is: after a Redis outage it resumes from the last number it delivered, and logs
//! that it is back; events trimmed from the stream meanwhile are reported as lost for this node.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use redis::{
    AsyncCommands,
    streams::{StreamReadOptions, StreamReadReply},
};
use tokio_util::sync::CancellationToken;

use super::{Redis, link::Link, wire};
use crate::{
    history::{Appended, Epoch, HistoryError, Position},
    pipeline::Deliverer,
};

/// How long one read waits for new events.
const BLOCK: Duration = Duration::from_millis(1000);
/// Most events read at once.
const BATCH: usize = 512;
/// Starts the reader; it stops with `shutdown`. Each time it loses Redis it counts `outages`.
pub(crate) fn spawn(
    redis: &Redis,
    deliverer: Deliverer,
    outages: Counter,
    shutdown: CancellationToken,
) {
    let redis = redis.clone();
    let key = format!("{}:bus", redis.prefix);
    let seq_key = format!("{}:seq", redis.prefix);
    let generation_key = format!("{}:generation", redis.prefix);
    tokio::spawn(async move {
        let Ok(mut link) = Link::open(
            &redis,
            BLOCK * 3,
            "cluster bus",
            "delivering local events only until it is back",
            "delivery across nodes restored",
        ) else {
            tracing::error!("cluster bus: no Redis connection could be made");
            return;
        };
        let mut last: Option<u64> = None;
        // The life of the cluster's data (see the append script): another one means Redis lost
        // its data (a restart without persistence) and numbering started again.
        let mut generation: Option<String> = None;
        // Set when Redis failed: whether it lost its data is checked before the next read.
        let mut recheck = false;
        loop {
            if !link.ready(&shutdown).await {
                return;
            }
            let connection = &mut link.connection;
            let read = async {
                let from = match last {
                    Some(at) if recheck || generation.is_none() => {
                        let now: Option<String> = connection.get(&generation_key).await?;
                        match (&generation, now) {
                            (Some(known), now) if now.as_ref() != Some(known) => {
                                // Everything in the new stream came after the loss: none of it
                                // was delivered here.
                                tracing::warn!(
                                    was = at,
                                    "cluster bus: Redis lost its data; numbering restarts, epochs are new"
                                );
                                deliverer.start_at(0).await;
                                generation = now;
                                last = Some(0);
                                0
                            }
                            (None, now) => {
                                generation = now;
                                at
                            }
                            _ => at,
                        }
                    }
                    Some(at) => at,
                    None => {
                        // Start at the cluster's present: what came before went to sockets
                        // that were not here.
                        generation = connection.get(&generation_key).await?;
                        let seq: Option<u64> = connection.get(&seq_key).await?;
                        let seq = seq.unwrap_or(0);
                        deliverer.start_at(seq).await;
                        last = Some(seq);
                        seq
                    }
                };
                let options = StreamReadOptions::default()
                    .block(usize::try_from(BLOCK.as_millis()).unwrap_or(1000))
                    .count(BATCH);
                let reply: Option<StreamReadReply> = connection
                    .xread_options(&[&key], &[format!("{from}-0")], &options)
                    .await?;
                Ok::<_, redis::RedisError>(reply)
            };
            let reply = tokio::select! {
                () = shutdown.cancelled() => return,
                reply = read => reply,
            };
            match reply {
                Ok(reply) => {
                    recheck = false;
                    for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                        let at = last.unwrap_or(0);
                        match deliver(&deliverer, &entry, at).await {
                            Ok(seq) => last = Some(seq),
                            Err(error) => {
                                tracing::error!(id = %entry.id, %error, "cluster bus: entry skipped");
                                if let Ok(seq) = wire::id_number(&entry.id) {
                                    last = Some(seq);
                                }
                            }
                        }
                    }
                }
                Err(error) => {
                    recheck = true;
                    let Some(began) = link.failed(&error, &shutdown).await else {
                        return;
                    };
                    if began {
                        outages.inc();
                    }
                }
            }
        }
    });
}

/// Delivers one bus entry locally; returns its number.
async fn deliver(
    deliverer: &Deliverer,
    entry: &redis::streams::StreamId,
    last: u64,
) -> Result<u64, HistoryError> {
    let seq = wire::id_number(&entry.id)?;
    if seq > last + 1 {
        tracing::error!(
            lost = seq - last - 1,
            "cluster bus: events were trimmed before this node read them; its sockets miss them (raise cluster.bus_size)"
        );
    }
    let body: String = entry
        .get("e")
        .ok_or_else(|| wire::corrupt("bus entry without e"))?;
    let positions: String = entry.get("p").unwrap_or_default();
    let positions = positions
        .split_whitespace()
        .map(|pair| {
            let (offset, epoch) = pair
                .split_once(':')
                .ok_or_else(|| wire::corrupt("position"))?;
            Ok(Position {
                offset: offset.parse().map_err(|_| wire::corrupt("offset"))?,
                epoch: Epoch::parse(epoch).ok_or_else(|| wire::corrupt("epoch"))?,
            })
        })
        .collect::<Result<Vec<_>, HistoryError>>()?;
    let stamped = wire::decode(&body)?.into_stamped();
    deliverer
        .deliver_appended(stamped, Appended { seq, positions })
        .await;
    Ok(seq)
}
