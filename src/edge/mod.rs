//! Engine.IO as it crosses herald's edge, before socketioxide sees a request or a frame: where
//! herald makes the engine library behave as the Engine.IO protocol documents say.
//!
//! - [`closing`]: an error answered to an Engine.IO request ends with `Connection: close`, so
//!   a refused client gets the whole body and then the end of the connection, at once.
//! - [`polling`]: long-polling sessions. The engine sends its first PING at the handshake
//!   instead of after `pingInterval`; herald holds it back from the first poll and answers it
//!   to the engine itself, so a client sees its first PING after `pingInterval` (and one that
//!   does not answer is dropped after `pingInterval + pingTimeout`). A poll the client cancels
//!   closes the session, as the npm server does. A session's close packet, or its close by
//!   herald, ends its count against `limits.max_connections` at once (the engine may keep the
//!   session's handshake request, and with it the count, until `limits.handshake_timeout`).
//! - [`first_ping`] and [`client_frames`]: the same on a WebSocket opened directly: the
//!   connection ([`connection`]) holds the PING back on its write path and puts the PONG
//!   into the client's frames on its read path, without buffering either way.
//! - [`sessions`]: the long-polling sessions the edge follows, by session id.
//! - [`eio3_compat`]: binary attachments in Engine.IO v3 long-polling answers, in the v3
//!   form (the engine writes them in the v4 form).
//!
//! Engine.IO v3 has no server PING (the client pings), so only v4 sessions are touched there.

pub mod admission;
pub mod client_frames;
pub mod closing;
pub mod connect_packet;
pub mod connection;
pub mod eio3_compat;
pub mod first_ping;
pub mod linger;
pub mod listener;
pub mod origin;
pub mod owned_head;
pub mod polling;
pub mod polling_pid;
pub mod session_connections;
pub mod session_request;
pub mod sessions;
pub mod tls;
pub mod ws_frames;
