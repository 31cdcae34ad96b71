//! `publish` payloads (the `/private` event and `POST /api/v1/publish` bodies): any text either
//! parses into a publication within its limits or is refused with an error code, never a panic.
#![no_main]

use herald::event::Publication;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(publication) = Publication::parse(text, 16) {
        assert!(publication.targets.len() <= 16, "over max_targets");
    }
});
