//! `front_request`: bytes from a front connection, through the real
//! front (`crate::front::Front` on an in-memory socket, exactly the code a
//! worker runs), plus properties of every request head and its parameters.

use std::rc::Rc;
use std::sync::Arc;

use super::{json, split};
use crate::config::{Config, FrontConfig};
use crate::encode;
use crate::front::request::{self, HeadError, Request, Route, MAX_HEAD};
use crate::front::{ping_callback, respond, Front, MemSock, Settings, SubParams, Transport};
use crate::params::{self, Params};
use crate::shared::Shared;

/// What a connection did with one request of its input.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A request, and what its parameter decoding gave (Debug text).
    Request(Request, String),
    /// An error answer; the connection closes.
    Refused(HeadError),
}

/// Input: a split seed byte, then the bytes a client sends. Checks that every
/// framed head re-parses to itself, that parameters decode into values a
/// frame can carry, and that the requests found do not depend on how the
/// bytes were split into reads.
pub fn front_request(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let whole = run_connection(&[input]);
    let pieces = split(input, seed);
    assert_eq!(run_connection(&pieces), whole, "split into {} reads", pieces.len());
    let answered = serve(&[input]);
    assert_eq!(
        serve(&pieces),
        answered,
        "the answer, split into {} reads",
        pieces.len()
    );
    if input.len() <= 256 {
        assert_eq!(run_connection(&split(input, 0)), whole, "split into single bytes");
        assert_eq!(serve(&split(input, 0)), answered, "the answer, split into single bytes");
    }
}

/// Feeds `reads` to a fresh server's front, one read at a time as epoll
/// would report them, then the end of the stream; returns what it wrote
/// (with `Date:` lines blanked: the clock may tick between two runs) and
/// whether it closed the connection.
fn serve(reads: &[&[u8]]) -> (String, bool) {
    let mut config = Config::default();
    config.front.max_channels = 64;
    let shared = Arc::new(Shared::new(config, 1).expect("an eventfd"));
    let mut front: Front<Rc<MemSock>> = Front::new(0, shared, Settings::from_config(&Config::default()));
    let sock = MemSock::new();
    let token = front.add(sock.clone(), 0);
    for read in reads {
        sock.send(read);
        front.on_event(token, true, false, false);
    }
    sock.eof.set(true);
    front.on_event(token, true, false, false);
    let out = sock.take_output();
    let mut blanked = String::with_capacity(out.len());
    for line in out.split_inclusive("\r\n") {
        blanked.push_str(if line.starts_with("Date: ") {
            "Date: -\r\n"
        } else {
            line
        });
    }
    (blanked, front.is_open(token))
}

/// Feeds `reads` to a model of `Worker::process_input`: after each read every
/// complete request is framed, its body skipped, until an error or a request
/// that closes the connection.
fn run_connection(reads: &[&[u8]]) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut inbuf: Vec<u8> = Vec::new();
    let mut body_left = 0usize;
    for read in reads {
        inbuf.extend_from_slice(read);
        loop {
            let n = body_left.min(inbuf.len());
            inbuf.drain(..n);
            body_left -= n;
            if inbuf.is_empty() {
                break;
            }
            match request::frame(&inbuf) {
                Err(HeadError::Partial) => {
                    assert!(
                        inbuf.len() < MAX_HEAD,
                        "a head of {} bytes is still partial",
                        inbuf.len()
                    );
                    break;
                }
                Err(e) => {
                    outcomes.push(Outcome::Refused(e));
                    return outcomes;
                }
                Ok(f) => {
                    let req = &f.req;
                    assert!(req.head_len <= f.consumed && f.consumed <= inbuf.len());
                    assert!(f.body_left <= request::MAX_FRONT_BODY);
                    assert_eq!(
                        f.consumed - req.head_len + f.body_left,
                        if req.chunked_body {
                            f.consumed - req.head_len
                        } else {
                            req.body_len
                        }
                    );
                    let parsed = request::parse(&inbuf).expect("frame parsed it");
                    check_head(&inbuf, &parsed);
                    let closes = parsed.chunked_body && parsed.keep_alive;
                    assert_eq!(
                        *req,
                        Request {
                            keep_alive: parsed.keep_alive && !closes,
                            ..parsed
                        }
                    );
                    let decoded = decode_params(req);
                    let keep_alive = req.keep_alive;
                    inbuf.drain(..f.consumed);
                    body_left = f.body_left;
                    outcomes.push(Outcome::Request(f.req, decoded));
                    if !keep_alive {
                        return outcomes;
                    }
                }
            }
        }
    }
    outcomes
}

