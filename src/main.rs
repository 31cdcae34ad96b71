//! The `herald` binary: parses the command line and calls the library.
//!
//! `herald [--config FILE] [--host IP] [--port N]` serves; `herald token --user ID ...` mints a
//! development JWT with the configured secret; `herald doctor URL` checks how a browser gets
//! (or fails to get) connected to a deployed herald.

use std::{net::IpAddr, path::PathBuf, sync::Arc, time::Duration};

use std::io::Write as _;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use herald::{
    Config,
    auth::jwt,
    config::{GeneratedSecrets, LogFormat, Overrides},
};
use tokio_util::sync::CancellationToken;

/// Socket.IO-compatible real-time push server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct Common {
    /// TOML configuration file (layered over the embedded defaults).
    #[arg(long, short, env = "HERALD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on (public.host).
    #[arg(long, global = true)]
    host: Option<IpAddr>,
    /// Port to listen on (public.port); 0 picks a free one.
    #[arg(long, global = true)]
    port: Option<u16>,
    /// Log format (log.format).
    #[arg(long, value_enum, global = true)]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Mint a JWT for development, signed with the configured secret.
    Token(TokenArgs),
    /// Connect to a public URL the way a browser does and say where and why it fails.
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// The public URL browsers use: https://push.example.com, http://host:8090, wss://...
    /// Its path, when it has one, is the Engine.IO path.
    url: String,
    /// Engine.IO path, when not in the URL (default /socket.io; Open-Xchange: /socket.io/appsuite).
    #[arg(long)]
    path: Option<String>,
    /// Socket.IO namespace of browsers (default: public.path of the configuration, /public).
    #[arg(long)]
    namespace: Option<String>,
    /// Browser token to connect with (never printed). Without one, authentication is skipped.
    #[arg(
        long,
        env = "HERALD_DOCTOR_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// File holding the browser token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Workspace to register to after connecting.
    #[arg(long)]
    workspace: Option<String>,
    /// PEM file of a private CA to trust besides the public roots.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Origin header to send, as the web application's page would (for allowed_origins).
    #[arg(long)]
    origin: Option<String>,
    /// Bound of each step, e.g. "5s".
    #[arg(long, default_value = "5s", value_parser = humantime_parse)]
    timeout: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Check the Pydio Cells door (a plain WebSocket and the UI's subscribe) instead of
    /// Socket.IO, at PATH (default: cells.event_path of the configuration, /ws/event).
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with_all = ["path", "namespace", "workspace"]
    )]
    cells: Option<Option<String>>,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// User id (`sub`).
    #[arg(long)]
    user: String,
    /// Comma-separated workspace ids the user may read.
    #[arg(long, value_delimiter = ',')]
    workspaces: Vec<String>,
    /// Comma-separated group paths.
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// Lifetime, e.g. "1h", "30m".
    #[arg(long, default_value = "12h", value_parser = humantime_parse)]
    ttl: Duration,
    /// PEM private key, for RS256/ES256 configurations.
    #[arg(long)]
    signing_key: Option<PathBuf>,
}

fn humantime_parse(s: &str) -> Result<Duration, String> {
    humantime_serde::re::humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            // The chain of causes, one line, without a backtrace: these are user errors
            // (bad config, port in use) more often than bugs.
            let _ = writeln!(std::io::stderr(), "herald: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let overrides = Overrides {
        host: cli.common.host,
        port: cli.common.port,
        log_format: cli.common.log_format,
    };
    let mut cfg = Config::load(cli.common.config.as_deref(), overrides)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let dev_mode_allowed = cli.common.config.is_none();
            let generated = cfg.validate(dev_mode_allowed)?;
            serve(cfg, &generated).map(|()| std::process::ExitCode::SUCCESS)
        }
        Command::Token(args) => token(&cfg, &args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Doctor(args) => doctor(&cfg, args),
    }
}

