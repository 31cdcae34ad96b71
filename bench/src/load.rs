//! The load generator process (`bench load`): holds `count` bench browsers from one source
//! address, all on one single-threaded runtime, and answers the driver's [`Command`]s.
//!
//! Browser `i` (global index `first + i`) is user `u<i>` and registers to workspace
//! `w<i % rooms>`, so the driver shapes rooms by choosing `rooms`.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader, Lines, Stdin},
    sync::Semaphore,
};

use crate::{
    client::{self, Counters, Plan},
    control::{Command, Reply, reply},
    proc_stats,
};

/// `bench load` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {
    /// Server address.
    #[arg(long)]
    pub(crate) server: SocketAddr,
    /// Local address to connect from (each gives its own range of ephemeral ports).
    #[arg(long)]
    pub(crate) source: Option<IpAddr>,
    /// Browsers to hold.
    #[arg(long)]
    pub(crate) count: u64,
    /// Global index of the first browser.
    #[arg(long, default_value_t = 0)]
    pub(crate) first: u64,
    /// Workspaces the browsers are spread over.
    #[arg(long, default_value_t = 1)]
    pub(crate) rooms: u64,
    /// HS256 secret the server verifies tokens with.
    #[arg(long)]
    pub(crate) secret: String,
    /// Bound on one browser's admission, in seconds.
    #[arg(long, default_value_t = 30)]
    pub(crate) admit_timeout: u64,
    /// Browsers in their handshake at once; 0: all at once (a storm).
    #[arg(long, default_value_t = 0)]
    pub(crate) concurrency: usize,
    /// The process exits after this many seconds whatever happens.
    #[arg(long, default_value_t = 900)]
    pub(crate) lifetime: u64,
}

/// Runs a load generator until its stdin closes or its lifetime ends.
///
/// # Errors
/// Protocol errors with the driver.
pub(crate) fn main(args: &LoadArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lifetime = Duration::from_secs(args.lifetime);
    runtime.block_on(async {
        match tokio::time::timeout(lifetime, serve(args)).await {
            Ok(result) => result,
            Err(_) => bail!("lifetime of {lifetime:?} over"),
        }
    })
}

async fn serve(args: &LoadArgs) -> anyhow::Result<()> {
    let pid = std::process::id();
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    reply(&Reply::Prepared {
        rss_kb: proc_stats::rss_kb(pid)?,
    })?;
    match next_command(&mut commands).await? {
        Some(Command::Go) => {}
        Some(other) => bail!("expected go, got {other:?}"),
        None => return Ok(()),
    }
    let counters = Arc::new(Counters::new(usize::try_from(args.count)?));
    let secret: Arc<str> = args.secret.as_str().into();
    let admit_within = Duration::from_secs(args.admit_timeout);
    let started = Instant::now();
    let gate = (args.concurrency > 0).then(|| Arc::new(Semaphore::new(args.concurrency)));
    for (index, i) in (args.first..args.first + args.count).enumerate() {
        let plan = Plan {
            source: args.source,
            server: args.server,
            user: format!("u{i}"),
            workspace: format!("w{}", i % args.rooms.max(1)),
            secret: secret.clone(),
        };
        tokio::spawn(client::run(
            plan,
            index,
            counters.clone(),
            admit_within,
            gate.clone(),
        ));
    }
    // Bounded: each browser is admitted or failed within `admit_within`.
    let settled = || counters.admitted.load(Relaxed) + counters.failed.load(Relaxed);
    // A browser's own bound starts when its task first runs (and it has a permit), which a
    // starved core or the gate delays: past a second bound, the unsettled ones count as failed.
    let overall = admit_within * 2 + Duration::from_secs(60) * u32::from(gate.is_some());
    let mut unsettled = 0;
    while settled() < args.count {
        if started.elapsed() > overall {
            unsettled = args.count - settled();
            if let Ok(mut first) = counters.first_error.lock() {
                first.get_or_insert_with(|| format!("{unsettled} not settled in {overall:?}"));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    reply(&Reply::Ready {
        admitted: counters.admitted.load(Relaxed),
        failed: counters.failed.load(Relaxed) + unsettled,
        elapsed_us,
        rss_kb: proc_stats::rss_kb(pid)?,
        first_error: counters.first_error.lock().ok().and_then(|e| e.clone()),
    })?;
    while let Some(command) = next_command(&mut commands).await? {
        match command {
            Command::Reset => {
                counters.received.store(0, Relaxed);
                counters.last_rx_us.store(0, Relaxed);
                counters.latency.reset();
                for browser in &counters.browsers {
                    browser.received.store(0, Relaxed);
                }
                reply(&Reply::Done)?;
            }
            Command::Tally => reply(&Reply::Tally {
                by_count: counters.tally(),
            })?,
            Command::Report => reply(&Reply::Report {
                received: counters.received.load(Relaxed),
                last_rx_us: counters.last_rx_us.load(Relaxed),
                dropped: counters.dropped.load(Relaxed),
                latency: counters.latency.snapshot(),
                rss_kb: proc_stats::rss_kb(pid)?,
            })?,
            Command::Go => bail!("go twice"),
        }
    }
    Ok(())
}

/// The next command, or `None` when the driver closed stdin.
async fn next_command(lines: &mut Lines<BufReader<Stdin>>) -> anyhow::Result<Option<Command>> {
    let Some(line) = lines.next_line().await.context("read stdin")? else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_str(&line).context("bad command")?))
}
