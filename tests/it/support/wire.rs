//! The wire format: Socket.IO v5 packets inside Engine.IO v4 text frames, as this client
//! reads and writes them.

use serde_json::Value;

/// One Socket.IO packet as received.
#[derive(Debug, Clone)]
pub(crate) struct Packet {
    /// Socket.IO packet type: '0' connect, '1' disconnect, '2' event, '3' ack, '4' error.
    pub(crate) kind: char,
    /// Namespace, "/" when absent.
    pub(crate) ns: String,
    /// Ack id, when present.
    pub(crate) ack: Option<u64>,
    /// The JSON text after the namespace and ack id (may be empty).
    pub(crate) payload: String,
    /// The whole WebSocket frame text.
    pub(crate) raw: String,
}

/// What the reader forwards.
#[derive(Debug, Clone)]
pub(crate) enum Incoming {
    Packet(Packet),
    /// The WebSocket (or the Engine.IO session) closed.
    Closed,
}

/// An event received from the server.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) name: String,
    pub(crate) args: Vec<Value>,
    /// The whole WebSocket frame text, for byte-exact checks.
    pub(crate) raw: String,
}

/// An Engine.IO MESSAGE frame carrying a Socket.IO packet: `4<kind>[/ns,][ack]<json>`.
pub(crate) fn frame(kind: char, ns: &str, ack: Option<u64>, json: &str) -> String {
    let ns = if ns == "/" {
        String::new()
    } else {
        format!("{ns},")
    };
    let ack = ack.map(|id| id.to_string()).unwrap_or_default();
    format!("4{kind}{ns}{ack}{json}")
}

/// `["event", <args_json>]`, where `args_json` is the raw text of the arguments (comma
/// separated, possibly empty), kept byte for byte.
pub(crate) fn event_array(event: &str, args_json: &str) -> String {
    let name = serde_json::to_string(event).expect("event name");
    if args_json.is_empty() {
        format!("[{name}]")
    } else {
        format!("[{name},{args_json}]")
    }
}

/// Parses `4<type>[/ns,][ack]<json>`.
pub(crate) fn parse_packet(raw: &str) -> Packet {
    let body = &raw[1..];
    let kind = body.chars().next().expect("packet type");
    let mut rest = &body[1..];
    let mut ns = "/".to_owned();
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        rest[..end].clone_into(&mut ns);
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = (digits > 0).then(|| rest[..digits].parse().expect("ack id"));
    Packet {
        kind,
        ns,
        ack,
        payload: rest[digits..].to_owned(),
        raw: raw.to_owned(),
    }
}

/// The event carried by an EVENT packet.
pub(crate) fn to_event(p: &Packet) -> Event {
    let mut items: Vec<Value> = serde_json::from_str(&p.payload).expect("event JSON array");
    assert!(!items.is_empty(), "event without a name: {}", p.raw);
    let name = items.remove(0);
    Event {
        name: name.as_str().expect("event name").to_owned(),
        args: items,
        raw: p.raw.clone(),
    }
}

/// Percent-encodes a query value (unreserved characters kept).
pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
