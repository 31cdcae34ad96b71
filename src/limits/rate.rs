//! [`Bucket`]: a token bucket per browser socket on the events it sends. An event takes a
//! token; tokens come back at `events_per_second` up to `events_burst`. An event without a token
//! is refused; a socket refused `disconnect_after` times in a row is one that does not slow
//! down (a client stuck in a loop, or a hostile one) and is disconnected.

use std::{sync::Mutex, time::Instant};

use crate::config::LimitsConfig;

/// What to do with one incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the rate: handle it.
    Pass,
    /// Over the rate: answer `rate_limited`.
    Refuse,
    /// Over the rate for too long: refuse and disconnect the socket (said once per socket
    /// and streak).
    Disconnect,
}

/// One socket's token bucket.
#[derive(Debug)]
pub(crate) struct Bucket {
    per_second: f64,
    burst: f64,
    disconnect_after: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    at: Instant,
    refused_in_a_row: u32,
}

impl Bucket {
    /// A full bucket, as `limits` configures it.
    pub(crate) fn new(limits: &LimitsConfig, now: Instant) -> Self {
        let burst = f64::from(limits.events_burst.max(1));
        Self {
            per_second: f64::from(limits.events_per_second),
            burst,
            disconnect_after: limits.rate_limited_disconnect_after.max(1),
            state: Mutex::new(State {
                tokens: burst,
                at: now,
                refused_in_a_row: 0,
            }),
        }
    }

    /// Takes a token for an event arriving at `now`.
    pub(crate) fn take(&self, now: Instant) -> Verdict {
        // Plain numbers, consistent after every statement: a poisoned lock is still usable.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(state.at).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.per_second).min(self.burst);
        state.at = state.at.max(now);
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            state.refused_in_a_row = 0;
            return Verdict::Pass;
        }
        state.refused_in_a_row = state.refused_in_a_row.saturating_add(1);
        // Once: events already on their way when the socket is disconnected are only refused.
        if state.refused_in_a_row == self.disconnect_after {
            Verdict::Disconnect
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Config;

    fn bucket(per_second: u32, burst: u32, disconnect_after: u32, now: Instant) -> Bucket {
        let mut limits = Config::from_toml("").unwrap().limits;
        limits.events_per_second = per_second;
        limits.events_burst = burst;
        limits.rate_limited_disconnect_after = disconnect_after;
        Bucket::new(&limits, now)
    }

    #[test]
    fn a_burst_passes_then_the_rate_applies() {
        let t0 = Instant::now();
        let b = bucket(10, 3, 100, t0);
        for _ in 0..3 {
            assert_eq!(b.take(t0), Verdict::Pass);
        }
        assert_eq!(b.take(t0), Verdict::Refuse);
        // 100 ms at 10/s gives one token back.
        assert_eq!(b.take(t0 + Duration::from_millis(100)), Verdict::Pass);
        assert_eq!(b.take(t0 + Duration::from_millis(100)), Verdict::Refuse);
        // A long pause refills the bucket to its size, no more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take(later), Verdict::Pass);
        }
        assert_eq!(b.take(later), Verdict::Refuse);
    }

    #[test]
    fn refusals_in_a_row_disconnect_and_a_pass_resets_them() {
        let t0 = Instant::now();
        let b = bucket(1, 1, 3, t0);
        assert_eq!(b.take(t0), Verdict::Pass);
        assert_eq!(b.take(t0), Verdict::Refuse);
        assert_eq!(b.take(t0), Verdict::Refuse);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.take(t1), Verdict::Pass);
        assert_eq!(b.take(t1), Verdict::Refuse);
        assert_eq!(b.take(t1), Verdict::Refuse);
        assert_eq!(b.take(t1), Verdict::Disconnect);
        // Said once: what is still arriving is refused, not disconnected again.
        assert_eq!(b.take(t1), Verdict::Refuse);
        assert_eq!(b.take(t1), Verdict::Refuse);
    }

    #[test]
    fn time_going_backwards_gives_nothing() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let b = bucket(10, 1, 10, t0);
        assert_eq!(b.take(t0), Verdict::Pass);
        assert_eq!(b.take(t0 - Duration::from_secs(5)), Verdict::Refuse);
    }
}
