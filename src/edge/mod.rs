//! Everything that handles bytes and requests before socketioxide sees them (and its answers
//! and frames on their way out): where herald accepts connections, refuses what it cannot
//! take, and makes the engine library behave as the Engine.IO protocol documents and the npm
//! server do. The REST API is [`crate::http`]; the Socket.IO namespaces are
//! [`crate::socketio`].
//!
//! By concern:
//! - listener and connections: [`listener`] is the accept loop; [`linger`] closes a TCP
//!   connection the way nginx's `lingering_close` does; [`connection`] wraps each connection in
//!   a [`connection::CuttableConnection`] that a [`connection::ConnectionHandle`] can cut off
//!   (slow consumers, drain); [`session_connections`] knows which connection each Engine.IO
//!   session lives on.
//! - TLS: [`tls`] loads the certificate and key; the listener runs the handshakes.
//! - request heads: [`owned_head`] copies them out of hyper's read buffer, keeping only what is
//!   read later of those that open a session ([`session_request`] says which do).
//! - errors: [`closing`] ends every error answered to an Engine.IO request with
//!   `Connection: close`, so a refused client gets the whole body and then the end.
//! - origin: [`origin`] refuses foreign browser origins (403) and sends CORS headers.
//! - admission: [`admission`] refuses handshakes beyond the node's bounds (503) and gives
//!   admitted ones the ticket that counts their session.
//! - first PING, cancelled polls, sessions' counts: the engine sends its first PING at the
//!   handshake instead of after `pingInterval`; herald holds it back and answers it to the
//!   engine itself, so a client sees its first PING after `pingInterval` (and one that does
//!   not answer is dropped after `pingInterval + pingTimeout`). On long-polling, [`polling`]
//!   does it, closes a session whose poll the client cancels (as the npm server does), and ends
//!   a session's count against `limits.max_connections` as soon as it closes (the engine may
//!   keep its handshake request, and with it the count, until `limits.handshake_timeout`),
//!   following the sessions in [`sessions`]. On a WebSocket opened directly, the connection
//!   holds the PING back on its write path ([`first_ping`], or [`ws_frames`] with recovery on)
//!   and puts the PONG into the client's frames on its read path ([`client_frames`]).
//!   Engine.IO v3 has no server PING (the client pings), so only v4 sessions are touched.
//! - frame and polling rewriting for connection state recovery: [`ws_frames`] and
//!   [`polling_pid`] add the `pid` to the CONNECT answer, with [`connect_packet`].
//! - Engine.IO v3 compatibility: [`eio3_compat`] strips namespace queries from CONNECT
//!   packets (bridging v3 WebSockets) and puts binary attachments in the v3 form.
//!
//! A request passes them in this order (the layers [`crate::server::build`] and
//! [`crate::server::run`] stack); answers go back through them in reverse:
//! 1. [`listener::CuttableListener`]: TCP accept, TLS handshake, wrapped in a
//!    [`connection::CuttableConnection`] (whose write and read paths hold the first PING back
//!    and answer it, and add the recovery `pid`, after a WebSocket upgrade);
//! 2. [`owned_head::OwnedHead`], outside axum's router;
//! 3. [`session_connections::expose`]: the peer address and the connection's handle;
//! 4. [`closing::close_after_errors`];
//! 5. CORS, then [`origin::guard`];
//! 6. [`admission::admit`];
//! 7. [`polling::follow`];
//! 8. [`polling_pid::add_pid`];
//! 9. [`eio3_compat::strip_namespace_query`];
//! 10. socketioxide on the Engine.IO path, the REST API elsewhere.

pub(crate) mod admission;
pub(crate) mod client_frames;
pub(crate) mod closing;
pub(crate) mod connect_packet;
pub(crate) mod connection;
pub(crate) mod eio3_compat;
pub(crate) mod first_ping;
pub(crate) mod linger;
pub(crate) mod listener;
pub(crate) mod origin;
pub(crate) mod owned_head;
pub(crate) mod polling;
pub(crate) mod polling_pid;
pub(crate) mod session_connections;
pub(crate) mod session_request;
pub(crate) mod sessions;
pub(crate) mod tls;
pub(crate) mod ws_frames;
