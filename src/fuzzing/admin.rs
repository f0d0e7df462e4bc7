//! `admin_params`: the request-target adapter in front of hyper, and the
//! admin parameter decoding of what hyper then sees.

use super::split;
use crate::admin::target::Scanner;
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
