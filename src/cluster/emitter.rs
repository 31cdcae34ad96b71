//! Decoder for what the npm `@socket.io/redis-emitter` 5.x publishes on Redis, so backends that
//! `emitter.of("/public").to("workspace:ws1").emit("tree_changes", data)` reach herald's clients.
//!
//! Pure: bytes in, [`EmitterMessage`] out, no I/O. The cluster's Redis subscriber PSUBSCRIBEs to
//! [`subscription_patterns`], hands each message to [`decode`], and turns the result into a
//! publish for the pipeline (which validates the event name and the rooms like any other).
//!
//! # Wire format (checked against the emitter's source and captured bytes)
//! - `emit` PUBLISHes on `<key>#<nsp>#` (no room or several rooms) or `<key>#<nsp>#<room>#`
//!   (exactly one room). `key` defaults to `socket.io`.
//! - The payload is msgpack (notepack.io 3.0): `[uid, packet, opts]` with `uid = "emitter"`,
//!   `packet = {type: 2, data: [event, ...args], nsp}` and
//!   `opts = {rooms: [...], flags: {volatile?, compress?}, except: [...]}`.
//! - `serverSideEmit`, `socketsJoin`, `socketsLeave` and `disconnectSockets` PUBLISH JSON, not
//!   msgpack, on `<key>-request#<nsp>#`: reported as [`EmitterError::Unsupported`].
//! - Buffers are msgpack `bin` (refused: herald's contract is JSON), `Date`s the msgpack
//!   timestamp extension (turned into the ISO string `JSON.stringify` would give), `NaN` and
//!   `±Infinity` float64 (turned into `null`, as `JSON.stringify` does).
//!
//! Every input is hostile: sizes and nesting are bounded, nothing panics, and each refusal says
//! why. The fixtures in `tests/fixtures/redis-emitter/` are bytes captured from the real emitter.

mod json;
#[cfg(test)]
mod tests;

use rmpv::Value;
use serde_json::value::RawValue;

/// The emitter's default `key` option, the first part of every channel.
pub const DEFAULT_KEY_PREFIX: &str = "socket.io";
/// Default bound on one payload; larger ones are refused before any parsing.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Deepest nesting of arrays and maps inside one argument. Below serde_json's own recursion
/// limit (128), so the JSON we produce can always be parsed back by serde_json.
pub const MAX_DATA_DEPTH: usize = 64;
/// rmpv's recursion budget: it spends 2 per array or map level and 3 on a leaf string; the
/// envelope takes 3 levels. Generous enough for [`MAX_DATA_DEPTH`], small enough for the stack.
const RMPV_MAX_DEPTH: usize = 2 * (MAX_DATA_DEPTH + 3) + 8;

/// Socket.IO packet types (socket.io-parser), as found in `packet.type`.
const PACKET_EVENT: u64 = 2;
const PACKET_BINARY_EVENT: u64 = 5;

/// What [`decode_with_limits`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Payloads longer than this are refused with [`EmitterError::Oversized`] without parsing.
    /// Decoding allocates at most a few dozen times this (one `rmpv::Value` per element).
    pub max_payload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }
}

/// One decoded `emit`.
#[derive(Debug, Clone)]
pub struct EmitterMessage {
    /// Who published: `"emitter"` for the npm emitter; an npm socket.io server's Redis adapter
    /// uses the same format with its own random id.
    pub uid: String,
    /// The Socket.IO namespace, such as `/public` (from the packet, checked against the channel).
    pub namespace: String,
    /// Rooms to deliver to (`to`/`in`); empty means every socket of the namespace.
    pub rooms: Vec<String>,
    /// Rooms whose sockets must not receive it (`except`).
    pub except: Vec<String>,
    /// The event name, unvalidated: the pipeline applies its own rules.
    pub event: String,
    /// The arguments after the event name, each as JSON text. Raw rather than `serde_json::Value`
    /// because the pipeline carries data as `Box<RawValue>` (`Publication`), stores it in the
    /// history and emits it unchanged: one compact allocation per argument, no second conversion.
    pub args_json: Vec<Box<RawValue>>,
    /// The emitter's flags.
    pub flags: EmitterFlags,
}

/// The flags an emitter can set; other keys in `opts.flags` are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmitterFlags {
    /// `.volatile`: the event may be dropped for clients that are not ready.
    pub volatile: bool,
    /// `.compress(bool)`, when it was called.
    pub compress: Option<bool>,
}

/// What an emitter can ask for that herald does not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// `emitter.serverSideEmit(...)`.
    ServerSideEmit,
    /// `emitter.socketsJoin(...)`.
    SocketsJoin,
    /// `emitter.socketsLeave(...)`.
    SocketsLeave,
    /// `emitter.disconnectSockets(...)`.
    DisconnectSockets,
    /// Another message on the request channel (a Redis adapter's, or an unknown type).
    OtherRequest,
    /// A message on a response channel (Redis adapters talking to each other).
    Response,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ServerSideEmit => "serverSideEmit",
            Self::SocketsJoin => "socketsJoin",
            Self::SocketsLeave => "socketsLeave",
            Self::DisconnectSockets => "disconnectSockets",
            Self::OtherRequest => "a request other than emit",
            Self::Response => "a response between Redis adapters",
        })
    }
}

