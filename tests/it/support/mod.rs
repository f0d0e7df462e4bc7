//! The one harness of the test binaries (`tests/it`, and `tests/heavy`
//! through a `#[path]` module): the real server in-process on port 0
//! ([`start`]), the real binary as a child process ([`binary`]), raw HTTP
//! with a deadline on every read ([`Client`], [`get`]), JSON read with
//! serde_json ([`json`]), temporary files ([`files`]), and waits that poll
//! a condition with a deadline ([`eventually`]). Tests never sleep to
//! guess and never assert that nothing came: they send something after the
//! thing that must stay silent and assert that it is what comes next.

pub mod app;
pub mod binary;
pub mod cluster;
pub mod files;
pub mod nodes;
pub mod redis;
pub mod ws;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use comet::config::Config;
use comet::server::Server;

/// Default deadline for any single expectation.
pub const WAIT: Duration = Duration::from_secs(10);

/// A test config: both listeners on 127.0.0.1:0, everyone allowed on admin,
/// small limits so that tests stay cheap.
pub fn config() -> Config {
    let mut c = Config::default();
    c.front.listen = "127.0.0.1:0".parse().expect("addr");
    c.admin.listen = "127.0.0.1:0".parse().expect("addr");
    c.admin.allow = vec![];
    c.admin.deny = vec![];
    c.front.max_connections = 4096;
    c.front.max_channels = 10_000;
    c.workers = 2;
    c
}

/// Starts a server with `config`.
pub fn start(config: Config) -> Server {
    Server::bind(config).expect("server starts")
}

/// A raw client connection.
pub struct Client {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Client {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a GET for `target` (HTTP/1.1, no Host).
    pub fn get(&mut self, target: &str) {
        self.send(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes());
    }

