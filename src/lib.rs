//! herald: a Socket.IO-compatible real-time push server for file-sharing and collaboration
//! platforms (Pydio, Pydio Cells, Open-Xchange App Suite style push).
//!
//! Browsers connect to the `/public` namespace with a token, register to the workspaces they
//! look at, and receive the events that application backends publish on the `/private`
//! namespace or over `POST /api/v1/publish`. Every event reaches exactly the sockets allowed to
//! see it, each once.
//!
//! # Layout
//! - [`config`]: the typed, layered configuration (defaults < file < env < flags).
//! - `ids`: validated identifiers (workspace, user, group) parsed at the edge.
//! - `rooms`: the one place ids become Socket.IO room names.
//! - [`auth`]: browser authentication (JWT or backend) and backend admission (key + hosts).
//! - [`socketio`]: the Socket.IO door: the namespaces (`/public`, `/private`, the chat's), their
//!   handshakes and event handlers, the state they share, and the door's side of the pipeline.
//! - [`event`]: the published event: its parsing and rules, its refusals, its id and time.
//! - `pipeline`: stamping, coalescing and delivery to the union of target rooms.
//! - `history`: the per-room event log (offsets, epochs) that `since` replays from.
//! - [`chat`]: chat rooms and their messages, persisted (SQLite, or Redis in cluster mode).
//! - [`cluster`]: cluster mode over Redis, including the npm `@socket.io/redis-emitter` format.
//! - [`limits`]: sockets per user, each socket's event rate, admitted sessions' tickets.
//! - `edge`: bytes and requests before socketioxide: the accept loop (plain or native TLS)
//!   and connections that can be cut off one by one (slow consumers), request heads copied out
//!   of hyper's buffer, browser origins, handshake admission, errors that close the connection,
//!   the first PING after `pingInterval`, cancelled polls, sessions' counts, the recovery `pid`
//!   added to CONNECT answers, socket.io-client 2.x (Engine.IO v3) compatibility.
//! - `drain`: sockets leave a shutting-down node gradually (rolling restarts).
//! - `metrics`: what the server counts, for `GET /metrics`.
//! - `recovery`: Socket.IO connection state recovery (saved sessions, announced `pid`s).
//! - `http`: the REST API: publishing, access changes, health, readiness, status, metrics.
//! - [`server`]: wires it all up and serves with graceful shutdown.
//! - [`doctor`]: `herald doctor <URL>`, a browser's connection checked step by step.
//! - `error`, [`shutdown`], [`telemetry`]: shared plumbing.

pub mod auth;
pub mod cells;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod doctor;
pub(crate) mod drain;
pub(crate) mod edge;
pub(crate) mod error;
pub mod event;
pub(crate) mod history;
pub(crate) mod http;
pub(crate) mod ids;
pub mod limits;
pub(crate) mod metrics;
pub(crate) mod pipeline;
pub(crate) mod recovery;
pub(crate) mod rooms;
pub mod server;
pub mod shutdown;
pub mod socketio;
pub mod telemetry;

pub use config::Config;
pub use server::run;
