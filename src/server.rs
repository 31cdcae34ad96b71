//! Builds the application (HTTP routes + Socket.IO layer) and serves it until shutdown.
//!
//! [`run`] takes the listener and a [`CancellationToken`] from its caller (the binary, or a test
//! on `127.0.0.1:0`). On cancellation it stops accepting, closes every connection (clients
//! reconnect, as after npm's `io.close()`) spread over `shutdown.drain` (`crate::drain`), and
//! waits for them to end, all within `shutdown_timeout`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, http::StatusCode};
use socketioxide::{SocketIo, TransportType};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

use crate::{
    auth::{AuthSetupError, Authenticator, private::PrivateAccess},
    cells::{self, CellsDoor},
    chat::{Chat, ChatSetupError},
    cluster::{
        ClusterError, Redis, bus, control, ingest,
        log::RedisLog,
        nodes::{self, NodeInfo},
        sessions::RedisSessions,
    },
    config::{AuthMode, Config},
    drain,
    edge::{
        self,
        admission::{self, Admission},
        closing::EnginePath,
        eio3_compat::{self, Eio3Compat},
        listener::{CuttableListener, Peer},
        origin::{self, OriginPolicy},
        owned_head::OwnedHead,
        polling::PollingEdge,
        polling_pid::{self, PollingRewrite},
        session_connections::{self, Connections},
        sessions::PollingSessions,
        tls::{self, TlsError},
        ws_frames::RewriteContext,
    },
    history::{EventLog, MemoryLog},
    http,
    limits::UserSockets,
    metrics::Metrics,
    pipeline::{Door, Publisher},
    recovery::{MemorySessions, Recovery, SessionStore},
    socketio::state::{AppState, Shared},
    socketio::{self, Io, expiry::ExpiryWheel, slow::SlowPolicy, subscriber::SocketIoDoor},
};

