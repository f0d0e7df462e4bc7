//! Parsing one front request head into a typed request.
//!
//! The head is parsed with httparse straight from the worker's read buffer
//! (or a connection's small carry-over buffer); nothing of it is kept once
//! the request has been answered or turned into a subscriber.

use super::Transport;
use crate::params;
use crate::ws::{AcceptKey, AllowedOrigins, Refusal, UpgradeRequest};

/// Largest request head accepted; beyond it the answer is 431.
pub const MAX_HEAD: usize = 8 * 1024;

/// Largest request body the front skips over (front requests have no use for bodies).
pub const MAX_FRONT_BODY: usize = 64 * 1024;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A subscribe endpoint.
    Subscribe(Transport),
    /// `/ping`.
    Ping,
    /// `/ws_echo`: the WebSocket echo endpoint for conformance testing
    /// (served only when `front.ws_echo` is on).
    WsEcho,
    /// Anything else.
    NotFound,
}

/// Request methods the handlers distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// POST, PUT or DELETE: reach handlers, which may refuse them.
    Other,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The route of the (percent-decoded) path.
    pub route: Route,
    /// The raw request target, for the 404 page.
    pub target: String,
    /// The query string (after `?`), undecoded.
    pub query: Vec<u8>,
    /// HTTP/1.0 (close-delimited responses, no chunking).
    pub http10: bool,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// The `Last-Event-ID` header, if any.
    pub last_event_id: Option<String>,
    /// For `/ws` and `/ws_echo`: the upgrade's accept key, or the HTTP
    /// refusal to answer with (the origin is checked later, against the
    /// configured list).
    pub upgrade: Option<Result<AcceptKey, Refusal>>,
    /// The `Origin` header of an upgrade request, if any.
    pub origin: Option<Box<[u8]>>,
    /// Bytes of the head.
    pub head_len: usize,
    /// Declared body length (`Content-Length`).
    pub body_len: usize,
    /// The body is chunked (cannot be skipped cheaply: the connection closes after the answer).
    pub chunked_body: bool,
}

/// Why a head could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Not all of it has arrived yet.
    Partial,
    /// 400 with a reason.
    Bad(&'static str),
    /// 431: head too large or too many headers.
    TooLarge,
    /// 501: a method the server does not implement.
    NotImplemented,
    /// 413: the declared body is larger than [`MAX_FRONT_BODY`].
    BodyTooLarge {
        /// Whether the request was HTTP/1.0 (for the status line).
        http10: bool,
    },
}

/// A request framed in a connection's input: its head, and where its body ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    /// The head; `keep_alive` is already false when the body cannot be skipped.
    pub req: Request,
    /// Bytes of the input that belong to this request (head and the body bytes present).
    pub consumed: usize,
    /// Body bytes still to come, to be skipped before the next request head.
    pub body_left: usize,
}

/// Frames the request at the start of a connection's input `buf`: the head is
/// parsed by [`parse`], and a `Content-Length` body is skipped whether it has
/// arrived completely or not, so that a pipelined request after it is found
/// however the bytes were split into reads. A chunked body cannot be skipped
/// cheaply: the rest of the input is dropped and the connection closes after
/// the answer.
pub fn frame(buf: &[u8]) -> Result<Framed, HeadError> {
    let mut req = parse(buf)?;
    if req.chunked_body {
        req.keep_alive = false;
        return Ok(Framed {
            req,
            consumed: buf.len(),
            body_left: 0,
        });
    }
    if req.body_len > MAX_FRONT_BODY {
        return Err(HeadError::BodyTooLarge { http10: req.http10 });
    }
    let present = (buf.len() - req.head_len).min(req.body_len);
    Ok(Framed {
        consumed: req.head_len + present,
        body_left: req.body_len - present,
        req,
    })
}

/// Whether a (possibly incomplete) head's request line ends in `HTTP/1.0`,
/// so that a 431 for it can use the client's version.
pub fn claims_http10(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.len() < buf.len() && line.ends_with(b" HTTP/1.0")
}

