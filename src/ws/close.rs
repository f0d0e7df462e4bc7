//! Close codes and close frames: every code comet sends, which codes may
//! appear on the wire at all, the close frame writer and the reply to a
//! client's close.
//!
//! This file is the one place where close code numbers are written down;
//! other code names them through [`CloseCode`]'s constants. It knows nothing
//! of connections: after writing the reply the caller half-closes the socket.

use std::fmt;

use super::frame::{push_frame, Opcode};

/// Longest close reason that fits a control frame: 125 bytes of payload less
/// the two bytes of the code.
pub const MAX_REASON: usize = 123;

/// A close status code that may be sent in a close frame (RFC 6455 §7.4).
///
/// It can only be built from a code that is valid on the wire, so a frame
/// written from one is always a frame a client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: normal closure; comet's answer after the icomet `close` object
    /// when a channel is closed, and to a client's close without a code.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: going away; comet is shutting down.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error; the client broke RFC 6455 framing.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: unsupported data; a message of a type the endpoint does not take
    /// (binary on `/ws`).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1007: invalid payload; a text message or close reason that is not UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation; a client flooding frames.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: message too big for the endpoint's configured maximum.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: internal error; a bug on the server side.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1013: try again later; a slow consumer dropped past the output cap.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 4401: comet's private code after icomet's `401` token error object.
    pub const TOKEN_ERROR: CloseCode = CloseCode(4401);
    /// 4429: comet's private code after icomet's `429` too-many-subscribers object.
    pub const TOO_MANY_SUBSCRIBERS: CloseCode = CloseCode(4429);

    /// The code, when it may appear in a close frame: 1000-1003, 1007-1014
    /// (RFC 6455 and the IANA registry) and 3000-4999 (registered and
    /// private use). 0-999, 1004-1006, 1015 (reserved, never on the wire),
    /// 1016-2999 (unassigned) and 5000 and up give `None`.
    pub const fn new(code: u16) -> Option<CloseCode> {
        match code {
            1000..=1003 | 1007..=1014 | 3000..=4999 => Some(CloseCode(code)),
            _ => None,
        }
    }

    /// The number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The longest prefix of `reason` of at most [`MAX_REASON`] bytes that ends
/// on a character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON {
        return reason;
    }
    let mut end = MAX_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Appends a close frame with `code` and `reason` (cut to [`MAX_REASON`]
/// bytes on a character boundary) to `out`.
pub fn push_close_frame(out: &mut Vec<u8>, code: CloseCode, reason: &str) {
    let reason = truncate_reason(reason);
    let mut payload = [0u8; 2 + MAX_REASON];
    payload[..2].copy_from_slice(&code.get().to_be_bytes());
    payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    push_frame(out, Opcode::Close, true, &payload[..2 + reason.len()]);
}

/// A close frame with `code` and `reason` (cut to [`MAX_REASON`] bytes on a
/// character boundary), ready to write.
pub fn close_frame(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + MAX_REASON);
    push_close_frame(&mut out, code, reason);
    out
}

/// The code to answer a client's close frame with: its own code echoed, or
/// 1000 when it sent none (RFC 6455 §5.5.1).
pub fn reply_code(received: Option<CloseCode>) -> CloseCode {
    received.unwrap_or(CloseCode::NORMAL)
}

/// The close frame that answers a client's close frame carrying `received`
/// (see [`reply_code`]); no reason. After writing it the server half-closes
/// (`shutdown(SHUT_WR)`) and waits a bounded time for the client's EOF.
pub fn close_reply(received: Option<CloseCode>) -> Vec<u8> {
    close_frame(reply_code(received), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_that_may_be_sent() {
        let valid: Vec<u16> = (0..=u16::MAX).filter(|&c| CloseCode::new(c).is_some()).collect();
        let expected: Vec<u16> = (1000..=1003).chain(1007..=1014).chain(3000..=4999).collect();
        assert_eq!(valid, expected);
        for c in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert_eq!(CloseCode::new(c), None, "{c}");
        }
    }

    #[test]
    fn constants_are_valid_codes() {
        for (c, n) in [
            (CloseCode::NORMAL, 1000),
            (CloseCode::GOING_AWAY, 1001),
            (CloseCode::PROTOCOL_ERROR, 1002),
            (CloseCode::UNSUPPORTED_DATA, 1003),
            (CloseCode::INVALID_PAYLOAD, 1007),
            (CloseCode::POLICY_VIOLATION, 1008),
            (CloseCode::MESSAGE_TOO_BIG, 1009),
            (CloseCode::INTERNAL_ERROR, 1011),
            (CloseCode::TRY_AGAIN_LATER, 1013),
            (CloseCode::TOKEN_ERROR, 4401),
            (CloseCode::TOO_MANY_SUBSCRIBERS, 4429),
        ] {
            assert_eq!(c.get(), n);
            assert_eq!(CloseCode::new(n), Some(c));
        }
    }

    #[test]
    fn close_frame_bytes() {
        assert_eq!(close_frame(CloseCode::NORMAL, ""), [0x88, 0x02, 0x03, 0xe8]);
        assert_eq!(
            close_frame(CloseCode::TRY_AGAIN_LATER, "slow consumer"),
            b"\x88\x0f\x03\xf5slow consumer"
        );
        assert_eq!(
            close_frame(CloseCode::TOKEN_ERROR, "token error"),
            b"\x88\x0d\x11\x31token error"
        );
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let ascii = "a".repeat(200);
        let frame = close_frame(CloseCode::GOING_AWAY, &ascii);
        assert_eq!(frame.len(), 2 + 125);
        assert_eq!(frame[1], 125);
        assert_eq!(&frame[4..], "a".repeat(123).as_bytes());
        // 61 two-byte characters are 122 bytes; the 62nd would end at 124.
        let wide = "é".repeat(70);
        let frame = close_frame(CloseCode::GOING_AWAY, &wide);
        assert_eq!(frame[1], 2 + 122);
        assert_eq!(&frame[4..], "é".repeat(61).as_bytes());
        // 1 + 122: a three-byte character would straddle byte 123.
        let mixed = format!("a{}", "€".repeat(50));
        assert_eq!(truncate_reason(&mixed), format!("a{}", "€".repeat(40)));
        assert_eq!(truncate_reason(&"a".repeat(123)).len(), 123);
    }

    #[test]
    fn reply_echoes_the_code_or_sends_1000() {
        assert_eq!(close_reply(None), [0x88, 0x02, 0x03, 0xe8]);
        assert_eq!(close_reply(CloseCode::new(1001)), [0x88, 0x02, 0x03, 0xe9]);
        assert_eq!(close_reply(CloseCode::new(4999)), [0x88, 0x02, 0x13, 0x87]);
    }
}
