//! Parsing one front request head into a typed request.
//!
//! The head is parsed with httparse straight from the worker's read buffer
//! (or a connection's small carry-over buffer); nothing of it is kept once
//! the request has been answered or turned into a subscriber.

use crate::params;

/// Largest request head accepted; beyond it the answer is 431.
pub const MAX_HEAD: usize = 8 * 1024;

/// Largest request body the front skips over (front requests have no use for bodies).
pub const MAX_FRONT_BODY: usize = 64 * 1024;

/// The subscriber framings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `/sub`, `/poll`: one frame per response.
    LongPoll,
    /// `/stream`: one JSON line per message.
    Stream,
    /// `/sse`: server-sent events.
    Sse,
    /// `/iframe`: script-wrapped frames for a forever-iframe.
    Iframe,
}

impl Transport {
    /// Every transport, in [`Transport::index`] order.
    pub const ALL: [Transport; 4] = [
        Transport::LongPoll,
        Transport::Stream,
        Transport::Sse,
        Transport::Iframe,
    ];

    /// A dense index, for per-transport counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name used in `/stats` and `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::LongPoll => "poll",
            Transport::Stream => "stream",
            Transport::Sse => "sse",
            Transport::Iframe => "iframe",
        }
    }

    /// True for the transports whose response never ends on its own.
    pub fn is_streaming(self) -> bool {
        self != Transport::LongPoll
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A subscribe endpoint.
    Subscribe(Transport),
    /// `/ping`.
    Ping,
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
#[derive(Debug)]
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
}

/// Parses the head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Request, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
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
    if head_len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
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
    // Absolute form (`GET http://host/sub?x HTTP/1.1`): keep the path.
    let mut path_and_query = target;
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        path_and_query = rest.find('/').map_or("/", |i| &rest[i..]);
    }
    let (path, query) = match path_and_query.find('?') {
        Some(i) => (&path_and_query[..i], &path_and_query[i + 1..]),
        None => (path_and_query, ""),
    };
    let route = match &params::decode_path(path.as_bytes())[..] {
        b"/sub" | b"/poll" => Route::Subscribe(Transport::LongPoll),
        b"/stream" => Route::Subscribe(Transport::Stream),
        b"/sse" => Route::Subscribe(Transport::Sse),
        b"/iframe" => Route::Subscribe(Transport::Iframe),
        b"/ping" => Route::Ping,
        _ => Route::NotFound,
    };
    Ok(Request {
        method,
        route,
        target: target.to_string(),
        query: query.as_bytes().to_vec(),
        http10,
        keep_alive,
        last_event_id,
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
        let r = parse(b"POST /ping HTTP/1.1\r\nContent-Length: 5\r\nLast-Event-ID: 7\r\n\r\nhello").expect("valid");
        assert_eq!(
            (r.method, r.body_len, r.last_event_id.as_deref()),
            (Method::Other, 5, Some("7"))
        );
    }
}
