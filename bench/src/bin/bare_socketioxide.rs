//! `bare_socketioxide`: socketioxide alone, doing on the benchmark's paths what herald does, so
//! that the benchmark can set herald's cost beside that of the library it is built on
//! (docs/benchmarks.md, server `socketioxide`).
//!
//! - `/public`: every handshake is admitted, whatever token it carries (none is checked);
//!   `register` with `{"workspace": "<id>"}` joins the socket to `workspace:<id>`, herald's
//!   room name, and acks `{"ok": true, "workspace": "<id>"}`;
//! - `/private` `publish` (what the bench's publisher sends; any key is admitted) and
//!   `POST /api/v1/publish` (no `Authorization` check) take herald's publish body, workspace
//!   targets only, and broadcast once per workspace with
//!   `io.of("/public").to(room).emit(event, (data, meta))`: the library's cheapest path, which
//!   encodes the packet once for the room; with `--emit per-socket` (or
//!   `BARE_SOCKETIOXIDE_EMIT=per-socket`), socket by socket with `socket.emit` (the meta
//!   encoded once per room, as herald does), the path a server must take to learn whose queue
//!   is full (herald's), so that the two figures split herald's cost into what the library's
//!   public API imposes and what herald adds;
//! - `GET /health` answers 200, the driver's readiness probe.
//!
//! The engine has herald's default settings (`config.default.toml` `[engine]`, the handshake
//! timeout of `[limits]`) and the listener herald's backlog. No authentication, limits, event
//! history or slow-consumer policy: what herald spends beyond this server is what those cost.
//! SIGTERM ends the process at once (its default action); nothing here needs a clean stop.

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use clap::Parser;
use serde::{Deserialize, Serialize};
use serde_json::{json, value::RawValue};
use socketioxide::{
    SocketIo, TransportType,
    extract::{AckSender, SocketRef, TryData},
    handler::ConnectHandler as _,
};

/// socketioxide with no application logic beyond room joins and broadcasts.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on.
    #[arg(long)]
    port: u16,
    /// How a publish reaches a room's sockets.
    #[arg(long, value_enum, env = "BARE_SOCKETIOXIDE_EMIT", default_value_t = Emit::Broadcast)]
    emit: Emit,
}

/// How a publish reaches a room's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Emit {
    /// One broadcast per room: the packet is encoded once.
    Broadcast,
    /// `socket.emit` to each member: encoded per socket, each socket's full queue known.
    PerSocket,
}

/// Whether publishes go socket by socket (`--emit per-socket`).
static PER_SOCKET: AtomicBool = AtomicBool::new(false);

/// herald's default engine settings (`config.default.toml`), those that change the work.
const PING_INTERVAL: Duration = Duration::from_secs(25);
const PING_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_PAYLOAD_BYTES: u64 = 1_048_576;
const MAX_BUFFER_SIZE: usize = 1024;
const WS_READ_BUFFER_BYTES: usize = 256;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// herald's listen backlog: a connect storm is not cut short by the accept queue.
const LISTEN_BACKLOG: u32 = 4096;

/// herald's namespaces and room prefix (its `src/rooms.rs`).
const PUBLIC: &str = "/public";
const PRIVATE: &str = "/private";
const WORKSPACE_PREFIX: &str = "workspace:";
/// Stands in for herald's history epoch (16 hex digits), so that a delivered packet has
/// herald's size on the wire; this server keeps no history.
const EPOCH: &str = "0000000000000000";

