//! Entries read back from the cluster's Redis streams: any body decodes or is reported as
//! corrupt, never a panic.
#![no_main]

use herald::cluster::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(event) = wire::decode(text) {
        let _ = event.into_stamped();
    }
    let _ = wire::id_number(text);
});
