//! `bench soak`: herald under constant churn for a long time (docs/reliability.md).
//!
//! A stable population of browsers stays connected and registered (their latency is measured),
//! while `bench churn` opens ~200 browsers per second that each stay a couple of seconds and
//! leave (half cleanly, half by dropping the connection), and the publisher publishes at a
//! constant rate over the same workspaces. Every 10 s the driver records herald's RSS, open
//! files, the stable browsers' p99 latency over the window, and the churn's counts.
//!
//! The verdict: no browser failed, the stable ones were never dropped, herald's open files come
//! back to the baseline once the churn stops, and (full run) RSS after warm-up drifts by less
//! than 5 %. The smoke run (2 minutes, CI) checks all but the drift, which it reports: two
//! minutes are too short to tell a leak from an allocator settling.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::{
    control::{Command as Ctl, Reply},
    fleet::{Fleet, Peer, Spawner},
    servers::{Kind, Server, Setup},
};

/// `bench soak` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct SoakArgs {
    /// Two minutes, a small population: the CI smoke run.
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Length of the run, in minutes (default: 30, or 2 with --smoke).
    #[arg(long)]
    pub(crate) minutes: Option<f64>,
    /// New browsers per second.
    #[arg(long, default_value_t = 200.0)]
    pub(crate) churn_rate: f64,
    /// Publishes per second.
    #[arg(long, default_value_t = 200.0)]
    pub(crate) publish_rate: f64,
    /// The herald binary.
    #[arg(long, default_value = "target/release/herald")]
    pub(crate) herald: std::path::PathBuf,
    /// CPU list herald is pinned to (taskset).
    #[arg(long, default_value = "0")]
    pub(crate) server_cpu: String,
    /// CPU list the load is pinned to.
    #[arg(long, default_value = "1")]
    pub(crate) load_cpu: String,
    /// Where logs go.
    #[arg(long, default_value = "target/soak")]
    pub(crate) out: std::path::PathBuf,
}

/// Seconds between two samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Workspaces everything is spread over.
const ROOMS: u64 = 100;
/// Largest RSS drift after warm-up that passes, in percent.
const MAX_DRIFT_PCT: f64 = 5.0;

/// One sample.
struct Sample {
    at: Duration,
    rss_kb: u64,
    open_files: u64,
    churned: u64,
    received: u64,
    p99_us: Option<u64>,
}

/// Runs the soak and prints the report (Markdown) on stdout.
///
/// # Errors
/// A part did not start, or the verdict is a failure.
pub(crate) async fn run(args: &SoakArgs, setup: &Setup, spawner: &Spawner) -> anyhow::Result<()> {
    let minutes = args.minutes.unwrap_or(if args.smoke { 2.0 } else { 30.0 });
    if !(minutes > 0.0 && minutes <= 24.0 * 60.0) {
        bail!("--minutes must be in (0, 1440]");
    }
    let duration = Duration::from_secs_f64(minutes * 60.0);
    // The load processes end by themselves after this, whatever happens to the driver: the
    // run, its warm-up and the wait for open files to come back, with room to spare.
    let lifetime = duration + Duration::from_secs(600);
    let stable = if args.smoke { 500 } else { 2000 };
    let server = Server::start(Kind::Herald, setup, "soak").await?;

    let mut fleet = Fleet::start(
        spawner,
        server.addr,
        &setup.jwt_secret,
        stable,
        ROOMS,
        Some(200),
        lifetime,
    )
    .await?;
    let admission = fleet.go(Duration::from_secs(120)).await?;
    if admission.failed > 0 {
        bail!("stable browsers: {}", admission.summary(stable));
    }
    let baseline_files = server.open_files()?;
    crate::log(&format!(
        "soak: {minutes} min, {stable} stable browsers, churn {}/s, publish {}/s; herald has {baseline_files} open files",
        args.churn_rate, args.publish_rate
    ));

    let mut churn = start_churn(spawner, &server, setup, args.churn_rate, lifetime)?;
    let publisher = crate::fleet::publish(
        spawner,
        server.addr,
        &setup.private_key,
        ROOMS,
        args.publish_rate,
        duration,
    );
    let sampling = sample(&server, &mut fleet, &mut churn, duration);
    let (published, samples) = tokio::join!(publisher, sampling);
    let published = published?;
    let samples = samples?;
    let churned = churn_report(&mut churn).await?;
    drop(churn); // its stdin closes: it exits, and its connections with it

    // Once the churn is gone, herald's files must come back to the baseline.
    let settle = Instant::now();
    let mut files = server.open_files()?;
    while files > baseline_files && settle.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        files = server.open_files()?;
    }
    let stable_end = fleet.report().await?;
    server.stop().await;

    let report = Report {
        minutes,
        stable,
        baseline_files,
        final_files: files,
        samples: &samples,
        churned: &churned,
        published_ok: published.acked_ok,
        published_err: published.acked_err,
        stable_dropped: stable_end.dropped,
        check_drift: !args.smoke,
    };
    report.print();
    report.verdict()
}

fn start_churn(
    spawner: &Spawner,
    server: &Server,
    setup: &Setup,
    rate: f64,
    lifetime: Duration,
) -> anyhow::Result<Peer> {
    let mut command = spawner.command();
    command
        .arg("churn")
        .arg(format!("--server={}", server.addr))
        .arg(format!("--source={}", crate::fleet::next_source()))
        .arg(format!("--rate={rate}"))
        .arg(format!("--rooms={ROOMS}"))
        .arg(format!("--secret={}", setup.jwt_secret))
        .arg(format!("--lifetime={}", lifetime.as_secs()));
    Peer::spawn(command, "churn".to_owned())
}

/// What the churn counted.
struct Churned {
    admitted: u64,
    failed: u64,
    closed: u64,
    dropped: u64,
    first_error: Option<String>,
}

