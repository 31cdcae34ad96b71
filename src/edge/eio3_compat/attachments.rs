//! Binary attachments in Engine.IO v3 long-polling answers, in the v3 form.
//!
//! socketioxide queues a Socket.IO packet's attachments as Engine.IO v4 binary packets whatever
//! the session's protocol, so a v3 long-polling answer carries them as `b<base64>` (the v4
//! text form) where v3 wants `b4<base64>` in a text payload (`b64=1`), and a binary record
//! (type byte `1`, then the message type `4` and the raw bytes) in a binary (XHR2) payload.
//! herald never publishes binary data to browsers, but a v3 client of any namespace must be able
//! to read what the server sends: the edge puts the attachments in the v3 form.

use base64::{Engine as _, engine::general_purpose::STANDARD};

/// Separator between a record's length and its packet in a v3 binary payload.
const BINARY_SEPARATOR: u8 = 0xff;

/// A v3 text payload (`<length>:<packet>`…, lengths in UTF-16 code units) with its attachments
/// in the v3 form; `None` when it has none (or is not a v3 text payload).
pub(crate) fn text_payload(payload: &str) -> Option<String> {
    let mut out = String::with_capacity(payload.len() + 8);
    let mut rest = payload;
    let mut changed = false;
    while !rest.is_empty() {
        let (len, after) = rest.split_once(':')?;
        let units: usize = len.parse().ok()?;
        let end = utf16_prefix(after, units)?;
        let packet = &after[..end];
        match packet.strip_prefix('b') {
            // The v4 form is valid base64 after the `b`; the v3 form (`4` first) never is.
            Some(base64) if STANDARD.decode(base64).is_ok() => {
                out.push_str(&format!("{}:b4{base64}", units + 1));
                changed = true;
            }
            _ => {
                out.push_str(len);
                out.push(':');
                out.push_str(packet);
            }
        }
        rest = &after[end..];
    }
    changed.then_some(out)
}

/// The byte length of the first `units` UTF-16 code units of `text`, if it has that many.
fn utf16_prefix(text: &str, units: usize) -> Option<usize> {
    let mut counted = 0;
    for (at, c) in text.char_indices() {
        if counted == units {
            return Some(at);
        }
        counted += c.len_utf16();
    }
    (counted == units).then_some(text.len())
}

/// A v3 binary payload (records: `0` text or `1` binary, the length's digits as bytes, `0xff`,
/// the packet) with its attachments as binary records; `None` when it has none.
pub(crate) fn binary_payload(payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(payload.len());
    let mut rest = payload;
    let mut changed = false;
    while let Some((&kind, after)) = rest.split_first() {
        let digits = after.iter().position(|&b| b == BINARY_SEPARATOR)?;
        let len = after[..digits].iter().try_fold(0usize, |n, &d| {
            (d <= 9).then(|| n.checked_mul(10)?.checked_add(usize::from(d)))?
        })?;
        let packet = after.get(digits + 1..digits + 1 + len)?;
        let attachment = (kind == 0)
            .then(|| packet.strip_prefix(b"b"))
            .flatten()
            .and_then(|base64| STANDARD.decode(base64).ok());
        match attachment {
            Some(bytes) => {
                out.push(1);
                out.extend((bytes.len() + 1).to_string().bytes().map(|d| d - b'0'));
                out.push(BINARY_SEPARATOR);
                out.push(4);
                out.extend_from_slice(&bytes);
                changed = true;
            }
            None => out.extend_from_slice(&rest[..1 + digits + 1 + len]),
        }
        rest = &after[digits + 1 + len..];
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_payload_attachments_gain_their_packet_type() {
        let sent = r#"50:451-["message-back",{"_placeholder":true,"num":0}]9:bAQIDBA=="#;
        assert_eq!(
            text_payload(sent).as_deref(),
            Some(r#"50:451-["message-back",{"_placeholder":true,"num":0}]10:b4AQIDBA=="#)
        );
        // Lengths in UTF-16 code units: "€" is one, "𝄞" two.
        assert_eq!(
            text_payload("7:42[\"€\"]8:42[\"𝄞\"]5:bAAE=").as_deref(),
            Some("7:42[\"€\"]8:42[\"𝄞\"]6:b4AAE=")
        );
        assert_eq!(text_payload("2:401:6"), None);
        assert_eq!(text_payload("not a payload"), None);
        assert_eq!(text_payload("9:short"), None);
    }

    #[test]
    fn binary_payload_attachments_become_binary_records() {
        let mut sent = vec![0, 9, 0xff];
        sent.extend_from_slice(br#"451-["m"]"#);
        sent.extend_from_slice(&[0, 9, 0xff]);
        sent.extend_from_slice(b"bAQIDBA==");
        let mut expected = vec![0, 9, 0xff];
        expected.extend_from_slice(br#"451-["m"]"#);
        expected.extend_from_slice(&[1, 5, 0xff, 4, 1, 2, 3, 4]);
        assert_eq!(binary_payload(&sent), Some(expected.clone()));
        // Already in the v3 form: nothing to do.
        assert_eq!(binary_payload(&expected), None);
        assert_eq!(binary_payload(&[0, 1, 0xff, b'6']), None);
        assert_eq!(binary_payload(&[0, 9, 0xff, b'b']), None, "truncated");
    }
}
