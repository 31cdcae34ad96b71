//! The Socket.IO side: namespaces, their handshakes and event handlers.
//!
//! `/public` (`public.rs`) admits browsers through the `crate::auth::Authenticator` and lets
//! them register to workspaces; `/private` (`private.rs`) admits backends through
//! `crate::auth::private::PrivateAccess` and hands their events to the
//! `crate::pipeline::Publisher`. The root namespace `/` exists, inert, because
//! socket.io-client 2.x (Engine.IO v3) always joins it first, as npm socket.io allows.

use state::AppState;

pub(crate) mod access;
pub(crate) mod chat;
pub mod events;
pub(crate) mod expiry;
mod guard;
mod private;
mod public;
mod raw_arg;
mod recovered;
mod remote;
mod reply;
pub(crate) mod sequencer;
pub(crate) mod slow;
pub(crate) mod socket_state;
pub(crate) mod state;
pub(crate) mod subscriber;

pub(crate) use public::authenticate;
pub(crate) use remote::handle_remote;

/// The Socket.IO server handle herald uses (one adapter type, chosen here).
pub type Io = socketioxide::SocketIo;

/// Why a handshake was refused. The message is what `connect_error` carries: stable and
/// meaningful, never the underlying reason (that is logged).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ConnectRefusal {
    /// Credentials missing, invalid, or not accepted.
    #[error("unauthorized")]
    Unauthorized,
    /// The handshake's other fields are unusable (`auth.since`); says what is wrong.
    #[error("bad_request: {0}")]
    BadRequest(String),
}

impl ConnectRefusal {
    /// The outcome label of this refusal in the handshake metrics.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::BadRequest(_) => "bad_request",
        }
    }
}

/// Counts a handshake's outcome on `namespace` and passes it on.
pub(crate) fn counted(
    metrics: &crate::metrics::Metrics,
    namespace: &'static str,
    result: Result<(), ConnectRefusal>,
) -> Result<(), ConnectRefusal> {
    let outcome = result
        .as_ref()
        .map_or_else(ConnectRefusal::outcome, |()| "ok");
    crate::metrics::Metrics::count(&metrics.handshakes, namespace, outcome);
    result
}

/// Shutdown: saves the browser sockets' sessions for recovery on another node, when sessions
/// outlive this process (cluster mode with `[recovery]` on). Call before closing the server.
pub(crate) async fn save_sessions(state: &AppState) {
    recovered::save_all(state).await;
}

/// Declares the namespaces and their handlers.
pub(crate) fn register_namespaces(io: &Io, state: &AppState) {
    io.ns("/", async |socket: socketioxide::extract::SocketRef| {
        guard::handshake_done(&socket);
    });
    public::register(io, state.clone());
    private::register(io, state.clone());
    chat::register(io, state);
}
