//! Opcodes and the writers of server→client frames.
//!
//! Server frames are never masked (RFC 6455 §5.1), so a frame depends only
//! on its payload: comet builds one per event and writes the same bytes to
//! every subscriber. This file only formats bytes; it never reads frames
//! (that is [`super::codec`]) and holds no per-connection state.

/// Largest payload of a control frame (close, ping, pong).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Longest frame header a server writes: 2 bytes plus a 64-bit length.
pub const MAX_SERVER_HEADER: usize = 10;

/// The frame types of RFC 6455 §5.2; the other opcodes are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// 0x0: the next fragment of a text or binary message.
    Continuation = 0x0,
    /// 0x1: the first (or only) frame of a UTF-8 text message.
    Text = 0x1,
    /// 0x2: the first (or only) frame of a binary message.
    Binary = 0x2,
    /// 0x8: close, with an optional code and reason.
    Close = 0x8,
    /// 0x9: ping; the peer answers with a pong carrying the same payload.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl Opcode {
    /// The opcode of the low four bits of a frame's first byte; `None` for
    /// the reserved values 3-7 and 11-15.
    pub fn from_bits(bits: u8) -> Option<Opcode> {
        match bits & 0x0f {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// True for close, ping and pong.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// The header of an unmasked frame, in a small stack array: 2, 4 or 10 bytes
/// for payloads of up to 125, up to 65,535 and longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    bytes: [u8; MAX_SERVER_HEADER],
    len: u8,
}

impl FrameHeader {
    /// The header of an unmasked frame of `opcode` carrying `payload_len` bytes.
    pub fn new(opcode: Opcode, fin: bool, payload_len: u64) -> FrameHeader {
        let mut bytes = [0u8; MAX_SERVER_HEADER];
        bytes[0] = if fin { 0x80 } else { 0 } | opcode as u8;
        let len = match payload_len {
            0..=125 => {
                bytes[1] = payload_len as u8;
                2
            }
            126..=0xffff => {
                bytes[1] = 126;
                bytes[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
                4
            }
            _ => {
                bytes[1] = 127;
                bytes[2..10].copy_from_slice(&payload_len.to_be_bytes());
                10
            }
        };
        FrameHeader { bytes, len }
    }

    /// The header bytes to write before the payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Appends one unmasked frame (header, then `payload`) to `out`.
pub fn push_frame(out: &mut Vec<u8>, opcode: Opcode, fin: bool, payload: &[u8]) {
    let header = FrameHeader::new(opcode, fin, payload.len() as u64);
    out.reserve(header.as_bytes().len() + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
}

/// One whole frame of `opcode`, allocated to its exact size.
fn whole_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_SERVER_HEADER + payload.len());
    push_frame(&mut out, opcode, true, payload);
    out.shrink_to_fit();
    out
}

/// A whole text frame carrying `text`: the frame comet builds once per event
/// and writes to every subscriber.
pub fn text_frame(text: &str) -> Vec<u8> {
    whole_frame(Opcode::Text, text.as_bytes())
}

/// A whole binary frame carrying `data`.
pub fn binary_frame(data: &[u8]) -> Vec<u8> {
    whole_frame(Opcode::Binary, data)
}

/// Appends the pong that answers a ping carrying `payload` to `out`. A ping
/// from the decoder carries at most 125 bytes; a longer slice is cut there so
/// the pong is always a valid control frame.
pub fn push_pong(out: &mut Vec<u8>, payload: &[u8]) {
    let n = payload.len().min(MAX_CONTROL_PAYLOAD);
    push_frame(out, Opcode::Pong, true, &payload[..n]);
}

/// The pong that answers a ping carrying `payload` (see [`push_pong`]).
pub fn pong_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + MAX_CONTROL_PAYLOAD.min(payload.len()));
    push_pong(&mut out, payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes_at_the_length_boundaries() {
        let h = |len| FrameHeader::new(Opcode::Text, true, len).as_bytes().to_vec();
        assert_eq!(h(0), [0x81, 0]);
        assert_eq!(h(125), [0x81, 125]);
        assert_eq!(h(126), [0x81, 126, 0, 126]);
        assert_eq!(h(65535), [0x81, 126, 0xff, 0xff]);
        assert_eq!(h(65536), [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(
            h(u64::MAX >> 1),
            [0x81, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        let cont = FrameHeader::new(Opcode::Continuation, false, 3);
        assert_eq!(cont.as_bytes(), [0x00, 3]);
        let bin = FrameHeader::new(Opcode::Binary, false, 300);
        assert_eq!(bin.as_bytes(), [0x02, 126, 0x01, 0x2c]);
    }

    #[test]
    fn whole_frames() {
        assert_eq!(text_frame("hi"), b"\x81\x02hi");
        assert_eq!(text_frame(""), b"\x81\x00");
        assert_eq!(binary_frame(&[1, 2, 3]), [0x82, 3, 1, 2, 3]);
        let json = format!("{{\"type\":\"data\",\"content\":\"{}\"}}", "x".repeat(200));
        let frame = text_frame(&json);
        assert_eq!(&frame[..4], [0x81, 126, 0, json.len() as u8]);
        assert_eq!(&frame[4..], json.as_bytes());
        assert_eq!(frame.capacity(), frame.len());
        let big = "y".repeat(70_000);
        let frame = text_frame(&big);
        assert_eq!(&frame[..10], [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(frame.len(), 10 + 70_000);
    }

    #[test]
    fn pong_echoes_at_most_125_bytes() {
        assert_eq!(pong_frame(b""), [0x8a, 0]);
        assert_eq!(pong_frame(b"abc"), b"\x8a\x03abc");
        let long = [7u8; 200];
        let pong = pong_frame(&long);
        assert_eq!(pong[..2], [0x8a, 125]);
        assert_eq!(pong[2..], [7u8; 125]);
    }

    #[test]
    fn opcodes() {
        let known: Vec<u8> = (0..16).filter(|&b| Opcode::from_bits(b).is_some()).collect();
        assert_eq!(known, [0, 1, 2, 8, 9, 10]);
        for b in known {
            let op = Opcode::from_bits(b).expect("known");
            assert_eq!(op as u8, b);
            assert_eq!(op.is_control(), b >= 8);
        }
    }
}
