//! `ws_frames`: client bytes through the WebSocket decoder as a connection
//! feeds it, and messages built by an independent masked encoder written
//! here, through the same decoder.

use super::split;
use crate::ws::close::{CloseCode, MAX_REASON};
use crate::ws::frame::{binary_frame, pong_frame, text_frame};
use crate::ws::{mask, Decoded, Event, WsError, WsState, MAX_KEPT};

/// The message maxima a fuzz input picks from: the boundaries of the length
/// encodings and the sizes comet uses.
const LIMITS: [usize; 8] = [0, 3, 125, 126, 4096, 65535, 65536, 1 << 20];

/// An event with its payload owned, or the error that ended the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    Error(WsError),
}

/// Input: a split seed byte, a byte choosing the message maximum, then the
/// bytes a client sends after the upgrade. Checks that decoding never
/// panics, keeps fewer than `MAX_KEPT` bytes, gives the same events and
/// error however the bytes are cut into reads, that every error closes with
/// a code a server may send, and that what the server writes back (echoes,
/// pongs, close replies) are valid frames. The rest of the input, as a
/// payload, goes through the independent encoder and must come back whole.
pub fn ws_frames(data: &[u8]) {
    let [seed, limit, input @ ..] = data else {
        return;
    };
    let max = LIMITS[usize::from(*limit) % LIMITS.len()];
    let whole = decode_reads(&[input], max);
    let pieces = split(input, *seed);
    assert_eq!(decode_reads(&pieces, max), whole, "split into {} reads", pieces.len());
    if input.len() <= 512 {
        assert_eq!(decode_reads(&split(input, 0), max), whole, "split into single bytes");
    }
    for got in &whole {
        check_answer(got);
    }
    check_unmask(input, *seed);
    round_trip(input, *seed);
}