/// How long a plain HTTP request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The authenticator could not be built.
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    /// Cluster mode could not be set up.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The chat store could not be opened.
    #[error(transparent)]
    Chat(#[from] ChatSetupError),
    /// TLS could not be set up (names the file at fault).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Serving failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What [`build`] makes.
pub(crate) struct Built {
    /// The application.
    pub(crate) app: Router,
    /// The state the Socket.IO handlers and the HTTP API share.
    pub(crate) state: AppState,
    /// The handshake admission (closed at shutdown).
    pub(crate) admission: Admission,
    /// The Pydio Cells door, when enabled (its sockets are closed at shutdown).
    pub(crate) cells: Option<Arc<CellsDoor>>,
}

/// Builds the router, the state it shares with the Socket.IO handlers, the handshake
/// admission and the other doors.
///
/// # Errors
/// An authenticator that cannot be built (unreadable key file, bad backend URL).
pub(crate) fn build(cfg: &Arc<Config>) -> Result<Built, ServerError> {
    let metrics = if cfg.cluster.redis_url.is_some() {
        Metrics::clustered()
    } else {
        Metrics::new()
    };
    let auth = Authenticator::from_config(cfg, &metrics)?;
    let engine = &cfg.engine;
    let (layer, io): (_, Io) = SocketIo::builder()
        .req_path(cfg.engine_path.clone())
        .ping_interval(engine.ping_interval)
        .ping_timeout(engine.ping_timeout)
        .max_payload(engine.max_payload_bytes)
        .ws_max_message_size(usize::try_from(engine.max_payload_bytes).unwrap_or(usize::MAX))
        .max_buffer_size(engine.max_buffer_size)
        .ws_read_buffer_size(engine.ws_read_buffer_bytes)
        .connect_timeout(cfg.limits.handshake_timeout)
        .transports([TransportType::Polling, TransportType::Websocket])
        .build_layer();
    let connections = Connections::default();
    let mut door_paths = Vec::new();
    if cfg.cells.enabled {
        door_paths.push(cfg.cells.event_path.clone());
        if cfg.chat.enabled {
            door_paths.push(cfg.cells.chat_path.clone());
        }
    }
    let admission = Admission::new(&cfg.engine_path, &door_paths, &cfg.limits, &metrics);
    let slow = SlowPolicy::new(
        Arc::new(connections.clone()),
        metrics.slow_disconnects.clone(),
    );
    let cluster = match &cfg.cluster.redis_url {
        Some(url) => Some(Redis::open(
            url.expose(),
            &cfg.cluster.prefix,
            cfg.cluster.redis_mode,
        )?),
        None => None,
    };
    let log: Arc<dyn EventLog> = match &cluster {
        Some(redis) => Arc::new(RedisLog::new(
            redis.commands.clone(),
            &redis.prefix,
            cfg.history.size,
            cfg.history.ttl,
            cfg.cluster.bus_size,
        )),
        None => {
            let log = Arc::new(MemoryLog::new(cfg.history.size, cfg.history.ttl));
            spawn_history_sweep(&log, &io, &cfg.public.path, cfg.history.ttl);
            log
        }
    };
    let chat = Chat::open(cfg, cluster.as_ref())?;
    let sessions: Arc<dyn SessionStore> = match &cluster {
        Some(redis) => Arc::new(RedisSessions::new(
            redis.commands.clone(),
            &redis.prefix,
            cfg.recovery.max_disconnection,
        )),
        None => Arc::new(MemorySessions::new(cfg.recovery.max_disconnection)),
    };
    let public_door = Arc::new(SocketIoDoor::new(
        io.clone(),
        &cfg.public.path,
        slow.clone(),
    ));
    let cells_door = Arc::new(CellsDoor::default());
    let mut doors: Vec<Arc<dyn Door>> = vec![public_door];
    if cfg.cells.enabled {
        doors.push(cells_door.clone());
    }
    let publisher = Publisher::new(doors, cfg, log, metrics.clone());
    let state = AppState::new(Shared {
        deliverer: publisher.deliverer().clone(),
        publisher,
        chat,
        cluster,
        node_id: uuid::Uuid::new_v4().simple().to_string(),
        private: Arc::new(PrivateAccess::from_config(cfg)),
        expiry: ExpiryWheel::start(cfg.auth.jwt.expiry_warning, slow.clone()),
        slow,
        metrics,
        recovery: Arc::new(Recovery::new(sessions)),
        auth,
        io: io.clone(),
        started: Instant::now(),
        user_sockets: UserSockets::default(),
        cfg: cfg.clone(),
    });
    socketio::register_namespaces(&io, &state);
    let origins = OriginPolicy::new(&cfg.engine_path, &door_paths, &cfg.allowed_origins);
    let mut app = http::router(cfg);
    let cells = cfg.cells.enabled.then_some(cells_door);
    if let Some(door) = &cells {
        let chat = state.chat.as_ref().map(|chat| {
            let limits = cells::ChatLimits {
                max_text: cfg.chat.max_text,
                history_page: cfg.chat.history_page,
                max_history_limit: cfg.chat.max_history_limit,
            };
            let cluster = (state.cluster.clone()).map(|redis| (redis, state.node_id.clone()));
            let door = Arc::new(cells::CellsChat::new(
                chat.clone(),
                state.auth.clone(),
                cluster,
                limits,
            ));
            chat.attach(door.clone());
            door
        });
        app = app
            .merge(cells::router(
                cfg,
                door.clone(),
                state.deliverer.clone(),
                state.auth.clone(),
                &state.metrics,
                chat,
            ))
            // `/status` counts the door's sockets.
            .layer(axum::Extension(door.clone()));
    }
    let app = app
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            HTTP_TIMEOUT,
        ))
        .with_state(state.clone())
        // `/ready` answers 503 once the admission is closed (shutting down).
        .layer(axum::Extension(admission.clone()))
        .layer(layer);
    let compat = Eio3Compat {
        engine_path: cfg.engine_path.clone(),
        max_payload: usize::try_from(engine.max_payload_bytes).unwrap_or(usize::MAX),
        inner: app.clone(),
    };
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            compat,
            eio3_compat::strip_namespace_query,
        ))
        .layer(axum::middleware::from_fn_with_state(
            PollingRewrite {
                recovery: state.recovery.clone(),
                engine_path: cfg.engine_path.clone(),
                public_ns: cfg.public.path.clone(),
                max_payload: usize::try_from(engine.max_payload_bytes).unwrap_or(usize::MAX),
            },
            polling_pid::add_pid,
        ))
        .layer(axum::middleware::from_fn_with_state(
            PollingEdge {
                engine_path: cfg.engine_path.trim_end_matches('/').into(),
                max_payload: usize::try_from(engine.max_payload_bytes).unwrap_or(usize::MAX),
                sessions: PollingSessions::default(),
            },
            edge::polling::follow,
        ))
        // Inside the origin guard (a foreign page takes no slot) and CORS (a refusal is
        // readable by the page, which retries).
        .layer(axum::middleware::from_fn_with_state(
            admission.clone(),
            admission::admit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            origins.clone(),
            origin::guard,
        ))
        .layer(origins.cors_layer())
        .layer(axum::middleware::from_fn_with_state(
            EnginePath::new(&cfg.engine_path),
            edge::closing::close_after_errors,
        ))
        .layer(axum::middleware::from_fn_with_state(
            connections,
            session_connections::expose,
        ));
    Ok(Built {
        app,
        state,
        admission,
        cells,
    })
}