/// Parses the head at the start of `buf`. Only the first [`MAX_HEAD`] bytes
/// are looked at, so that the answer does not depend on how much of the
/// input beyond them has arrived.
pub fn parse(buf: &[u8]) -> Result<Request, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(&buf[..buf.len().min(MAX_HEAD)]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(if buf.len() >= MAX_HEAD {
                HeadError::TooLarge
            } else {
                HeadError::Partial
            });
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(HeadError::Bad("unsupported HTTP version")),
        Err(_) => return Err(HeadError::Bad("malformed request head")),
    };
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" | "PUT" | "DELETE" => Method::Other,
        _ => return Err(HeadError::NotImplemented),
    };
    let http10 = req.version == Some(0);
    let target = req.path.unwrap_or("");
    let mut keep_alive = !http10;
    let mut last_event_id = None;
    let mut body_len = 0usize;
    let mut chunked_body = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value);
            for token in v.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("last-event-id") {
            last_event_id = Some(String::from_utf8_lossy(h.value).trim().to_string());
        } else if h.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or(HeadError::Bad("bad Content-Length"))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked_body = true;
        }
    }
    // Absolute form (`GET http://host/sub?x HTTP/1.1`): keep the path. The
    // authority ends at the first `/` or `?` (RFC 3986 3.2), so a `/` in the
    // query of `http://host?q=/sub` is not taken for the path.
    let mut path_and_query = target;
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        path_and_query = rest.find(['/', '?']).map_or("/", |i| &rest[i..]);
    }
    let (path, query) = match path_and_query.find('?') {
        Some(i) => (&path_and_query[..i], &path_and_query[i + 1..]),
        None => (path_and_query, ""),
    };
    let decoded = params::decode_path(path.as_bytes());
    let route = match Transport::from_path(&decoded) {
        Some(t) => Route::Subscribe(t),
        None if decoded == b"/ping" => Route::Ping,
        None if decoded == b"/ws_echo" => Route::WsEcho,
        None => Route::NotFound,
    };
    let (upgrade, origin) = match route {
        Route::Subscribe(Transport::Ws) | Route::WsEcho => {
            let mut u = UpgradeRequest::new(req.method.unwrap_or(""), req.version.unwrap_or(0));
            let mut origin = None;
            for h in req.headers.iter() {
                u.header(h.name, h.value);
                if h.name.eq_ignore_ascii_case("origin") {
                    origin = Some(h.value.trim_ascii().into());
                }
            }
            (Some(u.check(&AllowedOrigins::any())), origin)
        }
        _ => (None, None),
    };
    Ok(Request {
        method,
        route,
        target: target.to_string(),
        query: query.as_bytes().to_vec(),
        http10,
        keep_alive,
        last_event_id,
        upgrade,
        origin,
        head_len,
        body_len,
        chunked_body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routes_versions_and_connection() {
        let r = parse(b"GET /sub?cname=a&seq=1 HTTP/1.1\r\n\r\n").expect("valid");
        assert_eq!(r.route, Route::Subscribe(Transport::LongPoll));
        assert_eq!(r.query, b"cname=a&seq=1");
        assert!(r.keep_alive && !r.http10);
        let r = parse(b"GET /%73se HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").expect("valid");
        assert_eq!(r.route, Route::Subscribe(Transport::Sse));
        assert!(r.keep_alive && r.http10);
        let r = parse(b"GET http://h:1/poll?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n").expect("valid");
        assert_eq!(r.route, Route::Subscribe(Transport::LongPoll));
        assert!(!r.keep_alive);
        // Found by the front_request fuzz target: the query of an absolute
        // target without a path is not the path.
        let r = parse(b"GET http://h?x=/sub HTTP/1.1\r\n\r\n").expect("valid");
        assert_eq!((r.route, &r.query[..]), (Route::NotFound, &b"x=/sub"[..]));
        assert_eq!(
            parse(b"GET /sub/ HTTP/1.1\r\n\r\n").expect("valid").route,
            Route::NotFound
        );
        assert_eq!(
            parse(b"GET /SUB HTTP/1.1\r\n\r\n").expect("valid").route,
            Route::NotFound
        );
    }

    #[test]
    fn framing_skips_bodies_however_much_has_arrived() {
        let head = b"POST /ping HTTP/1.1\r\nContent-Length: 4\r\n\r\n";
        let whole = [&head[..], b"bodyGET /ping HTTP/1.1\r\n\r\n"].concat();
        let f = frame(&whole).expect("valid");
        assert_eq!((f.consumed, f.body_left, f.req.keep_alive), (head.len() + 4, 0, true));
        let f = frame(&whole[..head.len() + 1]).expect("valid");
        assert_eq!((f.consumed, f.body_left, f.req.keep_alive), (head.len() + 1, 3, true));
        let chunked = b"POST /ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n";
        let f = frame(chunked).expect("valid");
        assert_eq!((f.consumed, f.body_left, f.req.keep_alive), (chunked.len(), 0, false));
        assert_eq!(
            frame(b"POST /ping HTTP/1.0\r\nContent-Length: 65537\r\n\r\n").err(),
            Some(HeadError::BodyTooLarge { http10: true })
        );
    }

    #[test]
    fn http10_is_read_from_a_complete_request_line() {
        assert!(claims_http10(b"GET /sub HTTP/1.0\r\nX: aaaa"));
        assert!(claims_http10(b"GET /sub HTTP/1.0\nX"));
        assert!(!claims_http10(b"GET /sub HTTP/1.1\r\nX: aaaa"));
        assert!(!claims_http10(b"GET /sub HTTP/1.0"));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"GET /sub HTTP/1.1\r\nHost: x").err(), Some(HeadError::Partial));
        assert_eq!(
            parse(b"OPTIONS /sub HTTP/1.1\r\n\r\n").err(),
            Some(HeadError::NotImplemented)
        );
        assert!(matches!(parse(b"GET /a b HTTP/1.1\r\n\r\n"), Err(HeadError::Bad(_))));
        assert_eq!(
            parse(b"GET\r\n\r\n").err(),
            Some(HeadError::Bad("malformed request head"))
        );
        assert_eq!(
            parse(b"GET /sub HTTP/2.0\r\n\r\n").err(),
            Some(HeadError::Bad("unsupported HTTP version"))
        );
        let big = [b"GET /sub HTTP/1.1\r\nX: ".to_vec(), vec![b'a'; MAX_HEAD]].concat();
        assert_eq!(parse(&big).err(), Some(HeadError::TooLarge));
        // Found by the front_request fuzz target: a head that is still
        // partial at MAX_HEAD bytes is too large, even when a later byte
        // would have made it malformed, whatever has arrived by then.
        let late_error = [&big[..], b"\nno colon\r\n\r\n"].concat();
        assert_eq!(parse(&late_error).err(), Some(HeadError::TooLarge));
        let r = parse(b"POST /ping HTTP/1.1\r\nContent-Length: 5\r\nLast-Event-ID: 7\r\n\r\nhello").expect("valid");
        assert_eq!(
            (r.method, r.body_len, r.last_event_id.as_deref()),
            (Method::Other, 5, Some("7"))
        );
    }
}
