//! A latency histogram in microseconds: exact below 1024 µs, then 512 sub-buckets per power of
//! two (under 0.2 % error), lock-free to record. Load generators send theirs to the driver as
//! `[bucket, count]` pairs ([`Histogram::snapshot`]); the driver merges them into a [`Summary`].

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

const EXACT: u64 = 1024;
const SUB: u64 = 512;
/// Up to 2^40 µs (12 days): anything larger lands in the last bucket.
const BUCKETS: usize = (EXACT + (40 - 10) * SUB) as usize;

fn index(us: u64) -> usize {
    if us < EXACT {
        return us as usize;
    }
    let exp = u64::from(63 - us.leading_zeros()); // >= 10
    let shift = exp - 9;
    let i = EXACT + (exp - 10) * SUB + ((us >> shift) - SUB);
    (i as usize).min(BUCKETS - 1)
}

fn lower_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let exp = (i - EXACT) / SUB + 10;
    let sub = (i - EXACT) % SUB + SUB;
    sub << (exp - 9)
}

/// Recorded latencies (shared by every connection of a load generator).
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn record(&self, us: u64) {
        self.buckets[index(us)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }

    /// The non-empty buckets.
    pub(crate) fn snapshot(&self) -> Vec<(u32, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let n = b.load(Ordering::Relaxed);
                (n > 0).then_some((i as u32, n))
            })
            .collect()
    }
}

/// Merged buckets on the driver's side.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Summary {
    counts: Vec<u64>,
    total: u64,
}

impl Summary {
    pub(crate) fn add(&mut self, snapshot: &[(u32, u64)]) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for &(i, n) in snapshot {
            if let Some(c) = self.counts.get_mut(i as usize) {
                *c += n;
                self.total += n;
            }
        }
    }

    /// The `q` quantile (0..=1) in microseconds, or `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(lower_bound(i));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for us in [0, 1, 1023, 1024, 1500, 10_000, 123_456, 9_999_999] {
            let i = index(us);
            assert!(i >= last);
            last = i;
            let lb = lower_bound(i);
            assert!(lb <= us && us - lb <= us / 500 + 1, "{us} -> {lb}");
        }
    }

    #[test]
    fn quantiles_of_merged_snapshots() {
        let h = Histogram::new();
        for us in 1..=100 {
            h.record(us);
        }
        let mut s = Summary::default();
        s.add(&h.snapshot());
        assert_eq!(s.total, 100);
        assert_eq!(s.quantile(0.5), Some(50));
        assert_eq!(s.quantile(0.99), Some(99));
    }
}
