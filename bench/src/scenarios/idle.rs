//! S1 idle and S2 connect storm, measured in one run: N browsers are opened at once (the storm:
//! time until all are admitted, admissions per second, failures, server CPU per handshake), then
//! held idle (server memory per connection, server CPU per connection per second). The idle
//! window of the full run is longer than the 25 s ping interval, so every connection pays for
//! at least one heartbeat in it.

use std::time::{Duration, Instant};

use super::{Ctx, Groups};
use crate::{
    report::{Better, Metric},
    servers::Kind,
};

/// Runs S1 and S2 on one server.
///
/// # Errors
/// The server or the load did not start.
pub(crate) async fn run(ctx: &Ctx, kind: Kind, label: &str) -> anyhow::Result<Groups> {
    let (browsers, hold) = if ctx.quick {
        (500, Duration::from_secs(3))
    } else {
        (19_000, Duration::from_secs(30))
    };
    let server = crate::servers::Server::start(kind, &ctx.setup, label).await?;
    let rss_before = server.rss_kb()?;
    let mut fleet = crate::fleet::Fleet::start(
        &ctx.spawner,
        server.addr,
        &ctx.setup.jwt_secret,
        browsers,
        browsers,
        None,
        crate::fleet::SCENARIO_LIFETIME,
    )
    .await?;
    let cpu_before = server.cpu()?;
    let overflows_before = crate::proc_stats::listen_overflows()?;
    let admission = fleet.go(Duration::from_secs(90)).await?;
    let storm_cpu = server.cpu()?.saturating_sub(cpu_before);
    crate::log(&format!("    {}", admission.summary(browsers)));
    let overflows = crate::proc_stats::listen_overflows()?.saturating_sub(overflows_before);
    let admitted = admission.admitted.max(1) as f64;

    // The idle window: a measurement interval, not a wait for an event.
    let cpu_idle_start = server.cpu()?;
    let idle_start = Instant::now();
    tokio::time::sleep(hold).await;
    let idle_cpu = server.cpu()?.saturating_sub(cpu_idle_start);
    let idle_secs = idle_start.elapsed().as_secs_f64();
    let rss_after = server.rss_kb()?;
    let still = fleet.report().await?;
    server.stop().await;

    let secs = admission.elapsed.as_secs_f64();
    let s2 = vec![
        Metric::new("browsers", "", Better::Neither, browsers as f64),
        Metric::new("time until all settled", "ms", Better::Lower, secs * 1e3),
        Metric::new(
            "admitted per second",
            "/s",
            Better::Higher,
            admission.admitted as f64 / secs,
        ),
        Metric::new("failures", "", Better::Lower, admission.failed as f64),
        Metric::new(
            "server CPU per handshake",
            "µs",
            Better::Lower,
            storm_cpu.as_secs_f64() * 1e6 / admitted,
        ),
        Metric::new(
            "accept queue overflows (kernel)",
            "",
            Better::Neither,
            overflows as f64,
        ),
    ];
    let s1 = vec![
        Metric::new(
            "connections held",
            "",
            Better::Neither,
            admission.admitted as f64 - still.dropped as f64,
        ),
        Metric::new(
            "server RSS per connection",
            "KB",
            Better::Lower,
            rss_after.saturating_sub(rss_before) as f64 * 1.024 / admitted,
        ),
        Metric::new(
            "server CPU per connection per second",
            "µs",
            Better::Lower,
            idle_cpu.as_secs_f64() * 1e6 / admitted / idle_secs,
        ),
        Metric::new(
            "load generator memory per connection",
            "KB",
            Better::Neither,
            admission.load_bytes_per_conn / 1000.0,
        ),
    ];
    Ok(vec![
        ("S1 idle".to_owned(), s1),
        ("S2 connect storm".to_owned(), s2),
    ])
}
