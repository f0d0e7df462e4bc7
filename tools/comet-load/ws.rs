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
mod tests {
    use super::*;

    /// Records everything the reader reports, as text.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl WsHandler for Log {
        fn upgraded(&mut self, out: &mut Vec<u8>) -> Result<(), Fault> {
            self.0.push("upgraded".into());
            push_text(out, b"{\"type\":\"sub\"}");
            Ok(())
        }
        fn text(&mut self, payload: &[u8]) -> Result<(), Fault> {
            self.0.push(format!("text {}", String::from_utf8_lossy(payload)));
            Ok(())
        }
        fn closed(&mut self, code: Option<u16>) {
            self.0.push(format!("close {code:?}"));
        }
    }

    const HEAD: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

    /// An unmasked server frame of the given first byte and payload.
    fn server(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![b0];
        match payload.len() {
            n @ 0..=125 => f.push(n as u8),
            n @ 126..=0xffff => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    /// Feeds `input` cut at the given offsets: the log, the bytes written,
    /// and the result of the last feed.
    fn feed_split(input: &[u8], cuts: &[usize]) -> (Vec<String>, Vec<u8>, Result<(), Fault>) {
        let mut s = WsStream::default();
        let (mut log, mut out) = (Log::default(), Vec::new());
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            if let Err(f) = s.feed(&input[from..cut], &mut log, &mut out) {
                return (log.0, out, Err(f));
            }
            from = cut;
        }
        assert_eq!(s.pending_len(), 0, "nothing left over");
        (log.0, out, Ok(()))
    }

    /// The head, then a short, a 16-bit and a 64-bit text frame, a ping and a pong.
    fn sample() -> Vec<u8> {
        let mut input = HEAD.as_bytes().to_vec();
        input.extend(server(0x81, br#"{"type":"next_seq","cname":"a","seq":1,"content":""}"#));
        input.extend(server(0x81, &[b'x'; 300]));
        input.extend(server(0x81, &[b'y'; 70_000]));
        input.extend(server(0x89, b"hi"));
        input.extend(server(0x8a, b"ignored"));
        input.extend(server(0x81, b"{}"));
        input
    }

    fn sample_log() -> Vec<String> {
        vec![
            "upgraded".to_string(),
            r#"text {"type":"next_seq","cname":"a","seq":1,"content":""}"#.to_string(),
            format!("text {}", "x".repeat(300)),
            format!("text {}", "y".repeat(70_000)),
            "text {}".to_string(),
        ]
    }

    /// What the client writes for the sample: the `sub` command, the pong.
    fn sample_out() -> Vec<u8> {
        let mut out = Vec::new();
        push_text(&mut out, b"{\"type\":\"sub\"}");
        push_pong(&mut out, b"hi");
        out
    }

    #[test]
    fn the_upgrade_headers() {
        assert_eq!(
            UPGRADE_HEADERS,
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n"
        );
        // RFC 6455 §4.2.2: the accept value is base64(SHA-1(key + GUID)).
        use base64::Engine;
        let digest = sha1_smol::Sha1::from(concat!(key!(), "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).digest();
        let accept = base64::engine::general_purpose::STANDARD.encode(digest.bytes());
        assert_eq!(accept.as_bytes(), ACCEPT);
    }

    #[test]
    fn masked_client_frames() {
        // RFC 6455 §5.7: a masked "Hello".
        let mut out = Vec::new();
        push_text(&mut out, b"Hello");
        assert_eq!(out, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        out.clear();
        push_pong(&mut out, b"");
        assert_eq!(out, [0x8a, 0x80, 0x37, 0xfa, 0x21, 0x3d]);
        out.clear();
        push_text(&mut out, &[0u8; 200]);
        assert_eq!(out[..8], [0x81, 0xfe, 0, 200, 0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(out[8..12], MASK);
        assert_eq!(out.len(), 8 + 200);
        out.clear();
        push_text(&mut out, &vec![0u8; 70_000]);
        assert_eq!(out[..2], [0x81, 0xff]);
        assert_eq!(out[2..10], 70_000u64.to_be_bytes());
        assert_eq!(out.len(), 14 + 70_000);
    }

    #[test]
    fn whole_input() {
        let (log, out, result) = feed_split(&sample(), &[]);
        assert_eq!(result, Ok(()));
        assert_eq!(log, sample_log());
        assert_eq!(out, sample_out());
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        // Small frames of every length class except the 64-bit one, so that
        // two cuts over every pair of points stay cheap; the 64-bit frame is
        // cut at every point below.
        let mut input = HEAD.as_bytes().to_vec();
        input.extend(server(0x81, b"{\"a\":1}"));
        input.extend(server(0x89, b"p"));
        input.extend(server(0x81, &[b'z'; 130]));
        input.extend(server(0x81, b""));
        input.extend(server(0x88, &[0x03, 0xe9]));
        let whole = feed_split(&input, &[]);
        assert_eq!(whole.2, Err(Fault::WsClose));
        assert_eq!(whole.0.len(), 5, "{:?}", whole.0);
        assert_eq!(whole.0[4], "close Some(1001)");
        for a in 0..=input.len() {
            assert_eq!(feed_split(&input, &[a]), whole, "cut at {a}");
        }
        for a in 0..input.len() {
            for b in a..=input.len() {
                assert_eq!(feed_split(&input, &[a, b]), whole, "cuts at {a}, {b}");
            }
        }
        let bytes: Vec<usize> = (1..input.len()).collect();
        assert_eq!(feed_split(&input, &bytes), whole, "a byte at a time");
    }

    #[test]
    fn long_frames_cut_anywhere() {
        let input = sample();
        let whole = (sample_log(), sample_out(), Ok(()));
        // Every point up to past the 64-bit frame's header, then a sample.
        for a in (0..=input.len()).filter(|&a| a <= 600 || a % 997 == 0 || a + 20 >= input.len()) {
            assert_eq!(feed_split(&input, &[a]), whole, "cut at {a}");
        }
    }

    #[test]
    fn pending_is_freed_after_a_straddle() {
        let input = sample();
        let mut s = WsStream::default();
        let (mut log, mut out) = (Log::default(), Vec::new());
        let cut = HEAD.len() + 10;
        s.feed(&input[..cut], &mut log, &mut out).expect("first part");
        assert_eq!(s.pending_len(), 10);
        s.feed(&input[cut..], &mut log, &mut out).expect("the rest");
        assert_eq!((s.pending_len(), s.pending.capacity()), (0, 0));
        assert_eq!(log.0, sample_log());
    }

    #[test]
    fn bad_answers_to_the_upgrade() {
        let fail = |head: &str| feed_split(head.as_bytes(), &[]).2;
        assert_eq!(
            fail("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            Err(Fault::HttpStatus)
        );
        assert_eq!(
            fail("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Fault::HttpStatus)
        );
        let wrong_accept = HEAD.replace("xOo=", "xOp=");
        assert_eq!(fail(&wrong_accept), Err(Fault::Handshake));
        assert_eq!(fail(&HEAD.replace("Upgrade: websocket\r\n", "")), Err(Fault::Handshake));
        assert_eq!(
            fail(&HEAD.replace("Connection: Upgrade", "Connection: keep-alive")),
            Err(Fault::Handshake)
        );
        assert_eq!(fail(&HEAD.replace("HTTP/1.1", "HTTP/1.0")), Err(Fault::Handshake));
        assert_eq!(fail("garbage\r\n\r\n"), Err(Fault::Protocol));
        // Case-insensitive names and tokens, several Connection tokens.
        let relaxed = "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n\
                       sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(fail(relaxed), Ok(()));
        let huge = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(feed_split(&huge, &[100]).2, Err(Fault::Protocol));
        assert_eq!(feed_split(&huge, &[]).2, Err(Fault::Protocol));
    }

    #[test]
    fn bad_server_frames() {
        let fail = |frame: &[u8]| {
            let mut input = HEAD.as_bytes().to_vec();
            input.extend_from_slice(frame);
            feed_split(&input, &[]).2
        };
        let text = server(0x81, b"abc");
        assert_eq!(fail(&text), Ok(()));
        let masked = [0x81, 0x83, 1, 2, 3, 4, b'a', b'b', b'c'];
        assert_eq!(fail(&masked), Err(Fault::Protocol), "a masked server frame");
        for rsv in [0x40, 0x20, 0x10] {
            assert_eq!(fail(&server(0x81 | rsv, b"abc")), Err(Fault::Protocol), "rsv {rsv:x}");
        }
        for op in [3, 7, 0xb, 0xf] {
            assert_eq!(fail(&server(0x80 | op, b"")), Err(Fault::Protocol), "opcode {op}");
        }
        assert_eq!(fail(&server(0x82, b"bin")), Err(Fault::Protocol), "binary");
        assert_eq!(fail(&server(0x01, b"frag")), Err(Fault::Protocol), "a first fragment");
        assert_eq!(fail(&server(0x80, b"cont")), Err(Fault::Protocol), "a continuation");
        assert_eq!(fail(&server(0x09, b"")), Err(Fault::Protocol), "a fragmented ping");
        assert_eq!(fail(&server(0x89, &[0; 126])), Err(Fault::Protocol), "a long ping");
        assert_eq!(
            fail(&server(0x81, &[0xff, 0xfe])),
            Err(Fault::Protocol),
            "text that is not UTF-8"
        );
        assert_eq!(
            fail(&[0x81, 126, 0, 5, 1, 2, 3, 4, 5]),
            Err(Fault::Protocol),
            "16-bit length of 5"
        );
        let mut long = vec![0x81, 127];
        long.extend_from_slice(&300u64.to_be_bytes());
        assert_eq!(fail(&long), Err(Fault::Protocol), "64-bit length of 300");
        let mut huge = vec![0x81, 127];
        huge.extend_from_slice(&(MAX_PAYLOAD + 1).to_be_bytes());
        assert_eq!(fail(&huge), Err(Fault::Protocol), "over the payload limit");
        assert_eq!(fail(&[0x88, 1, 3]), Err(Fault::Protocol), "a one-byte close payload");
    }

    #[test]
    fn close_frames_report_their_code() {
        let run = |frame: Vec<u8>| {
            let mut input = HEAD.as_bytes().to_vec();
            input.extend(frame);
            input.extend(server(0x81, b"after the close"));
            let (log, _, result) = feed_split(&input, &[]);
            (log[1..].to_vec(), result)
        };
        let mut payload = 4429u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"Too many subscribers");
        assert_eq!(
            run(server(0x88, &payload)),
            (vec!["close Some(4429)".to_string()], Err(Fault::WsClose))
        );
        assert_eq!(
            run(server(0x88, b"")),
            (vec!["close None".to_string()], Err(Fault::WsClose))
        );
    }
}