/// Feeds `reads` to a decoder as a worker does: what is not consumed is kept
/// and presented again with the next read. Stops at an error or a close.
fn decode_reads(reads: &[&[u8]], max: usize) -> Vec<Got> {
    let mut state = WsState::new();
    let mut kept: Vec<u8> = Vec::new();
    let mut got = Vec::new();
    for read in reads {
        kept.extend_from_slice(read);
        let mut pos = 0;
        loop {
            let available = kept.len() - pos;
            let event = match state.decode(&mut kept[pos..], max) {
                Err(e) => {
                    got.push(Got::Error(e));
                    return got;
                }
                Ok(Decoded { consumed, event }) => {
                    assert!(consumed <= available, "consumed more than it had");
                    pos += consumed;
                    match event {
                        None => break,
                        Some(e) => own(e),
                    }
                }
            };
            let closed = matches!(event, Got::Close(..));
            got.push(event);
            if closed {
                return got;
            }
        }
        assert!(kept.len() - pos < MAX_KEPT, "{} bytes kept", kept.len() - pos);
        kept.drain(..pos);
    }
    if state.is_idle() {
        assert_eq!(state.heap_bytes(), 0, "an idle connection holds no buffer");
    }
    got
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

/// What the server writes back for an event or error is a valid frame.
fn check_answer(got: &Got) {
    match got {
        Got::Text(t) => assert_eq!(parse_server_frame(&text_frame(t)), (0x1, t.as_bytes().to_vec())),
        Got::Binary(b) => assert_eq!(parse_server_frame(&binary_frame(b)), (0x2, b.clone())),
        Got::Ping(p) => {
            assert!(p.len() <= 125);
            assert_eq!(parse_server_frame(&pong_frame(p)), (0xA, p.clone()));
        }
        Got::Pong(p) => assert!(p.len() <= 125),
        Got::Close(code, reason) => {
            assert!(reason.len() <= MAX_REASON);
            let reply = crate::ws::close::close_reply(code.and_then(CloseCode::new));
            let expected = code.unwrap_or(1000);
            assert_eq!(parse_server_frame(&reply), (0x8, expected.to_be_bytes().to_vec()));
        }
        Got::Error(e) => {
            let code = e.close_code().get();
            assert!([1002, 1007, 1009].contains(&code), "{e:?} closes with {code}");
            assert!(CloseCode::new(code).is_some());
            let (opcode, payload) = parse_server_frame(&e.close_frame());
            assert_eq!(opcode, 0x8);
            assert_eq!(payload[..2], code.to_be_bytes());
            assert_eq!(std::str::from_utf8(&payload[2..]), Ok(e.to_string().as_str()));
        }
    }
}

/// (opcode, payload) of one whole unmasked server frame, read by the RFC's
/// rules written out here, not by the codec.
fn parse_server_frame(frame: &[u8]) -> (u8, Vec<u8>) {
    assert!(frame.len() >= 2);
    assert_eq!(frame[0] & 0xf0, 0x80, "FIN set, no RSV bits");
    assert_eq!(frame[1] & 0x80, 0, "server frames are not masked");
    let (len, at) = match frame[1] {
        126 => (u64::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
        127 => (u64::from_be_bytes(frame[2..10].try_into().expect("8 bytes")), 10),
        n => (u64::from(n), 2),
    };
    let minimal = match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    assert_eq!(at, minimal, "shortest length encoding");
    assert_eq!(frame.len() as u64, at as u64 + len, "length matches the payload");
    let opcode = frame[0] & 0x0f;
    if opcode >= 8 {
        assert!(len <= 125, "control frame payload");
    }
    (opcode, frame[at..].to_vec())
}

/// The word-at-a-time unmask equals the byte-at-a-time definition.
fn check_unmask(input: &[u8], seed: u8) {
    let key = [seed, seed.wrapping_mul(3), 0xa5, seed ^ 0x5a];
    let phase = usize::from(seed % 4);
    let mut fast = input.to_vec();
    mask::unmask(&mut fast, key, phase);
    let slow: Vec<u8> = input
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[(phase + i) % 4])
        .collect();
    assert_eq!(fast, slow);
}

/// A client frame, masked bytewise; `wide` uses a longer length encoding than needed.
fn encode_frame(b0: u8, payload: &[u8], key: [u8; 4], wide: bool) -> Vec<u8> {
    let mut out = vec![b0];
    let len = payload.len();
    if len < 126 && !wide {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff && !(wide && len >= 126) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    for (i, b) in payload.iter().enumerate() {
        out.push(b ^ key[i % 4]);
    }
    out
}

/// `payload` as one message, fragmented as the seed says, with a ping after
/// the first fragment, comes back exactly; one byte over the maximum it is
/// refused with 1009; sent as text when it is not UTF-8 it fails with 1007
/// in the fragment where the bytes stop being a valid prefix.
fn round_trip(payload: &[u8], seed: u8) {
    let key = [seed ^ 0x13, 0x37, seed, 0xc4];
    let wide = seed & 1 == 1;
    let fragments = split(payload, seed.wrapping_add(1));
    let ping = &payload[..payload.len().min(125)];
    let build = |text: bool| {
        let mut stream = Vec::new();
        let last = fragments.len().saturating_sub(1);
        let first_op = if text { 0x1 } else { 0x2 };
        if fragments.is_empty() {
            stream.extend(encode_frame(0x80 | first_op, b"", key, wide));
            return stream;
        }
        for (i, f) in fragments.iter().enumerate() {
            let op = if i == 0 { first_op } else { 0x0 };
            let fin = if i == last { 0x80 } else { 0 };
            stream.extend(encode_frame(fin | op, f, key, wide));
            if i == 0 && last > 0 {
                stream.extend(encode_frame(0x89, ping, key, false));
            }
        }
        stream
    };
    let ping_event = (fragments.len() > 1).then(|| Got::Ping(ping.to_vec()));
    let stream = build(false);
    let expected: Vec<Got> = ping_event
        .iter()
        .cloned()
        .chain([Got::Binary(payload.to_vec())])
        .collect();
    assert_eq!(decode_reads(&[&stream], payload.len()), expected);
    assert_eq!(decode_reads(&split(&stream, seed), payload.len()), expected);
    if !payload.is_empty() {
        let refused = decode_reads(&[&stream], payload.len() - 1);
        assert_eq!(
            refused.last(),
            Some(&Got::Error(WsError::MessageTooBig {
                limit: payload.len() - 1
            }))
        );
    }
    let stream = build(true);
    let got = decode_reads(&split(&stream, seed), payload.len());
    match std::str::from_utf8(payload) {
        Ok(text) => {
            let expected: Vec<Got> = ping_event.iter().cloned().chain([Got::Text(text.into())]).collect();
            assert_eq!(got, expected);
        }
        Err(_) => {
            // The first fragment after which the bytes so far cannot be completed.
            let mut end = 0;
            let failing = fragments
                .iter()
                .position(|f| {
                    end += f.len();
                    let prefix = std::str::from_utf8(&payload[..end]);
                    prefix.is_err_and(|e| e.error_len().is_some() || end == payload.len())
                })
                .expect("invalid UTF-8 fails by the last fragment");
            let mut expected: Vec<Got> = Vec::new();
            if failing > 0 {
                expected.extend(ping_event);
            }
            expected.push(Got::Error(WsError::InvalidUtf8));
            assert_eq!(got, expected);
        }
    }
}
