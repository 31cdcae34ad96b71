//! Tests of the emitter decoder: [`fixtures`] decodes bytes captured from the real npm emitter
//! (`tests/fixtures/redis-emitter/`, see its README), [`hostile`] feeds it broken input.

use super::*;

/// The text of a captured fixture.
macro_rules! fixture_text {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/redis-emitter/",
            $name,
            ".txt"
        ))
    };
}

/// (channel, payload) of a captured fixture.
macro_rules! fixture {
    ($name:literal) => {
        parse_fixture(fixture_text!($name))
    };
}

const ALL_FIXTURES: [&str; 19] = [
    fixture_text!("one-room"),
    fixture_text!("several-rooms"),
    fixture_text!("except"),
    fixture_text!("no-room"),
    fixture_text!("default-namespace"),
    fixture_text!("no-args"),
    fixture_text!("several-args"),
    fixture_text!("nested"),
    fixture_text!("unicode"),
    fixture_text!("numbers"),
    fixture_text!("binary-buffer"),
    fixture_text!("binary-nested"),
    fixture_text!("dates"),
    fixture_text!("custom-key"),
    fixture_text!("flags"),
    fixture_text!("room-with-hash"),
    fixture_text!("server-side-emit"),
    fixture_text!("sockets-join"),
    fixture_text!("disconnect-sockets"),
];

fn parse_fixture(text: &str) -> (Vec<u8>, Vec<u8>) {
    let field = |name: &str| {
        let hex = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("fixture without {name}"));
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    };
    (field("channel: "), field("payload: "))
}

fn decode_fixture((channel, payload): (Vec<u8>, Vec<u8>)) -> Result<EmitterMessage, EmitterError> {
    decode(&channel, &payload, DEFAULT_KEY_PREFIX)
}

fn args(msg: &EmitterMessage) -> Vec<&str> {
    msg.args_json.iter().map(|a| a.get()).collect()
}

/// Decodes a fixture that must be an emit to `/public` by the npm emitter.
fn public_emit(fixture: (Vec<u8>, Vec<u8>)) -> EmitterMessage {
    let msg = decode_fixture(fixture).unwrap();
    assert_eq!(
        (msg.uid.as_str(), msg.namespace.as_str()),
        ("emitter", "/public")
    );
    msg
}

mod fixtures;
mod hostile;
