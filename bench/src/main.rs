//! `bench`: herald against the npm socket.io reference server, side by side in one run
//! (docs/benchmarks.md), and against bare socketioxide (`bare_socketioxide`, the other binary of
//! this crate) to measure herald's own cost.
//!
//! - `bench all [--quick]` is the driver: it runs every scenario against the servers
//!   alternately and prints the results table (Markdown) on stdout, progress on stderr;
//! - `bench load` is a load generator and `bench publish` the publisher; the driver starts them
//!   (pinned to the load core) and talks to them over their stdin/stdout ([`control`]).
//!
//! # Layout
//! - [`ws`], [`sio`]: a minimal WebSocket client and the Engine.IO / Socket.IO packets on it;
//! - [`client`], [`load`], [`publisher`], [`token`], [`clock`], [`histogram`]: the load side;
//! - [`servers`], [`fleet`], [`proc_stats`], [`scenarios`], [`report`]: the driver side.

mod churn;
mod client;
mod clock;
mod control;
mod fleet;
mod histogram;
mod load;
mod proc_stats;
mod publisher;
mod report;
mod scenarios;
mod servers;
mod sio;
mod soak;
mod token;
mod ws;

use std::{io::Write as _, path::PathBuf};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

/// herald against the npm socket.io reference server.
#[derive(Debug, Parser)]
#[command(about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the scenarios against both servers and print the table.
    All(AllArgs),
    /// A load generator (started by the driver).
    Load(load::LoadArgs),
    /// The publisher (started by the driver).
    Publish(publisher::PublishArgs),
    /// The soak (docs/reliability.md): herald under connect/disconnect churn and publishing
    /// for a long time; RSS, open files and p99 every 10 s.
    Soak(soak::SoakArgs),
    /// Churn for the soak: browsers that come and go (started by `soak`).
    Churn(churn::ChurnArgs),
}

