//! The Origin allow-list of the WebSocket handshake (CSWSH defence).
//!
//! An origin is compared as scheme, host and port, case-insensitively, with
//! the scheme's default port made explicit, so `https://Example.com` and
//! `https://example.com:443` are the same origin. This file only compares
//! strings; the handshake decides what a refusal answers.

use thiserror::Error;

/// A configured allow-list entry that is not an origin.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0:?} is not an origin (scheme://host or scheme://host:port)")]
pub struct BadOrigin(pub String);

/// Which browser origins may open a WebSocket. A request without an
/// `Origin` header (a non-browser client) is always allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    /// Normalised origins; `None` allows every origin.
    only: Option<Vec<String>>,
}

impl AllowedOrigins {
    /// Every origin is allowed (comet's default: tokens travel in the URL,
    /// no cookie grants anything).
    pub fn any() -> AllowedOrigins {
        AllowedOrigins { only: None }
    }

    /// Only the listed origins (`scheme://host[:port]`, no path) are
    /// allowed; an entry that is not an origin is an error naming it. An
    /// empty list is `front.allowed_origins`' default and allows every
    /// origin, as [`AllowedOrigins::any`].
    pub fn only<'s>(origins: impl IntoIterator<Item = &'s str>) -> Result<AllowedOrigins, BadOrigin> {
        let list = origins
            .into_iter()
            .map(|o| normalise(o.as_bytes()).ok_or_else(|| BadOrigin(o.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowedOrigins {
            only: (!list.is_empty()).then_some(list),
        })
    }

    /// Whether a request with this `Origin` header value (`None`: no header)
    /// may upgrade. A value that is not an origin (`null`, garbage) is
    /// allowed only when every origin is.
    pub fn allows(&self, origin: Option<&[u8]>) -> bool {
        let (Some(list), Some(origin)) = (&self.only, origin) else {
            return true;
        };
        normalise(origin).is_some_and(|o| list.contains(&o))
    }
}

/// `scheme://host:port` in lower case with the port always present (80 for
/// http and ws, 443 for https and wss), or `None` when `raw` is not an origin.
fn normalise(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw)
        .ok()?
        .trim_matches([' ', '\t'])
        .to_ascii_lowercase();
    let (scheme, authority) = text.split_once("://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok || authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, port.parse::<u16>().ok()?)
        }
        _ => (authority, default_port(scheme)?),
    };
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || (host.contains(':') && !bracketed) || host.ends_with(':') {
        return None;
    }
    Some(format!("{scheme}://{host}:{port}"))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_forms() {
        let n = |s: &str| normalise(s.as_bytes());
        assert_eq!(n("https://Example.COM").as_deref(), Some("https://example.com:443"));
        assert_eq!(n("https://example.com:443").as_deref(), Some("https://example.com:443"));
        assert_eq!(n("http://example.com").as_deref(), Some("http://example.com:80"));
        assert_eq!(n("http://127.0.0.1:8000").as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(n("http://[::1]:8000").as_deref(), Some("http://[::1]:8000"));
        assert_eq!(n("http://[::1]").as_deref(), Some("http://[::1]:80"));
        assert_eq!(n("app://x:1").as_deref(), Some("app://x:1"));
        for bad in [
            "null",
            "",
            "example.com",
            "https://",
            "https://example.com/",
            "https://example.com/path",
            "https://example.com:",
            "https://example.com:99999",
            "https://user@example.com",
            "https://::1",
            "app://x",
            "1http://x:1",
            "https://:443",
        ] {
            assert_eq!(n(bad), None, "{bad:?}");
        }
        assert_eq!(normalise(b"https://\xffexample.com"), None);
    }

    #[test]
    fn any_allows_everything() {
        let any = AllowedOrigins::any();
        assert!(any.allows(None));
        assert!(any.allows(Some(b"null")));
        assert!(any.allows(Some(b"https://evil.example")));
        assert_eq!(AllowedOrigins::default(), any);
    }

    #[test]
    fn a_list_allows_its_origins_and_requests_without_origin() {
        let list = AllowedOrigins::only(["https://app.example.com", "http://localhost:8000"]).expect("valid");
        assert!(list.allows(None));
        assert!(list.allows(Some(b"https://app.example.com")));
        assert!(list.allows(Some(b"HTTPS://APP.EXAMPLE.COM:443")));
        assert!(list.allows(Some(b"http://localhost:8000")));
        assert!(!list.allows(Some(b"http://app.example.com")), "scheme differs");
        assert!(!list.allows(Some(b"https://app.example.com:8443")), "port differs");
        assert!(!list.allows(Some(b"http://localhost")), "default port 80 differs");
        assert!(!list.allows(Some(b"https://evil.example")));
        assert!(!list.allows(Some(b"null")));
        assert!(!list.allows(Some(b"")));
    }

    #[test]
    fn an_empty_list_allows_every_origin() {
        let empty = AllowedOrigins::only([]).expect("valid");
        assert_eq!(empty, AllowedOrigins::any());
        assert!(empty.allows(Some(b"http://127.0.0.1:8000")));
    }

    #[test]
    fn a_bad_entry_is_named() {
        let err = AllowedOrigins::only(["https://ok.example", "ok.example"]).expect_err("not an origin");
        assert_eq!(err, BadOrigin("ok.example".into()));
        assert_eq!(
            err.to_string(),
            "\"ok.example\" is not an origin (scheme://host or scheme://host:port)"
        );
    }
}
