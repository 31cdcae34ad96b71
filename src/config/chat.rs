//! `[chat]`: the `/chat` namespace (rooms, persisted messages, presence). Parsed here, checked
//! in `validate.rs`, used by [`crate::chat`].

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

/// `[chat]`: chat rooms on their own namespace, persisted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Whether the namespace exists. Off by default: it stores what users write, on disk (or in
    /// Redis in cluster mode), which an operator should choose knowingly.
    pub enabled: bool,
    /// The namespace browsers connect to for chat.
    pub path: String,
    /// Directory of the SQLite database (`chat.sqlite3`) on a single node; created if missing.
    /// Relative paths are relative to the working directory. Unused in cluster mode (Redis).
    pub data_dir: PathBuf,
    /// Messages returned by `join`, and by `history` without a `limit`.
    pub history_page: usize,
    /// Largest `limit` a `history` call may ask for.
    pub max_history_limit: usize,
    /// Largest message text, in bytes (after control characters are stripped).
    pub max_text: usize,
    /// Largest room label, in bytes.
    pub max_label: usize,
    /// Most rooms one socket may have joined at once.
    pub max_rooms_per_socket: usize,
    /// Most users a `users` room may list.
    pub max_room_users: usize,
    /// How long a member whose connection was lost without a clean disconnect (transport
    /// closed, ping timeout) still counts as present; a clean disconnect or `leave` counts at
    /// once. In cluster mode, also the lifetime of a node's presence entries in Redis, which
    /// it refreshes while it lives.
    #[serde(with = "humantime_serde")]
    pub presence_timeout: Duration,
}
