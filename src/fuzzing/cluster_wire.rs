//! `cluster_wire`: the decoders of what cluster mode reads back from Redis
//! (PUB/SUB payloads, history entries, presence lines), which is external
//! input like any request. Arbitrary bytes are refused or decoded, never a
//! panic; what decodes encodes again to bytes that decode to the same value;
//! and every decoded content is a JSON string body, so the frame a node
//! builds around it is valid JSON.

use bytes::Bytes;

use super::json;
use crate::cluster::wire::{
    decode_history_entry, decode_payload, decode_presence, encode_control, encode_history_entry, encode_multi,
    encode_payload, Escaped, Kind, Payload,
};
use crate::encode;

/// Input: arbitrary bytes, tried as a payload, a history entry and a presence line.
pub fn cluster_wire(data: &[u8]) {
    let b = Bytes::copy_from_slice(data);
    if let Ok(p) = decode_payload(&b) {
        check_payload(&p);
    }
    if let Ok(h) = decode_history_entry(&b) {
        check_content(h.kind, h.seq, &h.content);
        let again = decode_history_entry(&Bytes::from(encode_history_entry(h.seq, h.kind, h.content.as_str())));
        assert_eq!(again.as_ref(), Ok(&h), "history entry round trip");
    }
    if let Ok((online, name)) = decode_presence(data) {
        let line = format!("{} {name}", if online { 1 } else { 0 });
        assert_eq!(line.as_bytes(), data, "presence lines are read exactly");
    }
}

fn check_payload(p: &Payload) {
    let bytes = match p {
        Payload::Messages {
            epoch,
            first_seq,
            kind,
            contents,
        } => {
            assert!(!contents.is_empty(), "a message payload holds a message");
            for (i, c) in contents.iter().enumerate() {
                check_content(*kind, first_seq.wrapping_add(i as i32), c);
            }
            let texts: Vec<&str> = contents.iter().map(Escaped::as_str).collect();
            match (kind, texts.as_slice()) {
                (Kind::Broadcast, [one]) => encode_payload(epoch, *first_seq, Kind::Broadcast, one),
                (Kind::Broadcast, _) => panic!("a broadcast payload holds one message"),
                (Kind::Data, _) => encode_multi(epoch, *first_seq, &texts),
            }
        }
        Payload::Control {
            epoch,
            control,
            next_seq,
        } => encode_control(epoch.as_ref(), *control, *next_seq),
    };
    let again = decode_payload(&Bytes::from(bytes)).expect("what was decoded encodes to something decodable");
    assert_eq!(&again, p, "payload round trip");
}

/// The content is a JSON string body, and the frame around it parses.
fn check_content(kind: Kind, seq: i32, content: &Escaped) {
    let text = content.as_str();
    if let Err(e) = json::string_content(text.as_bytes()) {
        panic!("decoded content {text:?} is not a JSON string body: {e}");
    }
    let name = if kind == Kind::Data { "data" } else { "broadcast" };
    let frame = encode::message(name, "c", seq, text);
    if let Err(e) = json::parse(&frame) {
        panic!("frame {:?} is not JSON: {e}", String::from_utf8_lossy(&frame));
    }
}
