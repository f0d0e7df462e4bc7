//! Request parameters, shared by the front and the admin listener.
//!
//! Parsing is lenient (icomet's all-or-nothing strict parse is §11.2's bug):
//! every `&`-separated piece is used, a piece without `=` is a key with an
//! empty value, `+` is a space, valid `%XX` escapes are decoded and anything
//! else is kept as it is. Keys are case-insensitive and the first occurrence
//! wins; body parameters (POST) come before query parameters.

use std::borrow::Cow;

/// Decoded `key=value` pairs in lookup order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// Longest accepted JSONP callback name.
pub const MAX_CALLBACK_LEN: usize = 96;

/// A parameter that cannot be used, with a one-line reason for the 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadParam(pub Cow<'static, str>);

impl Params {
    /// Parses a query string (the part after `?`) or a form body.
    pub fn parse(query: &[u8]) -> Params {
        let mut p = Params::default();
        p.append(query);
        p
    }

    /// Adds the pairs of `query` after the ones already present.
    pub fn append(&mut self, query: &[u8]) {
        for piece in query.split(|&b| b == b'&') {
            if piece.is_empty() {
                continue;
            }
            let (k, v) = match piece.iter().position(|&b| b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &b""[..]),
            };
            let key = String::from_utf8_lossy(&percent_decode(k)).to_ascii_lowercase();
            if key.is_empty() {
                continue;
            }
            let value = match String::from_utf8(percent_decode(v)) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            };
            self.pairs.push((key, value));
        }
    }

    /// Puts the pairs of a form body in front, so they override the query.
    pub fn prepend_body(&mut self, body: &[u8]) {
        let mut merged = Params::parse(body);
        merged.pairs.append(&mut self.pairs);
        *self = merged;
    }

    /// The first value of `key` (give it lower-case).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every pair in lookup order (a key may repeat; [`Params::get`] sees the first).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key`, or `""`.
    pub fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    /// An integer parameter read like C `atoi` with wrapping i32 arithmetic;
    /// `default` when absent.
    pub fn int(&self, key: &str, default: i32) -> i32 {
        self.get(key).map_or(default, atoi)
    }
}

/// C `atoi` with wrapping arithmetic: leading whitespace (C `isspace`:
/// space, TAB, LF, VT, FF, CR; no Unicode spaces), a sign, digits up to the
/// first non-digit; 0 when there are none.
pub fn atoi(s: &str) -> i32 {
    let b = s
        .trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r'])
        .as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let mut n: i32 = 0;
    for &d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = n.wrapping_mul(10).wrapping_add(i32::from(d - b'0'));
    }
    if neg {
        n.wrapping_neg()
    } else {
        n
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes and `+`; malformed escapes are kept literally.
pub fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(h), Some(l)) = (s.get(i + 1).and_then(|&b| hex(b)), s.get(i + 2).and_then(|&b| hex(b))) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Decodes `%XX` escapes in a URL path (`+` stays a `+`).
pub fn decode_path(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let (Some(h), Some(l)) = (s.get(i + 1).and_then(|&b| hex(b)), s.get(i + 2).and_then(|&b| hex(b))) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Checks a JSONP callback name: `[A-Za-z0-9_.$]`, at most [`MAX_CALLBACK_LEN`]
/// bytes. An empty name is valid here; callers decide what empty means.
pub fn check_callback(cb: &str) -> Result<(), BadParam> {
    if cb.len() > MAX_CALLBACK_LEN {
        return Err(BadParam(format!("cb is longer than {MAX_CALLBACK_LEN} bytes").into()));
    }
    if !cb
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'$')
    {
        return Err(BadParam("cb may only contain A-Z a-z 0-9 _ . $".into()));
    }
    Ok(())
}

/// Checks a channel name: at most `max` bytes of UTF-8 without control
/// characters. The empty name is icomet's valid channel `""`.
pub fn check_cname(cname: &str, max: usize) -> Result<(), BadParam> {
    if cname.len() > max {
        return Err(BadParam(format!("cname is longer than {max} bytes").into()));
    }
    if cname.bytes().any(|c| c < 0x20 || c == 0x7f) {
        return Err(BadParam("cname contains a control character".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_parsing_keeps_what_it_can() {
        let p = Params::parse(br#"cname=q5&content={"a":1}&&flag&x=%zz%41+b&bad=%"#);
        assert_eq!(p.get("cname"), Some("q5"));
        assert_eq!(p.get("content"), Some(r#"{"a":1}"#));
        assert_eq!(p.get("flag"), Some(""));
        assert_eq!(p.get("x"), Some("%zzA b"));
        assert_eq!(p.get("bad"), Some("%"));
        assert_eq!(p.get("missing"), None);
    }

    #[test]
    fn keys_are_case_insensitive_and_first_wins() {
        let p = Params::parse(b"CNAME=a&content=first&Content=second");
        assert_eq!(p.get("cname"), Some("a"));
        assert_eq!(p.get("content"), Some("first"));
    }

    #[test]
    fn body_overrides_query() {
        let mut p = Params::parse(b"cname=q&content=query");
        p.prepend_body(b"content=body+text");
        assert_eq!(p.get("content"), Some("body text"));
        assert_eq!(p.get("cname"), Some("q"));
    }

    #[test]
    fn nul_and_invalid_utf8_do_not_truncate() {
        let p = Params::parse(b"content=x%00y&n=%ff");
        assert_eq!(p.get("content"), Some("x\0y"));
        assert_eq!(p.get("n"), Some("\u{fffd}"));
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("42"), 42);
        assert_eq!(atoi("  -7x"), -7);
        assert_eq!(atoi("+3"), 3);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi(""), 0);
        assert_eq!(atoi("2147483648"), i32::MIN);
        assert_eq!(atoi("\u{b}\u{c}\t\r\n 12"), 12);
        // Found by the params fuzz target: Unicode spaces are not C whitespace.
        assert_eq!(atoi("\u{2029}8"), 0);
        assert_eq!(atoi("\u{a0}8"), 0);
        let p = Params::parse(b"seq=5");
        assert_eq!(p.int("seq", 0), 5);
        assert_eq!(p.int("noop", 9), 9);
    }

    #[test]
    fn callback_and_cname_checks() {
        assert!(check_callback("jQuery1910_123.x$").is_ok());
        assert!(check_callback("").is_ok());
        assert!(check_callback("alert(1)//").is_err());
        assert!(check_callback(&"a".repeat(MAX_CALLBACK_LEN + 1)).is_err());
        assert!(check_cname("chat room/1 é", 64).is_ok());
        assert!(check_cname("", 64).is_ok());
        assert!(check_cname("a\nb", 64).is_err());
        assert!(check_cname(&"a".repeat(65), 64).is_err());
    }

    #[test]
    fn path_decoding_keeps_plus() {
        assert_eq!(decode_path(b"/%73ub+x%zz"), b"/sub+x%zz".to_vec());
    }
}