    /// Reads more bytes; false on EOF. Panics when `deadline` passes.
    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out; have {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.stream.set_read_timeout(Some(left)).expect("timeout");
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("timed out; have {:?}", String::from_utf8_lossy(&self.buf))
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Reads until `buf` contains `pat`; returns everything up to and including it.
    pub fn read_until(&mut self, pat: &[u8]) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.buf.windows(pat.len()).position(|w| w == pat) {
                let rest = self.buf.split_off(i + pat.len());
                return std::mem::replace(&mut self.buf, rest);
            }
            assert!(
                self.fill(deadline),
                "EOF before {:?}; have {:?}",
                String::from_utf8_lossy(pat),
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        while self.buf.len() < n {
            assert!(
                self.fill(deadline),
                "EOF; have {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }

    /// Reads a response head; returns it as text (status line and headers).
    pub fn head(&mut self) -> String {
        String::from_utf8(self.read_until(b"\r\n\r\n")).expect("utf8 head")
    }

    /// Reads one HTTP chunk's payload (empty for the last chunk).
    pub fn chunk(&mut self) -> Vec<u8> {
        let line = self.read_until(b"\r\n");
        let size =
            usize::from_str_radix(std::str::from_utf8(&line[..line.len() - 2]).expect("hex"), 16).expect("chunk size");
        let data = self.read_exact(size + 2);
        assert_eq!(&data[size..], b"\r\n", "chunk terminator");
        data[..size].to_vec()
    }

    /// Reads one chunk as text.
    pub fn chunk_str(&mut self) -> String {
        String::from_utf8(self.chunk()).expect("utf8 chunk")
    }

    /// Reads a whole `Content-Length` response: (head, body).
    pub fn response(&mut self) -> (String, Vec<u8>) {
        let head = self.head();
        let len = header(&head, "content-length").map_or(0, |v| v.parse().expect("length"));
        let body = self.read_exact(len);
        (head, body)
    }

    /// Reads until the server closes; returns what came.
    pub fn read_to_eof(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        while self.fill(deadline) {}
        std::mem::take(&mut self.buf)
    }
}

/// A response read whole, headers parsed.
#[derive(Debug)]
pub struct Resp {
    /// The status line.
    pub status: String,
    /// The headers in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunks joined).
    pub body: Vec<u8>,
}

impl Resp {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn body(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    /// The status code.
    pub fn code(&self) -> u16 {
        self.status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status code in {:?}", self.status))
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        json(self.body())
    }

    /// Status line, body, and the headers every admin reply carries
    /// (libevent's own 404 and 501 pages carry no `Server`, §1.1).
    pub fn assert(&self, status: &str, content_type: &str, body: &str) {
        assert_eq!(self.status, status, "{self:?}");
        let generic = content_type == "text/html" && (status.contains(" 404 ") || status.contains(" 501 "));
        let server = if generic { None } else { Some("icomet 0.2.5") };
        assert_eq!(self.header("Server"), server, "{self:?}");
        assert_eq!(self.header("Content-Type"), Some(content_type), "{self:?}");
        assert_eq!(self.body(), body, "{self:?}");
        if !body.is_empty() || self.header("Transfer-Encoding").is_none() {
            assert_eq!(
                self.header("Content-Length"),
                Some(body.len().to_string().as_str()),
                "{self:?}"
            );
        }
        assert!(self.header("Date").is_some(), "{self:?}");
    }
}

impl Client {
    /// Sends `raw` and reads the whole response.
    pub fn request(&mut self, raw: &str) -> Resp {
        self.send(raw.as_bytes());
        self.read_response(false)
    }

    /// Reads a status line and headers, parsed.
    pub fn head_resp(&mut self) -> Resp {
        let head = self.head();
        let mut lines = head.trim_end_matches("\r\n").split("\r\n");
        let status = lines.next().unwrap_or("").to_string();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(':').expect("a header line");
                (k.to_string(), v.trim().to_string())
            })
            .collect();
        Resp {
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// Reads one chunk; `None` for the terminating one.
    pub fn chunk_opt(&mut self) -> Option<Vec<u8>> {
        let c = self.chunk();
        (!c.is_empty()).then_some(c)
    }

    /// Reads a whole response (no body for a HEAD request): chunked,
    /// `Content-Length`, or up to the close.
    pub fn read_response(&mut self, head_request: bool) -> Resp {
        let mut r = self.head_resp();
        if head_request {
            return r;
        }
        if r.header("Transfer-Encoding") == Some("chunked") {
            while let Some(c) = self.chunk_opt() {
                r.body.extend_from_slice(&c);
            }
        } else if let Some(n) = r.header("Content-Length") {
            r.body = self.read_exact(n.parse().expect("content length"));
        } else {
            r.body = self.read_to_eof();
        }
        r
    }

    /// Whether the server closed the connection (end of stream, or a reset,
    /// before any further byte).
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill(Instant::now() + WAIT)
    }
}

/// The value of header `name` (case-insensitive) in a head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One GET of `target` on a fresh connection to `addr` (with `Host` and
/// `Connection: close`): (status line, head, body).
pub fn get(addr: SocketAddr, target: &str) -> (String, String, String) {
    let mut c = Client::connect(addr);
    c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
    let (head, body) = c.response();
    let status = head.lines().next().unwrap_or("").to_string();
    (status, head, String::from_utf8(body).expect("utf8 body"))
}

/// One admin request on a fresh connection: (status line, head, body).
pub fn admin(server: &Server, target: &str) -> (String, String, String) {
    get(server.admin_addr(), target)
}

/// The value of sample `name` (labels included, exactly as printed) in a
/// `/metrics` text; panics naming it when it is absent.
pub fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
        .parse()
        .expect("a numeric sample")
}

/// [`sample`] of `server`'s `/metrics`.
pub fn metric(server: &Server, name: &str) -> u64 {
    sample(&admin(server, "/metrics").2, name)
}

/// `text` parsed as JSON; panics naming the text when it is not JSON.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Waits until `cond` holds, polling; panics after [`WAIT`].
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Subscribers of a channel as the channel table counts them.
pub fn subscribers(server: &Server, cname: &str) -> u32 {
    server.shared().channels.subscribers_of(cname)
}

/// A connection to `addr` from the local address `from` (any 127.x.y.z
/// reaches a loopback listener), so tests can act as several clients.
pub fn connect_from(from: std::net::Ipv4Addr, addr: SocketAddr) -> Client {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::from((from, 0)).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    s.connect(&addr.into()).expect("connect");
    let stream = TcpStream::from(s);
    stream.set_nodelay(true).expect("nodelay");
    Client {
        stream,
        buf: Vec::new(),
    }
}
