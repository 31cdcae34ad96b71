//! Protocol conformance: herald against the documents of the protocols it implements, each
//! scenario of their test suites (and each rule of the documents that applies to what herald
//! serves) written again here with raw clients, so that nothing between the test and the wire
//! hides what herald sends:
//! - `engine_v4.rs`: Engine.IO v4 (`engine.io-protocol/v4-current.md`): handshake and its
//!   errors, long-polling payloads, heartbeat timing, close, upgrade;
//! - `engine_v3.rs`: Engine.IO v3 (`v3.md`, socket.io-client 2.x): the same with the v3
//!   payload encodings and the client-driven heartbeat;
//! - `socketio_v5.rs`: Socket.IO v5 (`socket.io-protocol/v5-current.md`): namespace connect,
//!   refusal and disconnect, events, acks, binary attachments, invalid packets.
//!
//! The documents' reference servers echo what they receive; herald's binary has no such
//! handler, so the tests' server mounts one ([`echo_server`]) on `/` and `/custom`, as the
//! Socket.IO v5 suite's server does. The Engine.IO suites echo raw Engine.IO messages; herald
//! is a Socket.IO server, so their scenarios carry Socket.IO packets through the same echo.

mod engine_v3;
mod engine_v4;
mod raw;
mod socketio_v5;

use serde::{Deserialize, Deserializer, Serialize, Serializer, ser::SerializeTuple};
use serde_json::Value;
use socketioxide::extract::{AckSender, Data, SocketRef};

use crate::support::TestServer;

/// A server with the echo namespaces, from `cfg_toml`.
async fn echo_server(cfg_toml: &str) -> TestServer {
    TestServer::start_with(cfg_toml, mount_echo).await
}

/// The Socket.IO v5 suite's reference server: on connect, `auth` with the CONNECT payload;
/// `message` answered with `message-back` and the same arguments; `message-with-ack`
/// acknowledged with its arguments. `/custom` only says `auth`. Mounting `/` replaces herald's
/// inert root namespace.
fn mount_echo(io: &herald::socketio::Io) {
    io.ns("/", async |socket: SocketRef, Data(auth): Data<Value>| {
        herald::limits::handshake_done(&socket);
        socket.emit("auth", &auth).ok();
        socket.on(
            "message",
            async |socket: SocketRef, Data(args): Data<Args>| {
                socket.emit("message-back", &args).ok();
            },
        );
        socket.on(
            "message-with-ack",
            async |ack: AckSender, Data(args): Data<Args>| {
                ack.send(&args).ok();
            },
        );
    });
    io.ns(
        "/custom",
        async |socket: SocketRef, Data(auth): Data<Value>| {
            herald::limits::handshake_done(&socket);
            socket.emit("auth", &auth).ok();
        },
    );
}

/// One event argument: a binary attachment, or any JSON.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum Arg {
    Binary(Binary),
    Json(Value),
}

/// A binary attachment; socketioxide reads and writes it through serde's bytes.
#[derive(Debug)]
struct Binary(Vec<u8>);

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl serde::de::Visitor<'_> for BytesVisitor {
            type Value = Binary;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a binary attachment")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Binary, E> {
                Ok(Binary(bytes.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Binary, E> {
                Ok(Binary(bytes))
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// All the arguments of an event. socketioxide hands a handler every argument, and sends
/// each as an argument of its own, only for a tuple (a `Vec` is one argument), so this reads
/// and writes itself as a tuple of any length.
#[derive(Debug)]
struct Args(Vec<Arg>);

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgsVisitor;
        impl<'de> serde::de::Visitor<'de> for ArgsVisitor {
            type Value = Args;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element()? {
                    args.push(arg);
                }
                Ok(Args(args))
            }
        }
        deserializer.deserialize_tuple(usize::MAX, ArgsVisitor)
    }
}

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for arg in &self.0 {
            tuple.serialize_element(arg)?;
        }
        tuple.end()
    }
}

/// The TOML of a test server whose Engine.IO endpoint is `engine_path`, with the documents'
/// `maxPayload` and the given heartbeat.
fn config(engine_path: &str, ping_interval_ms: u64, ping_timeout_ms: u64) -> String {
    format!(
        "engine_path = \"{engine_path}\"\n[engine]\nmax_payload_bytes = {MAX_PAYLOAD}\n\
         ping_interval = \"{ping_interval_ms}ms\"\nping_timeout = \"{ping_timeout_ms}ms\"\n"
    )
}

/// Asserts that `elapsed` is within ±10 % of `expected` (protocol timing, not performance:
/// the documents' heartbeat and connect timeout).
fn assert_around(what: &str, elapsed: std::time::Duration, expected: std::time::Duration) {
    let (low, high) = (expected.mul_f64(0.9), expected.mul_f64(1.1));
    assert!(
        (low..=high).contains(&elapsed),
        "{what} after {elapsed:?}; expected between {low:?} and {high:?}"
    );
}

/// The `maxPayload` of the documents' reference servers.
const MAX_PAYLOAD: u64 = 1_000_000;
