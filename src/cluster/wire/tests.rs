//! Unit tests of the wire format: exact bytes, round trips, refusals.

use super::*;

fn e() -> Epoch {
    Epoch::parse(b"0123456789abcdef").expect("epoch")
}

fn contents(p: &Payload) -> Vec<&str> {
    match p {
        Payload::Messages { contents, .. } => contents.iter().map(Escaped::as_str).collect(),
        Payload::Control { .. } => vec![],
    }
}

#[test]
fn one_message_round_trips() {
    for (kind, seq, content) in [
        (Kind::Data, 1, "hello"),
        (Kind::Broadcast, -2147483648, "a b  c"),
        (Kind::Data, 2147483647, ""),
        (Kind::Data, 0, "say \\\"hi\\\" \\u00e9 \u{e9}"),
    ] {
        let b = Bytes::from(encode_payload(&e(), seq, kind, content));
        let p = decode_payload(&b).expect("decodes");
        assert_eq!(contents(&p), vec![content]);
        match p {
            Payload::Messages {
                epoch,
                first_seq,
                kind: k,
                ..
            } => {
                assert_eq!((epoch, first_seq, k), (e(), seq, kind));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn exact_bytes_of_each_kind() {
    assert_eq!(encode_payload(&e(), 7, Kind::Data, "x y"), b"0123456789abcdef 7 d x y");
    assert_eq!(encode_payload(&e(), -1, Kind::Broadcast, ""), b"0123456789abcdef -1 b ");
    assert_eq!(
        encode_multi(&e(), 3, &["ab", "", "c:d"]),
        b"0123456789abcdef 3 m 2:ab0:3:c:d"
    );
    assert_eq!(encode_control(Some(&e()), Control::Close, 9), b"0123456789abcdef 9 c");
    assert_eq!(encode_control(None, Control::Free, 1), b"- 1 f");
    assert_eq!(encode_control(None, Control::Clear, 4), b"- 4 x");
    assert_eq!(encode_history_entry(12, Kind::Broadcast, "hi"), b"12 b hi");
}

#[test]
fn multi_round_trips() {
    let list = ["ab", "", "c:d", "12:34", "\\n"];
    let b = Bytes::from(encode_multi(&e(), 2147483646, &list));
    let p = decode_payload(&b).expect("decodes");
    assert_eq!(contents(&p), list.to_vec());
    assert!(matches!(
        p,
        Payload::Messages {
            first_seq: 2147483646,
            kind: Kind::Data,
            ..
        }
    ));
}

#[test]
fn controls_decode() {
    for (control, letter) in [(Control::Close, "c"), (Control::Clear, "x"), (Control::Free, "f")] {
        let b = Bytes::from(format!("0123456789abcdef 5 {letter}"));
        assert_eq!(
            decode_payload(&b),
            Ok(Payload::Control {
                epoch: Some(e()),
                control,
                next_seq: 5
            })
        );
        let b = Bytes::from(format!("- -3 {letter}"));
        assert_eq!(
            decode_payload(&b),
            Ok(Payload::Control {
                epoch: None,
                control,
                next_seq: -3
            })
        );
    }
}

#[test]
fn malformed_payloads_are_refused() {
    let cases: &[(&[u8], WireError)] = &[
        (b"", WireError::Truncated("seq")),
        (b"0123456789abcdef", WireError::Truncated("seq")),
        (b"0123456789abcdef 1", WireError::Truncated("kind")),
        (b"0123456789abcdef 1 ", WireError::BadKind(String::new())),
        (b"0123456789abcdef 1 d", WireError::Truncated("content")),
        (b"0123456789ABCDEF 1 d x", WireError::BadEpoch),
        (b"0123456789abcde 1 d x", WireError::BadEpoch),
        (b"- 1 d x", WireError::BadEpoch),
        (b"0123456789abcdef 2147483648 d x", WireError::BadSeq),
        (b"0123456789abcdef +1 d x", WireError::BadSeq),
        (b"0123456789abcdef - d x", WireError::BadSeq),
        (b"0123456789abcdef 1x d x", WireError::BadSeq),
        (b"0123456789abcdef 1 z x", WireError::BadKind("z".into())),
        (b"0123456789abcdef 1 dd x", WireError::BadKind("dd".into())),
        (b"0123456789abcdef 1 c x", WireError::Trailing("close")),
        (b"0123456789abcdef 1 m ", WireError::Truncated("message")),
        (b"0123456789abcdef 1 m 5:ab", WireError::BadLength),
        (b"0123456789abcdef 1 m x:ab", WireError::BadLength),
        (b"0123456789abcdef 1 m 99999999999999999999:ab", WireError::BadLength),
        (b"0123456789abcdef 1 m 2:ab3", WireError::BadLength),
        (
            b"0123456789abcdef 1 d a\"b",
            WireError::BadContent("content contains an unescaped '\"'"),
        ),
        (
            b"0123456789abcdef 1 d a\nb",
            WireError::BadContent("content contains a raw control character"),
        ),
        (b"0123456789abcdef 1 d \xff", WireError::BadContent("not UTF-8")),
    ];
    for (input, want) in cases {
        let got = decode_payload(&Bytes::copy_from_slice(input));
        assert_eq!(
            got.as_ref().err(),
            Some(want),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn history_entries_round_trip_and_refuse_garbage() {
    let b = Bytes::from(encode_history_entry(-7, Kind::Data, "a b"));
    let h = decode_history_entry(&b).expect("decodes");
    assert_eq!((h.seq, h.kind, h.content.as_str()), (-7, Kind::Data, "a b"));
    for bad in [&b"x d a"[..], b"1", b"1 q a", b"1 d", b"1 d \"", b""] {
        assert!(decode_history_entry(&Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn presence_lines() {
    assert_eq!(decode_presence(b"1 room 1"), Ok((true, "room 1".to_string())));
    assert_eq!(decode_presence(b"0 "), Ok((false, String::new())));
    assert_eq!(decode_presence(b"2 x"), Err(WireError::BadPresence));
    assert_eq!(decode_presence(b"1"), Err(WireError::BadPresence));
    assert_eq!(decode_presence(b"1 \xff"), Err(WireError::BadPresence));
}

#[test]
fn epochs_are_random_hex() {
    let a = Epoch::random();
    let b = Epoch::random();
    assert_ne!(a, b);
    assert_eq!(Epoch::parse(a.as_str().as_bytes()), Ok(a));
}

#[test]
fn seqs_parse_strictly() {
    assert_eq!(parse_seq(b"-2147483648"), Ok(i32::MIN));
    assert_eq!(parse_seq(b"2147483647"), Ok(i32::MAX));
    assert_eq!(parse_seq(b"-0"), Ok(0));
    for bad in [&b""[..], b"-", b" 1", b"1 ", b"00000000001", b"1.0", b"1e3"] {
        assert_eq!(parse_seq(bad), Err(WireError::BadSeq), "{bad:?}");
    }
}
