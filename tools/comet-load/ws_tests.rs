//! Tests of the WebSocket client codec (`ws`): the upgrade check, every
//! split point of server frames, bad frames, masked client frames.

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
