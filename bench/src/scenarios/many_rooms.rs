//! S4 many rooms: 1000 workspaces of 10 members, then 100 of 100 (10,000 browsers each time),
//! publishes spread round-robin over the workspaces. Reports p99 latency at 10k, 100k and 300k
//! deliveries per second and the saturation rate, per shape.

use std::time::Duration;

use super::{Ctx, Groups, steps};
use crate::{
    report::{Better, Metric},
    servers::Kind,
};

/// Runs both S4 shapes on one server each.
///
/// # Errors
/// The server, the load or the publisher failed.
pub(crate) async fn run(ctx: &Ctx, kind: Kind, label: &str) -> anyhow::Result<Groups> {
    let (shapes, rates, report_at, duration): (&[(u64, u64)], &[f64], &[f64], _) = if ctx.quick {
        (
            &[(50, 10), (5, 100)],
            &[5_000.0, 20_000.0],
            &[5_000.0, 20_000.0],
            Duration::from_secs(2),
        )
    } else {
        (
            &[(1000, 10), (100, 100)],
            &[10_000.0, 100_000.0, 300_000.0, 600_000.0],
            &[10_000.0, 100_000.0, 300_000.0],
            Duration::from_secs(5),
        )
    };
    let mut groups = Vec::new();
    for &(rooms, members) in shapes {
        let shape_label = format!("{label}-{rooms}x{members}");
        let (server, mut fleet, admission) = ctx
            .server_and_fleet(kind, &shape_label, rooms * members, rooms)
            .await?;
        let plan = steps::Plan {
            rooms,
            members,
            rates,
            must_run_up_to: report_at.last().copied().unwrap_or(0.0),
            duration,
        };
        let result = steps::run(ctx, &server, &mut fleet, &plan).await;
        server.stop().await;
        let steps = result?;
        let mut metrics = vec![Metric::new(
            "browsers admitted",
            "",
            Better::Neither,
            admission.admitted as f64,
        )];
        for &rate in report_at {
            let p99 = steps::at(&steps, rate)
                .and_then(|s| s.latency.quantile(0.99))
                .map(|us| us as f64 / 1000.0);
            metrics.push(Metric::maybe(
                format!("p99 at {:.0}k/s", rate / 1000.0),
                "ms",
                Better::Lower,
                p99,
            ));
        }
        let peak = steps::peak(&steps);
        metrics.push(Metric::maybe(
            "deliveries/s at saturation",
            "/s",
            Better::Higher,
            peak.map(|s| s.achieved),
        ));
        metrics.push(Metric::maybe(
            "server CPU there",
            "%",
            Better::Neither,
            peak.map(|s| s.cpu_share * 100.0),
        ));
        metrics.push(Metric::maybe(
            "server core busy there (any process)",
            "%",
            Better::Neither,
            peak.map(|s| s.core_busy * 100.0),
        ));
        metrics.push(Metric::maybe(
            "server CPU per delivery",
            "µs",
            Better::Lower,
            peak.map(|s| s.cpu_us_per_delivery),
        ));
        groups.push((format!("S4 {rooms}×{members}"), metrics));
    }
    Ok(groups)
}
