//! The churn process (`bench churn`), for the soak (`bench soak`): opens `rate` browsers per
//! second, each admitted with a JWT and registered, kept for `hold_ms` (answering pings and
//! taking events), then gone: half close cleanly (Socket.IO DISCONNECT, then the TCP
//! connection), half just drop the connection, as a closed laptop lid would. Runs until its
//! stdin closes or its lifetime ends; answers [`Command::Report`] with [`Reply::Churned`].

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::bail;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::{
    client::{self, Counters, NS, Plan},
    control::{Command, Reply, reply},
    sio,
};

/// `bench churn` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ChurnArgs {
    /// Server address.
    #[arg(long)]
    pub(crate) server: SocketAddr,
    /// Local address to connect from.
    #[arg(long)]
    pub(crate) source: Option<IpAddr>,
    /// New browsers per second.
    #[arg(long, default_value_t = 200.0)]
    pub(crate) rate: f64,
    /// How long each browser stays, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub(crate) hold_ms: u64,
    /// Workspaces the browsers are spread over.
    #[arg(long, default_value_t = 100)]
    pub(crate) rooms: u64,
    /// HS256 secret the server verifies tokens with.
    #[arg(long)]
    pub(crate) secret: String,
    /// Bound on one browser's admission, in seconds.
    #[arg(long, default_value_t = 30)]
    pub(crate) admit_timeout: u64,
    /// The process exits after this many seconds whatever happens.
    #[arg(long, default_value_t = 3600)]
    pub(crate) lifetime: u64,
}

/// What the churn counts.
#[derive(Default)]
struct Churned {
    closed: AtomicU64,
}

/// Runs the churn until stdin closes or the lifetime ends.
///
/// # Errors
/// Protocol errors with the driver.
pub(crate) fn main(args: &ChurnArgs) -> anyhow::Result<()> {
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

async fn serve(args: &ChurnArgs) -> anyhow::Result<()> {
    if !(args.rate > 0.0 && args.rate <= 10_000.0) {
        bail!("--rate must be in (0, 10000]");
    }
    let counters = Arc::new(Counters::new(0));
    let churned = Arc::new(Churned::default());
    let secret: Arc<str> = args.secret.as_str().into();
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            line = commands.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                match serde_json::from_str::<Command>(&line)? {
                    Command::Report => reply(&report(&counters, &churned))?,
                    other => bail!("churn: unexpected {other:?}"),
                }
            }
            _ = pace.tick() => {
                let plan = Plan {
                    source: args.source,
                    server: args.server,
                    user: format!("churn{}", n % 10_000),
                    workspace: format!("w{}", n % args.rooms.max(1)),
                    secret: secret.clone(),
                };
                let clean = n.is_multiple_of(2);
                n += 1;
                tokio::spawn(visit(
                    plan,
                    counters.clone(),
                    churned.clone(),
                    Duration::from_secs(args.admit_timeout),
                    Duration::from_millis(args.hold_ms),
                    clean,
                ));
            }
        }
    }
}

/// One browser's visit: admitted, `hold`, gone.
async fn visit(
    plan: Plan,
    counters: Arc<Counters>,
    churned: Arc<Churned>,
    admit_within: Duration,
    hold: Duration,
    clean: bool,
) {
    let mut conn = match tokio::time::timeout(admit_within, client::admit(&plan)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => return client::fail(&counters, &error),
        Err(_) => {
            let error = anyhow::anyhow!("not admitted within {admit_within:?}");
            return client::fail(&counters, &error);
        }
    };
    counters.admitted.fetch_add(1, Relaxed);
    // The visit's length is the measurement, not a wait for something.
    match tokio::time::timeout(hold, client::receive(&mut conn, &counters, None)).await {
        Err(_) => {
            if clean {
                let _ = conn.send_text(sio::disconnect(NS).as_bytes()).await;
            }
            churned.closed.fetch_add(1, Relaxed);
        }
        Ok(result) => {
            if let Err(error) = result {
                counters.note_error(&error);
            }
            counters.dropped.fetch_add(1, Relaxed);
        }
    }
}

fn report(counters: &Counters, churned: &Churned) -> Reply {
    Reply::Churned {
        admitted: counters.admitted.load(Relaxed),
        failed: counters.failed.load(Relaxed),
        closed: churned.closed.load(Relaxed),
        dropped: counters.dropped.load(Relaxed),
        first_error: counters
            .first_error
            .lock()
            .ok()
            .and_then(|first| first.clone()),
    }
}
