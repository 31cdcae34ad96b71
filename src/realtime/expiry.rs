//! Token expiry (JWT mode): a socket lives as long as its token.
//!
//! `auth.jwt.expiry_warning` before the token's `exp` the socket gets `token_expiring`
//! `{"exp"}`; it may then send `refresh` `{"token"}` with a new token for the same user, which
//! moves `exp` (and may change groups and workspaces). At `exp` without a refresh it gets
//! `session_invalid` `{"reason": "token_expired"}` and is disconnected. Each socket has one
//! small timer task, stopped when the socket disconnects.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use socketioxide::extract::SocketRef;
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    events::{self, SessionInvalid, TokenExpiring},
    slow::SlowPolicy,
};

/// Per-socket handle, kept in the socket's extensions: moves `exp`, stops the timer.
#[derive(Debug)]
pub(crate) struct ExpiryHandle {
    exp: watch::Sender<u64>,
    stop: CancellationToken,
}

impl ExpiryHandle {
    /// Moves the expiry (after a successful `refresh`).
    pub(crate) fn extend(&self, exp: u64) {
        self.exp.send_replace(exp);
    }

    /// Stops the timer (the socket disconnected).
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}

/// What comes due next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Time to warn about this `exp`.
    Warn(u64),
    /// This `exp` has passed.
    Expired(u64),
}

/// Turns a changing `exp` into a sequence of [`Due`] moments on tokio's clock.
///
/// `exp` is wall-clock time; it is mapped to tokio's monotonic clock once, at creation, so
/// the schedule can be tested with a paused clock (and a wall-clock jump does not shift it).
#[derive(Debug)]
pub(crate) struct ExpiryClock {
    exp: watch::Receiver<u64>,
    warning: Duration,
    warned_for: Option<u64>,
    anchor_instant: Instant,
    anchor_wall: Duration,
}

impl ExpiryClock {
    pub(crate) fn new(exp: watch::Receiver<u64>, warning: Duration) -> Self {
        Self {
            exp,
            warning,
            warned_for: None,
            anchor_instant: Instant::now(),
            anchor_wall: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    fn instant_of(&self, exp: u64) -> Instant {
        let exp = Duration::from_secs(exp);
        match exp.checked_sub(self.anchor_wall) {
            Some(ahead) => self.anchor_instant + ahead,
            None => self.anchor_instant,
        }
    }

    /// Waits for the next due moment, following changes of `exp`; `None` once the handle is
    /// gone.
    pub(crate) async fn next(&mut self) -> Option<Due> {
        loop {
            let exp = *self.exp.borrow_and_update();
            let expires = self.instant_of(exp);
            let (at, due) = if self.warned_for == Some(exp) {
                (expires, Due::Expired(exp))
            } else {
                let warn = expires
                    .checked_sub(self.warning)
                    .unwrap_or(self.anchor_instant);
                (warn, Due::Warn(exp))
            };
            tokio::select! {
                () = tokio::time::sleep_until(at) => {
                    if let Due::Warn(exp) = due {
                        self.warned_for = Some(exp);
                    }
                    return Some(due);
                }
                changed = self.exp.changed() => {
                    changed.ok()?;
                }
            }
        }
    }
}

/// Starts the expiry timer of a socket whose token expires at `exp`.
pub(crate) fn watch(
    socket: SocketRef,
    exp: u64,
    warning: Duration,
    slow: SlowPolicy,
) -> ExpiryHandle {
    let (tx, rx) = watch::channel(exp);
    let stop = CancellationToken::new();
    let handle = ExpiryHandle {
        exp: tx,
        stop: stop.clone(),
    };
    tokio::spawn(async move {
        let mut clock = ExpiryClock::new(rx, warning);
        loop {
            let due = tokio::select! {
                () = stop.cancelled() => return,
                due = clock.next() => due,
            };
            match due {
                Some(Due::Warn(exp)) => {
                    slow.emit(&socket, events::TOKEN_EXPIRING, &TokenExpiring { exp });
                }
                Some(Due::Expired(_)) => {
                    tracing::debug!(sid = %socket.id, "token expired");
                    let reason = "token_expired";
                    if slow.emit(&socket, events::SESSION_INVALID, &SessionInvalid { reason }) {
                        slow.disconnect(&socket);
                    }
                    return;
                }
                None => return,
            }
        }
    });
    handle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_secs() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[tokio::test(start_paused = true)]
    async fn warns_then_expires_on_time() {
        let exp = now_secs() + 100;
        let (_tx, rx) = watch::channel(exp);
        let mut clock = ExpiryClock::new(rx, Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(clock.next().await, Some(Due::Warn(exp)));
        let warned = start.elapsed();
        assert!(
            (39..=40).contains(&warned.as_secs()),
            "warned after {warned:?}"
        );
        assert_eq!(clock.next().await, Some(Due::Expired(exp)));
        let expired = start.elapsed();
        assert!(
            (99..=100).contains(&expired.as_secs()),
            "expired after {expired:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_moves_both_moments() {
        let exp = now_secs() + 100;
        let (tx, rx) = watch::channel(exp);
        let mut clock = ExpiryClock::new(rx, Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(clock.next().await, Some(Due::Warn(exp)));
        tx.send_replace(exp + 3600);
        assert_eq!(clock.next().await, Some(Due::Warn(exp + 3600)));
        let warned = start.elapsed().as_secs();
        assert!(
            (3639..=3640).contains(&warned),
            "second warning after {warned}s"
        );
        assert_eq!(clock.next().await, Some(Due::Expired(exp + 3600)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_inside_the_window_is_warned_at_once() {
        let exp = now_secs() + 10;
        let (_tx, rx) = watch::channel(exp);
        let mut clock = ExpiryClock::new(rx, Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(clock.next().await, Some(Due::Warn(exp)));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn ends_when_the_handle_is_dropped() {
        let (tx, rx) = watch::channel(now_secs() + 1000);
        let mut clock = ExpiryClock::new(rx, Duration::from_secs(60));
        drop(tx);
        assert_eq!(clock.next().await, None);
    }
}
