//! The scenarios and the order they run in. Every scenario runs against the selected servers
//! alternately (A B A B A B), each run on a freshly started server, so that drift of the machine
//! during the run hits all servers alike.
//!
//! - [`idle`]: S1 idle connections and S2 the connect storm (one run measures both: the N
//!   browsers of S1 are opened as one storm);
//! - [`big_room`]: S3, one workspace with many members, rising publish rate;
//! - [`many_rooms`]: S4, many small workspaces, rising publish rate;
//! - [`burst`]: S5, one workspace, a burst of 60 publishes: server CPU per delivery.
//!
//! [`steps`] holds the rising-rate measurement S3 and S4 share, and the wait for deliveries
//! S5 uses too.

pub(crate) mod big_room;
pub(crate) mod burst;
pub(crate) mod idle;
pub(crate) mod many_rooms;
pub(crate) mod steps;

use std::time::Duration;

use crate::{
    fleet::{Fleet, Spawner},
    report::{Metric, Results},
    servers::{Kind, Server, Setup},
};

/// Everything a scenario needs to run.
pub(crate) struct Ctx {
    pub(crate) setup: Setup,
    pub(crate) spawner: Spawner,
    pub(crate) quick: bool,
    /// S5's room size, when not the default of the mode.
    pub(crate) s5_browsers: Option<u64>,
}

impl Ctx {
    /// A server of `kind` and a fleet of `browsers` admitted browsers over `rooms` workspaces,
    /// opened at a pace both servers keep up with (S2 measures storms; S3 and S4 need every
    /// browser in).
    ///
    /// # Errors
    /// The server or the fleet did not start, or not a single browser was admitted.
    pub(crate) async fn server_and_fleet(
        &self,
        kind: Kind,
        label: &str,
        browsers: u64,
        rooms: u64,
    ) -> anyhow::Result<(Server, Fleet, crate::fleet::Admission)> {
        let server = Server::start(kind, &self.setup, label).await?;
        let mut fleet = Fleet::start(
            &self.spawner,
            server.addr,
            &self.setup.jwt_secret,
            browsers,
            rooms,
            Some(SETUP_CONCURRENCY),
            crate::fleet::SCENARIO_LIFETIME,
        )
        .await?;
        let admission = fleet.go(Duration::from_secs(150)).await?;
        crate::log(&format!("    {}", admission.summary(browsers)));
        if admission.admitted == 0 {
            anyhow::bail!(
                "no browser admitted by {}: {}",
                kind.name(),
                admission
                    .first_error
                    .as_deref()
                    .unwrap_or("no error recorded")
            );
        }
        Ok((server, fleet, admission))
    }
}

/// Handshakes in flight per load generator when setting up S3, S4 and S5: below the servers'
/// accept backlogs (herald and bare socketioxide 4096, Node.js 511), so no connect waits for a
/// SYN retransmission.
const SETUP_CONCURRENCY: usize = 50;

/// The scenario names, in run order; `--only` takes these.
pub(crate) const ALL: [&str; 4] = ["S1S2", "S3", "S4", "S5"];

/// Runs the selected scenarios, `rounds` times per server, alternating the servers.
pub(crate) async fn run_all(ctx: &Ctx, only: &[String], rounds: usize, kinds: &[Kind]) -> Results {
    let mut results = Results::default();
    for scenario in ALL {
        if !only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(scenario)) {
            continue;
        }
        for round in 0..rounds {
            for &kind in kinds {
                let label = format!("{scenario}-r{round}");
                crate::log(&format!("{label} {} ...", kind.name()));
                let outcome = match scenario {
                    "S1S2" => idle::run(ctx, kind, &label).await,
                    "S3" => big_room::run(ctx, kind, &label).await,
                    "S4" => many_rooms::run(ctx, kind, &label).await,
                    _ => burst::run(ctx, kind, &label).await,
                };
                match outcome {
                    Ok(groups) => {
                        for (name, metrics) in groups {
                            crate::log(&format!("  {name} {}: {}", kind.name(), brief(&metrics)));
                            results.add(&name, kind, round, metrics);
                        }
                    }
                    Err(error) => {
                        crate::log(&format!("  {label} {} FAILED: {error:#}", kind.name()));
                        results
                            .failures
                            .push(format!("{label} {}: {error:#}", kind.name()));
                    }
                }
            }
        }
    }
    results
}

/// Metrics grouped under the scenario names they belong to.
pub(crate) type Groups = Vec<(String, Vec<Metric>)>;

fn brief(metrics: &[Metric]) -> String {
    metrics
        .iter()
        .map(|m| match m.value {
            Some(v) => format!("{}={v:.3}{}", m.name, m.unit),
            None => format!("{}=—", m.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
