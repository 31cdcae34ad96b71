//! `herald doctor <public URL>`: connects the way a browser's socket.io-client does and says,
//! step by step and in plain words, where it stops and why.
//!
//! The steps ([`Step`]), each bounded by [`Options::timeout`]: URL → DNS (`net`) → TCP →
//! TLS for https/wss (`tls`) → the Engine.IO polling handshake (`engine`) → the WebSocket
//! upgrade of that session (`websocket`) → the Socket.IO CONNECT with the token and
//! `register` of a workspace (`socketio`, with `token` explaining refusals). With
//! [`Options::cells`], the Pydio Cells door's upgrade and subscribe (`cells`) take the place of
//! the Socket.IO steps. The first failing step ends the run with the likely cause and the fix;
//! the [`Report`] renders as text or JSON. The binary's `doctor` subcommand only parses flags
//! and prints the report.

mod cells;
mod engine;
mod net;
mod report;
mod socketio;
mod target;
mod tls;
mod token;
mod websocket;

use std::{path::PathBuf, time::Duration};

pub use report::{Report, Status, Step, StepResult};
pub use target::{DEFAULT_ENGINE_PATH, Target};
pub use token::TokenCheck;

use crate::{auth::jwt::JwtVerifier, config::Secret};

/// What to check, from the command line.
#[derive(Debug)]
pub struct Options {
    /// The public URL browsers use (http, https, ws or wss).
    pub url: String,
    /// The Engine.IO path, when not in the URL.
    pub path: Option<String>,
    /// The Socket.IO namespace browsers connect to.
    pub namespace: String,
    /// The browser token; without it the CONNECT and register steps are skipped.
    pub token: Option<Secret>,
    /// A workspace to `register` to.
    pub workspace: Option<String>,
    /// A PEM file with a private CA to trust besides the public roots.
    pub ca: Option<PathBuf>,
    /// The `Origin` header a browser page would send.
    pub origin: Option<String>,
    /// The bound of each step.
    pub timeout: Duration,
    /// The server's JWT configuration, when this machine has it: names why a token fails.
    pub verifier: Option<JwtVerifier>,
    /// The clock skew herald allows on `exp`/`nbf` (auth.jwt.leeway).
    pub leeway: Duration,
    /// The path of the Pydio Cells door (`cells.event_path`): when given, that door is checked
    /// instead of the Socket.IO steps.
    pub cells: Option<String>,
}

/// Runs the steps in order and stops at the first failure.
pub async fn run(opts: &Options) -> Report {
    let mut report = Report::new(&opts.url);
    let timeout = opts.timeout;
    let parsed =
        target::Target::parse(&opts.url, opts.path.as_deref(), &opts.namespace).and_then(|t| {
            let Some(path) = &opts.cells else {
                let detail = t.describe();
                return Ok(report::Passed::new((t, None), detail));
            };
            let path = cells::door_path(&t, path)?;
            let detail = cells::describe(&t, &path);
            Ok(report::Passed::new((t, Some(path)), detail))
        });
    let Some((target, cells_path)) = report.record(Step::Url, parsed) else {
        return report;
    };
    let Some(addrs) = report.record(Step::Dns, net::resolve(&target, timeout).await) else {
        return report;
    };
    let tcp = net::connect(&addrs, target.port, timeout).await;
    let Some(addr) = report.record(Step::Tcp, tcp) else {
        return report;
    };

    let tls = if target.secure {
        let checked = tls::check(&target, addr, opts.ca.as_deref(), timeout).await;
        let Some(config) = report.record(Step::Tls, checked) else {
            return report;
        };
        Some(config)
    } else {
        report.skip(Step::Tls, "plain http/ws: no TLS");
        None
    };

    if let Some(path) = &cells_path {
        cells::check(&mut report, &target, path, addr, tls, opts).await;
        return report;
    }

    let origin = opts.origin.as_deref();
    let open = engine::handshake(&target, addr, tls.clone(), origin, timeout).await;
    let Some(open) = report.record(Step::Polling, open) else {
        return report;
    };
    let upgraded = if open.upgrades.iter().any(|u| u == "websocket") {
        websocket::upgrade(&target, addr, tls, origin, &open.sid, timeout).await
    } else {
        Err(report::Failure::new(
            format!(
                "the server offers no WebSocket upgrade (upgrades {:?})",
                open.upgrades
            ),
            "herald always offers it: another Engine.IO server answers on this path",
        ))
    };
    let Some(mut ws) = report.record(Step::Websocket, upgraded) else {
        return report;
    };

    let Some(secret) = &opts.token else {
        report.skip(
            Step::Connect,
            "no token given (--token, --token-file or HERALD_DOCTOR_TOKEN)",
        );
        if opts.workspace.is_some() {
            report.skip(Step::Register, "needs a connection: give a token");
        }
        report.conclude(format!(
            "OK: transport works (WebSocket included); authentication not checked (no token) \
             for {}",
            target.http_base()
        ));
        websocket::close(&mut ws).await;
        return report;
    };
    let token = TokenCheck::new(secret.expose(), opts.verifier.as_ref(), opts.leeway);
    let connected = socketio::connect(&mut ws, &target.namespace, &token, timeout).await;
    if report.record(Step::Connect, connected).is_none() {
        websocket::close(&mut ws).await;
        return report;
    }
    match &opts.workspace {
        Some(workspace) => {
            let registered =
                socketio::register(&mut ws, &target.namespace, workspace, &token, timeout).await;
            if report.record(Step::Register, registered).is_none() {
                websocket::close(&mut ws).await;
                return report;
            }
        }
        None => report.skip(Step::Register, "no workspace given (--workspace)"),
    }
    websocket::close(&mut ws).await;
    report.conclude(format!(
        "OK: a browser can connect to {} over WebSocket and authenticate on {}",
        target.http_base(),
        target.namespace
    ));
    report
}
