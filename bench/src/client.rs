//! One bench browser: connects to `/public` with a JWT, registers to its workspace, then stays
//! connected answering pings and recording each event's latency (receive time minus the
//! publisher's stamp) into the generator's shared [`Counters`], and its own event count into
//! its [`BrowserCount`] there.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::sync::Semaphore;

use crate::{
    clock::now_us,
    histogram::Histogram,
    sio::{self, Packet},
    ws::{Conn, Frame},
};

/// The browsers' namespace.
pub(crate) const NS: &str = "/public";

/// What every connection of one load generator adds to.
pub(crate) struct Counters {
    pub(crate) admitted: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Admitted connections that later ended (closed by the server, or an error).
    pub(crate) dropped: AtomicU64,
    pub(crate) received: AtomicU64,
    /// Latest event receive time (µs since the epoch).
    pub(crate) last_rx_us: AtomicU64,
    pub(crate) latency: Histogram,
    /// The first failure's reason, for the report.
    pub(crate) first_error: Mutex<Option<String>>,
    /// One per browser of the generator, by its index in the generator (none for the churn).
    pub(crate) browsers: Box<[BrowserCount]>,
}

/// What one browser received, so that a browser that missed events shows (the totals of
/// [`Counters`] cannot tell a miss from another browser's extra).
#[derive(Default)]
pub(crate) struct BrowserCount {
    pub(crate) admitted: AtomicBool,
    /// Events since the last reset.
    pub(crate) received: AtomicU64,
}

impl Counters {
    /// Counters for a generator of `browsers` browsers.
    pub(crate) fn new(browsers: usize) -> Self {
        Self {
            admitted: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            received: AtomicU64::new(0),
            last_rx_us: AtomicU64::new(0),
            latency: Histogram::new(),
            first_error: Mutex::new(None),
            browsers: (0..browsers).map(|_| BrowserCount::default()).collect(),
        }
    }

    /// Admitted browsers by the number of events each received since the last reset:
    /// (events, browsers), in ascending order of events.
    pub(crate) fn tally(&self) -> Vec<(u64, u64)> {
        let mut by_count = std::collections::BTreeMap::new();
        for browser in self.browsers.iter().filter(|b| b.admitted.load(Relaxed)) {
            *by_count.entry(browser.received.load(Relaxed)).or_insert(0) += 1;
        }
        by_count.into_iter().collect()
    }

    pub(crate) fn note_error(&self, error: &anyhow::Error) {
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| format!("{error:#}"));
        }
    }
}

/// Who this browser is.
pub(crate) struct Plan {
    pub(crate) source: Option<IpAddr>,
    pub(crate) server: SocketAddr,
    pub(crate) user: String,
    pub(crate) workspace: String,
    pub(crate) secret: Arc<str>,
}

/// Runs browser `index` of its generator until the server closes it; counts it admitted or
/// failed first. With a `gate`, the handshake waits for a permit (a paced setup instead of a
/// storm).
pub(crate) async fn run(
    plan: Plan,
    index: usize,
    counters: Arc<Counters>,
    admit_within: Duration,
    gate: Option<Arc<Semaphore>>,
) {
    let permit = match &gate {
        Some(gate) => gate.acquire().await.ok(),
        None => None,
    };
    let admitted = tokio::time::timeout(admit_within, admit(&plan)).await;
    drop(permit);
    let mut conn = match admitted {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => return fail(&counters, &error),
        Err(_) => {
            return fail(
                &counters,
                &anyhow::anyhow!("not admitted within {admit_within:?}"),
            );
        }
    };
    drop(plan);
    counters.admitted.fetch_add(1, Relaxed);
    let own = counters.browsers.get(index);
    if let Some(own) = own {
        own.admitted.store(true, Relaxed);
    }
    if let Err(error) = receive(&mut conn, &counters, own).await {
        counters.note_error(&error);
    }
    counters.dropped.fetch_add(1, Relaxed);
}

pub(crate) fn fail(counters: &Counters, error: &anyhow::Error) {
    counters.failed.fetch_add(1, Relaxed);
    counters.note_error(error);
}

/// Engine.IO open, namespace connect with the token, `register`, its ack.
pub(crate) async fn admit(plan: &Plan) -> anyhow::Result<Conn> {
    let token = crate::token::mint(&plan.secret, &plan.user, &plan.workspace)?;
    let mut conn = Conn::connect(plan.source, plan.server, sio::ENGINE_PATH).await?;
    loop {
        let packet = match conn.next_frame().await.context("handshake")? {
            Frame::Text(text) => sio::classify(text, NS),
            Frame::Close => bail!("closed during the handshake"),
            _ => Packet::Other,
        };
        match packet {
            Packet::Open => {
                let auth = format!("{{\"token\":\"{token}\"}}");
                conn.send_text(sio::connect(NS, &auth).as_bytes()).await?;
            }
            Packet::Ping => conn.send_text(sio::PONG).await?,
            Packet::Connected => {
                let arg = format!("{{\"workspace\":\"{}\"}}", plan.workspace);
                let register = sio::event_with_ack(NS, 1, "register", &arg);
                conn.send_text(register.as_bytes()).await?;
            }
            Packet::Refused => bail!("connect refused"),
            Packet::Ack { ok: true } => return Ok(conn),
            Packet::Ack { ok: false } => bail!("register refused"),
            Packet::Event { .. } | Packet::Other => {}
        }
    }
}

/// Answers pings and records events until the connection ends, counting them in `own` too
/// when given.
pub(crate) async fn receive(
    conn: &mut Conn,
    counters: &Counters,
    own: Option<&BrowserCount>,
) -> anyhow::Result<()> {
    loop {
        let mut ws_ping = None;
        let packet = match conn.next_frame().await? {
            Frame::Text(text) => sio::classify(text, NS),
            Frame::Ping(payload) => {
                ws_ping = Some(payload.to_vec());
                Packet::Other
            }
            Frame::Close => bail!("closed by the server"),
            Frame::Other => Packet::Other,
        };
        if let Some(payload) = ws_ping {
            conn.send_pong(payload).await?;
        }
        match packet {
            Packet::Ping => conn.send_text(sio::PONG).await?,
            Packet::Event { stamp } => {
                let now = now_us();
                counters.received.fetch_add(1, Relaxed);
                if let Some(own) = own {
                    own.received.fetch_add(1, Relaxed);
                }
                counters.last_rx_us.fetch_max(now, Relaxed);
                if let Some(stamp) = stamp {
                    counters.latency.record(now.saturating_sub(stamp));
                }
            }
            _ => {}
        }
    }
}