#[derive(Debug, clap::Args)]
struct AllArgs {
    /// Small sizes and short steps: a smoke test of the harness (seconds per run).
    #[arg(long)]
    quick: bool,
    /// Runs per server and scenario (alternating the servers: herald, reference, ...).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Only these scenarios (S1S2, S3, S4, S5), comma-separated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Servers to run (herald, reference, socketioxide, candidate), comma-separated; herald and
    /// reference by default. One alone is for experiments (`--herald-env`): no ratios then.
    #[arg(long, value_delimiter = ',', default_values = ["herald", "reference"])]
    servers: Vec<String>,
    /// The herald binary.
    #[arg(long, default_value = "target/release/herald")]
    herald: PathBuf,
    /// A second herald build to compare with `--herald` (A/B), run alternately with it and
    /// with the same settings; adds `candidate` to `--servers`. The table then gives
    /// candidate/herald ratios (candidate/reference too when the reference runs).
    #[arg(long)]
    candidate: Option<PathBuf>,
    /// The reference server script.
    #[arg(long, default_value = "js-fixtures/reference-server.js")]
    reference: PathBuf,
    /// The bare socketioxide server (server `socketioxide`).
    #[arg(long, default_value = "target/release/bare_socketioxide")]
    socketioxide: PathBuf,
    /// Browsers in S5's room (default 9,000, quick 500; at most 19,000: the server holds one
    /// file per browser and may open 20,000).
    #[arg(long)]
    s5_browsers: Option<u64>,
    /// Node.js.
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// CPU the server is pinned to.
    #[arg(long, default_value = "0")]
    server_cpu: String,
    /// CPU(s) the load generators and the publisher are pinned to.
    #[arg(long, default_value = "1")]
    load_cpu: String,
    /// Extra environment for herald, KEY=VALUE, repeatable (experiments: an allocator with
    /// LD_PRELOAD, HERALD_ENGINE__MAX_BUFFER_SIZE=64, ...).
    #[arg(long = "herald-env", value_parser = key_value)]
    herald_env: Vec<(String, String)>,
    /// Where server logs and results.json go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Cmd::All(args) => all(args),
        Cmd::Load(args) => load::main(args),
        Cmd::Publish(args) => publisher::main(args),
        Cmd::Soak(args) => soak(args),
        Cmd::Churn(args) => churn::main(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            log(&format!("bench: {error:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}

/// One progress line on stderr.
pub(crate) fn log(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn all(args: &AllArgs) -> anyhow::Result<()> {
    let kinds = server_kinds(args)?;
    let socketioxide = kinds
        .contains(&servers::Kind::Socketioxide)
        .then_some(&args.socketioxide);
    let reference = kinds
        .contains(&servers::Kind::Reference)
        .then_some(&args.reference);
    for (what, path) in [
        ("herald binary", Some(&args.herald)),
        ("reference server", reference),
        ("candidate binary", args.candidate.as_ref()),
        ("bare socketioxide binary", socketioxide),
    ] {
        let Some(path) = path else { continue };
        if !path.exists() {
            bail!(
                "{what} not found at {} (run from the repository root)",
                path.display()
            );
        }
    }
    let secret = |tag: &str| format!("bench-{tag}-{}-{}", std::process::id(), clock::now_us());
    // herald's default limits (10,000 connections per node, 256 handshakes in flight) would
    // refuse part of a 19k storm and of a 10k room with a fast 503, which this generator does
    // not retry (socket.io-client would). The reference has no such limits: lift herald's so
    // that both do the same work. `--herald-env` can set them back.
    let mut herald_env: Vec<(String, String)> = [
        ("HERALD_LIMITS__MAX_CONNECTIONS", "20000"),
        ("HERALD_LIMITS__MAX_HANDSHAKES_IN_FLIGHT", "20000"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    herald_env.extend(args.herald_env.iter().cloned());
    let setup = servers::Setup {
        herald_bin: args.herald.clone(),
        candidate_bin: args.candidate.clone(),
        herald_env,
        reference_js: args.reference.clone(),
        node: args.node.clone(),
        socketioxide_bin: args.socketioxide.clone(),
        server_cpu: args.server_cpu.clone(),
        logs: args.out.join("logs"),
        jwt_secret: secret("jwt"),
        private_key: secret("key"),
        ticks_per_s: proc_stats::clock_ticks(),
    };
    let spawner = fleet::Spawner {
        exe: std::env::current_exe().context("own path")?,
        load_cpu: args.load_cpu.clone(),
    };
    let ctx = scenarios::Ctx {
        setup,
        spawner,
        quick: args.quick,
        s5_browsers: args.s5_browsers,
    };
    log(&format!(
        "bench: {} mode, {} round(s), server on CPU {}, load on CPU {}",
        if args.quick { "quick" } else { "full" },
        args.rounds,
        args.server_cpu,
        args.load_cpu
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(scenarios::run_all(&ctx, &args.only, args.rounds, &kinds));
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", results.table(&kinds))?;
    for failure in &results.failures {
        writeln!(out, "FAILED: {failure}")?;
    }
    let selected: Vec<&str> = scenarios::ALL
        .iter()
        .copied()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case(s)))
        .map(|s| match s {
            "S1S2" => "S1",
            other => other,
        })
        .collect();
    let missing = results.incomplete(&selected, &kinds);
    if !missing.is_empty() {
        bail!("no numbers for: {}", missing.join(", "));
    }
    Ok(())
}

/// The servers `--servers` names, in that order, plus the candidate when `--candidate` gives
/// one and `--servers` does not name it.
fn server_kinds(args: &AllArgs) -> anyhow::Result<Vec<servers::Kind>> {
    let mut kinds = Vec::new();
    for name in &args.servers {
        let kind = match name.as_str() {
            "herald" => servers::Kind::Herald,
            "reference" => servers::Kind::Reference,
            "socketioxide" => servers::Kind::Socketioxide,
            "candidate" if args.candidate.is_some() => servers::Kind::Candidate,
            "candidate" => bail!("--servers names candidate: give its binary with --candidate"),
            other => {
                bail!("unknown server {other:?} (herald, reference, socketioxide, candidate)")
            }
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if args.candidate.is_some() && !kinds.contains(&servers::Kind::Candidate) {
        kinds.push(servers::Kind::Candidate);
    }
    Ok(kinds)
}

fn soak(args: &soak::SoakArgs) -> anyhow::Result<()> {
    if !args.herald.exists() {
        bail!(
            "herald binary not found at {} (run from the repository root)",
            args.herald.display()
        );
    }
    let secret = |tag: &str| format!("soak-{tag}-{}-{}", std::process::id(), clock::now_us());
    let setup = servers::Setup {
        herald_bin: args.herald.clone(),
        candidate_bin: None,
        herald_env: Vec::new(),
        reference_js: PathBuf::from("js-fixtures/reference-server.js"),
        node: PathBuf::from("node"),
        socketioxide_bin: PathBuf::from("target/release/bare_socketioxide"),
        server_cpu: args.server_cpu.clone(),
        logs: args.out.join("logs"),
        jwt_secret: secret("jwt"),
        private_key: secret("key"),
        ticks_per_s: proc_stats::clock_ticks(),
    };
    let spawner = fleet::Spawner {
        exe: std::env::current_exe().context("own path")?,
        load_cpu: args.load_cpu.clone(),
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(soak::run(args, &setup, &spawner))
}
