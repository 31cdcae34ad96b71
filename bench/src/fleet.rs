//! The driver's side of its child processes: load generators (`bench load`) spread over source
//! addresses 127.0.0.2, .3, ... and the publisher (`bench publish`), all pinned to the load core.
//! Every exchange with a child is bounded in time and fails with a message naming what did not
//! arrive.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::Stdio,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

use crate::{
    control::{Command as Ctl, Reply},
    histogram::Summary,
};

/// Source addresses used so far: every generator connects from a new 127.0.0.x, because the
/// ports of a previous run's address linger in TIME_WAIT for a minute and a second run of
/// 9,500 browsers from the same address would run out of ports.
static NEXT_SOURCE: AtomicU32 = AtomicU32::new(0);

/// The next loopback source address (127.0.0.2 to 127.0.0.254, then over again).
pub(crate) fn next_source() -> Ipv4Addr {
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % 253;
    Ipv4Addr::new(127, 0, 0, 2 + n as u8)
}

/// At most this many browsers per load generator (one process holds < 20,000 open files).
pub(crate) const PER_PROCESS: u64 = 9_500;

/// How the children are started.
#[derive(Debug, Clone)]
pub(crate) struct Spawner {
    pub(crate) exe: PathBuf,
    pub(crate) load_cpu: String,
}

impl Spawner {
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new("taskset");
        command
            .arg("-c")
            .arg(&self.load_cpu)
            .arg(&self.exe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        command
    }
}

/// One child speaking the control protocol.
pub(crate) struct Peer {
    pub(crate) pid: u32,
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    name: String,
}

impl Peer {
    pub(crate) fn spawn(mut command: Command, name: String) -> anyhow::Result<Self> {
        let mut child = command.spawn().with_context(|| format!("start {name}"))?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        Ok(Self {
            pid: child.id().context("no pid")?,
            _child: child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            name,
        })
    }

    pub(crate) async fn send(&mut self, command: &Ctl) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(command)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    pub(crate) async fn recv(&mut self, within: Duration, what: &str) -> anyhow::Result<Reply> {
        let line = match tokio::time::timeout(within, self.lines.next_line()).await {
            Err(_) => bail!("{}: no {what} within {within:?}", self.name),
            Ok(line) => line?.with_context(|| format!("{}: exited before {what}", self.name))?,
        };
        serde_json::from_str(&line).with_context(|| format!("{}: bad line {line:?}", self.name))
    }
}

/// What the load generators say once every browser is settled.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    pub(crate) admitted: u64,
    pub(crate) failed: u64,
    /// The slowest generator's time from `go` to its last settled browser.
    pub(crate) elapsed: Duration,
    /// Growth of the generators' memory per admitted browser, bytes.
    pub(crate) load_bytes_per_conn: f64,
    pub(crate) first_error: Option<String>,
}

/// Events received since the last reset, over all generators.
impl Admission {
    /// One line for the progress log.
    pub(crate) fn summary(&self, browsers: u64) -> String {
        let first = self
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default();
        format!(
            "{} of {browsers} browsers admitted in {:?}, {} failed{first}",
            self.admitted, self.elapsed, self.failed
        )
    }
}

#[derive(Debug, Default)]
pub(crate) struct Received {
    pub(crate) received: u64,
    pub(crate) last_rx_us: u64,
    pub(crate) dropped: u64,
    pub(crate) latency: Summary,
}

/// The load generators of one measurement.
pub(crate) struct Fleet {
    loads: Vec<Peer>,
    prepared_kb: u64,
    admitted: u64,
}

/// How long a scenario's generators may live: longer than any scenario of `bench all`.
pub(crate) const SCENARIO_LIFETIME: Duration = Duration::from_secs(900);

impl Fleet {
    /// Starts enough generators for `browsers` browsers spread over `rooms` workspaces and waits
    /// until each is prepared. `concurrency`: handshakes in flight per generator (`None`: all
    /// browsers at once, a storm). Each generator exits by itself after `lifetime`, whatever
    /// happens to the driver.
    ///
    /// # Errors
    /// A generator did not start or prepare within 10 s.
    pub(crate) async fn start(
        spawner: &Spawner,
        server: SocketAddr,
        secret: &str,
        browsers: u64,
        rooms: u64,
        concurrency: Option<usize>,
        lifetime: Duration,
    ) -> anyhow::Result<Self> {
        let processes = browsers.div_ceil(PER_PROCESS).max(1);
        let mut loads = Vec::new();
        let mut first = 0;
        for p in 0..processes {
            let count = (browsers - first).div_ceil(processes - p);
            let mut command = spawner.command();
            command
                .arg("load")
                .arg(format!("--server={server}"))
                .arg(format!("--source={}", next_source()))
                .arg(format!("--count={count}"))
                .arg(format!("--first={first}"))
                .arg(format!("--rooms={rooms}"))
                .arg(format!("--secret={secret}"))
                .arg(format!("--concurrency={}", concurrency.unwrap_or(0)))
                .arg(format!("--lifetime={}", lifetime.as_secs()));
            loads.push(Peer::spawn(command, format!("load generator {p}"))?);
            first += count;
        }
        let mut prepared_kb = 0;
        for load in &mut loads {
            match load.recv(Duration::from_secs(10), "prepared").await? {
                Reply::Prepared { rss_kb } => prepared_kb += rss_kb,
                other => bail!("{}: expected prepared, got {other:?}", load.name),
            }
        }
        Ok(Self {
            loads,
            prepared_kb,
            admitted: 0,
        })
    }

