//! [`Throughput`]: events per second for `/status`, from the `published` and `delivered`
//! counters sampled every [`PERIOD`] and compared over the last [`WINDOW`].

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// How often the counters are sampled.
const PERIOD: Duration = Duration::from_secs(1);
/// The span the rates are taken over.
const WINDOW: Duration = Duration::from_secs(10);

/// Events per second over the last 10 s (less right after startup).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Rates {
    /// Publishes accepted per second.
    pub published: f64,
    /// Events handed to sockets per second.
    pub delivered: f64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    published: u64,
    delivered: u64,
}

/// Recent samples of the counters; cheap to clone. Holds at most one sample per second over
/// the window, plus the one the window starts from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Throughput(Arc<Mutex<VecDeque<Sample>>>);

impl Throughput {
    /// Adds a sample of the counters taken at `at`, forgetting those the window no longer needs.
    pub(crate) fn record(&self, at: Instant, published: u64, delivered: u64) {
        let mut samples = self.lock();
        samples.push_back(Sample {
            at,
            published,
            delivered,
        });
        // Keep the newest sample at least WINDOW old: the window starts there.
        while samples.len() > 2 && samples[1].at + WINDOW <= at {
            samples.pop_front();
        }
    }

    /// The rates between the oldest and the newest sample; zero before two samples.
    pub(crate) fn rates(&self) -> Rates {
        let samples = self.lock();
        let (Some(first), Some(last)) = (samples.front(), samples.back()) else {
            return Rates::default();
        };
        let seconds = last.at.saturating_duration_since(first.at).as_secs_f64();
        if seconds <= 0.0 {
            return Rates::default();
        }
        let per_second = |from: u64, to: u64| to.saturating_sub(from) as f64 / seconds;
        Rates {
            published: per_second(first.published, last.published),
            delivered: per_second(first.delivered, last.delivered),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        // Plain data, consistent after every statement: a poisoned lock is still usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Samples `published` and `delivered` every second until `shutdown`.
    pub(crate) fn spawn_sampler(
        &self,
        published: Counter,
        delivered: Counter,
        shutdown: CancellationToken,
    ) {
        let throughput = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                throughput.record(Instant::now(), published.get(), delivered.get());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_taken_over_the_last_window() {
        let throughput = Throughput::default();
        let start = Instant::now();
        assert_eq!(throughput.rates(), Rates::default());
        throughput.record(start, 0, 0);
        assert_eq!(throughput.rates(), Rates::default());
        // A burst of 100 publishes delivered to 3 sockets each, in the first second.
        throughput.record(start + Duration::from_secs(1), 100, 300);
        assert_eq!(
            throughput.rates(),
            Rates {
                published: 100.0,
                delivered: 300.0
            }
        );
        // Quiet afterwards: the burst is averaged over the window, then forgotten.
        for s in 2..=10 {
            throughput.record(start + Duration::from_secs(s), 100, 300);
        }
        assert_eq!(throughput.rates().published, 10.0);
        throughput.record(start + Duration::from_secs(11), 100, 300);
        assert_eq!(throughput.rates(), Rates::default());
        assert!(throughput.lock().len() <= 12);
    }

    #[test]
    fn samples_stay_bounded() {
        let throughput = Throughput::default();
        let start = Instant::now();
        for s in 0..1000 {
            throughput.record(start + Duration::from_secs(s), s, 2 * s);
        }
        assert!(throughput.lock().len() <= 12);
        assert_eq!(throughput.rates().published, 1.0);
        assert_eq!(throughput.rates().delivered, 2.0);
    }
}
