//! The client side of RFC 6455 that `--transport ws` needs: the upgrade
//! request (a fixed key, so the `Sec-WebSocket-Accept` to expect is a
//! constant), the check of the `101` answer, an incremental reader of server
//! frames fed a read at a time with arbitrary split points, and the writer of
//! masked client frames (`sub` commands, pongs).
//!
//! The reader checks what a server must send: unmasked frames, no RSV bits,
//! known opcodes, control frames of at most 125 bytes and never fragmented,
//! lengths in their shortest form. comet never fragments a message (each
//! message object is one text frame), so a fragmented message is reported as
//! [`Fault::Protocol`] rather than reassembled. A ping is answered with a
//! masked pong written to the caller's output buffer; a close frame ends the
//! connection as [`Fault::WsClose`] after the handler has seen its code.
//! What a text frame means is the [`WsHandler`]'s business (see `conn`); no
//! sockets here.

use crate::fault::Fault;

/// The `Sec-WebSocket-Key` every connection sends: the sample nonce of RFC
/// 6455 §1.3. A load tool needs no secrecy, and a fixed key makes the
/// expected accept value a constant.
macro_rules! key {
    () => {
        "dGhlIHNhbXBsZSBub25jZQ=="
    };
}

/// The `Sec-WebSocket-Accept` that the key must be answered with (RFC 6455
/// §1.3: base64 of the SHA-1 of the key and the protocol's GUID).
pub const ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of every client frame (the example key of RFC 6455 §5.7).
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Longest accepted `101` head.
const MAX_HEAD: usize = 16 * 1024;

/// Largest accepted frame payload; a comet message object is far smaller.
const MAX_PAYLOAD: u64 = 1024 * 1024;

/// Largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL: u64 = 125;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The header lines that make a GET an upgrade request (each ends in CRLF).
pub const UPGRADE_HEADERS: &str = concat!(
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ",
    key!(),
    "\r\nSec-WebSocket-Version: 13\r\n"
);

/// Appends one masked, unfragmented client frame (masked with [`MASK`]).
fn push_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len <= 125 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
}

/// Appends a masked text frame carrying `text`.
pub fn push_text(out: &mut Vec<u8>, text: &[u8]) {
    push_masked(out, OP_TEXT, text);
}

/// Appends a masked pong echoing a ping's payload.
fn push_pong(out: &mut Vec<u8>, payload: &[u8]) {
    push_masked(out, OP_PONG, payload);
}

/// Receives what the reader finds, in order. An error stops the feed and
/// ends the connection.
pub trait WsHandler {
    /// The `101` arrived and checked out; `out` takes frames to send
    /// (e.g. `sub` commands).
    fn upgraded(&mut self, out: &mut Vec<u8>) -> Result<(), Fault>;
    /// One complete text message (valid UTF-8).
    fn text(&mut self, payload: &[u8]) -> Result<(), Fault>;
    /// A close frame arrived with this code (`None`: no code in it). The
    /// connection ends with [`Fault::WsClose`].
    fn closed(&mut self, code: Option<u16>);
}

/// Where the reader is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the HTTP answer to the upgrade.
    #[default]
    Head,
    /// Reading frames.
    Frames,
}

/// Reader state for one WebSocket connection.
#[derive(Debug, Default)]
pub struct WsStream {
    state: State,
    /// A head or frame cut by a read; empty (unallocated) most of the time.
    pending: Vec<u8>,
}

impl WsStream {
    /// Bytes currently held for a straddling head or frame.
    #[cfg(test)]
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds the bytes of one read; answers (pongs) are appended to `out`.
    pub fn feed<H: WsHandler>(&mut self, mut input: &[u8], h: &mut H, out: &mut Vec<u8>) -> Result<(), Fault> {
        if self.state == State::Head {
            match self.feed_head(input)? {
                Some(rest) => {
                    input = rest;
                    self.state = State::Frames;
                    h.upgraded(out)?;
                }
                None => return Ok(()),
            }
        }
        if !self.pending.is_empty() {
            // Complete the cut frame with just the bytes it still needs.
            loop {
                let need = needed(&self.pending)?;
                if self.pending.len() < need {
                    let take = (need - self.pending.len()).min(input.len());
                    self.pending.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.pending.len() < need {
                        return Ok(());
                    }
                    continue;
                }
                let frame = std::mem::take(&mut self.pending);
                frame_into(&frame, h, out)?;
                break;
            }
        }
        while !input.is_empty() {
            let need = needed(input)?;
            if input.len() < need {
                self.pending.extend_from_slice(input);
                return Ok(());
            }
            frame_into(&input[..need], h, out)?;
            input = &input[need..];
        }
        Ok(())
    }