/// What this node says about itself in its heartbeat.
fn describe_node(state: &AppState, addr: std::net::SocketAddr) -> NodeInfo {
    let count = |path: &str| state.io.of(path).map_or(0, |ns| ns.sockets().len() as u64);
    NodeInfo {
        id: state.node_id.clone(),
        addr: addr.to_string(),
        public: count(&state.cfg.public.path),
        private: count(&state.cfg.private.path),
    }
}

/// Sweeps the event log periodically (expired events, forgotten rooms), while the namespace
/// lives; a room counts as occupied while it has sockets on this node.
fn spawn_history_sweep(log: &Arc<MemoryLog>, io: &Io, public_ns: &str, ttl: Duration) {
    let period = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let log = Arc::downgrade(log);
    let (io, public_ns) = (io.clone(), public_ns.to_owned());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (Some(log), Some(ns)) = (log.upgrade(), io.of(&public_ns)) else {
                return;
            };
            let forgotten =
                log.sweep(|room| !ns.clone().within(room.to_owned()).sockets().is_empty());
            if forgotten > 0 {
                tracing::debug!(forgotten, rooms = log.rooms(), "event log swept");
            }
        }
    });
}

/// Serves until `shutdown` is cancelled, then drains within `shutdown_timeout`.
///
/// # Errors
/// A startup failure or an accept loop that died.
pub async fn run(
    listener: TcpListener,
    cfg: Arc<Config>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    run_with(listener, cfg, shutdown, |_| {}).await
}

