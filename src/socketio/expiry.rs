//! Token expiry (JWT mode): a socket lives as long as its token.
//!
//! `auth.jwt.expiry_warning` before the token's `exp` the socket gets `token_expiring`
//! `{"exp"}`; it may then send `refresh` `{"token"}` with a new token for the same user, which
//! moves `exp` (and may change groups and workspaces). At `exp` without a refresh it gets
//! `session_invalid` `{"reason": "token_expired"}` and is disconnected.
//!
//! One timer wheel serves every socket of the node ([`ExpiryWheel`]: a task with a
//! [`DelayQueue`]), so a socket's expiry costs an entry in it, not a task and a channel of its
//! own (about 1.4 KB per idle connection when each socket had its own timer task).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures_util::StreamExt;
use socketioxide::extract::SocketRef;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::time::{DelayQueue, delay_queue};

use super::{
    events::{self, SessionInvalid, TokenExpiring},
    slow::SlowPolicy,
};

/// What comes due for a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Time to warn about this `exp`.
    Warn(u64),
    /// This `exp` has passed.
    Expired(u64),
}

/// A change to the wheel.
enum Command<T> {
    Watch { id: u64, target: T, exp: u64 },
    Extend { id: u64, exp: u64 },
    Stop { id: u64 },
}

/// One watched token.
struct Entry<T> {
    target: T,
    exp: u64,
    /// `exp` on tokio's clock, mapped when it was scheduled.
    expires: Instant,
    /// Whether the warning for `exp` was given (the next moment is then `exp` itself).
    warned: bool,
    key: delay_queue::Key,
}

/// The moments of many tokens, on tokio's clock: pure scheduling, no sockets, so it is tested
/// with a paused clock.
///
/// `exp` is wall-clock time; it is mapped to tokio's monotonic clock once, when it is scheduled
/// (so a wall-clock jump does not shift it, and a paused clock tests it).
struct Schedule<T> {
    warning: Duration,
    due: DelayQueue<u64>,
    entries: HashMap<u64, Entry<T>>,
}

/// The tokio instant of a wall-clock `exp` (in seconds), as seen now.
fn instant_of(exp: u64) -> Instant {
    let now_wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now = Instant::now();
    match Duration::from_secs(exp).checked_sub(now_wall) {
        Some(ahead) => now + ahead,
        None => now,
    }
}

impl<T> Schedule<T> {
    fn new(warning: Duration) -> Self {
        Self {
            warning,
            due: DelayQueue::new(),
            entries: HashMap::new(),
        }
    }

    /// When the warning for a token expiring at `expires` is due.
    fn warn_at(&self, expires: Instant) -> Instant {
        expires
            .checked_sub(self.warning)
            .map_or_else(Instant::now, |at| at.max(Instant::now()))
    }

    fn apply(&mut self, command: Command<T>) {
        match command {
            Command::Watch { id, target, exp } => {
                let expires = instant_of(exp);
                let key = self.due.insert_at(id, self.warn_at(expires));
                let entry = Entry {
                    target,
                    exp,
                    expires,
                    warned: false,
                    key,
                };
                if let Some(old) = self.entries.insert(id, entry) {
                    self.due.remove(&old.key);
                }
            }
            Command::Extend { id, exp } => {
                let expires = instant_of(exp);
                let at = self.warn_at(expires);
                if let Some(entry) = self.entries.get_mut(&id) {
                    entry.exp = exp;
                    entry.expires = expires;
                    entry.warned = false;
                    self.due.reset_at(&entry.key, at);
                }
            }
            Command::Stop { id } => {
                if let Some(entry) = self.entries.remove(&id) {
                    self.due.remove(&entry.key);
                }
            }
        }
    }

    /// Takes what came due: the warning (the token stays watched until its `exp`) or the
    /// expiry (the token is forgotten).
    fn came_due(&mut self, id: u64) -> Option<(T, Due)>
    where
        T: Clone,
    {
        let entry = self.entries.get_mut(&id)?;
        if entry.warned {
            let entry = self.entries.remove(&id)?;
            return Some((entry.target, Due::Expired(entry.exp)));
        }
        entry.warned = true;
        entry.key = self.due.insert_at(id, entry.expires);
        Some((entry.target.clone(), Due::Warn(entry.exp)))
    }

    /// The next moment that comes due; pending while nothing is watched.
    async fn next(&mut self) -> Option<(T, Due)>
    where
        T: Clone,
    {
        loop {
            if self.due.is_empty() {
                return std::future::pending().await;
            }
            let id = self.due.next().await?.into_inner();
            if let Some(due) = self.came_due(id) {
                return Some(due);
            }
        }
    }
}

/// The node's expiry timers: cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct ExpiryWheel {
    commands: mpsc::UnboundedSender<Command<SocketRef>>,
    ids: Arc<AtomicU64>,
}

impl<T> std::fmt::Debug for Command<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Watch { id, exp, .. } => write!(f, "Watch({id}, {exp})"),
            Self::Extend { id, exp } => write!(f, "Extend({id}, {exp})"),
            Self::Stop { id } => write!(f, "Stop({id})"),
        }
    }
}

/// A socket's place on the wheel, kept in its extensions: moves `exp`, stops the timer.
#[derive(Debug)]
pub(crate) struct ExpiryHandle {
    id: u64,
    commands: mpsc::UnboundedSender<Command<SocketRef>>,
}

