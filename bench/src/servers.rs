//! The servers under test, started fresh for every measurement and pinned to the server core
//! with `taskset`: herald (the release binary, configured by `HERALD_*` variables), the npm
//! socket.io reference (`js-fixtures/reference-server.js` on Node.js), bare socketioxide
//! (`bare_socketioxide`, the library herald is built on with no application logic) and, to
//! compare two herald builds, a candidate build run exactly as herald is. herald and the
//! reference get the same JWT secret and private key (bare socketioxide checks neither); all
//! listen on 127.0.0.1 and are ready when `GET /health` answers 200.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    process::{Child, Command},
};

use crate::proc_stats;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Herald,
    /// Another herald build (`bench all --candidate`), compared with `Herald`.
    Candidate,
    Reference,
    /// socketioxide alone (`bare_socketioxide`): herald's cost beside its library's.
    Socketioxide,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Herald => "herald",
            Kind::Candidate => "candidate",
            Kind::Reference => "reference",
            Kind::Socketioxide => "socketioxide",
        }
    }
}

/// Where the servers are and how they are configured.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) herald_bin: PathBuf,
    /// The candidate build, when one is compared.
    pub(crate) candidate_bin: Option<PathBuf>,
    pub(crate) herald_env: Vec<(String, String)>,
    pub(crate) reference_js: PathBuf,
    pub(crate) node: PathBuf,
    /// The `bare_socketioxide` binary.
    pub(crate) socketioxide_bin: PathBuf,
    pub(crate) server_cpu: String,
    pub(crate) logs: PathBuf,
    pub(crate) jwt_secret: String,
    pub(crate) private_key: String,
    pub(crate) ticks_per_s: u64,
}

/// A running server.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    child: Child,
    pid: u32,
    ticks_per_s: u64,
}

const READY_WITHIN: Duration = Duration::from_secs(20);
const STOP_WITHIN: Duration = Duration::from_secs(10);

impl Server {
    /// Starts `kind` on a free port and waits until it serves `/health`.
    ///
    /// # Errors
    /// It did not start or did not become ready within 20 s.
    pub(crate) async fn start(kind: Kind, setup: &Setup, label: &str) -> anyhow::Result<Self> {
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        std::fs::create_dir_all(&setup.logs)?;
        let log_path = setup.logs.join(format!("{label}-{}.log", kind.name()));
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new("taskset");
        command.arg("-c").arg(&setup.server_cpu);
        match kind {
            Kind::Herald | Kind::Candidate => {
                let bin = match (kind, &setup.candidate_bin) {
                    (Kind::Candidate, Some(candidate)) => candidate,
                    (Kind::Candidate, None) => bail!("no candidate build given (--candidate)"),
                    _ => &setup.herald_bin,
                };
                command
                    .arg(bin)
                    .env("HERALD_PUBLIC__HOST", "127.0.0.1")
                    .env("HERALD_PUBLIC__PORT", port.to_string())
                    .env("HERALD_PRIVATE__KEY", &setup.private_key)
                    .env("HERALD_AUTH__JWT__SECRET", &setup.jwt_secret)
                    .env("HERALD_LOG__LEVEL", "warn")
                    .env("RUST_LOG", "warn")
                    .envs(setup.herald_env.iter().cloned());
            }
            Kind::Reference => {
                command
                    .arg(&setup.node)
                    .arg(&setup.reference_js)
                    .arg("--host=127.0.0.1")
                    .arg(format!("--port={port}"))
                    .arg(format!("--jwt-secret={}", setup.jwt_secret))
                    .arg(format!("--private-key={}", setup.private_key))
                    .env("NODE_ENV", "production");
            }
            Kind::Socketioxide => {
                command
                    .arg(&setup.socketioxide_bin)
                    .arg("--host=127.0.0.1")
                    .arg(format!("--port={port}"));
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", kind.name()))?;
        let pid = child.id().context("no pid")?;
        let mut server = Server {
            addr,
            child,
            pid,
            ticks_per_s: setup.ticks_per_s,
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!(
                    "{} exited with {status}; see {}",
                    kind.name(),
                    log_path.display()
                );
            }
            if health(addr).await {
                return Ok(server);
            }
            if started.elapsed() > READY_WITHIN {
                bail!(
                    "{} did not answer /health within {READY_WITHIN:?}; see {}",
                    kind.name(),
                    log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// CPU time the server has used so far.
    ///
    /// # Errors
    /// The process is gone.
    pub(crate) fn cpu(&self) -> anyhow::Result<Duration> {
        proc_stats::cpu_time(self.pid, self.ticks_per_s)
    }

    /// Resident memory now, KiB.
    ///
    /// # Errors
    /// The process is gone.
    pub(crate) fn rss_kb(&self) -> anyhow::Result<u64> {
        proc_stats::rss_kb(self.pid)
    }

    /// Files (sockets included) it has open now.
    ///
    /// # Errors
    /// It is gone.
    pub(crate) fn open_files(&self) -> anyhow::Result<u64> {
        proc_stats::open_files(self.pid)
    }

    /// SIGTERM, then SIGKILL if it is still there after 10 s.
    pub(crate) async fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(STOP_WITHIN, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// A port nobody listens on right now (bound and released).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Whether `GET /health` answers 200.
async fn health(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(true))
    )
}
