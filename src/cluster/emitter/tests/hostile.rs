//! Broken, malicious and inconsistent input: every case is an error with a clear reason, never
//! a panic, a stack overflow or a huge allocation.

use rmpv::Value;

use super::*;

const CHANNEL: &[u8] = b"socket.io#/public#";

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).unwrap();
    out
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// `[uid, {type: 2, data: [event, ...args], nsp}, {rooms, except, flags: {}}]`.
fn emit_payload(event: &str, args: Vec<Value>, rooms: &[&str]) -> Vec<u8> {
    let data = std::iter::once(Value::from(event)).chain(args).collect();
    let rooms = rooms.iter().map(|r| Value::from(*r)).collect();
    encode(&envelope(
        map(vec![
            ("type", Value::from(2)),
            ("data", Value::Array(data)),
            ("nsp", "/public".into()),
        ]),
        map(vec![
            ("rooms", Value::Array(rooms)),
            ("except", Value::Array(vec![])),
            ("flags", map(vec![])),
        ]),
    ))
}

fn envelope(packet: Value, opts: Value) -> Value {
    Value::Array(vec!["emitter".into(), packet, opts])
}

fn decode_arg(arg: Value) -> Result<EmitterMessage, EmitterError> {
    decode(CHANNEL, &emit_payload("e", vec![arg], &[]), "socket.io")
}

