//! The tracing subscriber, set up once: `RUST_LOG` when set, else `log.level`; text or JSON
//! lines on stderr (stdout stays free for command output such as `herald token`).
//!
//! Text logs are coloured only when stderr is a terminal: a file, a pipe, journald or a
//! container runtime gets plain text. On a terminal, `NO_COLOR` set to any non-empty value turns
//! colours off (tracing-subscriber reads it; see <https://no-color.org>).

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. A second call (tests) is a no-op.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // Only ever turn colours off here: `with_ansi(true)` would override NO_COLOR, which
    // tracing-subscriber's default already honours.
    let builder = if std::io::stderr().is_terminal() {
        builder
    } else {
        builder.with_ansi(false)
    };
    let _ = match cfg.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
