//! Scaffolding: a WebSocket echo server built only from `comet::ws` (the
//! handshake and the codec), with blocking std threads, one per connection.
//!
//! It exists to validate the codec with Autobahn and independent clients
//! until comet's own `/ws_echo` endpoint runs the same code on the front
//! workers. It is test code: it never goes into `src/`, and it must not be
//! mistaken for how comet serves WebSockets (no epoll, a thread per socket).
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use comet::ws::frame::{binary_frame, push_pong, text_frame};
use comet::ws::{AllowedOrigins, Decoded, Event, UpgradeRequest, WsState};

/// Deadline of every read and write of a connection.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for the client's EOF.
const LINGER: Duration = Duration::from_secs(2);
/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// A running echo server on 127.0.0.1, stopped when dropped.
pub struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Starts a server on a free port that echoes messages of up to
    /// `max_message` bytes and allows browser origins in `origins`.
    pub fn start(max_message: usize, origins: AllowedOrigins) -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let origins = Arc::new(origins);
        let acceptor = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let origins = origins.clone();
                std::thread::spawn(move || serve(stream, max_message, &origins));
            }
        });
        EchoServer {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// One connection: the handshake, then frames until a close, an error or EOF.
fn serve(mut stream: TcpStream, max_message: usize, origins: &AllowedOrigins) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Some(mut kept) = handshake(&mut stream, origins) else {
        return;
    };
    let mut state = WsState::new();
    let mut rbuf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        let mut pos = 0;
        loop {
            match state.decode(&mut kept[pos..], max_message) {
                Ok(Decoded { consumed, event }) => {
                    pos += consumed;
                    match event {
                        None => break,
                        Some(Event::Text(t)) => out.extend(text_frame(&t)),
                        Some(Event::Binary(b)) => out.extend(binary_frame(&b)),
                        Some(Event::Ping(p)) => push_pong(&mut out, p),
                        Some(Event::Pong(_)) => {}
                        Some(Event::Close(c)) => {
                            out.extend(c.reply());
                            return finish(stream, &out);
                        }
                    }
                }
                Err(e) => {
                    out.extend(e.close_frame());
                    return finish(stream, &out);
                }
            }
        }
        kept.drain(..pos);
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        match stream.read(&mut rbuf) {
            Ok(0) | Err(_) => return,
            Ok(n) => kept.extend_from_slice(&rbuf[..n]),
        }
    }
}

/// Reads the request head and answers it: `Some(bytes after the head)` once
/// upgraded, `None` when refused or failed.
fn handshake(stream: &mut TcpStream, origins: &AllowedOrigins) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok().filter(|&n| n > 0)?;
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Complete(len)) => {
                let mut upgrade = UpgradeRequest::new(req.method.unwrap_or(""), req.version.unwrap_or(0));
                for h in req.headers.iter() {
                    upgrade.header(h.name, h.value);
                }
                return match upgrade.check(origins) {
                    Ok(accept) => {
                        stream.write_all(&accept.response()).ok()?;
                        Some(head[len..].to_vec())
                    }
                    Err(refusal) => {
                        let _ = stream.write_all(&refusal.response());
                        None
                    }
                };
            }
            _ => {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return None;
            }
        }
    }
}

/// Writes the last bytes (a close frame), half-closes, and waits a bounded
/// time for the client's EOF before the socket is dropped.
fn finish(mut stream: TcpStream, out: &[u8]) {
    if stream.write_all(out).is_err() {
        return;
    }
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
