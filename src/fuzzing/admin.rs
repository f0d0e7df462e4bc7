//! `admin_params`: the request-target adapter in front of hyper, and the
//! admin parameter decoding of what hyper then sees, including the admin key.

use super::{percent_encode_query, split};
use crate::admin::target::Scanner;
use crate::admin::{bearer_token, key_matches};
use crate::params::{self, Params};

/// Input: a split seed byte, then either raw connection bytes (checked for
/// split-independence of the adapter) or, cut at NUL bytes, the pieces of
/// two pipelined requests: a POST target, its form body, a GET target.
pub fn admin_params(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let whole = rewrite(&[input]);
    assert_eq!(
        rewrite(&split(input, seed)),
        whole,
        "the adapter depends on read boundaries"
    );
    assert!(whole.len() >= input.len(), "the adapter only adds bytes");
    if input.len() <= 256 {
        assert_eq!(rewrite(&split(input, 0)), whole, "the adapter fed single bytes");
    }
    check_requests(input, seed);
    check_key(input, seed);
}

/// The adapter's output for input arriving in `reads`.
fn rewrite(reads: &[&[u8]]) -> Vec<u8> {
    let mut scanner = Scanner::default();
    let mut out = Vec::new();
    for read in reads {
        scanner.feed(read, &mut out);
    }
    out
}

/// A request target as a client types it: `/` and then any bytes but the
/// ones that end a target (space, CR, LF).
fn target(tail: &[u8]) -> Vec<u8> {
    let mut t = vec![b'/'];
    t.extend(tail.iter().filter(|b| !b" \r\n".contains(b)));
    t
}

/// Two pipelined requests built from `input` pass through the adapter, are
/// parsed the way hyper parses them, and decode to the parameters the
/// client meant: the percent-decoded target and the untouched body.
fn check_requests(input: &[u8], seed: u8) {
    let mut fields = input.split(|&b| b == 0);
    let post_target = target(fields.next().unwrap_or_default());
    let body = fields.next().unwrap_or_default();
    let get_target = target(fields.next().unwrap_or_default());
    let mut stream = Vec::new();
    stream.extend_from_slice(b"POST ");
    stream.extend_from_slice(&post_target);
    stream.extend_from_slice(format!(" HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    stream.extend_from_slice(body);
    stream.extend_from_slice(b"GET ");
    stream.extend_from_slice(&get_target);
    stream.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    let out = rewrite(&split(&stream, seed));
    let rest = check_request(&out, &post_target, body);
    let rest = check_request(rest, &get_target, b"");
    assert!(rest.is_empty(), "{} bytes left after two requests", rest.len());
}

/// Parses one request at the start of `out` as hyper does (httparse's default
/// rules, then `http::Uri`), checks it against the `target` and `body` the
/// client sent, and returns the bytes after it.
fn check_request<'a>(out: &'a [u8], target: &[u8], body: &[u8]) -> &'a [u8] {
    let shown = String::from_utf8_lossy(target);
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(out) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("hyper's parser refuses the adapted target of {shown:?}: {other:?}"),
    };
    let path = req.path.expect("a complete request has a target");
    let uri: hyper::Uri = path
        .parse()
        .unwrap_or_else(|e| panic!("hyper refuses the adapted target {path:?} of {shown:?}: {e}"));
    let (sent_path, sent_query) = match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    assert_eq!(
        params::decode_path(uri.path().as_bytes()),
        params::decode_path(sent_path),
        "path of {shown:?}"
    );
    let query = uri.query().map(str::as_bytes);
    assert_eq!(
        query.map(params::percent_decode),
        sent_query.map(params::percent_decode),
        "query of {shown:?}"
    );
    let rest = &out[head_len..];
    assert!(rest.starts_with(body), "the body passes unchanged");
    let mut got = Params::parse(query.unwrap_or_default());
    let mut want = Params::parse(sent_query.unwrap_or_default());
    if !body.is_empty() {
        got.prepend_body(&rest[..body.len()]);
        want.prepend_body(body);
    }
    assert_eq!(got, want, "parameters of {shown:?}");
    &rest[body.len()..]
}

/// A key made of the input's printable ASCII bytes (what `admin.key` may
/// hold) is accepted in every form a client may present it: an
/// `Authorization: Bearer` header whatever the scheme's case and the spaces
/// around the key, a percent-encoded `key` parameter, and the key typed as it
/// is when it has no byte that means something in a query. A key differing in
/// one byte is refused.
fn check_key(input: &[u8], seed: u8) {
    let key: Vec<u8> = input.iter().copied().filter(u8::is_ascii_graphic).collect();
    let Some(&first) = key.first() else {
        return;
    };
    let mut other = key.clone();
    other[0] = if first == b'~' { b'!' } else { first + 1 };
    for scheme in [&b"Bearer "[..], b"bearer  ", b"BEARER \t"] {
        let right = [scheme, &key[..], b" "].concat();
        let wrong = [scheme, &other[..]].concat();
        let shown = String::from_utf8_lossy(&right);
        assert!(key_matches(bearer_token(&right), &key), "header {shown:?}");
        assert!(!key_matches(bearer_token(&wrong), &key), "one byte off: {shown:?}");
    }
    let text = String::from_utf8(key.clone()).expect("printable ASCII is UTF-8");
    let encoded = format!("/info?key={}&cname=a", percent_encode_query(&key));
    let got = key_parameter(encoded.as_bytes(), seed);
    assert_eq!(got.as_deref(), Some(&*text), "encoded key");
    if !key.iter().any(|b| b"%+&=#".contains(b)) {
        let raw = [&b"/info?cname=a&key="[..], &key[..]].concat();
        assert_eq!(key_parameter(&raw, seed).as_deref(), Some(&*text), "raw key");
    }
}

/// The `key` parameter the admin reads from a GET of `target`, after the
/// adapter and hyper's parsing.
fn key_parameter(target: &[u8], seed: u8) -> Option<String> {
    let stream = [b"GET ", target, b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
    let out = rewrite(&split(&stream, seed));
    let mut headers = [httparse::EMPTY_HEADER; 4];
    let mut req = httparse::Request::new(&mut headers);
    let shown = String::from_utf8_lossy(target);
    match req.parse(&out) {
        Ok(httparse::Status::Complete(_)) => {}
        other => panic!("hyper's parser refuses the adapted target of {shown:?}: {other:?}"),
    }
    let uri: hyper::Uri = req
        .path
        .expect("a complete request has a target")
        .parse()
        .unwrap_or_else(|e| panic!("hyper refuses the adapted target of {shown:?}: {e}"));
    Params::parse(uri.query().unwrap_or_default().as_bytes())
        .get("key")
        .map(str::to_string)
}
