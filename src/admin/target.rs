//! Leniency for request targets under hyper.
//!
//! hyper's URI parser refuses a request whose target holds a raw `"`, `<`,
//! `>`, `\`, `^`, `` ` ``, `|`, a control byte (TAB included) or a byte
//! above 0x7F, with a bare 400 before any handler runs. curl sends such targets
//! as typed (`/push?cname=a&content={"x":1}`), and icomet's behaviour here
//! was a bug to fix, not copy (reference §11.2: use what can be decoded).
//! [`Lenient`] sits between the socket and hyper and percent-encodes those
//! bytes inside request targets only, so the parameters decode to exactly
//! what the client sent. It follows request boundaries through
//! `Content-Length`; a chunked request body switches it to pass-through for
//! the rest of the connection (hyper then sees the bytes unchanged, as
//! before). It never touches headers or bodies.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest header line the scanner follows before it gives up (pass-through).
const MAX_LINE: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before or inside the method (leading CR/LF between requests allowed).
    Method,
    /// Inside the request target.
    Target,
    /// The rest of the request line.
    Version,
    /// Inside the header lines.
    Headers,
    /// Inside a body of this many more bytes.
    Body(u64),
    /// Gave up: bytes pass unchanged.
    Passthrough,
}

/// The request-target rewriter (pure; see [`Lenient`] for the I/O side).
#[derive(Debug)]
pub struct Scanner {
    state: State,
    line: Vec<u8>,
    content_length: u64,
    chunked: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::Method,
            line: Vec::new(),
            content_length: 0,
            chunked: false,
        }
    }
}

/// True for bytes hyper's URI parser refuses in a target but a client may send.
fn needs_escape(b: u8) -> bool {
    matches!(b, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'|' | b'#')
        || b >= 0x7f
        || (b < 0x20 && b != b'\r' && b != b'\n')
}

impl Scanner {
    /// Appends the rewritten form of `input` to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Passthrough => {
                    out.extend_from_slice(&input[i..]);
                    return;
                }
                State::Body(n) => {
                    let take = (n as usize).min(input.len() - i);
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = n - take as u64;
                    self.state = if left == 0 { State::Method } else { State::Body(left) };
                    continue;
                }
                State::Method => {
                    out.push(b);
                    if b == b' ' {
                        self.state = State::Target;
                    }
                }
                State::Target => {
                    if b == b' ' || b == b'\r' || b == b'\n' {
                        out.push(b);
                        self.state = if b == b'\n' { State::Headers } else { State::Version };
                    } else if needs_escape(b) {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
                    } else {
                        out.push(b);
                    }
                }
                State::Version => {
                    out.push(b);
                    if b == b'\n' {
                        self.state = State::Headers;
                        self.line.clear();
                    }
                }
                State::Headers => {
                    out.push(b);
                    if b != b'\n' {
                        self.line.push(b);
                        if self.line.len() > MAX_LINE {
                            self.state = State::Passthrough;
                        }
                    } else {
                        self.end_header_line();
                    }
                }
            }
            i += 1;
        }
    }

    fn end_header_line(&mut self) {
        let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        if line.is_empty() {
            self.state = if self.chunked {
                State::Passthrough
            } else if self.content_length > 0 {
                State::Body(self.content_length)
            } else {
                State::Method
            };
            self.content_length = 0;
            self.chunked = false;
        } else if let Some(colon) = line.iter().position(|&c| c == b':') {
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-length") {
                match std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok()) {
                    Some(n) => self.content_length = n,
                    // hyper refuses the request; nothing after it can be trusted.
                    None => self.state = State::Passthrough,
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                self.chunked = true;
            }
        }
        self.line.clear();
    }
}

/// A socket whose incoming request targets are made acceptable to hyper.
#[derive(Debug)]
pub struct Lenient<T> {
    inner: T,
    scanner: Scanner,
    pending: Vec<u8>,
    pos: usize,
}

impl<T> Lenient<T> {
    /// Wraps a connection.
    pub fn new(inner: T) -> Self {
        Lenient {
            inner,
            scanner: Scanner::default(),
            pending: Vec::new(),
            pos: 0,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Lenient<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos == this.pending.len() {
            let mut raw = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut raw);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            if rb.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            this.pending.clear();
            this.pos = 0;
            this.scanner.feed(rb.filled(), &mut this.pending);
        }
        let n = (this.pending.len() - this.pos).min(buf.remaining());
        buf.put_slice(&this.pending[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Lenient<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = Scanner::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut out);
        }
        out
    }

    #[test]
    fn escapes_only_inside_targets() {
        let req = b"GET /push?cname=q5&content={\"a\":1}|<b> HTTP/1.1\r\nX-Q: \"kept\"\r\n\r\n";
        assert_eq!(
            run(&[req]),
            b"GET /push?cname=q5&content={%22a%22:1}%7C%3Cb%3E HTTP/1.1\r\nX-Q: \"kept\"\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn follows_bodies_and_pipelining_across_any_split() {
        let input =
            b"POST /push?x=\"1\" HTTP/1.1\r\nContent-Length: 7\r\n\r\nc=\"q\"&GET /info?c=\"2\" HTTP/1.1\r\n\r\n";
        let want =
            b"POST /push?x=%221%22 HTTP/1.1\r\nContent-Length: 7\r\n\r\nc=\"q\"&GET /info?c=%222%22 HTTP/1.1\r\n\r\n";
        for split in 0..input.len() {
            assert_eq!(
                run(&[&input[..split], &input[split..]]),
                want.to_vec(),
                "split at {split}"
            );
        }
    }

    #[test]
    fn chunked_bodies_switch_to_passthrough() {
        let input =
            b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\"\r\n0\r\n\r\nGET /x?\" HTTP/1.1\r\n\r\n";
        assert_eq!(run(&[input]), input.to_vec());
    }

    #[test]
    fn tabs_in_targets_are_encoded() {
        // Found by the admin_params fuzz target: httparse refuses a raw TAB in a target.
        assert_eq!(
            run(&[b"GET /push?content=a\tb HTTP/1.1\r\nX: \t\r\n\r\n"]),
            b"GET /push?content=a%09b HTTP/1.1\r\nX: \t\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn non_ascii_and_hash_are_encoded() {
        assert_eq!(
            run(&[b"GET /push?content=\xc3\xa9#x HTTP/1.1\r\n\r\n"]),
            b"GET /push?content=%C3%A9%23x HTTP/1.1\r\n\r\n".to_vec()
        );
    }
}
