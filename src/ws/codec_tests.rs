use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const MAX: usize = 1 << 20;

/// A masked client frame: first byte `b0` (FIN, RSV, opcode) as given.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

fn text(s: &str) -> Vec<u8> {
    frame(0x81, s.as_bytes())
}

/// An event with its payload owned, for comparing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    Error(WsError),
}

fn own(e: Event<'_>) -> Got {
    match e {
        Event::Text(t) => Got::Text(t.into_owned()),
        Event::Binary(b) => Got::Binary(b.into_owned()),
        Event::Ping(p) => Got::Ping(p.to_vec()),
        Event::Pong(p) => Got::Pong(p.to_vec()),
        Event::Close(c) => Got::Close(c.code.map(CloseCode::get), c.reason.to_string()),
    }
}

/// Feeds `reads` as a connection would: keeps what is not consumed and
/// presents it again with the next read. Stops at an error or a close.
fn run_reads(reads: &[&[u8]], max: usize) -> Vec<Got> {
    let mut state = WsState::new();
    let mut kept: Vec<u8> = Vec::new();
    let mut got = Vec::new();
    for read in reads {
        kept.extend_from_slice(read);
        let mut pos = 0;
        loop {
            match state.decode(&mut kept[pos..], max) {
                Err(e) => {
                    got.push(Got::Error(e));
                    return got;
                }
                Ok(Decoded { consumed, event }) => {
                    pos += consumed;
                    let Some(event) = event else { break };
                    let event = own(event);
                    let close = matches!(event, Got::Close(..));
                    got.push(event);
                    if close {
                        return got;
                    }
                }
            }
        }
        assert!(kept.len() - pos < MAX_KEPT, "kept {} bytes", kept.len() - pos);
        kept.drain(..pos);
    }
    if kept.is_empty() && state.is_idle() {
        assert_eq!(state.heap_bytes(), 0);
    }
    got
}

fn run(input: &[u8]) -> Vec<Got> {
    run_with(input, MAX)
}

/// The events of `input` whole, checked to equal those of the same bytes
/// fed one at a time and cut at every single position.
fn run_with(input: &[u8], max: usize) -> Vec<Got> {
    let whole = run_reads(&[input], max);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_reads(&bytes, max), whole, "one byte at a time");
    for cut in 1..input.len() {
        let (a, b) = input.split_at(cut);
        assert_eq!(run_reads(&[a, b], max), whole, "cut at {cut}");
    }
    whole
}

