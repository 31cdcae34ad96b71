//! What browsers send: `register`/`unregister` arguments, `auth.since` and positions. Any JSON
//! value parses or is refused with a message, never a panic.
#![no_main]

use herald::socketio::events;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = events::parse_workspace_arg(value.clone());
    let _ = events::parse_register_arg(value.clone());
    let _ = events::parse_position(&value);
    let _ = events::parse_handshake_since(Some(&value));
});
