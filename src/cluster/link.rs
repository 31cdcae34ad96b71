//! A stream reader's Redis connection through outages: the loss is logged once, Redis is asked
//! every 200 ms while it is away, and its return is logged when it happens (a probe before the
//! next blocking read, which could otherwise wait a whole block before saying anything).

use std::time::Duration;

use redis::RedisError;
use tokio_util::sync::CancellationToken;

use super::{ClusterError, Commands, Redis};

/// Pause before asking Redis again after a failure.
pub(super) const RETRY: Duration = Duration::from_millis(200);

/// One reader's connection, named in its log lines (`cluster bus`, `cluster control`).
pub(super) struct Link {
    /// The connection; its commands may fail while Redis is away.
    pub(super) connection: Commands,
    /// Asks whether Redis is back.
    probe: redis::Cmd,
    reader: &'static str,
    /// What the reader does without Redis, logged with the loss.
    meanwhile: &'static str,
    /// What comes back with Redis, logged with its return.
    restored: &'static str,
    down: bool,
}

impl Link {
    /// A lazy connection whose commands wait at most `response_timeout`.
    pub(super) fn open(
        redis: &Redis,
        response_timeout: Duration,
        reader: &'static str,
        meanwhile: &'static str,
        restored: &'static str,
    ) -> Result<Self, ClusterError> {
        Ok(Self {
            connection: redis.connection(response_timeout)?,
            probe: redis.probe(),
            reader,
            meanwhile,
            restored,
            down: false,
        })
    }

    /// Returns once Redis answers (at once unless it was lost), logging its return; `false`
    /// when `shutdown` came first.
    pub(super) async fn ready(&mut self, shutdown: &CancellationToken) -> bool {
        while self.down {
            let back = tokio::select! {
                () = shutdown.cancelled() => return false,
                back = self.probe.query_async::<()>(&mut self.connection) => back.is_ok(),
            };
            if back {
                tracing::info!("{}: Redis is back; {}", self.reader, self.restored);
                self.down = false;
            } else if !pause(shutdown).await {
                return false;
            }
        }
        true
    }

    /// Records a failed command, logging the first of an outage, then pauses before the next
    /// try. Returns whether this failure began an outage, and `None` when `shutdown` came.
    pub(super) async fn failed(
        &mut self,
        error: &RedisError,
        shutdown: &CancellationToken,
    ) -> Option<bool> {
        let began = !self.down;
        if began {
            tracing::warn!(%error, "{}: Redis unreachable; {}", self.reader, self.meanwhile);
            self.down = true;
        }
        pause(shutdown).await.then_some(began)
    }
}

/// Waits [`RETRY`]; `false` when `shutdown` came first.
async fn pause(shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(RETRY) => true,
    }
}