async fn churn_report(churn: &mut Peer) -> anyhow::Result<Churned> {
    churn.send(&Ctl::Report).await?;
    match churn.recv(Duration::from_secs(10), "churn report").await? {
        Reply::Churned {
            admitted,
            failed,
            closed,
            dropped,
            first_error,
        } => Ok(Churned {
            admitted,
            failed,
            closed,
            dropped,
            first_error,
        }),
        other => bail!("churn: expected churned, got {other:?}"),
    }
}

/// Samples every [`SAMPLE_EVERY`] until `duration` is over.
async fn sample(
    server: &Server,
    fleet: &mut Fleet,
    churn: &mut Peer,
    duration: Duration,
) -> anyhow::Result<Vec<Sample>> {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + SAMPLE_EVERY, SAMPLE_EVERY);
    fleet.reset().await?;
    while started.elapsed() < duration {
        tick.tick().await;
        let window = fleet.report().await?;
        fleet.reset().await?;
        let churned = churn_report(churn).await?;
        let sample = Sample {
            at: started.elapsed(),
            rss_kb: server.rss_kb().context("herald is gone")?,
            open_files: server.open_files()?,
            churned: churned.admitted,
            received: window.received,
            p99_us: window.latency.quantile(0.99),
        };
        crate::log(&format!(
            "soak: {:>5.0}s rss {:>7} KiB, {:>5} files, {:>7} churned, p99 {}",
            sample.at.as_secs_f64(),
            sample.rss_kb,
            sample.open_files,
            sample.churned,
            millis(sample.p99_us)
        ));
        samples.push(sample);
    }
    Ok(samples)
}

fn millis(us: Option<u64>) -> String {
    us.map_or_else(|| "-".to_owned(), |us| format!("{:.1} ms", us as f64 / 1e3))
}

struct Report<'a> {
    minutes: f64,
    stable: u64,
    baseline_files: u64,
    final_files: u64,
    samples: &'a [Sample],
    churned: &'a Churned,
    published_ok: u64,
    published_err: u64,
    stable_dropped: u64,
    check_drift: bool,
}

impl Report<'_> {
    /// The first sample after warm-up (the first third of the run) and the last one.
    fn drift(&self) -> Option<(u64, u64, f64)> {
        let total = self.samples.last()?.at;
        let warm = self.samples.iter().find(|s| s.at >= total / 3)?;
        let last = self.samples.last()?;
        let pct = (last.rss_kb as f64 - warm.rss_kb as f64) / warm.rss_kb.max(1) as f64 * 100.0;
        Some((warm.rss_kb, last.rss_kb, pct))
    }

    fn print(&self) {
        let mut out = String::new();
        out.push_str(&format!(
            "## Soak: {} min, {} stable browsers, churn and publishing\n\n",
            self.minutes, self.stable
        ));
        out.push_str(
            "| t (s) | RSS (MiB) | open files | churned so far | events in window | p99 |\n",
        );
        out.push_str("|---:|---:|---:|---:|---:|---:|\n");
        for s in self.samples {
            out.push_str(&format!(
                "| {:.0} | {:.1} | {} | {} | {} | {} |\n",
                s.at.as_secs_f64(),
                s.rss_kb as f64 / 1024.0,
                s.open_files,
                s.churned,
                s.received,
                millis(s.p99_us)
            ));
        }
        let c = self.churned;
        out.push_str(&format!(
            "\n- churn: {} admitted, {} failed, {} closed after their visit, {} ended by the server{}\n",
            c.admitted,
            c.failed,
            c.closed,
            c.dropped,
            c.first_error
                .as_deref()
                .map(|e| format!(" (first error: {e})"))
                .unwrap_or_default()
        ));
        out.push_str(&format!(
            "- published: {} acked ok, {} refused; stable browsers dropped: {}\n",
            self.published_ok, self.published_err, self.stable_dropped
        ));
        out.push_str(&format!(
            "- open files: {} with the stable browsers only, {} after the churn stopped\n",
            self.baseline_files, self.final_files
        ));
        if let Some((warm, last, pct)) = self.drift() {
            out.push_str(&format!(
                "- RSS after warm-up: {:.1} MiB, at the end: {:.1} MiB, drift {pct:+.1} % (limit {MAX_DRIFT_PCT} %{})\n",
                warm as f64 / 1024.0,
                last as f64 / 1024.0,
                if self.check_drift { "" } else { ", not checked in a smoke run" }
            ));
        }
        print!("{out}");
    }

    fn verdict(&self) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        if self.churned.failed > 0 {
            failures.push(format!("{} churn browsers failed", self.churned.failed));
        }
        if self.churned.admitted == 0 {
            failures.push("no churn at all".to_owned());
        }
        if self.stable_dropped > 0 {
            failures.push(format!("{} stable browsers dropped", self.stable_dropped));
        }
        if self.published_err > 0 || self.published_ok == 0 {
            failures.push(format!(
                "publishes: {} ok, {} refused",
                self.published_ok, self.published_err
            ));
        }
        if self.final_files > self.baseline_files {
            failures.push(format!(
                "open files did not come back: {} > {} within 30 s",
                self.final_files, self.baseline_files
            ));
        }
        if self.check_drift {
            match self.drift() {
                Some((_, _, pct)) if pct >= MAX_DRIFT_PCT => {
                    failures.push(format!("RSS drifted {pct:+.1} % after warm-up"));
                }
                None => failures.push("too few samples for the drift".to_owned()),
                Some(_) => {}
            }
        }
        if failures.is_empty() {
            crate::log("soak: PASS");
            Ok(())
        } else {
            bail!("soak FAILED: {}", failures.join("; "))
        }
    }
}
