//! S3 big room: every browser in one workspace; the publish rate rises until the server
//! saturates. Reports deliveries per second at saturation, server CPU per delivery there, and
//! latency percentiles at 100k deliveries per second (quick: at its top rate).

use std::time::Duration;

use super::{Ctx, Groups, steps};
use crate::{
    report::{Better, Metric},
    servers::Kind,
};

/// Runs S3 on one server.
///
/// # Errors
/// The server, the load or the publisher failed.
pub(crate) async fn run(ctx: &Ctx, kind: Kind, label: &str) -> anyhow::Result<Groups> {
    let (members, rates, latency_at, duration): (u64, &[f64], f64, _) = if ctx.quick {
        (500, &[5_000.0, 20_000.0], 20_000.0, Duration::from_secs(2))
    } else {
        (
            10_000,
            &[
                10_000.0, 25_000.0, 50_000.0, 100_000.0, 200_000.0, 400_000.0, 800_000.0,
            ],
            100_000.0,
            Duration::from_secs(5),
        )
    };
    let (server, mut fleet, admission) = ctx.server_and_fleet(kind, label, members, 1).await?;
    let plan = steps::Plan {
        rooms: 1,
        members,
        rates,
        must_run_up_to: latency_at,
        duration,
    };
    let result = steps::run(ctx, &server, &mut fleet, &plan).await;
    server.stop().await;
    let steps = result?;
    let peak = steps::peak(&steps);
    let at = steps::at(&steps, latency_at);
    let k = latency_at / 1000.0;
    let ms = |q| {
        at.and_then(|s| s.latency.quantile(q))
            .map(|us| us as f64 / 1000.0)
    };
    let metrics = vec![
        Metric::new(
            "members admitted",
            "",
            Better::Neither,
            admission.admitted as f64,
        ),
        Metric::maybe(
            "deliveries/s at saturation",
            "/s",
            Better::Higher,
            peak.map(|s| s.achieved),
        ),
        Metric::maybe(
            "server CPU there",
            "%",
            Better::Neither,
            peak.map(|s| s.cpu_share * 100.0),
        ),
        Metric::maybe(
            "server core busy there (any process)",
            "%",
            Better::Neither,
            peak.map(|s| s.core_busy * 100.0),
        ),
        Metric::maybe(
            "load generators' CPU there",
            "%",
            Better::Neither,
            peak.map(|s| s.load_share * 100.0),
        ),
        Metric::maybe(
            "server CPU per delivery",
            "µs",
            Better::Lower,
            peak.map(|s| s.cpu_us_per_delivery),
        ),
        Metric::maybe(format!("p50 at {k:.0}k/s"), "ms", Better::Lower, ms(0.5)),
        Metric::maybe(format!("p99 at {k:.0}k/s"), "ms", Better::Lower, ms(0.99)),
    ];
    Ok(vec![("S3 big room".to_owned(), metrics)])
}
