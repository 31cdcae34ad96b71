//! Messages on the npm redis-emitter channels: the first byte splits the input into a channel
//! name and a msgpack payload; either decodes into an emit or is refused, never a panic.
#![no_main]

use herald::cluster::emitter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (channel, payload) = rest.split_at(split);
    let _ = emitter::decode(channel, payload, "socket.io");
    let _ = emitter::decode(b"socket.io#/public#", payload, "socket.io");
});
