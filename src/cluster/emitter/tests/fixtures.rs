//! Every captured fixture, decoded and checked field by field.

use serde_json::json;

use super::super::json::js_iso_string;
use super::*;

#[test]
fn one_room_goes_on_the_room_channel() {
    let (channel, payload) = fixture!("one-room");
    assert_eq!(channel, b"socket.io#/public#workspace:ws1#");
    let msg = decode(&channel, &payload, "socket.io").unwrap();
    assert_eq!(msg.uid, "emitter");
    assert_eq!(msg.namespace, "/public");
    assert_eq!(msg.rooms, ["workspace:ws1"]);
    assert!(msg.except.is_empty());
    assert_eq!(msg.event, "tree_changes");
    assert_eq!(args(&msg), [r#"{"path":"/docs/a.txt","op":"create"}"#]);
    assert_eq!(msg.flags, EmitterFlags::default());
}

#[test]
fn several_rooms_go_on_the_namespace_channel() {
    let (channel, payload) = fixture!("several-rooms");
    assert_eq!(channel, b"socket.io#/public#");
    let msg = public_emit((channel, payload));
    assert_eq!(msg.rooms, ["workspace:ws1", "user:u1", "group:/acme/eng"]);
    assert_eq!(args(&msg), [r#"{"n":1}"#]);
}

#[test]
fn except_rooms() {
    let msg = public_emit(fixture!("except"));
    assert_eq!(msg.rooms, ["workspace:ws1"]);
    assert_eq!(msg.except, ["user:u2", "user:u3"]);
}

#[test]
fn no_room_is_the_whole_namespace() {
    let msg = public_emit(fixture!("no-room"));
    assert!(msg.rooms.is_empty() && msg.except.is_empty());
    assert_eq!(msg.event, "announcement");
    assert_eq!(args(&msg), [r#""maintenance at 22:00""#]);
}

#[test]
fn default_namespace() {
    let msg = decode_fixture(fixture!("default-namespace")).unwrap();
    assert_eq!((msg.namespace.as_str(), args(&msg)), ("/", vec!["true"]));
}

#[test]
fn zero_and_several_arguments() {
    let msg = public_emit(fixture!("no-args"));
    assert_eq!((msg.event.as_str(), msg.args_json.len()), ("ping", 0));
    let msg = public_emit(fixture!("several-args"));
    assert_eq!(args(&msg), ["1", r#""two""#, r#"{"three":[3]}"#, "null"]);
}

#[test]
fn nested_data_keeps_key_order() {
    let msg = public_emit(fixture!("nested"));
    let sixteen: serde_json::Map<_, _> = (0..16).map(|i| (format!("k{i}"), json!(i))).collect();
    let expected = json!({
        "node": { "uuid": "b9f0", "path": "/a/b",
                  "meta": { "tags": ["x", "y"], "size": 12, "ok": true, "none": null } },
        "list": (0..20).map(|i| i * 1000).collect::<Vec<_>>(),
        "sixteen": sixteen,
        "long": "0123456789".repeat(30),
        "deep": [[[[[[[[{ "z": [] }]]]]]]]],
        "empty": {},
    });
    assert_eq!(args(&msg), [expected.to_string()]);
}

#[test]
fn unicode_in_rooms_events_and_data() {
    let (channel, payload) = fixture!("unicode");
    assert_eq!(channel, "socket.io#/public#workspace:wö ✓#".as_bytes());
    let msg = public_emit((channel, payload));
    assert_eq!(
        (msg.rooms[0].as_str(), msg.event.as_str()),
        ("workspace:wö ✓", "änderung")
    );
    let data =
        "{\"name\":\"résumé 📄.txt\",\"quote\":\"\\\"\\\\\\n\\u0000\u{2028}\",\"日本\":\"語\"}";
    assert_eq!(args(&msg), [data]);
}

#[test]
fn numbers_keep_64_bits_and_non_finite_become_null() {
    let msg = public_emit(fixture!("numbers"));
    // In the order numbers.txt sends them. 9007199254740993 reaches the emitter as ...992
    // (JSON.parse); 1e20 and -1e20 are garbled by notepack.io's 64-bit encoding (see README).
    let expected = "[0,1,-1,127,128,255,256,65535,65536,4294967295,4294967296,\
        9007199254740991,9007199254740992,-32,-33,-128,-129,-32768,-32769,-2147483648,\
        -2147483649,-9007199254740991,1.5,-0.25,3.141592653589793,1e-7,0,\
        9223372036854775808,18446744073709549568,-9223372036854775808,\
        7766279631452241920,-7766279631452241920,null,null]";
    assert_eq!(args(&msg), [expected]);
}

#[test]
fn dates_become_iso_strings() {
    let msg = public_emit(fixture!("dates"));
    let expected = json!([
        "2024-05-01T12:34:56.789Z",
        "2024-05-01T12:34:56.000Z",
        "1969-07-20T20:17:40.001Z",
        "2200-01-01T00:00:00.000Z",
        { "mtime": "1970-01-01T00:00:00.000Z" },
    ]);
    assert_eq!(args(&msg), [expected.to_string()]);
}

#[test]
fn binary_is_refused() {
    for fixture in [fixture!("binary-buffer"), fixture!("binary-nested")] {
        assert!(matches!(decode_fixture(fixture), Err(EmitterError::Binary)));
    }
}

#[test]
fn custom_key_prefix() {
    let (channel, payload) = fixture!("custom-key");
    assert_eq!(channel, b"herald-test#/public#workspace:ws1#");
    let msg = decode(&channel, &payload, "herald-test").unwrap();
    assert_eq!(args(&msg), [r#"{"n":3}"#]);
    let err = decode(&channel, &payload, DEFAULT_KEY_PREFIX).unwrap_err();
    assert!(matches!(err, EmitterError::UnknownChannel));
    let err = decode(&channel, &payload, "herald").unwrap_err();
    assert!(matches!(err, EmitterError::UnknownChannel));
}

#[test]
fn volatile_and_compress_flags() {
    let msg = public_emit(fixture!("flags"));
    let flags = EmitterFlags {
        volatile: true,
        compress: Some(false),
    };
    assert_eq!((msg.flags, msg.rooms.len()), (flags, 2));
}

#[test]
fn room_with_a_hash_sign() {
    let (channel, payload) = fixture!("room-with-hash");
    assert_eq!(channel, b"socket.io#/public#group:/a#b#");
    assert_eq!(public_emit((channel, payload)).rooms, ["group:/a#b"]);
}

#[test]
fn requests_are_unsupported_and_named() {
    for (fixture, what) in [
        (fixture!("server-side-emit"), Unsupported::ServerSideEmit),
        (fixture!("sockets-join"), Unsupported::SocketsJoin),
        (
            fixture!("disconnect-sockets"),
            Unsupported::DisconnectSockets,
        ),
    ] {
        assert_eq!(fixture.0, b"socket.io-request#/public#");
        match decode_fixture(fixture) {
            Err(EmitterError::Unsupported(got)) => assert_eq!(got, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    let leave = br#"{"type":3,"opts":{"rooms":[],"except":[]},"rooms":["r"]}"#;
    let err = decode(b"socket.io-request#/public#", leave, "socket.io").unwrap_err();
    assert!(matches!(
        err,
        EmitterError::Unsupported(Unsupported::SocketsLeave)
    ));
    // A Redis adapter's own msgpack request, and a response.
    let err = decode(b"socket.io-request#/public#", &[0x92, 1, 2], "socket.io").unwrap_err();
    assert!(matches!(
        err,
        EmitterError::Unsupported(Unsupported::OtherRequest)
    ));
    let err = decode(b"socket.io-response#/public#abc#", b"{}", "socket.io").unwrap_err();
    assert!(matches!(
        err,
        EmitterError::Unsupported(Unsupported::Response)
    ));
    assert_eq!(
        err.to_string(),
        "unsupported emitter operation: a response between Redis adapters"
    );
}

#[test]
fn subscription_covers_both_channel_forms_and_escapes_globs() {
    assert_eq!(
        subscription_patterns("socket.io", "/public"),
        ["socket.io#/public#*"]
    );
    // Checked against a real Redis: this pattern matches `k*?[x]\^#/n#` and `k*?[x]\^#/n#r#`
    // but not `kZZx#/n#`.
    assert_eq!(
        subscription_patterns(r"k*?[x]\^", "/n"),
        [r"k\*\?\[x\]\\\^#/n#*"]
    );
}

#[test]
fn iso_strings_match_javascript() {
    // (ms since the epoch, `new Date(ms).toISOString()` in Node 20)
    for (ms, iso) in [
        (0_i64, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (8_640_000_000_000_000, "+275760-09-13T00:00:00.000Z"),
        (-8_640_000_000_000_000, "-271821-04-20T00:00:00.000Z"),
        (253_402_300_800_000, "+010000-01-01T00:00:00.000Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
        (-62_167_219_200_001, "-000001-12-31T23:59:59.999Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
    ] {
        let (secs, nanos) = (
            ms.div_euclid(1000),
            (ms.rem_euclid(1000) * 1_000_000) as u32,
        );
        assert_eq!(js_iso_string(secs, nanos).as_deref(), Some(iso), "{ms}");
    }
    // Past a JavaScript Date's range: an Invalid Date, which JSON writes as null.
    assert_eq!(js_iso_string(8_640_000_000_001, 0), None);
    assert_eq!(js_iso_string(i64::MIN, u32::MAX), None);
    // Sub-millisecond parts truncate toward zero, like TimeClip: -0.5 ms is 0.
    assert_eq!(
        js_iso_string(-1, 999_500_000).as_deref(),
        Some("1970-01-01T00:00:00.000Z")
    );
}