/// Pending connections the kernel queues before herald accepts them. A reconnect storm (every
/// browser after a deploy) overflows tokio's default of 128 at once, and refused clients retry
/// seconds later (measured in bench S2); the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listener with [`LISTEN_BACKLOG`].
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn serve(cfg: Config, generated: &GeneratedSecrets) -> anyhow::Result<()> {
    herald::telemetry::init(&cfg.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    runtime.block_on(async move {
        let addr = std::net::SocketAddr::new(cfg.public.host, cfg.public.port);
        let listener = listen(addr).with_context(|| format!("bind {addr}"))?;
        if generated.any() {
            print_development_banner(&cfg, generated, listener.local_addr()?);
        }
        let shutdown = CancellationToken::new();
        herald::shutdown::cancel_on_signal(shutdown.clone());
        herald::run(listener, Arc::new(cfg), shutdown).await?;
        Ok(())
    })
}

/// Development mode: say which secrets were generated and how to use them. Printed on stderr,
/// once, and never in production (where secrets are configured, not generated).
fn print_development_banner(
    cfg: &Config,
    generated: &GeneratedSecrets,
    addr: std::net::SocketAddr,
) {
    let key = generated.private_key.as_ref().map_or("", |k| k.expose());
    let secret = generated.jwt_secret.as_ref().map_or("", |s| s.expose());
    let token = jwt::mint(
        &cfg.auth.jwt,
        None,
        "dev",
        &[],
        &["demo".to_owned()],
        Duration::from_secs(12 * 3600),
    )
    .unwrap_or_default();
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let scheme = if cfg.tls.files().is_some() {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{host}:{}", addr.port());
    // Not eprintln!: a closed stderr must not panic the server.
    let _ = writeln!(
        std::io::stderr(),
        "\nherald is running in DEVELOPMENT MODE: no secrets were configured, so these were generated\n\
         for this run only. Configure private.key and auth.jwt.secret for anything real.\n\n\
         \x20 private key (HERALD_PRIVATE__KEY):    {key}\n\
         \x20 JWT secret  (HERALD_AUTH__JWT__SECRET): {secret}\n\n\
         A browser token for user \"dev\" who may read workspace \"demo\" (valid 12 h):\n\
         \x20 {token}\n\n\
         Connect:  io(\"{base}{ns}\", {{ path: \"{path}\", auth: {{ token }} }}) then emit(\"register\", {{ workspace: \"demo\" }})\n\
         Publish:  curl -X POST {base}/api/v1/publish -H 'Authorization: Bearer {key}' \\\n\
         \x20          -H 'Content-Type: application/json' -d '{{\"event\":\"hello\",\"workspace\":\"demo\",\"data\":{{\"text\":\"hi\"}}}}'\n\
         More tokens: HERALD_AUTH__JWT__SECRET={secret} herald token --user alice --workspaces demo\n",
        ns = cfg.public.path,
        path = cfg.engine_path,
    );
}

/// `herald doctor`: runs the checks and prints the report; exits 1 when a step failed (the
/// report already says why).
fn doctor(cfg: &Config, args: DoctorArgs) -> anyhow::Result<std::process::ExitCode> {
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.trim().to_owned()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("read the token file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    // With the server's JWT configuration here, doctor can name why a token is refused.
    let verifier = (cfg.auth.mode == herald::config::AuthMode::Jwt)
        .then(|| jwt::JwtVerifier::from_config(&cfg.auth.jwt).ok())
        .flatten();
    let opts = herald::doctor::Options {
        url: args.url,
        path: args.path,
        namespace: args.namespace.unwrap_or_else(|| cfg.public.path.clone()),
        token: token.map(herald::config::Secret::new),
        workspace: args.workspace,
        ca: args.ca,
        origin: args.origin,
        timeout: args.timeout,
        verifier,
        leeway: cfg.auth.jwt.leeway,
        cells: args
            .cells
            .map(|path| path.unwrap_or_else(|| cfg.cells.event_path.clone())),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let report = runtime.block_on(herald::doctor::run(&opts));
    let text = if args.json {
        report.to_json() + "\n"
    } else {
        report.to_text()
    };
    // Not print!: a closed stdout (`| head`) must not panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(if report.ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

#[allow(clippy::print_stdout)]
fn token(cfg: &Config, args: &TokenArgs) -> anyhow::Result<()> {
    let pem = match &args.signing_key {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("read {}", path.display()))?)
        }
        None => None,
    };
    if cfg.auth.jwt.algorithm.is_hmac() && cfg.auth.jwt.secret.is_none() {
        anyhow::bail!(
            "missing configuration value `auth.jwt.secret` (set HERALD_AUTH__JWT__SECRET or use --config)"
        );
    }
    let token = jwt::mint(
        &cfg.auth.jwt,
        pem.as_deref(),
        &args.user,
        &args.groups,
        &args.workspaces,
        args.ttl,
    )?;
    println!("{token}");
    Ok(())
}
