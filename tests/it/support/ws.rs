//! A raw WebSocket client for tests: the handshake as bytes, masked client
//! frames built by hand, server frames parsed strictly (never masked, RSV
//! bits clear), every read with a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use super::WAIT;

/// The handshake head with RFC 6455's own key (its accept key follows).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The accept key of [`KEY`].
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// An upgraded connection.
pub struct Ws {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// One server frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    /// Whether FIN was set.
    pub fin: bool,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The payload as text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.payload).expect("utf-8 payload")
    }

    /// A close frame's code.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// The request head of an upgrade to `target` with `extra` header lines.
pub fn upgrade_head(target: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// The exact `101` comet answers.
pub fn switching() -> String {
    format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n")
}

/// A masked client frame (any length).
pub fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    out.extend(mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

impl Ws {
    /// Connects and upgrades on `target` (e.g. `/ws?cname=c`); panics
    /// unless the answer is the exact `101`.
    pub fn connect(addr: SocketAddr, target: &str) -> Ws {
        let mut ws = Ws::raw(addr);
        ws.send_raw(upgrade_head(target, "").as_bytes());
        let want = switching();
        let head = ws.read_exact(want.len());
        assert_eq!(String::from_utf8_lossy(&head), want);
        ws
    }

    /// [`Ws::connect`] from the local address `from` (any 127.x.y.z).
    pub fn connect_from(from: std::net::Ipv4Addr, addr: SocketAddr, target: &str) -> Ws {
        let mut ws = Ws {
            stream: super::connect_from(from, addr).stream,
            buf: Vec::new(),
        };
        ws.send_raw(upgrade_head(target, "").as_bytes());
        let want = switching();
        let head = ws.read_exact(want.len());
        assert_eq!(String::from_utf8_lossy(&head), want);
        ws
    }

    /// A plain TCP connection to `addr`, not upgraded yet.
    pub fn raw(addr: SocketAddr) -> Ws {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Ws {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a masked text message.
    pub fn send_text(&mut self, text: &str) {
        self.send_raw(&masked(0x81, text.as_bytes()));
    }

    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; have {} bytes", self.buf.len());
        self.stream.set_read_timeout(Some(left)).expect("timeout");
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read: {e}; have {} bytes", self.buf.len()),
        }
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        while self.buf.len() < n {
            assert!(self.fill(deadline), "EOF after {} of {n} bytes", self.buf.len());
        }
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }

    /// Reads one server frame (strictly: unmasked, no RSV bits).
    pub fn frame(&mut self) -> Frame {
        let head = self.read_exact(2);
        assert_eq!(head[0] & 0x70, 0, "RSV bits set by the server");
        assert_eq!(head[1] & 0x80, 0, "a server frame must not be masked");
        let len = match head[1] & 0x7f {
            126 => u16::from_be_bytes(self.read_exact(2).try_into().expect("2 bytes")) as usize,
            127 => u64::from_be_bytes(self.read_exact(8).try_into().expect("8 bytes")) as usize,
            n => n as usize,
        };
        Frame {
            opcode: head[0] & 0x0f,
            fin: head[0] & 0x80 != 0,
            payload: self.read_exact(len),
        }
    }

    /// Reads one text frame and returns its text.
    pub fn text(&mut self) -> String {
        let f = self.frame();
        assert_eq!((f.opcode, f.fin), (1, true), "expected a text frame, got {f:?}");
        f.text().to_string()
    }

    /// Reads a close frame with `code`, then the end of the stream.
    pub fn expect_close(&mut self, code: u16) {
        let f = self.frame();
        assert_eq!(f.close_code(), Some(code), "expected close {code}, got {f:?}");
        self.expect_eof();
    }

    /// Reads until the end of the stream; panics if any byte comes first.
    pub fn expect_eof(&mut self) {
        let deadline = Instant::now() + WAIT;
        while self.buf.is_empty() {
            if !self.fill(deadline) {
                return;
            }
        }
        panic!("expected the end of the stream, got {} more bytes", self.buf.len());
    }
}
