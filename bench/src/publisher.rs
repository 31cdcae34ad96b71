//! The publisher process (`bench publish`): one backend on `/private`, publishing open-loop at
//! a fixed rate for a fixed time. Publish `k` goes to workspace `w<k % rooms>` with data
//! `{"t":<send time, µs>}`; the browsers compute latency from that stamp. Open-loop: sends follow
//! the clock, not the acks, so a slow server faces the offered rate and its queueing shows up
//! as latency. Frames due in the same millisecond leave in one write.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    clock::now_us,
    control::{Reply, reply},
    sio::{self, Packet},
    ws::{Conn, Frame},
};

const NS: &str = "/private";
/// How long to wait for the last acks after the run.
const ACK_GRACE: Duration = Duration::from_secs(5);

/// `bench publish` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct PublishArgs {
    /// Server address.
    #[arg(long)]
    pub(crate) server: SocketAddr,
    /// The server's private key.
    #[arg(long)]
    pub(crate) key: String,
    /// Workspaces to publish to, round-robin.
    #[arg(long, default_value_t = 1)]
    pub(crate) rooms: u64,
    /// Publishes per second.
    #[arg(long)]
    pub(crate) rate: f64,
    /// Seconds to publish for.
    #[arg(long)]
    pub(crate) duration: f64,
}

/// Connects, publishes, reports [`Reply::Published`] on stdout.
///
/// # Errors
/// The server refused the backend or the connection failed.
pub(crate) fn main(args: &PublishArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut conn = tokio::time::timeout(Duration::from_secs(10), admit(args))
            .await
            .context("backend not admitted within 10 s")??;
        publish(&mut conn, args).await
    })
}

async fn admit(args: &PublishArgs) -> anyhow::Result<Conn> {
    let mut conn = Conn::connect(None, args.server, sio::ENGINE_PATH).await?;
    loop {
        let packet = match conn.next_frame().await? {
            Frame::Text(text) => sio::classify(text, NS),
            Frame::Close => bail!("closed during the handshake"),
            _ => Packet::Other,
        };
        match packet {
            Packet::Open => {
                let auth = serde_json::json!({ "key": args.key }).to_string();
                conn.send_text(sio::connect(NS, &auth).as_bytes()).await?;
            }
            Packet::Ping => conn.send_text(sio::PONG).await?,
            Packet::Connected => return Ok(conn),
            Packet::Refused => bail!("/private refused the backend"),
            _ => {}
        }
    }
}

async fn publish(conn: &mut Conn, args: &PublishArgs) -> anyhow::Result<()> {
    let total = (args.rate * args.duration).round() as u64;
    let rooms = args.rooms.max(1);
    let started = Instant::now();
    let first_send_us = now_us();
    let (mut sent, mut acked_ok, mut acked_err, mut last_send_us) = (0u64, 0u64, 0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut batch = Vec::new();
    let deadline = started + Duration::from_secs_f64(args.duration) + ACK_GRACE;
    while acked_ok + acked_err < total && Instant::now() < deadline {
        tokio::select! {
            _ = tick.tick(), if sent < total => {
                let due = ((started.elapsed().as_secs_f64() * args.rate) as u64 + 1).min(total);
                if due > sent {
                    batch.clear();
                    let stamp = now_us();
                    for k in sent..due {
                        let body = format!(
                            "{{\"event\":\"b\",\"workspace\":\"w{}\",\"data\":{{\"t\":{stamp}}}}}",
                            k % rooms
                        );
                        let frame = sio::event_with_ack(NS, k, "publish", &body);
                        conn.encode(0x1, frame.as_bytes(), &mut batch);
                    }
                    // A server that stops reading fills the socket buffer: the write must not
                    // outlive the run.
                    match tokio::time::timeout_at(deadline.into(), conn.send_raw(&batch)).await {
                        Ok(written) => written?,
                        Err(_) => break,
                    }
                    sent = due;
                    last_send_us = stamp;
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {}
            frame = conn.next_frame() => {
                let packet = match frame? {
                    Frame::Text(text) => sio::classify(text, NS),
                    Frame::Close => bail!("the server closed the backend connection"),
                    _ => Packet::Other,
                };
                match packet {
                    Packet::Ping => conn.send_text(sio::PONG).await?,
                    Packet::Ack { ok: true } => acked_ok += 1,
                    Packet::Ack { ok: false } => acked_err += 1,
                    _ => {}
                }
            }
        }
    }
    reply(&Reply::Published {
        sent,
        acked_ok,
        acked_err,
        first_send_us,
        last_send_us,
    })
}