/// Properties of one parsed head at the start of `buf`.
fn check_head(buf: &[u8], req: &Request) {
    assert!(req.head_len <= buf.len() && req.head_len <= MAX_HEAD);
    assert_eq!(
        request::parse(&buf[..req.head_len]).as_ref(),
        Ok(req),
        "the head alone parses the same"
    );
    for cut in [req.head_len - 1, req.head_len / 2] {
        assert_eq!(
            request::parse(&buf[..cut]).err(),
            Some(HeadError::Partial),
            "a prefix of {cut} bytes"
        );
    }
    if req.http10 && req.keep_alive {
        let head = String::from_utf8_lossy(&buf[..req.head_len]).to_ascii_lowercase();
        assert!(
            head.contains("keep-alive"),
            "HTTP/1.0 keeps the connection only when asked to"
        );
    }
    let query = String::from_utf8_lossy(&req.query);
    if !query.is_empty() {
        assert!(
            req.target.ends_with(&format!("?{query}")),
            "the query is the end of the target"
        );
    }
    // RFC 3986: in an absolute URI the authority ends at the first `/` or `?`.
    let path_and_query = match req.target.split_once("://") {
        Some((scheme, rest)) if scheme == "http" || scheme == "https" => {
            rest.find(['/', '?']).map_or("", |i| &rest[i..])
        }
        _ => &req.target,
    };
    let path = path_and_query.split('?').next().unwrap_or("");
    let decoded = params::decode_path(path.as_bytes());
    let named = |names: &[&[u8]]| names.iter().any(|n| decoded == *n);
    match req.route {
        Route::Subscribe(Transport::LongPoll) => assert!(named(&[b"/sub", b"/poll"])),
        Route::Subscribe(Transport::Stream) => assert!(named(&[b"/stream"])),
        Route::Subscribe(Transport::Sse) => assert!(named(&[b"/sse"])),
        Route::Subscribe(Transport::Iframe) => assert!(named(&[b"/iframe"])),
        Route::Subscribe(Transport::Ws) => {
            assert!(named(&[b"/ws"]));
            assert!(req.upgrade.is_some(), "a /ws request carries its upgrade check");
        }
        Route::WsEcho => assert!(named(&[b"/ws_echo"])),
        Route::Ping => assert!(named(&[b"/ping"])),
        Route::NotFound => {
            let page = respond::not_found_page(&req.target);
            let shown = page
                .split_once("The requested URL ")
                .and_then(|(_, rest)| rest.rsplit_once(" was not found"))
                .map(|(url, _)| url)
                .expect("the 404 page shows the URL");
            assert!(
                !shown.contains(['<', '>', '"']),
                "the 404 page escapes the URL: {shown:?}"
            );
        }
    }
}

/// Decodes a request's parameters as the handler of its route does, and
/// checks that what is accepted can be written into frames.
fn decode_params(req: &Request) -> String {
    let p = Params::parse(&req.query);
    match req.route {
        Route::Subscribe(t) => match SubParams::decode(&p, req, t, FrontConfig::default().max_cname_bytes) {
            Ok(sp) => {
                check_frame(sp.cname, sp.seq);
                if let Some(cb) = sp.cb {
                    check_callback_name(cb);
                }
                format!("{sp:?}")
            }
            Err(e) => {
                assert!(!e.0.is_empty() && !e.0.contains('\n'), "a one-line reason");
                format!("400 {e}")
            }
        },
        Route::Ping => match ping_callback(&p) {
            Ok(cb) => {
                check_callback_name(cb);
                cb.to_string()
            }
            Err(e) => format!("400 {e}"),
        },
        Route::NotFound | Route::WsEcho => String::new(),
    }
}

/// A callback name that passed the check cannot break out of `cb(...)`.
fn check_callback_name(cb: &str) {
    assert!(cb.len() <= params::MAX_CALLBACK_LEN);
    assert!(
        cb.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.$".contains(&c)),
        "{cb:?}"
    );
}

/// A frame for an accepted channel name is valid JSON carrying that name, and
/// stays so inside an iframe's script.
fn check_frame(cname: &str, seq: i32) {
    let frame = encode::message("data", cname, seq, "x");
    let value = json::parse(&frame).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&frame)));
    let json::Value::Object(members) = &value else {
        panic!("a frame is an object");
    };
    assert_eq!(
        members[1],
        ("cname".to_string(), json::Value::String(cname.to_string()))
    );
    assert_eq!(members[2], ("seq".to_string(), json::Value::Number(seq.to_string())));
    let safe = encode::script_safe(&frame);
    assert!(!safe.windows(2).any(|w| w == b"</"));
    assert_eq!(json::parse(&safe), Ok(value), "script_safe keeps the value");
}
