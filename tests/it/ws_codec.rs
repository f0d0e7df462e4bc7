//! comet's WebSocket path (handshake and codec) checked through its echo
//! endpoint, `/ws_echo`, by independent clients over real sockets:
//! tungstenite as a strict client, and raw bytes where exact frames matter.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use comet::server::Server;
use tungstenite::protocol::frame::coding::CloseCode as TCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

/// comet with its echo endpoint on (and allowing only `origins` when given).
struct EchoServer(Server);

impl EchoServer {
    fn start(origins: &[&str]) -> EchoServer {
        let mut c = crate::support::config();
        c.front.ws_echo = true;
        c.front.allowed_origins = origins.iter().map(|o| o.to_string()).collect();
        EchoServer(crate::support::start(c))
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.0.front_addr()
    }

    fn url(&self) -> String {
        format!("ws://{}/ws_echo", self.addr())
    }
}

const WAIT: Duration = Duration::from_secs(10);
const KEY_HEAD: &str = "GET /ws_echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                           Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

fn tcp(server: &EchoServer) -> TcpStream {
    let s = TcpStream::connect(server.addr()).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn client(server: &EchoServer) -> WebSocket<TcpStream> {
    let (ws, response) = tungstenite::client::client(server.url(), tcp(server)).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// Reads until EOF (or the deadline) and returns everything.
fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + WAIT;
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read after {} bytes: {e}", all.len()),
        }
    }
    panic!("no EOF within {WAIT:?}");
}

/// Reads exactly `n` bytes.
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).expect("read with a deadline");
    buf
}

/// A masked client frame.
fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [9, 8, 7, 6];
    let mut out = vec![b0, 0x80 | payload.len() as u8];
    out.extend(mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[test]
fn tungstenite_round_trips_every_message_type() {
    let server = EchoServer::start(&[]);
    let mut ws = client(&server);
    ws.send(Message::text("héllo")).expect("send");
    assert_eq!(ws.read().expect("echo"), Message::text("héllo"));
    ws.send(Message::binary(vec![0u8, 1, 255])).expect("send");
    assert_eq!(ws.read().expect("echo"), Message::binary(vec![0u8, 1, 255]));
    let big = "z".repeat(70_000);
    ws.send(Message::text(big.clone())).expect("send");
    assert_eq!(ws.read().expect("echo"), Message::text(big));
    ws.send(Message::Ping(vec![1u8, 2, 3].into())).expect("send");
    assert_eq!(ws.read().expect("pong"), Message::Pong(vec![1u8, 2, 3].into()));
    ws.close(Some(CloseFrame {
        code: TCode::Away,
        reason: "bye".into(),
    }))
    .expect("close");
    match ws.read().expect("close echo") {
        Message::Close(Some(f)) => assert_eq!(f.code, TCode::Away),
        other => panic!("expected the close echoed, got {other:?}"),
    }
}

#[test]
fn exact_bytes_of_the_upgrade_and_frames() {
    let server = EchoServer::start(&[]);
    let mut s = tcp(&server);
    // The head and two frames in one write: the frames after the head are kept.
    let mut first = format!("{KEY_HEAD}\r\n").into_bytes();
    first.extend(masked(0x81, b"hi"));
    first.extend(masked(0x89, b"p"));
    s.write_all(&first).expect("write");
    assert_eq!(read_n(&mut s, SWITCHING.len()), SWITCHING);
    assert_eq!(read_n(&mut s, 4 + 3), b"\x81\x02hi\x8a\x01p");
    // A frame split across two writes.
    let frame = masked(0x82, &[5; 20]);
    s.write_all(&frame[..9]).expect("write");
    s.write_all(&frame[9..]).expect("write");
    let mut echo = vec![0x82, 20];
    echo.extend([5; 20]);
    assert_eq!(read_n(&mut s, 22), echo);
    // An unmasked frame: close 1002 with the reason, then EOF.
    s.write_all(b"\x81\x02no").expect("write");
    assert_eq!(read_to_eof(&mut s), b"\x88\x1c\x03\xeaclient frame is not masked");
}

#[test]
fn a_client_close_is_echoed_and_the_server_half_closes() {
    let server = EchoServer::start(&[]);
    let mut s = tcp(&server);
    s.write_all(format!("{KEY_HEAD}\r\n").as_bytes()).expect("write");
    assert_eq!(read_n(&mut s, SWITCHING.len()), SWITCHING);
    s.write_all(&masked(0x88, b"")).expect("write");
    assert_eq!(read_to_eof(&mut s), [0x88, 0x02, 0x03, 0xe8]);
}

#[test]
fn refused_handshakes_get_plain_http_answers() {
    let server = EchoServer::start(&["https://app.example"]);
    let answer = |head: String| {
        let mut s = tcp(&server);
        s.write_all(head.as_bytes()).expect("write");
        String::from_utf8(read_to_eof(&mut s)).expect("ASCII answer")
    };
    let version_8 = KEY_HEAD.replace("Version: 13", "Version: 8");
    assert_eq!(
        answer(format!("{version_8}\r\n")),
        "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Type: text/plain\r\n\
         Content-Length: 44\r\nConnection: close\r\n\r\nunsupported Sec-WebSocket-Version (13 only)\n"
    );
    let post = KEY_HEAD.replace("GET", "POST");
    assert!(answer(format!("{post}\r\n")).starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"));
    let no_key = KEY_HEAD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    assert!(answer(format!("{no_key}\r\n")).ends_with("\r\n\r\nmissing Sec-WebSocket-Key\n"));
    assert!(answer(format!("{KEY_HEAD}Origin: https://evil.example\r\n\r\n")).starts_with("HTTP/1.1 403 Forbidden\r\n"));
    let mut s = tcp(&server);
    s.write_all(format!("{KEY_HEAD}Origin: https://APP.example\r\n\r\n").as_bytes())
        .expect("write");
    assert_eq!(read_n(&mut s, SWITCHING.len()), SWITCHING);
}