    /// Opens every browser at once and waits until all are admitted or failed.
    ///
    /// # Errors
    /// A generator did not settle within `within`.
    pub(crate) async fn go(&mut self, within: Duration) -> anyhow::Result<Admission> {
        for load in &mut self.loads {
            load.send(&Ctl::Go).await?;
        }
        let mut admission = Admission::default();
        let mut rss_kb = 0;
        for load in &mut self.loads {
            match load.recv(within, "admission of every browser").await? {
                Reply::Ready {
                    admitted,
                    failed,
                    elapsed_us,
                    rss_kb: kb,
                    first_error,
                } => {
                    admission.admitted += admitted;
                    admission.failed += failed;
                    admission.elapsed = admission.elapsed.max(Duration::from_micros(elapsed_us));
                    rss_kb += kb;
                    admission.first_error = admission.first_error.take().or(first_error);
                }
                other => bail!("{}: expected ready, got {other:?}", load.name),
            }
        }
        self.admitted = admission.admitted;
        admission.load_bytes_per_conn = rss_kb.saturating_sub(self.prepared_kb) as f64 * 1024.0
            / admission.admitted.max(1) as f64;
        Ok(admission)
    }

    /// Browsers admitted by the last `go`.
    pub(crate) fn admitted(&self) -> u64 {
        self.admitted
    }

    /// CPU time the generators have used so far (they share the load core).
    ///
    /// # Errors
    /// A generator is gone.
    pub(crate) fn cpu(&self, ticks_per_s: u64) -> anyhow::Result<Duration> {
        self.loads
            .iter()
            .map(|l| crate::proc_stats::cpu_time(l.pid, ticks_per_s))
            .sum()
    }

    /// Zeroes the event counters of every generator.
    ///
    /// # Errors
    /// A generator did not answer within 10 s.
    pub(crate) async fn reset(&mut self) -> anyhow::Result<()> {
        for load in &mut self.loads {
            load.send(&Ctl::Reset).await?;
        }
        for load in &mut self.loads {
            match load.recv(Duration::from_secs(10), "reset").await? {
                Reply::Done => {}
                other => bail!("{}: expected done, got {other:?}", load.name),
            }
        }
        Ok(())
    }

    /// Admitted browsers by events received since the last reset, over all generators:
    /// events → browsers.
    ///
    /// # Errors
    /// A generator did not answer within 10 s.
    pub(crate) async fn tally(&mut self) -> anyhow::Result<BTreeMap<u64, u64>> {
        for load in &mut self.loads {
            load.send(&Ctl::Tally).await?;
        }
        let mut total = BTreeMap::new();
        for load in &mut self.loads {
            match load.recv(Duration::from_secs(10), "tally").await? {
                Reply::Tally { by_count } => {
                    for (events, browsers) in by_count {
                        *total.entry(events).or_insert(0) += browsers;
                    }
                }
                other => bail!("{}: expected tally, got {other:?}", load.name),
            }
        }
        Ok(total)
    }

    /// Events since the last reset, merged.
    ///
    /// # Errors
    /// A generator did not answer within 10 s.
    pub(crate) async fn report(&mut self) -> anyhow::Result<Received> {
        for load in &mut self.loads {
            load.send(&Ctl::Report).await?;
        }
        let mut total = Received::default();
        for load in &mut self.loads {
            match load.recv(Duration::from_secs(10), "report").await? {
                Reply::Report {
                    received,
                    last_rx_us,
                    dropped,
                    latency,
                    ..
                } => {
                    total.received += received;
                    total.last_rx_us = total.last_rx_us.max(last_rx_us);
                    total.dropped += dropped;
                    total.latency.add(&latency);
                }
                other => bail!("{}: expected report, got {other:?}", load.name),
            }
        }
        Ok(total)
    }
}

/// What the publisher reports.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) sent: u64,
    pub(crate) acked_ok: u64,
    pub(crate) acked_err: u64,
    pub(crate) first_send_us: u64,
}

/// Runs the publisher to its end: `rate` publishes per second for `duration` over `rooms`.
///
/// # Errors
/// It failed, or did not finish within its duration plus 20 s.
pub(crate) async fn publish(
    spawner: &Spawner,
    server: SocketAddr,
    key: &str,
    rooms: u64,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Published> {
    let mut command = spawner.command();
    command
        .arg("publish")
        .arg(format!("--server={server}"))
        .arg(format!("--key={key}"))
        .arg(format!("--rooms={rooms}"))
        .arg(format!("--rate={rate}"))
        .arg(format!("--duration={}", duration.as_secs_f64()));
    let mut child = Peer::spawn(command, "publisher".to_owned())?;
    match child
        .recv(duration + Duration::from_secs(20), "publish report")
        .await?
    {
        Reply::Published {
            sent,
            acked_ok,
            acked_err,
            first_send_us,
            ..
        } => Ok(Published {
            sent,
            acked_ok,
            acked_err,
            first_send_us,
        }),
        other => bail!("publisher: expected published, got {other:?}"),
    }
}
