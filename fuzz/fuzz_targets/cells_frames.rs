//! The Pydio Cells door's inputs: a client frame (the first line) never panics; a `cells:node`
//! publish (the rest as its data) either is refused or renders, for sessions with nested and
//! several roots, frames that are JSON objects whose every `MetaStore` value is JSON text, as
//! the Cells UI requires (it parses each one and throws on the first that is not).
#![no_main]

use herald::event::Publication;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const WORKSPACES: &str = r#"[
    {"id":"a","slug":"all","roots":[{"uuid":"1","path":"ds"}]},
    {"id":"s","slug":"shared","roots":[{"uuid":"2","path":"ds/shared"}]},
    {"id":"m","slug":"multi","roots":[{"uuid":"3","path":"ds/x","key":"x"},{"uuid":"4","path":"ds2"}]}
]"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (frame, body) = text.split_once('\n').unwrap_or((text, ""));
    let _ = herald::cells::understands(frame);
    let publish = format!(r#"{{"event":"cells:node","data":{body}}}"#);
    let Ok(publication) = Publication::parse(&publish, 128) else {
        return;
    };
    let frames = herald::cells::render("cells:node", publication.data.get(), WORKSPACES)
        .expect("the fixed workspaces parse");
    for frame in frames {
        let frame: Value = serde_json::from_str(&frame).expect("a frame is JSON");
        for side in ["Source", "Target"] {
            let Some(store) = frame.get(side).map(|node| &node["MetaStore"]) else {
                continue;
            };
            let store = store.as_object().expect("MetaStore is an object");
            for (key, value) in store {
                let text = value.as_str().expect("a MetaStore value is a string");
                assert!(
                    serde_json::from_str::<Value>(text).is_ok(),
                    "MetaStore.{key} is not JSON text: {text}"
                );
            }
            assert!(store.contains_key("EventWorkspaceId"));
        }
    }
});