#[test]
fn every_truncation_and_byte_flip_of_every_fixture_fails_cleanly() {
    for text in ALL_FIXTURES {
        let (channel, payload) = parse_fixture(text);
        let key = if channel.starts_with(b"herald-test") {
            "herald-test"
        } else {
            "socket.io"
        };
        let whole_is_ok = decode(&channel, &payload, key).is_ok();
        for len in 0..payload.len() {
            let truncated = decode(&channel, &payload[..len], key);
            assert!(!whole_is_ok || truncated.is_err(), "{len} bytes of {text}");
        }
        for i in 0..payload.len() {
            for bit in [0x01, 0x80, 0xff] {
                let mut flipped = payload.clone();
                flipped[i] ^= bit;
                let _ = decode(&channel, &flipped, key);
            }
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..20_000 {
        let len = round % 97;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        let _ = decode(CHANNEL, &bytes, "socket.io");
        // Behind a plausible envelope prefix, so the garbage reaches the inner decoders.
        let prefixed = [
            &[0x93, 0xa7][..],
            b"emitter",
            &[0x83, 0xa4],
            b"type",
            &[0x02],
            &bytes,
        ]
        .concat();
        let _ = decode(CHANNEL, &prefixed, "socket.io");
        let _ = decode(&bytes, &prefixed, "socket.io");
    }
}

#[test]
fn huge_declared_lengths_fail_without_allocating_them() {
    let mut prefix = vec![0x93, 0xa7];
    prefix.extend_from_slice(b"emitter");
    for tail in [
        &[0xdd, 0xff, 0xff, 0xff, 0xff][..],   // array 32 of 4G elements
        &[0xdf, 0xff, 0xff, 0xff, 0xff],       // map 32
        &[0xdb, 0xff, 0xff, 0xff, 0xff],       // str 32
        &[0xc6, 0xff, 0xff, 0xff, 0xff],       // bin 32
        &[0xc9, 0xff, 0xff, 0xff, 0xff, 0xff], // ext 32
    ] {
        let payload = [&prefix[..], tail].concat();
        assert!(matches!(
            decode(CHANNEL, &payload, "socket.io"),
            Err(EmitterError::NotMsgpack(_))
        ));
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let deep = [vec![0x91_u8; 100_000], vec![0xc0]].concat();
    assert!(matches!(
        decode(CHANNEL, &deep, "socket.io"),
        Err(EmitterError::TooDeep)
    ));

    let nested =
        |levels: usize| (0..levels).fold(Value::from("leaf"), |v, _| Value::Array(vec![v]));
    let ok = decode_arg(nested(MAX_DATA_DEPTH)).unwrap();
    assert_eq!(ok.args_json[0].get().matches('[').count(), MAX_DATA_DEPTH);
    // And serde_json can read it back (its own limit is 128).
    let _: serde_json::Value = serde_json::from_str(ok.args_json[0].get()).unwrap();
    assert!(matches!(
        decode_arg(nested(MAX_DATA_DEPTH + 1)),
        Err(EmitterError::TooDeep)
    ));
    let in_maps = (0..MAX_DATA_DEPTH + 1).fold(Value::Nil, |v, _| map(vec![("k", v)]));
    assert!(matches!(decode_arg(in_maps), Err(EmitterError::TooDeep)));
}

#[test]
fn oversized_and_trailing_bytes() {
    let payload = emit_payload("e", vec![Value::from("x".repeat(2000))], &[]);
    let limits = Limits {
        max_payload_bytes: 1024,
    };
    let err = decode_with_limits(CHANNEL, &payload, "socket.io", &limits).unwrap_err();
    assert!(matches!(err, EmitterError::Oversized { max: 1024, .. }));
    assert!(decode(CHANNEL, &payload, "socket.io").is_ok());
    let big = vec![0xc0; DEFAULT_MAX_PAYLOAD_BYTES + 1];
    assert!(matches!(
        decode(CHANNEL, &big, "socket.io"),
        Err(EmitterError::Oversized { .. })
    ));

    let trailing = [payload, vec![0xc0, 0xc0]].concat();
    assert!(matches!(
        decode(CHANNEL, &trailing, "socket.io"),
        Err(EmitterError::TrailingBytes(2))
    ));
    // JSON on the broadcast channel reads as the fixint `{` followed by trailing bytes.
    assert!(matches!(
        decode(CHANNEL, br#"{"a":1}"#, "socket.io"),
        Err(EmitterError::TrailingBytes(6))
    ));
}

#[test]
fn values_json_cannot_carry() {
    let non_string_key = Value::Map(vec![(Value::from(1), Value::from(2))]);
    assert!(matches!(
        decode_arg(non_string_key),
        Err(EmitterError::NonStringKey)
    ));
    // Raw bytes: fixstr of length 2 holding invalid UTF-8, as the argument.
    let mut payload = emit_payload("e", vec![Value::from("zz")], &[]);
    let at = payload
        .windows(3)
        .position(|w| w == [0xa2, b'z', b'z'])
        .unwrap();
    payload[at + 1..at + 3].copy_from_slice(&[0xff, 0xfe]);
    assert!(matches!(
        decode(CHANNEL, &payload, "socket.io"),
        Err(EmitterError::InvalidUtf8)
    ));
    assert!(matches!(
        decode_arg(Value::Ext(5, vec![1])),
        Err(EmitterError::UnsupportedExtension(5))
    ));
    let bad_timestamp = Value::Ext(-1, vec![0; 5]);
    assert!(matches!(
        decode_arg(bad_timestamp),
        Err(EmitterError::UnsupportedExtension(-1))
    ));
    let min = decode_arg(Value::Ext(
        -1,
        [vec![0; 4], i64::MIN.to_be_bytes().to_vec()].concat(),
    ));
    assert_eq!(args(&min.unwrap()), ["null"]);
    assert_eq!(args(&decode_arg(Value::F32(0.5)).unwrap()), ["0.5"]);
    assert_eq!(
        args(&decode_arg(Value::from(u64::MAX)).unwrap()),
        ["18446744073709551615"]
    );
    assert_eq!(
        args(&decode_arg(Value::from(i64::MIN)).unwrap()),
        ["-9223372036854775808"]
    );
    // A repeated key keeps its first place and its last value, like a JavaScript object.
    let repeated = map(vec![("a", 1.into()), ("b", 2.into()), ("a", 3.into())]);
    assert_eq!(args(&decode_arg(repeated).unwrap()), [r#"{"a":3,"b":2}"#]);
    // rmpv reads the reserved marker 0xc1 as nil (notepack.io would refuse it): harmless.
    let mut payload = emit_payload("e", vec![Value::Nil], &[]);
    let at = payload
        .windows(4)
        .position(|w| w == [0x92, 0xa1, b'e', 0xc0])
        .unwrap();
    payload[at + 3] = 0xc1;
    assert_eq!(
        args(&decode(CHANNEL, &payload, "socket.io").unwrap()),
        ["null"]
    );
}

#[test]
fn wrong_shapes() {
    let packet = |kind: Value, data: Value| {
        map(vec![
            ("type", kind),
            ("data", data),
            ("nsp", "/public".into()),
        ])
    };
    let good_data = Value::Array(vec!["e".into()]);
    let opts = map(vec![("rooms", Value::Array(vec![]))]);
    let cases: Vec<(Value, &str)> = vec![
        (Value::from("x"), "not an array"),
        (
            Value::Array(vec!["emitter".into(), packet(2.into(), good_data.clone())]),
            "not [uid",
        ),
        (envelope(Value::Nil, opts.clone()), "packet is not a map"),
        (
            envelope(map(vec![("data", good_data.clone())]), opts.clone()),
            "packet has no type",
        ),
        (
            envelope(packet("2".into(), good_data.clone()), opts.clone()),
            "packet type",
        ),
        (
            envelope(packet(2.into(), Value::Nil), opts.clone()),
            "packet data is not an array",
        ),
        (
            envelope(packet(2.into(), Value::Array(vec![])), opts.clone()),
            "no event name",
        ),
        (
            envelope(packet(2.into(), Value::Array(vec![1.into()])), opts.clone()),
            "event name",
        ),
        (
            envelope(packet(2.into(), good_data.clone()), Value::Nil),
            "opts is not a map",
        ),
        (
            envelope(
                packet(2.into(), good_data.clone()),
                map(vec![("rooms", 1.into())]),
            ),
            "opts.rooms",
        ),
        (
            envelope(
                packet(2.into(), good_data.clone()),
                map(vec![("rooms", Value::Array(vec![1.into()]))]),
            ),
            "opts.rooms",
        ),
        (
            envelope(
                packet(2.into(), good_data.clone()),
                map(vec![("except", "r".into())]),
            ),
            "opts.except",
        ),
        (
            envelope(
                packet(2.into(), good_data.clone()),
                map(vec![("flags", 1.into())]),
            ),
            "opts.flags",
        ),
        (
            envelope(
                packet(2.into(), good_data.clone()),
                map(vec![("flags", map(vec![("volatile", 1.into())]))]),
            ),
            "flag",
        ),
        (
            Value::Array(vec![
                1.into(),
                packet(2.into(), good_data.clone()),
                opts.clone(),
            ]),
            "uid",
        ),
    ];
    for (value, reason) in cases {
        match decode(CHANNEL, &encode(&value), "socket.io") {
            Err(EmitterError::WrongShape(got)) => assert!(got.contains(reason), "{got} / {reason}"),
            other => panic!("{reason}: {other:?}"),
        }
    }
    // Other packet types: 5 (BINARY_EVENT) is binary; 3 (ACK) and the rest are not events.
    for (kind, want) in [(5, "binary"), (3, "packet type 3"), (-1, "packet type -1")] {
        let err = decode(
            CHANNEL,
            &encode(&envelope(
                packet(kind.into(), good_data.clone()),
                opts.clone(),
            )),
            "socket.io",
        );
        assert!(err.unwrap_err().to_string().contains(want), "{kind}");
    }
    // Missing lists are empty and a missing nsp is "/", as in socket.io's Redis adapter.
    let bare = envelope(
        map(vec![("type", 2.into()), ("data", good_data)]),
        map(vec![]),
    );
    let msg = decode(b"socket.io#/#", &encode(&bare), "socket.io").unwrap();
    assert_eq!(
        (msg.namespace.as_str(), msg.rooms.len(), msg.flags),
        ("/", 0, EmitterFlags::default())
    );
}

#[test]
fn channel_must_agree_with_the_message() {
    let one_room = emit_payload("e", vec![], &["workspace:ws1"]);
    let two_rooms = emit_payload("e", vec![], &["workspace:ws1", "user:u1"]);
    let ok = |ch: &[u8], p: &[u8]| decode(ch, p, "socket.io").is_ok();
    assert!(ok(b"socket.io#/public#workspace:ws1#", &one_room));
    assert!(ok(b"socket.io#/public#", &one_room));
    assert!(ok(b"socket.io#/public#", &two_rooms));
    for (channel, payload) in [
        (&b"socket.io#/public#workspace:ws2#"[..], &one_room),
        (b"socket.io#/public#workspace:ws1", &one_room),
        (b"socket.io#/public#workspace:ws1#", &two_rooms),
    ] {
        assert!(matches!(
            decode(channel, payload, "socket.io"),
            Err(EmitterError::RoomMismatch)
        ));
    }
    for channel in [
        &b"socket.io#/private#"[..],
        b"socket.io#/public",
        b"socket.io#/publicx#",
        b"socket.io#",
    ] {
        let err = decode(channel, &one_room, "socket.io").unwrap_err();
        assert!(
            matches!(err, EmitterError::NamespaceMismatch),
            "{channel:?}"
        );
    }
    for channel in [
        &b"other#/public#"[..],
        b"socket.io",
        b"socket.iox#/public#",
        b"",
        &[0xff, 0xfe],
    ] {
        let err = decode(channel, &one_room, "socket.io").unwrap_err();
        assert!(matches!(err, EmitterError::UnknownChannel), "{channel:?}");
    }
}
