//! Response helpers and the one place where admin errors become HTTP.
//!
//! Handlers return `Result<Response, AdminError>`; [`AdminError::into_response`]
//! is the only code that chooses a status, reason phrase, headers and body
//! for a failure, and [`finish`] adds what every admin reply carries (the
//! `Server` header, libevent's default content type). Nothing here reads
//! requests or touches the channels.

use bytes::Bytes;
use hyper::ext::ReasonPhrase;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, RETRY_AFTER, SERVER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};

use super::body::AdminBody;
use crate::intake::IntakeError;
use crate::params::BadParam;

/// A response of the admin listener.
pub type AdminResponse = Response<AdminBody>;

/// The `Server` header of every admin reply.
pub const SERVER_NAME: &str = "icomet 0.2.5";
/// The version `/info` reports.
pub const VERSION: &str = "0.2.5";
/// libevent's content type for replies whose handler set none.
pub const DEFAULT_TYPE: &str = "text/html; charset=ISO-8859-1";
/// `/sign`, `/close`, `/clear`, `/info`, `/check`.
pub const HTML_UTF8: &str = "text/html; charset=utf-8";
/// `/pub` and `/push` acknowledgements.
pub const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
/// One-line error reasons (400, 413).
pub const TEXT_UTF8: &str = "text/plain; charset=utf-8";
/// `/stats`.
pub const JSON: &str = "application/json";
/// `/metrics`: the Prometheus text exposition format.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
/// libevent's generic error pages.
pub const HTML: &str = "text/html";

/// Why a request failed; each variant maps to exactly one kind of reply.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The IP filter refused the client.
    #[error("Forbidden")]
    Forbidden,
    /// A method libevent does not dispatch (OPTIONS, PATCH, TRACE, ...).
    #[error("Not Implemented")]
    NotImplemented,
    /// No admin endpoint has this path; carries the request target.
    #[error("The requested URL {0} was not found on this server.")]
    NotFound(String),
    /// The endpoint does not take this method.
    #[error("Invalid Method")]
    InvalidMethod,
    /// A parameter cannot be used.
    #[error(transparent)]
    BadParam(#[from] BadParam),
    /// The body or a content parameter is larger than `admin.max_body_bytes`.
    #[error("{0}")]
    TooLarge(String),
    /// `max_channels` reached while creating a channel.
    #[error("Too Many Channels")]
    TooManyChannels,
    /// The channels cannot take commands now (cluster mode: Redis is
    /// unreachable); nothing was published.
    #[error("{0}")]
    Unavailable(String),
    /// `/ready` while the server is not ready; carries the reason.
    #[error("{0}")]
    NotReady(String),
    /// `/close` or `/clear` of a channel that does not exist.
    #[error("channel[{0}] not connected")]
    NotConnected(String),
    /// `admin.key` is set and the request did not carry it.
    #[error("admin key required")]
    KeyMissing,
    /// The request carried a key that is not `admin.key`.
    #[error("wrong admin key")]
    KeyWrong,
    /// The request body could not be read (bad chunk, client gone).
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
}

impl From<IntakeError> for AdminError {
    fn from(e: IntakeError) -> AdminError {
        match e {
            IntakeError::TooManyChannels { .. } => AdminError::TooManyChannels,
            IntakeError::NoSuchChannel(cname) => AdminError::NotConnected(cname),
            IntakeError::Unavailable(why) => AdminError::Unavailable(why),
        }
    }
}

impl AdminError {
    /// The reply for this error.
    pub fn into_response(self) -> AdminResponse {
        match self {
            AdminError::Forbidden => {
                let mut r = reply(StatusCode::FORBIDDEN, None, AdminBody::empty());
                r.headers_mut().insert(CONNECTION, HeaderValue::from_static("Close"));
                r
            }
            AdminError::NotImplemented => generic(closing(reply(
                StatusCode::NOT_IMPLEMENTED,
                Some(HTML),
                AdminBody::full(crate::front::respond::NOT_IMPLEMENTED_PAGE),
            ))),
            AdminError::NotFound(target) => {
                let page = crate::front::respond::not_found_page(&target);
                generic(closing(reply(StatusCode::NOT_FOUND, Some(HTML), AdminBody::full(page))))
            }
            e @ (AdminError::KeyMissing | AdminError::KeyWrong) => {
                let mut r = line(StatusCode::UNAUTHORIZED, &e.to_string());
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"comet admin\""),
                );
                r
            }
            AdminError::InvalidMethod => with_reason(StatusCode::METHOD_NOT_ALLOWED, b"Invalid Method"),
            AdminError::TooManyChannels => with_reason(StatusCode::TOO_MANY_REQUESTS, b"Too Many Channels"),
            AdminError::Unavailable(why) => {
                let mut r = line(StatusCode::SERVICE_UNAVAILABLE, &why);
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            AdminError::NotReady(why) => line(StatusCode::SERVICE_UNAVAILABLE, &why),
            AdminError::BadParam(e) => line(StatusCode::BAD_REQUEST, &e.to_string()),
            e @ AdminError::BodyRead(_) => closing(line(StatusCode::BAD_REQUEST, &e.to_string())),
            AdminError::TooLarge(reason) => closing(line(StatusCode::PAYLOAD_TOO_LARGE, &reason)),
            AdminError::NotConnected(cname) => {
                let body = format!("channel[{}] not connected\n", html_escape(&cname));
                reply(StatusCode::NOT_FOUND, Some(HTML_UTF8), AdminBody::full(body))
            }
        }
    }
}

