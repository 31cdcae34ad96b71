//! The rising-rate measurement of S3 and S4: with the browsers admitted, the publisher runs
//! open-loop at one offered delivery rate per step; after each step the driver waits until the
//! deliveries stop arriving and reads what the step achieved. Steps go up until the server
//! saturates (it delivers less than 90 % of the offered rate, or cannot drain within a bound).

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::{
    fleet::{self, Fleet},
    histogram::Summary,
    proc_stats,
    servers::Server,
};

/// What one step measured.
#[derive(Debug)]
pub(crate) struct Step {
    /// Offered deliveries per second (publish rate × room size).
    pub(crate) offered: f64,
    /// Achieved: deliveries / (last receive − first publish).
    pub(crate) achieved: f64,
    /// Server CPU time per delivery, µs.
    pub(crate) cpu_us_per_delivery: f64,
    /// Server CPU busy fraction over the step (1.0 = the whole core).
    pub(crate) cpu_share: f64,
    /// How busy the server's core was over the step, whoever used it: well above `cpu_share`
    /// means other processes (or softirq work) competed with the server.
    pub(crate) core_busy: f64,
    /// The load generators' CPU share over the step (they share one core with the publisher).
    pub(crate) load_share: f64,
    pub(crate) latency: Summary,
    pub(crate) saturated: bool,
}

/// The room shape and the rates to try.
pub(crate) struct Plan<'a> {
    pub(crate) rooms: u64,
    pub(crate) members: u64,
    /// Offered deliveries per second, rising.
    pub(crate) rates: &'a [f64],
    /// Steps at or below this rate run even after saturation (their latency is reported).
    pub(crate) must_run_up_to: f64,
    pub(crate) duration: Duration,
}

/// Bound on the wait for a step's deliveries to stop arriving.
const DRAIN_WITHIN: Duration = Duration::from_secs(20);
/// Deliveries have stopped when the count holds still this long.
const QUIET: Duration = Duration::from_millis(400);

/// Runs the steps of `plan` and returns what each measured.
///
/// # Errors
/// The publisher or a load generator failed.
pub(crate) async fn run(
    ctx: &super::Ctx,
    server: &Server,
    fleet: &mut Fleet,
    plan: &Plan<'_>,
) -> anyhow::Result<Vec<Step>> {
    let mut steps: Vec<Step> = Vec::new();
    for &offered in plan.rates {
        if steps.last().is_some_and(|s| s.saturated) && offered > plan.must_run_up_to {
            break;
        }
        fleet.reset().await?;
        let cpu_before = server.cpu()?;
        let load_before = fleet.cpu(ctx.setup.ticks_per_s)?;
        let core_before = proc_stats::cpu_busy(&ctx.setup.server_cpu)?;
        let publish_rate = offered / plan.members as f64;
        let published = fleet::publish(
            &ctx.spawner,
            server.addr,
            &ctx.setup.private_key,
            plan.rooms,
            publish_rate,
            plan.duration,
        )
        .await?;
        if published.acked_err > 0 {
            bail!("{} publishes refused", published.acked_err);
        }
        // Every admitted browser gets each publish to its workspace (exact when all were
        // admitted: the workspaces are then equal in size).
        let expected = published.sent * fleet.admitted() / plan.rooms;
        let (received, drained) = drain(fleet, expected, DRAIN_WITHIN, QUIET).await?;
        let cpu = server.cpu()?.saturating_sub(cpu_before);
        let load_cpu = fleet
            .cpu(ctx.setup.ticks_per_s)?
            .saturating_sub(load_before);
        let core_after = proc_stats::cpu_busy(&ctx.setup.server_cpu)?;
        let (busy, total) = (core_after.0 - core_before.0, core_after.1 - core_before.1);
        let window_us = received
            .last_rx_us
            .saturating_sub(published.first_send_us)
            .max(1) as f64;
        let achieved = received.received as f64 * 1e6 / window_us;
        let step = Step {
            offered,
            achieved,
            cpu_us_per_delivery: cpu.as_secs_f64() * 1e6 / received.received.max(1) as f64,
            cpu_share: cpu.as_secs_f64() * 1e6 / window_us,
            load_share: load_cpu.as_secs_f64() * 1e6 / window_us,
            core_busy: busy as f64 / total.max(1) as f64,
            saturated: !drained || achieved < 0.9 * offered || received.dropped > 0,
            latency: received.latency,
        };
        crate::log(&format!(
            "    offered {offered:.0}/s ({} of {} publishes acked) achieved {achieved:.0}/s cpu {:.2} µs/delivery ({:.0} %, core busy {:.0} %, load {:.0} %) \
             p50 {:?} p99 {:?} µs{}",
            published.acked_ok,
            published.sent,
            step.cpu_us_per_delivery,
            step.cpu_share * 100.0,
            step.core_busy * 100.0,
            step.load_share * 100.0,
            step.latency.quantile(0.5),
            step.latency.quantile(0.99),
            if step.saturated { " saturated" } else { "" }
        ));
        steps.push(step);
    }
    Ok(steps)
}

/// Polls the generators until `expected` deliveries arrived, the count held still for `quiet`
/// or `within` passed. Returns the counts and whether everything expected arrived.
pub(crate) async fn drain(
    fleet: &mut Fleet,
    expected: u64,
    within: Duration,
    quiet: Duration,
) -> anyhow::Result<(fleet::Received, bool)> {
    let started = Instant::now();
    let mut last = fleet.report().await?;
    let mut still_since = Instant::now();
    loop {
        if last.received >= expected {
            return Ok((last, true));
        }
        if started.elapsed() > within {
            return Ok((last, false));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = fleet.report().await?;
        if now.received != last.received {
            still_since = Instant::now();
        } else if still_since.elapsed() > quiet {
            return Ok((now, false));
        }
        last = now;
    }
}

/// The highest achieved rate over the steps and the step that reached it.
pub(crate) fn peak(steps: &[Step]) -> Option<&Step> {
    steps
        .iter()
        .max_by(|a, b| a.achieved.total_cmp(&b.achieved))
}

/// The step offered at `rate`.
pub(crate) fn at(steps: &[Step], rate: f64) -> Option<&Step> {
    steps.iter().find(|s| (s.offered - rate).abs() < 1.0)
}
