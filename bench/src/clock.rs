//! Wall-clock time in microseconds since the Unix epoch: the unit of publish stamps and of
//! latency. The publisher and the load generators run on the same machine, so their clocks agree.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
