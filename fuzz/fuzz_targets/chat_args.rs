//! What browsers send on `/chat`: `join`, `post`, `history`, `delete_message`, `leave`
//! arguments. Any JSON value parses or is refused with a message, never a panic.
#![no_main]

use std::sync::LazyLock;

use herald::{Config, chat::protocol};
use libfuzzer_sys::fuzz_target;

static CFG: LazyLock<Config> =
    LazyLock::new(|| Config::from_toml("").expect("the embedded defaults parse"));

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = protocol::strip_controls(text, true);
        let _ = protocol::strip_controls(text, false);
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let chat = &CFG.chat;
    let _ = protocol::parse_join(value.clone(), chat, 0);
    let _ = protocol::parse_post(value.clone(), chat.max_text);
    let _ = protocol::parse_history(value.clone(), 50, 200);
    let _ = protocol::parse_message_ref(value.clone());
    let _ = protocol::parse_room_ref(value);
});