/// Publishes broadcast so far: the `offset` of the next one's meta.
static OFFSET: AtomicU64 = AtomicU64::new(0);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    PER_SOCKET.store(args.emit == Emit::PerSocket, Ordering::Relaxed);
    // One worker per CPU the process may use, as herald's runtime (the bench pins it to one).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(SocketAddr::new(args.host, args.port)))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let (layer, io) = SocketIo::builder()
        .ping_interval(PING_INTERVAL)
        .ping_timeout(PING_TIMEOUT)
        .max_payload(MAX_PAYLOAD_BYTES)
        .ws_max_message_size(MAX_PAYLOAD_BYTES as usize)
        .max_buffer_size(MAX_BUFFER_SIZE)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .connect_timeout(HANDSHAKE_TIMEOUT)
        .transports([TransportType::Polling, TransportType::Websocket])
        .build_layer();
    // The handlers are set in a connect middleware, which runs before socketioxide answers the
    // namespace CONNECT: the connect handler runs after it, in another task, so an event sent
    // right after the CONNECT (the bench's `register`, the publisher's first publishes) could
    // arrive before the handler exists and be dropped.
    let public = async |socket: SocketRef| {
        socket.on("register", on_register);
        Ok::<(), Infallible>(())
    };
    io.ns(PUBLIC, (async || {}).with(public));
    let private = async |socket: SocketRef| {
        socket.on("publish", on_publish);
        Ok::<(), Infallible>(())
    };
    io.ns(PRIVATE, (async || {}).with(private));
    let app = Router::new()
        .route("/health", get(async || "ok"))
        .route("/api/v1/publish", post(http_publish))
        .with_state(io)
        .layer(layer);
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr).with_context(|| format!("bind {addr}"))?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    eprintln!("bare_socketioxide: listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// `register`'s argument (herald also takes a bare string; the bench sends this form).
#[derive(Deserialize)]
struct Register {
    workspace: String,
}

async fn on_register(socket: SocketRef, TryData(arg): TryData<Register>, ack: AckSender) {
    let answer = match arg {
        Ok(Register { workspace }) => {
            socket.join(format!("{WORKSPACE_PREFIX}{workspace}"));
            json!({ "ok": true, "workspace": workspace })
        }
        Err(error) => bad_request(&error.to_string()),
    };
    let _ = ack.send(&answer);
}

async fn on_publish(io: SocketIo, TryData(body): TryData<PublishBody>, ack: AckSender) {
    let answer = match body {
        Ok(body) => match publish(&io, body).await {
            Ok(id) => json!({ "ok": true, "id": id }),
            Err(message) => bad_request(&message),
        },
        Err(error) => bad_request(&error.to_string()),
    };
    let _ = ack.send(&answer);
}

/// herald's publish body, the part this server delivers: workspaces. Other fields are ignored.
#[derive(Deserialize)]
struct PublishBody {
    event: String,
    data: Option<Box<RawValue>>,
    workspace: Option<String>,
    #[serde(default)]
    workspaces: Vec<String>,
}

/// The second argument of a delivered event: herald's shape.
#[derive(Serialize)]
struct Meta<'a> {
    id: &'a str,
    workspace: &'a str,
    ts: u64,
    offset: u64,
    epoch: &'a str,
}

/// Broadcasts `body` to its workspaces, each socket once; returns the event id.
async fn publish(io: &SocketIo, body: PublishBody) -> Result<String, String> {
    let workspaces: Vec<String> = body.workspace.into_iter().chain(body.workspaces).collect();
    if workspaces.is_empty() {
        return Err("name a workspace (this server delivers to workspaces only)".to_owned());
    }
    let public = io.of(PUBLIC).ok_or("no /public namespace")?;
    let id = uuid::Uuid::new_v4().to_string();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let offset = OFFSET.fetch_add(1, Ordering::Relaxed) + 1;
    let data = body.data.as_deref();
    let mut served: Vec<String> = Vec::new();
    for workspace in &workspaces {
        let room = format!("{WORKSPACE_PREFIX}{workspace}");
        let meta = Meta {
            id: &id,
            workspace,
            ts,
            offset,
            epoch: EPOCH,
        };
        let mut to = public.clone().to(room.clone());
        if !served.is_empty() {
            to = to.except(served.clone());
        }
        // A full socket queue is that socket's loss; the others are served.
        if PER_SOCKET.load(Ordering::Relaxed) {
            // The meta encoded once for the room, as herald does; each emit copies it.
            let Ok(meta) = serde_json::value::to_raw_value(&meta) else {
                return Err("meta not encoded".to_owned());
            };
            for socket in to.sockets() {
                let _ = socket.emit(&body.event, &(data, &meta));
            }
        } else {
            let _ = to.emit(&body.event, &(data, meta)).await;
        }
        served.push(room);
    }
    Ok(id)
}

async fn http_publish(State(io): State<SocketIo>, body: Bytes) -> Response {
    let parsed = serde_json::from_slice::<PublishBody>(&body).map_err(|e| e.to_string());
    match parsed {
        Ok(body) => match publish(&io, body).await {
            Ok(id) => (StatusCode::ACCEPTED, axum::Json(json!({ "id": id }))).into_response(),
            Err(message) => bad_request_response(&message),
        },
        Err(message) => bad_request_response(&message),
    }
}

fn bad_request(message: &str) -> serde_json::Value {
    json!({ "ok": false, "error": "bad_request", "message": message })
}

fn bad_request_response(message: &str) -> Response {
    let body = json!({ "code": "bad_request", "message": message });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}