    /// Collects the `101` head; returns the bytes after it once complete.
    fn feed_head<'a>(&mut self, input: &'a [u8]) -> Result<Option<&'a [u8]>, Fault> {
        if self.pending.is_empty() {
            if let Some(pos) = find_end(input) {
                check_head(&input[..pos])?;
                return Ok(Some(&input[pos..]));
            }
        } else {
            let old = self.pending.len();
            self.pending.extend_from_slice(input);
            if let Some(pos) = find_end(&self.pending) {
                let head = std::mem::take(&mut self.pending);
                check_head(&head[..pos])?;
                return Ok(Some(&input[pos - old..]));
            }
            if self.pending.len() > MAX_HEAD {
                return Err(Fault::Protocol);
            }
            return Ok(None);
        }
        if input.len() > MAX_HEAD {
            return Err(Fault::Protocol);
        }
        self.pending.extend_from_slice(input);
        Ok(None)
    }
}

/// The end of the head (just past its blank line), if it is there.
fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Checks the answer to the upgrade: `HTTP/1.1 101`, `Upgrade: websocket`,
/// a `Connection` with the `upgrade` token, and exactly [`ACCEPT`].
fn check_head(head: &[u8]) -> Result<(), Fault> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(Fault::Protocol),
    }
    if response.code != Some(101) {
        return Err(Fault::HttpStatus);
    }
    if response.version != Some(1) {
        return Err(Fault::Handshake);
    }
    let (mut upgrade, mut connection, mut accept) = (false, false, false);
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = header.value.trim_ascii().eq_ignore_ascii_case(b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection = header
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = header.value == ACCEPT;
        }
    }
    if upgrade && connection && accept {
        Ok(())
    } else {
        Err(Fault::Handshake)
    }
}

/// The length of the frame that starts `buf`, as far as its first bytes
/// tell: 2 until the second byte is there, then the header's length until
/// the header is complete, then header plus payload. Checks each header
/// field as soon as it is there.
fn needed(buf: &[u8]) -> Result<usize, Fault> {
    let Some(&[b0, b1]) = buf.get(..2) else {
        return Ok(2);
    };
    if b0 & 0x70 != 0 || b1 & 0x80 != 0 {
        return Err(Fault::Protocol); // RSV bits, or a masked server frame
    }
    let opcode = b0 & 0x0f;
    let control = opcode & 0x08 != 0;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(Fault::Protocol);
    }
    let (header, len) = match b1 & 0x7f {
        126 => {
            let Some(&[a, b]) = buf.get(2..4) else { return Ok(4) };
            let len = u64::from(u16::from_be_bytes([a, b]));
            if len < 126 {
                return Err(Fault::Protocol); // not the shortest form
            }
            (4, len)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else { return Ok(10) };
            let mut be = [0u8; 8];
            be.copy_from_slice(bytes);
            let len = u64::from_be_bytes(be);
            if len <= 0xffff {
                return Err(Fault::Protocol); // not the shortest form (or the top bit)
            }
            (10, len)
        }
        n => (2, u64::from(n)),
    };
    if (control && (len > MAX_CONTROL || b0 & 0x80 == 0)) || len > MAX_PAYLOAD {
        return Err(Fault::Protocol);
    }
    Ok(header + len as usize)
}

/// Acts on one complete frame (header and payload).
fn frame_into<H: WsHandler>(frame: &[u8], h: &mut H, out: &mut Vec<u8>) -> Result<(), Fault> {
    let fin = frame[0] & 0x80 != 0;
    let header = match frame[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let payload = &frame[header..];
    match frame[0] & 0x0f {
        OP_TEXT if fin => {
            if std::str::from_utf8(payload).is_err() {
                return Err(Fault::Protocol);
            }
            h.text(payload)
        }
        OP_PING => {
            push_pong(out, payload);
            Ok(())
        }
        OP_PONG => Ok(()),
        OP_CLOSE => {
            let code = match payload {
                [] => None,
                [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
                [_] => return Err(Fault::Protocol),
            };
            h.closed(code);
            Err(Fault::WsClose)
        }
        // Binary messages, fragments: comet sends neither.
        _ => Err(Fault::Protocol),
    }
}

#[cfg(test)]
#[path = "ws_tests.rs"]
mod tests;