/// [`run`], with `setup` called on the Socket.IO server before the first connection is accepted.
/// The in-process tests mount extra namespaces with it (the protocol documents' echo handlers);
/// the binary calls [`run`].
///
/// # Errors
/// A startup failure or an accept loop that died.
pub async fn run_with(
    listener: TcpListener,
    cfg: Arc<Config>,
    shutdown: CancellationToken,
    setup: impl FnOnce(&Io),
) -> Result<(), ServerError> {
    let tls = match cfg.tls.files() {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let Built {
        app,
        state,
        admission,
        cells,
    } = build(&cfg)?;
    setup(&state.io);
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, %scheme, engine_path = %cfg.engine_path, "herald listening");
    if let Some(redis) = &state.cluster {
        tracing::info!(node = %state.node_id, prefix = %redis.prefix, "cluster mode");
        bus::spawn(
            redis,
            state.deliverer.clone(),
            state.metrics.redis_outages.clone(),
            shutdown.clone(),
        );
        let describe = {
            let state = state.clone();
            move || describe_node(&state, addr)
        };
        nodes::spawn_heartbeat(redis, describe, shutdown.clone());
        // What this node does with each kind of command from the others, by the kind's owner.
        let mut handlers = control::Handlers::default();
        socketio::handle_remote(&mut handlers, &state);
        socketio::chat::cluster::handle_remote(&mut handlers, &state);
        control::spawn_reader(redis, state.node_id.clone(), handlers, shutdown.clone());
        if let Some(chat) = &state.chat {
            socketio::chat::spawn_presence(state.clone(), chat.clone(), shutdown.clone());
        }
        if !cfg.cluster.emitter_key.is_empty() {
            ingest::spawn(
                redis,
                state.node_id.clone(),
                cfg.cluster.emitter_key.clone(),
                cfg.public.path.clone(),
                cfg.publish.max_targets,
                state.publisher.clone(),
                shutdown.clone(),
            );
        }
    }
    if cfg.auth.mode == AuthMode::Backend && cfg.allowed_origins.is_empty() {
        tracing::warn!(
            "auth.mode = \"backend\" without allowed_origins: any web page can open a socket \
             with a signed-in user's cookies; list your origins in allowed_origins"
        );
    }

    state.metrics.throughput.spawn_sampler(
        state.metrics.published.clone(),
        state.metrics.delivered.clone(),
        shutdown.clone(),
    );

    let stop_accepting = shutdown.clone();
    let rewrite = cfg.recovery.enabled.then(|| RewriteContext {
        recovery: state.recovery.clone(),
        public_ns: cfg.public.path.as_str().into(),
    });
    // Outermost, before axum's router clones the URI: see edge::owned_head.
    let owned_head = OwnedHead::new(&cfg.engine_path, cfg.auth.mode == AuthMode::Backend);
    let app = tower::ServiceBuilder::new()
        .map_request(move |request| owned_head.apply(request))
        .service(app);
    let serve = axum::serve(
        CuttableListener::new(listener, tls, rewrite)?,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<Peer>(
            app,
        ),
    )
    .with_graceful_shutdown(async move { stop_accepting.cancelled().await });
    let mut server = tokio::spawn(serve.into_future());

    // Shutdown first: the server's graceful end follows it within milliseconds (upgraded and
    // idle connections are not waited for), and an unbiased select would then sometimes take
    // that branch and return without the drain, cutting every socket at once.
    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        result = &mut server => return flatten(result),
    }
    // The listener is closed (graceful shutdown of `serve`); handshakes on connections that
    // are still open are refused and /ready answers 503.
    admission.close();
    let spread_over = cfg.shutdown.drain.min(cfg.shutdown_timeout / 2);
    tracing::info!(timeout = ?cfg.shutdown_timeout, drain = ?spread_over, "shutting down");
    let drain = async {
        // Close the transports, as npm's io.close() does: clients see "transport close" and
        // reconnect (to another node, or to this one once it is back). A DISCONNECT packet
        // would tell socket.io-client to stay disconnected until the page is reloaded.
        // Held coalesced events go out to sockets still here, before they leave.
        state.publisher.flush().await;
        drain::spread(&state, spread_over).await;
        state.publisher.flush().await;
        if let Some(door) = &cells {
            // The Cells UI reconnects by itself, to another node or to this one once back.
            door.close_all().await;
        }
        socketio::save_sessions(&state).await;
        state.io.close().await;
        flatten(server.await)
    };
    match tokio::time::timeout(cfg.shutdown_timeout, drain).await {
        Ok(result) => {
            tracing::info!("shutdown complete");
            result
        }
        Err(_) => {
            tracing::warn!("shutdown timed out; closing remaining connections");
            Ok(())
        }
    }
}

fn flatten(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), ServerError> {
    match result {
        Ok(result) => Ok(result?),
        Err(join) => Err(ServerError::Io(std::io::Error::other(join))),
    }
}