/// Why a Redis message is not an emit herald can deliver.
#[derive(Debug, thiserror::Error)]
pub enum EmitterError {
    /// The payload is larger than [`Limits::max_payload_bytes`].
    #[error("payload of {len} bytes is over the {max}-byte limit")]
    Oversized {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The channel is not one of the emitter's for this key prefix.
    #[error("channel is not an emitter channel of this key prefix")]
    UnknownChannel,
    /// A real emitter request herald does not implement.
    #[error("unsupported emitter operation: {0}")]
    Unsupported(Unsupported),
    /// Not one well-formed msgpack value (truncated, or a declared length past the end).
    #[error("not MessagePack: {0}")]
    NotMsgpack(#[source] rmpv::decode::Error),
    /// Bytes left over after the msgpack value.
    #[error("not MessagePack: {0} bytes after the value")]
    TrailingBytes(usize),
    /// Nested deeper than [`MAX_DATA_DEPTH`].
    #[error("data nested deeper than {MAX_DATA_DEPTH} levels")]
    TooDeep,
    /// Valid msgpack, but not `[uid, {type, data, nsp}, {rooms, except, flags}]`.
    #[error("not an emitter message: {0}")]
    WrongShape(&'static str),
    /// A Socket.IO packet of another type than EVENT (2).
    #[error("packet type {0} is not an event")]
    NotAnEvent(i64),
    /// Binary data (a Buffer, or a BINARY_EVENT packet): herald only carries JSON.
    #[error("binary data is not supported, send JSON")]
    Binary,
    /// A map key that is not a string (JSON objects only have string keys).
    #[error("map key is not a string")]
    NonStringKey,
    /// A string that is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A msgpack extension other than the timestamp (-1), or a malformed timestamp.
    #[error("unsupported MessagePack extension type {0}")]
    UnsupportedExtension(i8),
    /// The packet's namespace is not the one the channel names.
    #[error("channel and packet name different namespaces")]
    NamespaceMismatch,
    /// The channel names one room but the message targets other rooms.
    #[error("channel and message name different rooms")]
    RoomMismatch,
}

/// The Redis patterns herald must PSUBSCRIBE to for one namespace: `<key>#<nsp>#*`, which covers
/// both the all-rooms channel `<key>#<nsp>#` and the one-room channels `<key>#<nsp>#<room>#`.
/// Glob characters in the key or namespace are escaped. Don't also SUBSCRIBE to the bare
/// channel: each message would arrive twice.
pub fn subscription_patterns(key_prefix: &str, namespace: &str) -> Vec<String> {
    let mut pattern = String::with_capacity(key_prefix.len() + namespace.len() + 3);
    push_glob_escaped(&mut pattern, key_prefix);
    pattern.push('#');
    push_glob_escaped(&mut pattern, namespace);
    pattern.push_str("#*");
    vec![pattern]
}

fn push_glob_escaped(out: &mut String, literal: &str) {
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Decodes one Redis message with the [`Limits::default`] bounds.
///
/// # Errors
/// See [`decode_with_limits`].
pub fn decode(
    channel: &[u8],
    payload: &[u8],
    key_prefix: &str,
) -> Result<EmitterMessage, EmitterError> {
    decode_with_limits(channel, payload, key_prefix, &Limits::default())
}

/// Decodes one Redis message (`channel`, `payload`) published by the emitter configured with
/// `key: key_prefix`.
///
/// # Errors
/// An [`EmitterError`] saying why the message is not a deliverable emit: too large, another
/// channel or operation, malformed msgpack, wrong shape, binary data, or a channel that does not
/// match the packet.
pub fn decode_with_limits(
    channel: &[u8],
    payload: &[u8],
    key_prefix: &str,
    limits: &Limits,
) -> Result<EmitterMessage, EmitterError> {
    if payload.len() > limits.max_payload_bytes {
        return Err(EmitterError::Oversized {
            len: payload.len(),
            max: limits.max_payload_bytes,
        });
    }
    let channel_rest = broadcast_channel_rest(channel, key_prefix, payload)?;

    let mut reader = payload;
    let value = rmpv::decode::read_value_with_max_depth(&mut reader, RMPV_MAX_DEPTH).map_err(
        |e| match e {
            rmpv::decode::Error::DepthLimitExceeded => EmitterError::TooDeep,
            e => EmitterError::NotMsgpack(e),
        },
    )?;
    if !reader.is_empty() {
        return Err(EmitterError::TrailingBytes(reader.len()));
    }

    let Value::Array(envelope) = value else {
        return Err(EmitterError::WrongShape("not an array"));
    };
    let [uid, packet, opts] = envelope.as_slice() else {
        return Err(EmitterError::WrongShape("not [uid, packet, opts]"));
    };
    let uid = json::string(uid, "uid is not a string")?;
    let (namespace, event, args_json) = decode_packet(packet)?;
    let (rooms, except, flags) = decode_opts(opts)?;

    // The channel is `<nsp>#` or `<nsp>#<room>#` after the key: it must agree with the packet.
    let room_part = channel_rest
        .strip_prefix(namespace.as_str())
        .and_then(|r| r.strip_prefix('#'))
        .ok_or(EmitterError::NamespaceMismatch)?;
    if !room_part.is_empty() {
        let room = room_part
            .strip_suffix('#')
            .ok_or(EmitterError::RoomMismatch)?;
        if rooms.len() != 1 || rooms[0] != room {
            return Err(EmitterError::RoomMismatch);
        }
    }

    Ok(EmitterMessage {
        uid,
        namespace,
        rooms,
        except,
        event,
        args_json,
        flags,
    })
}

/// The part of a broadcast channel after `<key>#`; request and response channels are refused
/// with the operation they carry.
fn broadcast_channel_rest<'c>(
    channel: &'c [u8],
    key_prefix: &str,
    payload: &[u8],
) -> Result<&'c str, EmitterError> {
    let channel = std::str::from_utf8(channel).map_err(|_| EmitterError::UnknownChannel)?;
    let after_key = channel
        .strip_prefix(key_prefix)
        .ok_or(EmitterError::UnknownChannel)?;
    if let Some(rest) = after_key.strip_prefix('#') {
        Ok(rest)
    } else if after_key.starts_with("-request#") {
        Err(EmitterError::Unsupported(request_kind(payload)))
    } else if after_key.starts_with("-response#") {
        Err(EmitterError::Unsupported(Unsupported::Response))
    } else {
        Err(EmitterError::UnknownChannel)
    }
}

/// Names an emitter request from its JSON `type` (the emitter's `RequestType` enum).
fn request_kind(payload: &[u8]) -> Unsupported {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: Option<u64>,
    }
    match serde_json::from_slice::<Head>(payload).map(|h| h.kind) {
        Ok(Some(2)) => Unsupported::SocketsJoin,
        Ok(Some(3)) => Unsupported::SocketsLeave,
        Ok(Some(4)) => Unsupported::DisconnectSockets,
        Ok(Some(6)) => Unsupported::ServerSideEmit,
        _ => Unsupported::OtherRequest,
    }
}

/// `{type: 2, data: [event, ...args], nsp}` → (namespace, event, args).
fn decode_packet(packet: &Value) -> Result<(String, String, Vec<Box<RawValue>>), EmitterError> {
    let Value::Map(packet) = packet else {
        return Err(EmitterError::WrongShape("packet is not a map"));
    };
    let kind = json::field(packet, "type")
        .ok_or(EmitterError::WrongShape("packet has no type"))?
        .as_i64()
        .ok_or(EmitterError::WrongShape(
            "packet type is not a small integer",
        ))?;
    match u64::try_from(kind) {
        Ok(PACKET_EVENT) => {}
        Ok(PACKET_BINARY_EVENT) => return Err(EmitterError::Binary),
        _ => return Err(EmitterError::NotAnEvent(kind)),
    }
    // socket.io's Redis adapter reads a missing nsp as the main namespace.
    let namespace = match json::field(packet, "nsp") {
        None => "/".to_owned(),
        Some(nsp) => json::string(nsp, "packet nsp is not a string")?,
    };
    let Some(Value::Array(data)) = json::field(packet, "data") else {
        return Err(EmitterError::WrongShape("packet data is not an array"));
    };
    let (event, args) = data
        .split_first()
        .ok_or(EmitterError::WrongShape("packet data has no event name"))?;
    let event = json::string(event, "event name is not a string")?;
    let args_json = args
        .iter()
        .map(json::to_raw_json)
        .collect::<Result<_, _>>()?;
    Ok((namespace, event, args_json))
}

/// `{rooms: [...], except: [...], flags: {...}}`; a missing list is empty, as in the adapter.
fn decode_opts(opts: &Value) -> Result<(Vec<String>, Vec<String>, EmitterFlags), EmitterError> {
    let Value::Map(opts) = opts else {
        return Err(EmitterError::WrongShape("opts is not a map"));
    };
    let rooms = room_list(
        json::field(opts, "rooms"),
        "opts.rooms is not a list of strings",
    )?;
    let except = room_list(
        json::field(opts, "except"),
        "opts.except is not a list of strings",
    )?;
    let mut flags = EmitterFlags::default();
    match json::field(opts, "flags") {
        None => {}
        Some(Value::Map(map)) => {
            let flag = |v: &Value| {
                v.as_bool()
                    .ok_or(EmitterError::WrongShape("a flag is not a boolean"))
            };
            if let Some(v) = json::field(map, "volatile") {
                flags.volatile = flag(v)?;
            }
            if let Some(v) = json::field(map, "compress") {
                flags.compress = Some(flag(v)?);
            }
        }
        Some(_) => return Err(EmitterError::WrongShape("opts.flags is not a map")),
    }
    Ok((rooms, except, flags))
}

fn room_list(value: Option<&Value>, wrong: &'static str) -> Result<Vec<String>, EmitterError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|v| json::string(v, wrong)).collect(),
        Some(_) => Err(EmitterError::WrongShape(wrong)),
    }
}
