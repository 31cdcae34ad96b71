//! The line protocol between the driver and its child processes (load generators and the
//! publisher): the driver writes [`Command`]s on the child's stdin, one JSON per line; the child
//! answers [`Reply`]s on stdout, one JSON per line. A child exits when its stdin closes, so a
//! driver that dies takes its children with it.

use serde::{Deserialize, Serialize};

/// Driver → load generator.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Command {
    /// Open every connection now.
    Go,
    /// Zero the event counters and the latency histogram.
    Reset,
    /// Send a [`Reply::Report`].
    Report,
    /// Send a [`Reply::Tally`].
    Tally,
}

/// Child → driver.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    /// The load generator is ready to `Go`; its memory before any connection.
    Prepared { rss_kb: u64 },
    /// Every connection was admitted or failed.
    Ready {
        admitted: u64,
        failed: u64,
        /// From `Go` to the last admission or failure.
        elapsed_us: u64,
        rss_kb: u64,
        first_error: Option<String>,
    },
    /// Counters reset.
    Done,
    /// Events since the last reset.
    Report {
        received: u64,
        last_rx_us: u64,
        dropped: u64,
        latency: Vec<(u32, u64)>,
        rss_kb: u64,
    },
    /// Admitted browsers by events received since the reset: (events, browsers), ascending.
    Tally { by_count: Vec<(u64, u64)> },
    /// Churn so far (`bench churn`, answering [`Command::Report`]).
    Churned {
        admitted: u64,
        failed: u64,
        /// Connections closed by the churn itself after their lifetime.
        closed: u64,
        /// Connections the server ended before their lifetime was over.
        dropped: u64,
        first_error: Option<String>,
    },
    /// The publisher finished its run.
    Published {
        sent: u64,
        acked_ok: u64,
        acked_err: u64,
        first_send_us: u64,
        last_send_us: u64,
    },
}

/// Writes one reply line on stdout.
pub(crate) fn reply(reply: &Reply) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, reply)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}
