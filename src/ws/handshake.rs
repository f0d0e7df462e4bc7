//! The opening handshake (RFC 6455 §4.2): the facts of an upgrade request,
//! collected header by header; the accept key or a typed refusal; the `101`
//! answer.
//!
//! The front's request parser calls [`UpgradeRequest::header`] from its
//! header loop; the values are borrowed from its read buffer, so nothing is
//! allocated, and [`UpgradeRequest::check`] must run before that buffer is
//! reused. No extension and no subprotocol is ever negotiated:
//! `permessage-deflate` offers are ignored, which RFC 6455 allows. This file
//! writes no frames and touches no socket.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;

use super::origin::AllowedOrigins;

/// The GUID that RFC 6455 appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why an upgrade request is refused, answered with plain HTTP before any
/// upgrade. A method other than GET gets 405 (with `Allow: GET`).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Method other than GET: 405.
    #[error("WebSocket upgrades use GET")]
    NotGet,
    /// HTTP/1.0 (or older): 400.
    #[error("WebSocket needs HTTP/1.1")]
    OldHttp,
    /// No `websocket` token in `Upgrade`: 400.
    #[error("missing Upgrade: websocket")]
    NoUpgradeToken,
    /// No `upgrade` token in `Connection`: 400.
    #[error("missing Connection: Upgrade")]
    NoConnectionToken,
    /// No `Sec-WebSocket-Version`: 400.
    #[error("missing Sec-WebSocket-Version")]
    MissingVersion,
    /// A version other than 13: 426 with `Sec-WebSocket-Version: 13`.
    #[error("unsupported Sec-WebSocket-Version (13 only)")]
    UnsupportedVersion,
    /// No `Sec-WebSocket-Key`: 400.
    #[error("missing Sec-WebSocket-Key")]
    MissingKey,
    /// A key that is not base64 of exactly 16 bytes: 400.
    #[error("Sec-WebSocket-Key must be base64 of 16 bytes")]
    BadKey,
    /// `Sec-WebSocket-Key`, `Sec-WebSocket-Version` or `Origin` sent twice: 400.
    #[error("duplicate {0} header")]
    Duplicate(&'static str),
    /// A browser origin not in the allow-list: 403.
    #[error("Origin not allowed")]
    OriginNotAllowed,
}

impl Refusal {
    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NotGet => 405,
            Refusal::UnsupportedVersion => 426,
            Refusal::OriginNotAllowed => 403,
            _ => 400,
        }
    }

    /// The status code and reason phrase, as in a status line.
    pub fn status_line(&self) -> &'static str {
        match self.status() {
            405 => "405 Method Not Allowed",
            426 => "426 Upgrade Required",
            403 => "403 Forbidden",
            _ => "400 Bad Request",
        }
    }

    /// Header lines the answer must carry besides the usual ones, each
    /// ending in CRLF (possibly none).
    pub fn extra_headers(&self) -> &'static str {
        match self {
            Refusal::NotGet => "Allow: GET\r\n",
            Refusal::UnsupportedVersion => "Sec-WebSocket-Version: 13\r\n",
            _ => "",
        }
    }

    /// The whole answer: status line, extra headers, a one-line plain text
    /// body saying why, and `Connection: close`.
    pub fn response(&self) -> Vec<u8> {
        let body = format!("{self}\n");
        format!(
            "HTTP/1.1 {}\r\n{}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.status_line(),
            self.extra_headers(),
            body.len()
        )
        .into_bytes()
    }
}

/// `Sec-WebSocket-Accept` for a request's key: base64 of the SHA-1 of the
/// key and the RFC's GUID, 28 ASCII bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptKey([u8; 28]);

impl AcceptKey {
    /// The accept key for `key` (the header value, surrounding spaces trimmed).
    pub fn for_key(key: &[u8]) -> AcceptKey {
        let mut sha = sha1_smol::Sha1::new();
        sha.update(trim(key));
        sha.update(GUID);
        let mut out = [0u8; 28];
        let n = STANDARD
            .encode_slice(sha.digest().bytes(), &mut out)
            .expect("20 bytes encode to 28");
        debug_assert_eq!(n, 28);
        AcceptKey(out)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base64 is ASCII")
    }

