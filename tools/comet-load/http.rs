//! Incremental HTTP/1.1 response reader: response head (httparse), then the body
//! (chunked, `Content-Length` or until close) cut into lines, fed a read at a
//! time with arbitrary split points. Every icomet frame ends in `\n`, so lines are
//! the unit handed on; what a line means is the [`Handler`]'s business (see
//! `frame`). The reader keeps a few bytes of state plus one `Vec` that is only
//! allocated while a head or a line straddles two reads, and freed once complete.

use crate::fault::Fault;

/// Longest accepted response head.
const MAX_HEAD: usize = 16 * 1024;
/// Longest accepted body line.
const MAX_LINE: usize = 1024 * 1024;

/// Receives what the reader finds, in order. Returning an error stops the feed.
pub trait Handler {
    /// A response head with this status was parsed.
    fn head(&mut self, status: u16) -> Result<(), Fault>;
    /// One body line, without its `\n` (and without a trailing `\r`).
    fn line(&mut self, line: &[u8]) -> Result<(), Fault>;
    /// The response body ended; the next bytes start a new response.
    fn end(&mut self) -> Result<(), Fault>;
}

/// Reader state for one connection.
#[derive(Debug, Default)]
pub struct HttpStream {
    state: State,
    /// A partial head or partial line; empty (unallocated) most of the time.
    pending: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Head,
    Chunked(Chunk),
    Length(u64),
    UntilClose,
}

/// Position inside a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of a chunk size.
    Size { value: u32, digits: u8 },
    /// Skipping a chunk extension up to CR.
    Ext { value: u32 },
    /// Saw CR after the size line; expecting LF.
    SizeLf { value: u32 },
    /// Inside chunk data.
    Data { left: u32 },
    /// After chunk data; expecting CR.
    DataCr,
    /// After chunk data and CR; expecting LF.
    DataLf,
    /// After the last chunk, at the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
    /// Saw the final CR; expecting LF.
    FinalLf,
}

const fn protocol<T>() -> Result<T, Fault> {
    Err(Fault::Protocol)
}

impl HttpStream {
    /// Bytes currently held for a straddling head or line.
    #[cfg(test)]
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds the bytes of one read.
    pub fn feed<H: Handler>(&mut self, mut input: &[u8], h: &mut H) -> Result<(), Fault> {
        while !input.is_empty() {
            input = match self.state {
                State::Head => self.feed_head(input, h)?,
                State::Chunked(c) => self.feed_chunked(c, input, h)?,
                State::Length(left) => {
                    let n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.lines(&input[..n], h)?;
                    let left = left - n as u64;
                    self.state = State::Length(left);
                    if left == 0 {
                        self.finish(h)?;
                    }
                    &input[n..]
                }
                State::UntilClose => {
                    self.lines(input, h)?;
                    &[]
                }
            };
        }
        Ok(())
    }

    /// The peer closed the connection. Ends a close-delimited body; anywhere
    /// else the close is premature and reported as [`Fault::Eof`].
    pub fn eof<H: Handler>(&mut self, h: &mut H) -> Result<(), Fault> {
        match self.state {
            State::UntilClose => self.finish(h),
            _ => Err(Fault::Eof),
        }
    }