/// A reply with a status, an optional content type and a body.
pub fn reply(status: StatusCode, content_type: Option<&'static str>, body: AdminBody) -> AdminResponse {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Some(t) = content_type {
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(t));
    }
    r
}

/// `200 OK` with a content type and a complete body.
pub fn ok(content_type: &'static str, body: impl Into<Bytes>) -> AdminResponse {
    reply(StatusCode::OK, Some(content_type), AdminBody::full(body))
}

/// An empty reply with a custom reason phrase (`405 Invalid Method`).
fn with_reason(status: StatusCode, reason: &'static [u8]) -> AdminResponse {
    let mut r = reply(status, None, AdminBody::empty());
    r.extensions_mut().insert(ReasonPhrase::from_static(reason));
    r
}

/// A one-line plain-text reason.
fn line(status: StatusCode, reason: &str) -> AdminResponse {
    reply(status, Some(TEXT_UTF8), AdminBody::full(format!("{reason}\n")))
}

/// Marks libevent's own error pages (unknown path, unknown method), which
/// carry no `Server` header (reference §1.1).
#[derive(Debug, Clone, Copy)]
struct Generic;

fn generic(mut r: AdminResponse) -> AdminResponse {
    r.extensions_mut().insert(Generic);
    r
}

/// Marks a reply as the last one on its connection.
fn closing(mut r: AdminResponse) -> AdminResponse {
    r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Adds what every admin reply carries: `Server`, and libevent's default
/// content type when the handler set none.
pub fn finish(r: &mut AdminResponse) {
    let is_generic = r.extensions().get::<Generic>().is_some();
    let h = r.headers_mut();
    if !is_generic {
        h.insert(SERVER, HeaderValue::from_static(SERVER_NAME));
    }
    if !h.contains_key(CONTENT_TYPE) {
        h.insert(CONTENT_TYPE, HeaderValue::from_static(DEFAULT_TYPE));
    }
}

/// libevent's `evhttp_htmlescape`, shared with the front listener's pages.
pub use crate::front::respond::html_escape;

/// `CB(json);\n` when a callback parameter is present (even empty), else `json\n`.
pub fn jsonp(cb: Option<&str>, json: &str) -> String {
    match cb {
        Some(cb) => format!("{cb}({json});\n"),
        None => format!("{json}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escape_like_libevent() {
        assert_eq!(
            html_escape(r#"/x?a=<b>&c="d"'"#),
            "/x?a=&lt;b&gt;&amp;c=&quot;d&quot;&#039;"
        );
        assert_eq!(html_escape("/plain"), "/plain");
    }

    #[test]
    fn jsonp_wraps_when_present() {
        assert_eq!(jsonp(Some("cb"), "{}"), "cb({});\n");
        assert_eq!(jsonp(Some(""), "{}"), "({});\n");
        assert_eq!(jsonp(None, "{}"), "{}\n");
    }

    #[test]
    fn errors_map_to_statuses() {
        let r = AdminError::InvalidMethod.into_response();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            r.extensions().get::<ReasonPhrase>().map(|p| p.as_bytes()),
            Some(&b"Invalid Method"[..])
        );
        let r = AdminError::TooManyChannels.into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let r = AdminError::Forbidden.into_response();
        assert_eq!(r.headers().get(CONNECTION).map(|v| v.as_bytes()), Some(&b"Close"[..]));
        let mut r = AdminError::NotConnected("a".into()).into_response();
        finish(&mut r);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            r.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(HTML_UTF8.as_bytes())
        );
        assert_eq!(
            r.headers().get(SERVER).map(|v| v.as_bytes()),
            Some(SERVER_NAME.as_bytes())
        );
    }
}