    /// Appends the `101 Switching Protocols` answer to `out` (to be written
    /// together with the first frames).
    pub fn push_response(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
        );
        out.extend_from_slice(&self.0);
        out.extend_from_slice(b"\r\n\r\n");
    }

    /// The `101 Switching Protocols` answer.
    pub fn response(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(129);
        self.push_response(&mut out);
        out
    }
}

/// The facts of a request that matter to an upgrade, borrowed from the
/// request head. Build it with [`UpgradeRequest::new`], feed it every header,
/// then [`UpgradeRequest::check`] it.
#[derive(Debug, Clone, Default)]
pub struct UpgradeRequest<'a> {
    get: bool,
    http11: bool,
    upgrade_websocket: bool,
    connection_upgrade: bool,
    key: Option<&'a [u8]>,
    version: Option<&'a [u8]>,
    origin: Option<&'a [u8]>,
    duplicate: Option<&'static str>,
}

impl<'a> UpgradeRequest<'a> {
    /// A request with `method` and HTTP/1.`minor_version` (httparse's
    /// `Request::version`), no headers seen yet.
    pub fn new(method: &str, minor_version: u8) -> UpgradeRequest<'a> {
        UpgradeRequest {
            get: method == "GET",
            http11: minor_version >= 1,
            ..UpgradeRequest::default()
        }
    }

    /// Takes one header; names are case-insensitive, headers other than the
    /// five that matter are ignored. `Upgrade` and `Connection` are
    /// comma-separated token lists and may repeat.
    pub fn header(&mut self, name: &str, value: &'a [u8]) {
        let once = |slot: &mut Option<&'a [u8]>, duplicate: &mut Option<&'static str>, label| {
            if slot.replace(value).is_some() {
                duplicate.get_or_insert(label);
            }
        };
        if name.eq_ignore_ascii_case("upgrade") {
            self.upgrade_websocket |= has_token(value, b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            self.connection_upgrade |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            once(&mut self.key, &mut self.duplicate, "Sec-WebSocket-Key");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            once(&mut self.version, &mut self.duplicate, "Sec-WebSocket-Version");
        } else if name.eq_ignore_ascii_case("origin") {
            once(&mut self.origin, &mut self.duplicate, "Origin");
        }
    }

    /// The accept key when the request is a valid upgrade that `origins`
    /// allows, else the refusal to answer with. Checked in this order:
    /// method, HTTP version, `Upgrade`, `Connection`, duplicates, version,
    /// key, origin.
    pub fn check(&self, origins: &AllowedOrigins) -> Result<AcceptKey, Refusal> {
        if !self.get {
            return Err(Refusal::NotGet);
        }
        if !self.http11 {
            return Err(Refusal::OldHttp);
        }
        if !self.upgrade_websocket {
            return Err(Refusal::NoUpgradeToken);
        }
        if !self.connection_upgrade {
            return Err(Refusal::NoConnectionToken);
        }
        if let Some(name) = self.duplicate {
            return Err(Refusal::Duplicate(name));
        }
        match self.version.map(trim) {
            None => return Err(Refusal::MissingVersion),
            Some(b"13") => {}
            Some(_) => return Err(Refusal::UnsupportedVersion),
        }
        let key = self.key.map(trim).ok_or(Refusal::MissingKey)?;
        let mut decoded = [0u8; 18];
        if key.len() != 24 || STANDARD.decode_slice(key, &mut decoded) != Ok(16) {
            return Err(Refusal::BadKey);
        }
        if !origins.allows(self.origin.map(trim)) {
            return Err(Refusal::OriginNotAllowed);
        }
        Ok(AcceptKey::for_key(key))
    }
}

/// `value` without leading and trailing whitespace.
fn trim(value: &[u8]) -> &[u8] {
    value.trim_ascii()
}

/// Whether the comma-separated list `value` holds `token`, case-insensitively.
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| trim(t).eq_ignore_ascii_case(token))
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
