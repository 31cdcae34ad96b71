//! Engine.IO v3 long-polling bodies: `<len>:<packet>...`, lengths in UTF-16 code units.

use super::strip_query;

/// Rewrites an Engine.IO v3 text payload (`<len>:<packet>...`, lengths in UTF-16 units).
/// `None` when nothing needs rewriting or the payload is not of that form.
pub(super) fn rewrite_payload(payload: &str) -> Option<String> {
    let mut out = String::with_capacity(payload.len());
    let mut rest = payload;
    let mut changed = false;
    while !rest.is_empty() {
        let (len, after) = rest.split_once(':')?;
        let units: usize = len.parse().ok()?;
        let end = utf16_prefix_len(after, units)?;
        let (packet, tail) = after.split_at(end);
        match strip_query(packet) {
            Some(stripped) => {
                changed = true;
                out.push_str(&stripped.encode_utf16().count().to_string());
                out.push(':');
                out.push_str(&stripped);
            }
            None => {
                out.push_str(len);
                out.push(':');
                out.push_str(packet);
            }
        }
        rest = tail;
    }
    changed.then_some(out)
}

/// Byte length of the first `units` UTF-16 code units of `s`.
fn utf16_prefix_len(s: &str, units: usize) -> Option<usize> {
    let mut counted = 0;
    for (index, ch) in s.char_indices() {
        if counted == units {
            return Some(index);
        }
        counted += ch.len_utf16();
    }
    (counted == units).then_some(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_query_of_a_connect_packet() {
        assert_eq!(
            rewrite_payload("24:40/public?token=abc.def,").as_deref(),
            Some("10:40/public,")
        );
        assert_eq!(
            rewrite_payload("17:40/public?token=x").as_deref(),
            Some("9:40/public")
        );
    }

    #[test]
    fn leaves_other_packets_alone_and_keeps_lengths() {
        let payload = "2:4124:40/public?token=abc.def,9:42[\"é\",1]";
        assert_eq!(
            rewrite_payload(payload).as_deref(),
            Some("2:4110:40/public,9:42[\"é\",1]")
        );
        assert_eq!(rewrite_payload("10:40/public,"), None);
        assert_eq!(rewrite_payload("1:2"), None);
    }

    #[test]
    fn refuses_malformed_payloads() {
        assert_eq!(rewrite_payload("99:40/a?b"), None);
        assert_eq!(rewrite_payload("x:40/a?b"), None);
        assert_eq!(rewrite_payload("40/a?b"), None);
    }

    #[test]
    fn counts_utf16_units() {
        assert_eq!(utf16_prefix_len("😀a", 2), Some(4));
        assert_eq!(utf16_prefix_len("😀a", 3), Some(5));
        assert_eq!(utf16_prefix_len("😀a", 1), None);
    }
}