fn error(input: &[u8]) -> WsError {
    match run(input).pop() {
        Some(Got::Error(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn idle_state_is_eight_bytes_and_holds_no_heap() {
    assert!(std::mem::size_of::<WsState>() <= 8);
    let mut state = WsState::new();
    let mut first = frame(0x01, b"hel");
    assert_eq!(state.decode(&mut first, MAX).map(|d| d.consumed), Ok(first.len()));
    assert!(!state.is_idle());
    assert!(state.heap_bytes() > 0);
    let mut last = frame(0x80, b"lo");
    let d = state.decode(&mut last, MAX).expect("valid");
    assert_eq!(d.event, Some(Event::Text(Cow::Owned("hello".into()))));
    assert!(state.is_idle());
    assert_eq!(state.heap_bytes(), 0);
}

#[test]
fn a_whole_frame_is_borrowed_from_the_buffer() {
    let mut state = WsState::new();
    let mut buf = text("hi");
    buf.extend(frame(0x82, &[1, 2]));
    let n = buf.len();
    let d = state.decode(&mut buf, MAX).expect("valid");
    assert_eq!(d.consumed, 8);
    assert!(matches!(d.event, Some(Event::Text(Cow::Borrowed("hi")))));
    let d = state.decode(&mut buf[8..], MAX).expect("valid");
    assert_eq!(d.consumed, n - 8);
    assert!(matches!(d.event, Some(Event::Binary(Cow::Borrowed([1, 2])))));
    assert_eq!(
        state.decode(&mut buf[n..], MAX),
        Ok(Decoded {
            consumed: 0,
            event: None
        })
    );
    assert!(state.is_idle());
}

#[test]
fn messages_and_control_frames() {
    let mut input = text("hello");
    input.extend(frame(0x82, &[0, 255, 7]));
    input.extend(frame(0x89, b"ping me"));
    input.extend(frame(0x8a, b"unsolicited"));
    input.extend(frame(0x88, b"\x03\xe8bye"));
    input.extend(text("after close is not read"));
    assert_eq!(
        run(&input),
        [
            Got::Text("hello".into()),
            Got::Binary(vec![0, 255, 7]),
            Got::Ping(b"ping me".to_vec()),
            Got::Pong(b"unsolicited".to_vec()),
            Got::Close(Some(1000), "bye".into()),
        ]
    );
}

#[test]
fn zero_length_frames() {
    let mut input = frame(0x81, b"");
    input.extend(frame(0x82, b""));
    input.extend(frame(0x89, b""));
    input.extend(frame(0x8a, b""));
    input.extend(frame(0x01, b""));
    input.extend(frame(0x00, b""));
    input.extend(frame(0x80, b""));
    input.extend(frame(0x88, b""));
    assert_eq!(
        run(&input),
        [
            Got::Text(String::new()),
            Got::Binary(vec![]),
            Got::Ping(vec![]),
            Got::Pong(vec![]),
            Got::Text(String::new()),
            Got::Close(None, String::new()),
        ]
    );
}

#[test]
fn lengths_of_7_16_and_64_bits() {
    for len in [0, 1, 125, 126, 127, 65535, 65536, 70_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let input = frame(0x82, &payload);
        let header = match len {
            0..=125 => 6,
            126..=65535 => 8,
            _ => 14,
        };
        assert_eq!(input.len(), header + len, "len {len}");
        assert_eq!(run_reads(&[&input], MAX), [Got::Binary(payload.clone())], "len {len}");
        let (a, b) = input.split_at(header + len / 2);
        assert_eq!(run_reads(&[a, b], MAX), [Got::Binary(payload)], "len {len} split");
    }
}

#[test]
fn fragments_with_interleaved_control_frames() {
    let mut input = frame(0x01, b"fra");
    input.extend(frame(0x89, b"p1"));
    input.extend(frame(0x00, b"gme"));
    input.extend(frame(0x8a, b""));
    input.extend(frame(0x89, b"p2"));
    input.extend(frame(0x80, b"nted"));
    input.extend(frame(0x02, &[1]));
    input.extend(frame(0x00, &[]));
    input.extend(frame(0x80, &[2, 3]));
    input.extend(text("next"));
    assert_eq!(
        run(&input),
        [
            Got::Ping(b"p1".to_vec()),
            Got::Pong(vec![]),
            Got::Ping(b"p2".to_vec()),
            Got::Text("fragmented".into()),
            Got::Binary(vec![1, 2, 3]),
            Got::Text("next".into()),
        ]
    );
}

#[test]
fn utf8_split_across_fragments_is_valid() {
    // "€" is E2 82 AC; "𝄞" is F0 9D 84 9E.
    let mut input = frame(0x01, b"a\xe2");
    input.extend(frame(0x00, b"\x82"));
    input.extend(frame(0x00, b"\xacb\xf0\x9d"));
    input.extend(frame(0x89, b""));
    input.extend(frame(0x80, b"\x84\x9e"));
    assert_eq!(run(&input), [Got::Ping(vec![]), Got::Text("a€b𝄞".into())]);
}

#[test]
fn invalid_utf8_fails_at_the_first_impossible_byte() {
    // F4 90 can start nothing: the error comes before the frame ends.
    let mut state = WsState::new();
    let mut head = frame(0x81, b"ok\xf4\x90 and more that has not arrived");
    head.truncate(6 + 4);
    assert_eq!(state.decode(&mut head, MAX), Err(WsError::InvalidUtf8));
    // In a first fragment, with a valid continuation still to come.
    let mut input = frame(0x01, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80");
    input.extend(frame(0x80, b"edited"));
    assert_eq!(run(&input), [Got::Error(WsError::InvalidUtf8)]);
    // A sequence cut at the end of the message.
    assert_eq!(error(&frame(0x81, b"ab\xe2\x82")), WsError::InvalidUtf8);
    let mut input = frame(0x01, b"ab");
    input.extend(frame(0x80, b"\xe2\x82"));
    assert_eq!(error(&input), WsError::InvalidUtf8);
    assert_eq!(error(&frame(0x81, b"\xff")), WsError::InvalidUtf8);
    assert_eq!(error(&frame(0x81, b"\xc0\xaf")), WsError::InvalidUtf8);
    assert_eq!(WsError::InvalidUtf8.close_code().get(), 1007);
    // Binary messages are not UTF-8 checked.
    assert_eq!(run(&frame(0x82, b"\xff")), [Got::Binary(vec![0xff])]);
}

#[test]
fn framing_errors_close_with_1002() {
    let big_control = frame(0x89, &[0; 126]);
    let mut top_bit = vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
    top_bit.extend(MASK);
    let cases: Vec<(Vec<u8>, WsError)> = vec![
        (vec![0x81, 0x00], WsError::Unmasked),
        (vec![0x81, 0x05, b'h', b'e', b'l', b'l', b'o'], WsError::Unmasked),
        (frame(0xc1, b"x"), WsError::ReservedBits),
        (frame(0xa1, b"x"), WsError::ReservedBits),
        (frame(0x91, b"x"), WsError::ReservedBits),
        (frame(0xf1, b"x"), WsError::ReservedBits),
        (frame(0x83, b""), WsError::ReservedOpcode(3)),
        (frame(0x87, b""), WsError::ReservedOpcode(7)),
        (frame(0x8b, b""), WsError::ReservedOpcode(0xb)),
        (frame(0x8f, b""), WsError::ReservedOpcode(0xf)),
        (big_control, WsError::ControlTooLong),
        (frame(0x88, &[0x03; 126]), WsError::ControlTooLong),
        (frame(0x09, b""), WsError::FragmentedControl),
        (frame(0x08, b"\x03\xe8"), WsError::FragmentedControl),
        (frame(0x0a, b""), WsError::FragmentedControl),
        (frame(0x80, b"x"), WsError::UnexpectedContinuation),
        (frame(0x00, b"x"), WsError::UnexpectedContinuation),
        (
            [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
            WsError::ExpectedContinuation,
        ),
        (
            [frame(0x02, b"a"), frame(0x02, b"b")].concat(),
            WsError::ExpectedContinuation,
        ),
        (top_bit, WsError::LengthTopBit),
        (frame(0x88, b"\x03"), WsError::CloseOneByte),
    ];
    for (input, expected) in cases {
        assert_eq!(error(&input), expected, "{input:02x?}");
        assert_eq!(expected.close_code(), CloseCode::PROTOCOL_ERROR);
    }
    // Checks fire on the first byte that shows the fault, before the rest arrives.
    let mut state = WsState::new();
    assert_eq!(state.decode(&mut [0xc1], MAX), Err(WsError::ReservedBits));
    let mut state = WsState::new();
    assert_eq!(state.decode(&mut [0x89, 0xfe], MAX), Err(WsError::ControlTooLong));
    let mut state = WsState::new();
    assert_eq!(state.decode(&mut [0x82, 0xff, 0x80], MAX), Err(WsError::LengthTopBit));
}

#[test]
fn close_codes_and_reasons() {
    let close = |payload: &[u8]| run(&frame(0x88, payload));
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        assert_eq!(close(&code.to_be_bytes()), [Got::Close(Some(code), String::new())]);
    }
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
        assert_eq!(
            close(&code.to_be_bytes()),
            [Got::Error(WsError::BadCloseCode(code))],
            "{code}"
        );
        assert_eq!(WsError::BadCloseCode(code).close_code().get(), 1002);
    }
    let reason = "x".repeat(123);
    let mut payload = 1001u16.to_be_bytes().to_vec();
    payload.extend(reason.as_bytes());
    assert_eq!(close(&payload), [Got::Close(Some(1001), reason)]);
    assert_eq!(
        close(b"\x03\xe8\xce\xba\xe1\xbd"),
        [Got::Error(WsError::InvalidCloseReason)]
    );
    assert_eq!(WsError::InvalidCloseReason.close_code().get(), 1007);
    let mut buf = frame(0x88, b"\x0f\xa0why");
    let Ok(Decoded {
        event: Some(Event::Close(c)),
        ..
    }) = WsState::new().decode(&mut buf, MAX)
    else {
        panic!("a close");
    };
    assert_eq!(c.reply(), [0x88, 0x02, 0x0f, 0xa0]);
    let mut empty = frame(0x88, b"");
    let Ok(Decoded {
        event: Some(Event::Close(c)),
        ..
    }) = WsState::new().decode(&mut empty, MAX)
    else {
        panic!("a close");
    };
    assert_eq!(c.reply(), [0x88, 0x02, 0x03, 0xe8]);
}

#[test]
fn messages_over_the_maximum_close_with_1009_at_the_header() {
    assert_eq!(run_with(&text("12345"), 5), [Got::Text("12345".into())]);
    assert_eq!(
        run_with(&text("123456"), 5),
        [Got::Error(WsError::MessageTooBig { limit: 5 })]
    );
    // Refused from the header alone, before any payload arrives.
    let mut state = WsState::new();
    let mut header = frame(0x82, &[0; 70_000])[..14].to_vec();
    assert_eq!(
        state.decode(&mut header, 4096),
        Err(WsError::MessageTooBig { limit: 4096 })
    );
    // Fragments count together; control frames do not count.
    let mut input = frame(0x01, b"123");
    input.extend(frame(0x89, b"a ping longer than five"));
    input.extend(frame(0x80, b"45"));
    assert_eq!(
        run_with(&input, 5),
        [
            Got::Ping(b"a ping longer than five".to_vec()),
            Got::Text("12345".into())
        ]
    );
    let mut input = frame(0x01, b"123");
    input.extend(frame(0x00, b"45"));
    input.extend(frame(0x80, b"6"));
    assert_eq!(run_with(&input, 5), [Got::Error(WsError::MessageTooBig { limit: 5 })]);
    assert_eq!(WsError::MessageTooBig { limit: 5 }.close_code().get(), 1009);
    assert_eq!(run_with(&frame(0x81, b""), 0), [Got::Text(String::new())]);
}

#[test]
fn a_stream_fed_one_byte_at_a_time_gives_the_same_events() {
    let mut input = Vec::new();
    for i in 0..20u8 {
        input.extend(frame(0x81, format!("message {i} €").as_bytes()));
        input.extend(frame(0x02, &[i; 130]));
        input.extend(frame(0x89, &[i; 125]));
        input.extend(frame(0x80, &[i; 3]));
    }
    input.extend(frame(0x88, b"\x03\xe9"));
    let whole = run_reads(&[&input], MAX);
    assert_eq!(whole.len(), 61);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_reads(&bytes, MAX), whole);
    for n in [2, 3, 7, 131, 1000] {
        let pieces: Vec<&[u8]> = input.chunks(n).collect();
        assert_eq!(run_reads(&pieces, MAX), whole, "reads of {n}");
    }
}

#[test]
fn error_close_frames_carry_the_code_and_message() {
    assert_eq!(
        WsError::Unmasked.close_frame(),
        b"\x88\x1c\x03\xeaclient frame is not masked"
    );
    assert_eq!(
        WsError::MessageTooBig { limit: 4096 }.close_frame(),
        b"\x88\x20\x03\xf1message longer than 4096 bytes"
    );
}
