//! Configuration files: any text is a configuration or a clear error, and validating it never
//! panics.
#![no_main]

use herald::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut cfg) = Config::from_toml(text) {
        let _ = cfg.validate(false);
    }
});
