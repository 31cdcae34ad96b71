//! S5 burst to one room: N browsers (9,000; quick 500) registered to one workspace, then a burst
//! of 60 publishes to it, all sent within a millisecond. Reports the server's CPU time (user +
//! system, `/proc`) over the burst divided by the deliveries counted at the browsers: with bare
//! socketioxide among the servers, herald/socketioxide is herald's cost per delivery over its
//! library's. Every admitted browser should receive all 60: those that did not, and the events
//! they missed, are reported, never left out.

use std::{collections::BTreeMap, time::Duration};

use anyhow::bail;

use super::{Ctx, Groups, steps};
use crate::{
    fleet::{self, Fleet},
    proc_stats,
    report::{Better, Metric},
    servers::{Kind, Server},
};

/// Publishes in the burst.
const PUBLISHES: u64 = 60;
/// The burst's publishes leave within this (the publisher sends what is due every millisecond).
const BURST_WITHIN: Duration = Duration::from_millis(1);
/// Most browsers: the server holds one file per browser and may open 20,000.
pub(crate) const MAX_BROWSERS: u64 = 19_000;
/// Bound on the wait for the deliveries: 9,000 × 60 at the reference's ~15–20 µs each take
/// 8–11 s of its core.
const DRAIN_WITHIN: Duration = Duration::from_secs(120);
/// The deliveries have stopped when the count holds still this long: longer than any pause of
/// a server still working through the burst (a server may write nothing until it is done).
const QUIET: Duration = Duration::from_secs(10);

/// What the burst measured.
struct Burst {
    /// Server CPU time over the burst.
    cpu: Duration,
    received: fleet::Received,
    /// Admitted browsers by events received.
    tally: BTreeMap<u64, u64>,
    /// First publish to last delivery, µs.
    window_us: u64,
    /// How busy the server's core was over the burst, whoever used it.
    core_busy: f64,
}

/// Runs S5 on one server.
///
/// # Errors
/// The server, the load or the publisher failed, or the publisher could not send the burst.
pub(crate) async fn run(ctx: &Ctx, kind: Kind, label: &str) -> anyhow::Result<Groups> {
    let browsers = ctx
        .s5_browsers
        .unwrap_or(if ctx.quick { 500 } else { 9_000 });
    if !(1..=MAX_BROWSERS).contains(&browsers) {
        bail!("S5 takes 1 to {MAX_BROWSERS} browsers, not {browsers}");
    }
    let (server, mut fleet, admission) = ctx.server_and_fleet(kind, label, browsers, 1).await?;
    let result = burst(ctx, &server, &mut fleet).await;
    server.stop().await;
    let burst = result?;

    let (mut short, mut missing, mut extra) = (0, 0, 0);
    for (&events, &count) in &burst.tally {
        if events < PUBLISHES {
            short += count;
            missing += (PUBLISHES - events) * count;
        } else {
            extra += (events - PUBLISHES) * count;
        }
    }
    let cpu_us = burst.cpu.as_secs_f64() * 1e6;
    let deliveries = burst.received.received;
    crate::log(&format!(
        "    burst of {PUBLISHES}: {deliveries} of {} deliveries in {:.1} ms, server CPU {:.1} ms \
         ({:.3} µs/delivery, core busy {:.0} %)",
        PUBLISHES * admission.admitted,
        burst.window_us as f64 / 1e3,
        cpu_us / 1e3,
        cpu_us / deliveries as f64,
        burst.core_busy * 100.0
    ));
    if short > 0 || extra > 0 {
        crate::log(&format!(
            "    {short} browsers missed {missing} events, {extra} events beyond {PUBLISHES}; \
             browsers by events received: {:?}",
            burst.tally
        ));
    }
    let metrics = vec![
        Metric::new(
            "browsers admitted",
            "",
            Better::Neither,
            admission.admitted as f64,
        ),
        Metric::new("deliveries counted", "", Better::Neither, deliveries as f64),
        Metric::new("browsers missing events", "", Better::Lower, short as f64),
        Metric::new("events missing", "", Better::Lower, missing as f64),
        Metric::new(
            format!("events beyond {PUBLISHES} per browser"),
            "",
            Better::Lower,
            extra as f64,
        ),
        Metric::new(
            "first publish to last delivery",
            "ms",
            Better::Lower,
            burst.window_us as f64 / 1e3,
        ),
        Metric::new(
            "server core busy (any process)",
            "%",
            Better::Neither,
            burst.core_busy * 100.0,
        ),
        Metric::new("server CPU", "ms", Better::Lower, cpu_us / 1e3),
        Metric::new(
            "server CPU per delivery",
            "µs",
            Better::Lower,
            cpu_us / deliveries as f64,
        ),
    ];
    Ok(vec![("S5 burst to one room".to_owned(), metrics)])
}

/// The burst on a server whose browsers are all admitted to one workspace.
async fn burst(ctx: &Ctx, server: &Server, fleet: &mut Fleet) -> anyhow::Result<Burst> {
    fleet.reset().await?;
    let cpu_before = server.cpu()?;
    let core_before = proc_stats::cpu_busy(&ctx.setup.server_cpu)?;
    let published = fleet::publish(
        &ctx.spawner,
        server.addr,
        &ctx.setup.private_key,
        1,
        PUBLISHES as f64 / BURST_WITHIN.as_secs_f64(),
        BURST_WITHIN,
    )
    .await?;
    if published.sent != PUBLISHES {
        bail!(
            "the publisher sent {} of the {PUBLISHES} publishes",
            published.sent
        );
    }
    if published.acked_err > 0 {
        bail!("{} publishes refused", published.acked_err);
    }
    let expected = PUBLISHES * fleet.admitted();
    let (received, _) = steps::drain(fleet, expected, DRAIN_WITHIN, QUIET).await?;
    let cpu = server.cpu()?.saturating_sub(cpu_before);
    let core_after = proc_stats::cpu_busy(&ctx.setup.server_cpu)?;
    let (busy, total) = (core_after.0 - core_before.0, core_after.1 - core_before.1);
    let tally = fleet.tally().await?;
    Ok(Burst {
        cpu,
        window_us: received.last_rx_us.saturating_sub(published.first_send_us),
        received,
        tally,
        core_busy: busy as f64 / total.max(1) as f64,
    })
}
