//! `params`: the parameter decoding both listeners share, and the JSON
//! escaping of what it decodes.

use super::{json, percent_encode_all, percent_encode_query};
use crate::encode;
use crate::params::{self, Params};

/// Input: arbitrary bytes, used as a query string, as text for the checks
/// and escapers, and (cut at NUL bytes) as a list of keys and values to
/// encode and decode again.
pub fn params(data: &[u8]) {
    check_query(data);
    check_percent_decoding(data);
    let text = String::from_utf8_lossy(data);
    assert_eq!(params::atoi(&text), c_atoi(text.as_bytes()), "atoi({text:?})");
    check_checks(&text);
    check_escaping(&text);
    check_round_trip(data);
}

/// Decoding a raw query keeps lower-case non-empty keys, and the first of each wins.
fn check_query(q: &[u8]) {
    let p = Params::parse(q);
    let pieces = q.split(|&b| b == b'&').filter(|piece| !piece.is_empty()).count();
    assert!(p.pairs().count() <= pieces);
    for (k, _) in p.pairs() {
        assert!(!k.is_empty() && !k.bytes().any(|b| b.is_ascii_uppercase()), "key {k:?}");
        let first = p.pairs().find(|(k2, _)| *k2 == k).map(|(_, v2)| v2);
        assert_eq!(p.get(k), first);
    }
    let mut body_first = Params::parse(b"cname=from+body");
    body_first.append(q);
    let mut prepended = Params::parse(q);
    prepended.prepend_body(b"cname=from+body");
    assert_eq!(prepended.get("cname"), Some("from body"));
    assert_eq!(prepended, body_first, "the body goes in front of the query");
}

/// Percent-decoding never grows its input and inverts percent-encoding.
fn check_percent_decoding(s: &[u8]) {
    let d = params::percent_decode(s);
    assert!(d.len() <= s.len());
    if !s.contains(&b'%') {
        let plus_as_space: Vec<u8> = s.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        assert_eq!(d, plus_as_space);
        assert_eq!(params::decode_path(s), s);
    }
    let all = percent_encode_all(s);
    assert_eq!(params::percent_decode(all.as_bytes()), s);
    assert_eq!(params::decode_path(all.as_bytes()), s);
    assert_eq!(params::percent_decode(percent_encode_query(s).as_bytes()), s);
    let lower = all.to_ascii_lowercase();
    assert_eq!(params::percent_decode(lower.as_bytes()), s, "hex digits in either case");
}

/// C's `atoi` as C libraries compute it: C `isspace` whitespace, a sign,
/// decimal digits, the result taken modulo 2^32 (glibc's `strtol` saturates;
/// icomet's seqs wrap, and comet chose wrapping).
fn c_atoi(b: &[u8]) -> i32 {
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let neg = b.get(i) == Some(&b'-');
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let mut n: u64 = 0;
    while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
        n = (n * 10 + u64::from(d - b'0')) % (1 << 32);
        i += 1;
    }
    let n = if neg { (1u64 << 32) - n } else { n };
    (n as u32) as i32
}

/// The callback and channel-name checks accept exactly their documented sets.
fn check_checks(text: &str) {
    let cb_ok = text.len() <= params::MAX_CALLBACK_LEN
        && text.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.$".contains(&c));
    assert_eq!(params::check_callback(text).is_ok(), cb_ok, "callback {text:?}");
    for max in [0, 1, 16, 256] {
        let ok = text.len() <= max && !text.bytes().any(|c| c < 0x20 || c == 0x7f);
        match params::check_cname(text, max) {
            Ok(()) => assert!(ok, "cname {text:?} (max {max})"),
            Err(e) => assert!(!ok && !e.0.contains('\n'), "cname {text:?} (max {max}): {e}"),
        }
    }
}

/// `escape_json` output is valid JSON string content that decodes to its
/// input, has no raw control characters or line separators, and passes the
/// `/pub` check; what the `/pub` check accepts is valid JSON string content.
fn check_escaping(text: &str) {
    let escaped = encode::escape_json(text);
    assert_eq!(
        json::string_content(escaped.as_bytes()).as_deref(),
        Ok(text),
        "escape_json({text:?})"
    );
    assert!(!escaped.contains(|c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}'));
    assert_eq!(encode::check_json_string_body(&escaped), Ok(()));
    if encode::check_json_string_body(text).is_ok() {
        if let Err(e) = json::string_content(text.as_bytes()) {
            panic!("/pub accepted {text:?}, which is not JSON string content: {e}");
        }
    }
    let frame = encode::message("data", text, -1, &escaped);
    let value = json::parse(&frame).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&frame)));
    let s = |v: &str| json::Value::String(v.to_string());
    let want = json::Value::Object(vec![
        ("type".to_string(), s("data")),
        ("cname".to_string(), s(text)),
        ("seq".to_string(), json::Value::Number("-1".to_string())),
        ("content".to_string(), s(text)),
    ]);
    assert_eq!(value, want);
}

/// Keys and values (NUL-separated in `data`) percent-encoded into a query
/// decode back: the first value of each key, keys case-insensitive.
fn check_round_trip(data: &[u8]) {
    let fields: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let pairs: Vec<(&[u8], &[u8])> = fields
        .chunks(2)
        .map(|kv| (kv[0], kv.get(1).copied().unwrap_or(b"")))
        .collect();
    let mut query = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            query.push('&');
        }
        let encode = if i % 2 == 0 {
            percent_encode_all
        } else {
            percent_encode_query
        };
        query.push_str(&encode(k));
        query.push('=');
        query.push_str(&encode(v));
    }
    let p = Params::parse(query.as_bytes());
    for (k, _) in &pairs {
        let key = String::from_utf8_lossy(k).to_ascii_lowercase();
        if key.is_empty() {
            continue;
        }
        let first = pairs
            .iter()
            .find(|(k2, _)| String::from_utf8_lossy(k2).to_ascii_lowercase() == key)
            .map(|(_, v2)| String::from_utf8_lossy(v2));
        assert_eq!(p.get(&key), first.as_deref(), "key {key:?} in {query:?}");
    }
}
