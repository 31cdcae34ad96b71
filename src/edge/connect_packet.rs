//! The one rewrite recovery needs on the wire: adding `pid` to a namespace's CONNECT answer.
//!
//! An Engine.IO v4 message carrying a Socket.IO CONNECT answer reads `40/public,{"sid":"X"}`;
//! with recovery it must read `40/public,{"sid":"X","pid":"P"}`. Nothing else is touched: any
//! other packet, namespace or shape passes unchanged.

use serde::Deserialize;

/// The CONNECT answer socketioxide writes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectAnswer<'a> {
    sid: &'a str,
}

/// `packet` with `pid` added when it is the CONNECT answer of namespace `ns` and `pid_for` has
/// a pid for its sid; `None` when it stays as it is.
pub(crate) fn with_pid(
    packet: &str,
    ns: &str,
    pid_for: impl FnOnce(&str) -> Option<String>,
) -> Option<String> {
    let json = packet
        .strip_prefix("40")?
        .strip_prefix(ns)?
        .strip_prefix(',')?;
    let answer: ConnectAnswer<'_> = serde_json::from_str(json).ok()?;
    let pid = pid_for(answer.sid)?;
    let answer = serde_json::json!({"sid": answer.sid, "pid": pid});
    Some(format!("40{ns},{answer}"))
}

/// A long-polling payload (packets separated by the record separator 0x1E) with `pid` added
/// to the CONNECT answers of `ns`; `None` when nothing changed.
pub(crate) fn payload_with_pid(
    payload: &str,
    ns: &str,
    mut pid_for: impl FnMut(&str) -> Option<String>,
) -> Option<String> {
    let mut changed = false;
    let packets: Vec<String> = payload
        .split('\u{1e}')
        .map(|packet| match with_pid(packet, ns, &mut pid_for) {
            Some(rewritten) => {
                changed = true;
                rewritten
            }
            None => packet.to_owned(),
        })
        .collect();
    changed.then(|| packets.join("\u{1e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(sid: &str) -> Option<String> {
        (sid == "abc").then(|| "P1".to_owned())
    }

    #[test]
    fn the_connect_answer_of_the_namespace_gains_the_pid() {
        assert_eq!(
            with_pid(r#"40/public,{"sid":"abc"}"#, "/public", pid).as_deref(),
            Some(r#"40/public,{"sid":"abc","pid":"P1"}"#)
        );
    }

    #[test]
    fn everything_else_is_left_alone() {
        for packet in [
            r#"40/public,{"sid":"other"}"#,
            r#"40/private,{"sid":"abc"}"#,
            r#"40/publicx,{"sid":"abc"}"#,
            r#"40{"sid":"abc"}"#,
            r#"42/public,["x",{"sid":"abc"}]"#,
            r#"44/public,{"message":"unauthorized"}"#,
            r#"40/public,{"sid":"abc","pid":"old"}"#,
            "40/public,",
            "2",
            "",
        ] {
            assert_eq!(with_pid(packet, "/public", pid), None, "{packet}");
        }
    }

    #[test]
    fn a_polling_payload_is_rewritten_packet_by_packet() {
        let payload = "2\u{1e}40/public,{\"sid\":\"abc\"}\u{1e}42/public,[\"e\"]";
        assert_eq!(
            payload_with_pid(payload, "/public", pid).as_deref(),
            Some("2\u{1e}40/public,{\"sid\":\"abc\",\"pid\":\"P1\"}\u{1e}42/public,[\"e\"]")
        );
        assert_eq!(payload_with_pid("2\u{1e}3", "/public", pid), None);
    }
}