impl ExpiryHandle {
    /// Moves the expiry (after a successful `refresh`).
    pub(crate) fn extend(&self, exp: u64) {
        let _ = self.commands.send(Command::Extend { id: self.id, exp });
    }

    /// Stops the timer (the socket disconnected).
    pub(crate) fn stop(&self) {
        let _ = self.commands.send(Command::Stop { id: self.id });
    }
}

impl ExpiryWheel {
    /// Starts the wheel's task: it warns `warning` before each `exp`, then ends the session;
    /// it stops once every handle to it is gone.
    pub(crate) fn start(warning: Duration, slow: SlowPolicy) -> Self {
        let (commands, mut received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut schedule = Schedule::new(warning);
            loop {
                tokio::select! {
                    command = received.recv() => match command {
                        Some(command) => schedule.apply(command),
                        None => return,
                    },
                    Some((socket, due)) = schedule.next() => fire(&socket, due, &slow),
                }
            }
        });
        Self {
            commands,
            ids: Arc::default(),
        }
    }

    /// Watches a socket whose token expires at `exp` until its handle is stopped.
    pub(crate) fn watch(&self, socket: SocketRef, exp: u64) -> ExpiryHandle {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let _ = self.commands.send(Command::Watch {
            id,
            target: socket,
            exp,
        });
        ExpiryHandle {
            id,
            commands: self.commands.clone(),
        }
    }
}

/// Tells a socket what came due.
fn fire(socket: &SocketRef, due: Due, slow: &SlowPolicy) {
    if !socket.connected() {
        return;
    }
    match due {
        Due::Warn(exp) => {
            slow.emit(socket, events::TOKEN_EXPIRING, &TokenExpiring { exp });
        }
        Due::Expired(_) => {
            tracing::debug!(sid = %socket.id, "token expired");
            let reason = "token_expired";
            if slow.emit(socket, events::SESSION_INVALID, &SessionInvalid { reason }) {
                slow.disconnect(socket);
            }
        }
    }
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

    fn watch(schedule: &mut Schedule<&'static str>, id: u64, target: &'static str, exp: u64) {
        schedule.apply(Command::Watch { id, target, exp });
    }

    #[tokio::test(start_paused = true)]
    async fn warns_then_expires_on_time() {
        let exp = now_secs() + 100;
        let mut schedule = Schedule::new(Duration::from_secs(60));
        watch(&mut schedule, 1, "a", exp);
        let start = Instant::now();
        assert_eq!(schedule.next().await, Some(("a", Due::Warn(exp))));
        let warned = start.elapsed();
        assert!(
            (39..=40).contains(&warned.as_secs()),
            "warned after {warned:?}"
        );
        assert_eq!(schedule.next().await, Some(("a", Due::Expired(exp))));
        let expired = start.elapsed();
        assert!(
            (99..=100).contains(&expired.as_secs()),
            "expired after {expired:?}"
        );
        assert!(schedule.entries.is_empty(), "an expired token is forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_moves_both_moments() {
        let exp = now_secs() + 100;
        let mut schedule = Schedule::new(Duration::from_secs(60));
        watch(&mut schedule, 1, "a", exp);
        assert_eq!(schedule.next().await, Some(("a", Due::Warn(exp))));
        // The new token's exp is mapped to tokio's clock at the refresh.
        let refreshed = Instant::now();
        let renewed = now_secs() + 3700;
        schedule.apply(Command::Extend {
            id: 1,
            exp: renewed,
        });
        assert_eq!(schedule.next().await, Some(("a", Due::Warn(renewed))));
        let warned = refreshed.elapsed().as_secs();
        assert!(
            (3639..=3640).contains(&warned),
            "second warning {warned}s after the refresh"
        );
        assert_eq!(schedule.next().await, Some(("a", Due::Expired(renewed))));
        let expired = refreshed.elapsed().as_secs();
        assert!(
            (3699..=3700).contains(&expired),
            "expired {expired}s after the refresh"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_inside_the_window_is_warned_at_once() {
        let exp = now_secs() + 10;
        let mut schedule = Schedule::new(Duration::from_secs(60));
        watch(&mut schedule, 1, "a", exp);
        let start = Instant::now();
        assert_eq!(schedule.next().await, Some(("a", Due::Warn(exp))));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn many_tokens_come_due_in_their_own_order_and_a_stopped_one_never() {
        let now = now_secs();
        let mut schedule = Schedule::new(Duration::from_secs(10));
        watch(&mut schedule, 1, "late", now + 300);
        watch(&mut schedule, 2, "stopped", now + 100);
        watch(&mut schedule, 3, "early", now + 200);
        schedule.apply(Command::Stop { id: 2 });
        let mut seen = Vec::new();
        while let Ok(Some(due)) =
            tokio::time::timeout(Duration::from_secs(1000), schedule.next()).await
        {
            seen.push(due);
        }
        assert_eq!(
            seen,
            [
                ("early", Due::Warn(now + 200)),
                ("early", Due::Expired(now + 200)),
                ("late", Due::Warn(now + 300)),
                ("late", Due::Expired(now + 300)),
            ]
        );
        assert!(schedule.entries.is_empty() && schedule.due.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_wheel_waits() {
        let mut schedule: Schedule<&str> = Schedule::new(Duration::from_secs(60));
        let waited = tokio::time::timeout(Duration::from_secs(3600), schedule.next()).await;
        assert!(waited.is_err(), "an empty wheel gave {waited:?}");
    }
}
