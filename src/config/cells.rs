//! `[cells]`: the Pydio Cells door (`/ws/event`). Parsed here, checked in `validate.rs`, used by
//! `crate::cells`.

use std::time::Duration;

use serde::Deserialize;

/// `[cells]`: plain WebSockets speaking the Pydio Cells web UI's protocol.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellsConfig {
    /// Whether the door is open. Off by default: a deployment without the Cells UI has no use
    /// for it.
    pub enabled: bool,
    /// Where the UI's `ENDPOINT_WEBSOCKET` points.
    pub event_path: String,
    /// Where the UI's chat connects (served when `[chat]` is enabled too).
    pub chat_path: String,
    /// Largest frame a client may send, in bytes; larger ones close the socket with 1009.
    pub max_frame_bytes: usize,
    /// Frames queued for one session; a session whose queue is full is closed with 1013.
    pub queue: usize,
    /// How long a socket may stay unsubscribed before it is closed with 1008.
    #[serde(with = "humantime_serde")]
    pub unsubscribed_timeout: Duration,
    /// How long after its token's expiry a session waits for a fresh subscribe before it is
    /// unsubscribed.
    #[serde(with = "humantime_serde")]
    pub expiry_grace: Duration,
}
