//! Engine.IO v4 / Socket.IO v5 over a WebSocket text frame: what the bench clients send and how
//! they classify what they receive. Parsing is deliberately shallow (prefix checks and one
//! number scan) so that a delivery costs the load generator as little as possible; nothing here
//! allocates per received packet.
//!
//! Wire shapes (docs/protocol.md): `0{...}` open, `2` ping / `3` pong, `40/ns,{auth}` connect,
//! `40/ns,{"sid":..}` admitted, `44/ns,{..}` refused, `42/ns,[event, data, meta]` an event,
//! `42/ns,<id>[..]` an event asking for an ack, `43/ns,<id>[..]` an ack.

/// The Engine.IO WebSocket path (both servers use the default `/socket.io`).
pub(crate) const ENGINE_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// What one received text frame means to a client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Packet {
    /// Engine.IO open: answer with the namespace connect.
    Open,
    /// Engine.IO ping: answer `3`.
    Ping,
    /// Namespace connect accepted.
    Connected,
    /// Namespace connect refused.
    Refused,
    /// An ack; `ok` when it carries `"ok":true`.
    Ack { ok: bool },
    /// An event; `stamp` is the publisher's send time (µs since the epoch) read from the data,
    /// when the data is the bench's `{"t":<µs>}`.
    Event { stamp: Option<u64> },
    /// Engine.IO close, or anything else.
    Other,
}

/// Classifies one text frame received on namespace `ns` (e.g. `/public`).
pub(crate) fn classify(frame: &[u8], ns: &str) -> Packet {
    match frame {
        [b'0', ..] => Packet::Open,
        [b'2', ..] => Packet::Ping,
        [b'4', kind, rest @ ..] => {
            let Some(body) = strip_ns(rest, ns) else {
                return Packet::Other;
            };
            match kind {
                b'0' => Packet::Connected,
                b'4' => Packet::Refused,
                b'3' => Packet::Ack {
                    ok: find(body, b"\"ok\":true").is_some(),
                },
                b'2' => Packet::Event {
                    stamp: find(body, b"{\"t\":").and_then(|i| leading_number(&body[i + 5..])),
                },
                _ => Packet::Other,
            }
        }
        _ => Packet::Other,
    }
}

/// The namespace connect packet with an auth object (already JSON).
pub(crate) fn connect(ns: &str, auth_json: &str) -> String {
    format!("40{ns},{auth_json}")
}

/// An event with one JSON argument, asking for ack `ack_id`.
pub(crate) fn event_with_ack(ns: &str, ack_id: u64, event: &str, arg_json: &str) -> String {
    format!("42{ns},{ack_id}[\"{event}\",{arg_json}]")
}

/// A Socket.IO DISCONNECT of namespace `ns`: the client leaves it cleanly.
pub(crate) fn disconnect(ns: &str) -> String {
    format!("41{ns},")
}

/// The Engine.IO pong.
pub(crate) const PONG: &[u8] = b"3";

fn strip_ns<'a>(rest: &'a [u8], ns: &str) -> Option<&'a [u8]> {
    let ns = ns.as_bytes();
    if rest.len() > ns.len() && rest.starts_with(ns) && rest[ns.len()] == b',' {
        Some(&rest[ns.len() + 1..])
    } else {
        None
    }
}

fn leading_number(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_packets_of_both_servers() {
        let ns = "/public";
        assert_eq!(
            classify(br#"0{"sid":"x","pingInterval":25000}"#, ns),
            Packet::Open
        );
        assert_eq!(classify(b"2", ns), Packet::Ping);
        assert_eq!(classify(br#"40/public,{"sid":"a"}"#, ns), Packet::Connected);
        assert_eq!(
            classify(br#"44/public,{"message":"unauthorized"}"#, ns),
            Packet::Refused
        );
        assert_eq!(
            classify(br#"43/public,1[{"ok":true,"workspace":"w1"}]"#, ns),
            Packet::Ack { ok: true }
        );
        assert_eq!(
            classify(br#"43/public,1[{"ok":false,"error":"forbidden"}]"#, ns),
            Packet::Ack { ok: false }
        );
        let event = br#"42/public,["b",{"t":1700000000123456},{"id":"u","workspace":"w1","ts":1700000000123,"offset":3,"epoch":"e"}]"#;
        assert_eq!(
            classify(event, ns),
            Packet::Event {
                stamp: Some(1_700_000_000_123_456)
            }
        );
        assert_eq!(classify(br#"42/private,["b",{}]"#, ns), Packet::Other);
    }

    #[test]
    fn builds_packets() {
        assert_eq!(
            connect("/public", r#"{"token":"t"}"#),
            r#"40/public,{"token":"t"}"#
        );
        assert_eq!(
            event_with_ack("/public", 1, "register", r#"{"workspace":"w"}"#),
            r#"42/public,1["register",{"workspace":"w"}]"#
        );
    }
}