    fn feed_head<'a, H: Handler>(&mut self, input: &'a [u8], h: &mut H) -> Result<&'a [u8], Fault> {
        let (head_end, rest) = if self.pending.is_empty() {
            match find(input, b"\r\n\r\n") {
                Some(pos) => (pos + 4, &input[pos + 4..]),
                None => {
                    if input.len() > MAX_HEAD {
                        return protocol();
                    }
                    self.pending.extend_from_slice(input);
                    return Ok(&[]);
                }
            }
        } else {
            let old = self.pending.len();
            let from = old.saturating_sub(3);
            let take = input.len().min(MAX_HEAD + 4 - old.min(MAX_HEAD));
            self.pending.extend_from_slice(&input[..take]);
            match find(&self.pending[from..], b"\r\n\r\n") {
                Some(pos) => {
                    let end = from + pos + 4;
                    self.pending.truncate(end);
                    (end, &input[end - old..])
                }
                None if self.pending.len() > MAX_HEAD => return protocol(),
                None => return Ok(&[]),
            }
        };
        let pending = std::mem::take(&mut self.pending);
        let head = if pending.is_empty() {
            &input[..head_end]
        } else {
            &pending[..]
        };
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return protocol(),
        }
        let status = response.code.unwrap_or(0);
        let mut chunked = false;
        let mut length = None;
        for header in response.headers.iter() {
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = contains_token(header.value, b"chunked");
            } else if header.name.eq_ignore_ascii_case("content-length") {
                let text = std::str::from_utf8(header.value).map_err(|_| Fault::Protocol)?;
                length = Some(text.trim().parse::<u64>().map_err(|_| Fault::Protocol)?);
            }
        }
        h.head(status)?;
        if (100..200).contains(&status) {
            return Ok(rest); // interim response: another head follows
        }
        self.state = if chunked {
            State::Chunked(Chunk::Size { value: 0, digits: 0 })
        } else {
            match length {
                Some(0) => {
                    self.finish(h)?;
                    State::Head
                }
                Some(n) => State::Length(n),
                None => State::UntilClose,
            }
        };
        Ok(rest)
    }

    fn feed_chunked<'a, H: Handler>(&mut self, mut c: Chunk, input: &'a [u8], h: &mut H) -> Result<&'a [u8], Fault> {
        let mut i = 0;
        while i < input.len() {
            if let Chunk::Data { left } = c {
                let n = (input.len() - i).min(left as usize);
                self.lines(&input[i..i + n], h)?;
                i += n;
                let left = left - n as u32;
                c = if left == 0 { Chunk::DataCr } else { Chunk::Data { left } };
                continue;
            }
            let b = input[i];
            i += 1;
            c = match (c, b) {
                (Chunk::Size { value, digits }, _) if b.is_ascii_hexdigit() => {
                    let d = (b as char).to_digit(16).unwrap_or(0);
                    if digits >= 7 {
                        return protocol(); // > 256 MiB chunk: nonsense for a comet frame
                    }
                    Chunk::Size {
                        value: value * 16 + d,
                        digits: digits + 1,
                    }
                }
                (Chunk::Size { digits: 0, .. }, _) => return protocol(),
                (Chunk::Size { value, .. }, b';' | b' ' | b'\t') => Chunk::Ext { value },
                (Chunk::Size { value, .. } | Chunk::Ext { value }, b'\r') => Chunk::SizeLf { value },
                (Chunk::Size { value, .. } | Chunk::Ext { value } | Chunk::SizeLf { value }, b'\n') => {
                    if value == 0 {
                        Chunk::TrailerStart
                    } else {
                        Chunk::Data { left: value }
                    }
                }
                (Chunk::Ext { value }, _) => Chunk::Ext { value },
                (Chunk::DataCr, b'\r') => Chunk::DataLf,
                (Chunk::DataCr | Chunk::DataLf, b'\n') => Chunk::Size { value: 0, digits: 0 },
                (Chunk::TrailerStart, b'\r') => Chunk::FinalLf,
                (Chunk::TrailerStart | Chunk::FinalLf, b'\n') => {
                    self.finish(h)?;
                    return Ok(&input[i..]);
                }
                (Chunk::TrailerStart | Chunk::TrailerLine, _) => {
                    if b == b'\n' {
                        Chunk::TrailerStart
                    } else {
                        Chunk::TrailerLine
                    }
                }
                _ => return protocol(),
            };
        }
        self.state = State::Chunked(c);
        Ok(&[])
    }

    /// Cuts body bytes into lines, buffering only a line that is not complete yet.
    fn lines<H: Handler>(&mut self, mut data: &[u8], h: &mut H) -> Result<(), Fault> {
        while let Some(pos) = data.iter().position(|&b| b == b'\n') {
            if self.pending.is_empty() {
                h.line(strip_cr(&data[..pos]))?;
            } else {
                self.pending.extend_from_slice(&data[..pos]);
                let line = std::mem::take(&mut self.pending);
                h.line(strip_cr(&line))?;
            }
            data = &data[pos + 1..];
        }
        if !data.is_empty() {
            if self.pending.len() + data.len() > MAX_LINE {
                return protocol();
            }
            self.pending.extend_from_slice(data);
        }
        Ok(())
    }

    /// End of one response body: a last line without `\n` still counts.
    fn finish<H: Handler>(&mut self, h: &mut H) -> Result<(), Fault> {
        self.state = State::Head;
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            h.line(strip_cr(&line))?;
        }
        h.end()
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Records everything the reader reports, as text.
    #[derive(Default)]
    pub(crate) struct Log(pub Vec<String>);

    impl Handler for Log {
        fn head(&mut self, status: u16) -> Result<(), Fault> {
            self.0.push(format!("head {status}"));
            Ok(())
        }
        fn line(&mut self, line: &[u8]) -> Result<(), Fault> {
            self.0.push(format!("line {}", String::from_utf8_lossy(line)));
            Ok(())
        }
        fn end(&mut self) -> Result<(), Fault> {
            self.0.push("end".into());
            Ok(())
        }
    }

    /// Feeds `input` cut at the given offsets and returns the log.
    pub(crate) fn feed_split(input: &[u8], cuts: &[usize]) -> Result<Vec<String>, Fault> {
        let mut s = HttpStream::default();
        let mut log = Log::default();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            s.feed(&input[from..cut], &mut log)?;
            from = cut;
        }
        Ok(log.0)
    }

    const HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n\
                        Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n";

    fn chunked(frames: &[&str]) -> String {
        let mut s = String::from(HEAD);
        for f in frames {
            s.push_str(&format!("{:x}\r\n{f}\r\n", f.len()));
        }
        s
    }

    #[test]
    fn long_poll_response_then_keep_alive() {
        let one = chunked(&["{\"type\":\"next_seq\",\"cname\":\"a\",\"seq\":1,\"content\":\"\"}\n"]) + "0\r\n\r\n";
        let two = chunked(&["cb_1({\"type\":\"data\",\"cname\":\"a\",\"seq\":1,\"content\":\"x\"});\n"]) + "0\r\n\r\n";
        let log = feed_split(format!("{one}{two}").as_bytes(), &[]).expect("parses");
        assert_eq!(
            log,
            vec![
                "head 200",
                "line {\"type\":\"next_seq\",\"cname\":\"a\",\"seq\":1,\"content\":\"\"}",
                "end",
                "head 200",
                "line cb_1({\"type\":\"data\",\"cname\":\"a\",\"seq\":1,\"content\":\"x\"});",
                "end",
            ]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        let input = chunked(&["{\"a\":1}\n", "data: {\"b\":2}\n\n", "[{\"c\":3},{\"d\":4}]\n"]) + "0\r\nX-T: 1\r\n\r\n";
        let input = input.as_bytes();
        let whole = feed_split(input, &[]).expect("parses");
        assert_eq!(whole.len(), 6, "{whole:?}");
        for a in 0..=input.len() {
            assert_eq!(feed_split(input, &[a]).expect("one cut"), whole, "cut at {a}");
        }
        // Two cuts, and one byte at a time.
        for a in (0..input.len()).step_by(3) {
            for b in a..=input.len() {
                assert_eq!(feed_split(input, &[a, b]).expect("two cuts"), whole, "cuts {a},{b}");
            }
        }
        let bytes: Vec<usize> = (1..input.len()).collect();
        assert_eq!(feed_split(input, &bytes).expect("bytewise"), whole);
    }

    #[test]
    fn line_spanning_chunks_and_extensions() {
        let input = format!("{HEAD}3;ext=1\r\n{{\"a\r\n5\r\n\":1}}\n\r\n0\r\n\r\n");
        let log = feed_split(input.as_bytes(), &[]).expect("parses");
        assert_eq!(log, vec!["head 200", "line {\"a\":1}", "end"]);
    }

    #[test]
    fn content_length_and_until_close() {
        let input = "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"type\":\"ok\"}\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let log = feed_split(input.as_bytes(), &[20, 50]).expect("parses");
        assert_eq!(
            log,
            vec!["head 200", "line {\"type\":\"ok\"}", "end", "head 200", "end"]
        );

        let mut s = HttpStream::default();
        let mut log = Log::default();
        s.feed(b"HTTP/1.0 200 OK\r\n\r\nline1\nline", &mut log).expect("parses");
        s.eof(&mut log).expect("close ends the body");
        assert_eq!(log.0, vec!["head 200", "line line1", "line line", "end"]);
    }

    #[test]
    fn premature_close_and_garbage() {
        let mut s = HttpStream::default();
        let mut log = Log::default();
        s.feed(chunked(&["{}\n"]).as_bytes(), &mut log).expect("parses");
        assert_eq!(s.eof(&mut log), Err(Fault::Eof));
        assert_eq!(
            feed_split(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &[]),
            Err(Fault::Protocol)
        );
        assert_eq!(
            feed_split(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", &[]),
            Err(Fault::Protocol)
        );
        assert_eq!(feed_split(b"NOT HTTP AT ALL\r\n\r\n", &[]), Err(Fault::Protocol));
        let huge = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(feed_split(&huge, &[100]), Err(Fault::Protocol));
    }

    #[test]
    fn pending_is_freed_after_a_straddle() {
        let input = chunked(&["{\"a\":1}\n"]);
        let mut s = HttpStream::default();
        let mut log = Log::default();
        let cut = input.len() - 5;
        s.feed(&input.as_bytes()[..cut], &mut log).expect("parses");
        assert!(s.pending_len() > 0);
        s.feed(&input.as_bytes()[cut..], &mut log).expect("parses");
        assert_eq!(s.pending_len(), 0);
        assert_eq!(s.pending.capacity(), 0);
    }
}
