use super::*;

const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

/// A valid upgrade request, with `extra` headers after the usual ones.
fn request<'a>(method: &str, minor: u8, headers: &[(&str, &'a [u8])]) -> UpgradeRequest<'a> {
    let mut r = UpgradeRequest::new(method, minor);
    for (name, value) in headers {
        r.header(name, value);
    }
    r
}

fn valid<'a>(extra: &[(&'static str, &'a [u8])]) -> UpgradeRequest<'a> {
    let mut headers: Vec<(&str, &[u8])> = vec![
        ("Host", b"example.com"),
        ("Upgrade", b"websocket"),
        ("Connection", b"Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", b"13"),
    ];
    headers.extend_from_slice(extra);
    request("GET", 1, &headers)
}

#[test]
fn rfc_6455_accept_key() {
    // RFC 6455 §1.3.
    let accept = AcceptKey::for_key(KEY);
    assert_eq!(accept.as_str(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(AcceptKey::for_key(b"  dGhlIHNhbXBsZSBub25jZQ== "), accept);
}

#[test]
fn switching_protocols_bytes() {
    let accept = valid(&[]).check(&AllowedOrigins::any()).expect("valid upgrade");
    assert_eq!(
        accept.response(),
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
    assert_eq!(accept.response().len(), 129);
    let mut corked = b"before".to_vec();
    accept.push_response(&mut corked);
    assert_eq!(&corked[6..], accept.response());
}

#[test]
fn header_names_and_tokens_are_case_insensitive_lists() {
    let r = request(
        "GET",
        1,
        &[
            ("upgrade", b"h2c, WebSocket"),
            ("CONNECTION", b"keep-alive,  Upgrade "),
            ("sec-websocket-key", b" dGhlIHNhbXBsZSBub25jZQ=="),
            ("SEC-WEBSOCKET-VERSION", b" 13 "),
            (
                "Sec-WebSocket-Extensions",
                b"permessage-deflate; client_max_window_bits",
            ),
            ("Sec-WebSocket-Protocol", b"chat"),
        ],
    );
    assert_eq!(
        r.check(&AllowedOrigins::any()).map(|a| a.as_str().to_string()),
        Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into())
    );
    // Firefox sends the two tokens in two Connection headers in some proxies' hands.
    let split = request(
        "GET",
        1,
        &[
            ("Connection", b"keep-alive"),
            ("Connection", b"upgrade"),
            ("Upgrade", b"websocket"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", b"13"),
        ],
    );
    assert!(split.check(&AllowedOrigins::any()).is_ok());
}

#[test]
fn refusals_in_order_with_their_status() {
    let any = AllowedOrigins::any();
    let full: [(&str, &[u8]); 4] = [
        ("Upgrade", b"websocket"),
        ("Connection", b"Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", b"13"),
    ];
    let without = |skip: &str| -> Vec<(&str, &[u8])> { full.iter().copied().filter(|(n, _)| *n != skip).collect() };
    let cases: Vec<(UpgradeRequest, Refusal, u16)> = vec![
        (request("POST", 1, &full), Refusal::NotGet, 405),
        (request("get", 1, &full), Refusal::NotGet, 405),
        (request("GET", 0, &full), Refusal::OldHttp, 400),
        (request("GET", 1, &without("Upgrade")), Refusal::NoUpgradeToken, 400),
        (
            request("GET", 1, &without("Connection")),
            Refusal::NoConnectionToken,
            400,
        ),
        (
            request("GET", 1, &without("Sec-WebSocket-Version")),
            Refusal::MissingVersion,
            400,
        ),
        (
            request("GET", 1, &without("Sec-WebSocket-Key")),
            Refusal::MissingKey,
            400,
        ),
        (
            valid(&[("Sec-WebSocket-Version", b"13")]),
            Refusal::Duplicate("Sec-WebSocket-Version"),
            400,
        ),
        (
            valid(&[("Sec-WebSocket-Key", KEY)]),
            Refusal::Duplicate("Sec-WebSocket-Key"),
            400,
        ),
        (
            valid(&[("Origin", b"https://a.example"), ("origin", b"https://a.example")]),
            Refusal::Duplicate("Origin"),
            400,
        ),
    ];
    for (r, refusal, status) in cases {
        assert_eq!(r.check(&any), Err(refusal), "{r:?}");
        assert_eq!(refusal.status(), status);
    }
    let mut upgrade_other = without("Upgrade");
    upgrade_other.push(("Upgrade", b"websocket2, h2c"));
    assert_eq!(
        request("GET", 1, &upgrade_other).check(&any),
        Err(Refusal::NoUpgradeToken)
    );
}

#[test]
fn other_versions_get_426() {
    for version in [&b"8"[..], b"12", b"14", b"13, 8", b"", b"thirteen"] {
        let mut r = request(
            "GET",
            1,
            &[
                ("Upgrade", b"websocket"),
                ("Connection", b"Upgrade"),
                ("Sec-WebSocket-Key", KEY),
            ],
        );
        r.header("Sec-WebSocket-Version", version);
        assert_eq!(
            r.check(&AllowedOrigins::any()),
            Err(Refusal::UnsupportedVersion),
            "{version:?}"
        );
    }
    let response = Refusal::UnsupportedVersion.response();
    assert_eq!(
        String::from_utf8(response).expect("ASCII"),
        "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Type: text/plain\r\n\
         Content-Length: 44\r\nConnection: close\r\n\r\nunsupported Sec-WebSocket-Version (13 only)\n"
    );
}

#[test]
fn keys_must_be_base64_of_16_bytes() {
    let any = AllowedOrigins::any();
    for bad in [
        &b""[..],
        b"dGhlIHNhbXBsZSBub25jZQ=",              // 23 characters
        b"dGhlIHNhbXBsZSBub25jZQ===",            // 25 characters
        b"dGhlIHNhbXBsZSBub25jZSE=",             // 17 bytes
        b"dGhlIHNhbXBsZSBub25jZQ!!",             // not base64
        b"dGhlIHNhbXBsZSBub25jZQ",               // no padding
        b"dGhlIHNhbXBsZSBub25jZR==",             // non-canonical last character
        b"dGhlIHNhbXBsZSBub25j ZQ=",             // space inside
        b"YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=", // 26 bytes
    ] {
        let mut r = request(
            "GET",
            1,
            &[
                ("Upgrade", b"websocket"),
                ("Connection", b"upgrade"),
                ("Sec-WebSocket-Version", b"13"),
            ],
        );
        r.header("Sec-WebSocket-Key", bad);
        assert_eq!(
            r.check(&any),
            Err(Refusal::BadKey),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut r = request(
        "GET",
        1,
        &[
            ("Upgrade", b"websocket"),
            ("Connection", b"upgrade"),
            ("Sec-WebSocket-Version", b"13"),
        ],
    );
    r.header("Sec-WebSocket-Key", b"AAAAAAAAAAAAAAAAAAAAAA==");
    assert!(r.check(&any).is_ok(), "16 zero bytes are a key");
}

#[test]
fn origin_allow_list() {
    let list = AllowedOrigins::only(["https://app.example.com"]).expect("valid list");
    assert!(valid(&[]).check(&list).is_ok(), "no Origin: not a browser");
    assert!(valid(&[("Origin", b"https://APP.example.com")]).check(&list).is_ok());
    assert!(valid(&[("Origin", b"https://app.example.com:443")])
        .check(&list)
        .is_ok());
    for origin in [&b"https://evil.example"[..], b"http://app.example.com", b"null"] {
        assert_eq!(
            valid(&[("Origin", origin)]).check(&list),
            Err(Refusal::OriginNotAllowed)
        );
    }
    assert!(valid(&[("Origin", b"null")]).check(&AllowedOrigins::any()).is_ok());
    assert_eq!(Refusal::OriginNotAllowed.status_line(), "403 Forbidden");
}

#[test]
fn refusal_responses() {
    let text = |r: Refusal| String::from_utf8(r.response()).expect("ASCII");
    assert_eq!(
        text(Refusal::NotGet),
        "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Type: text/plain\r\n\
         Content-Length: 27\r\nConnection: close\r\n\r\nWebSocket upgrades use GET\n"
    );
    assert_eq!(
        text(Refusal::BadKey),
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
         Content-Length: 45\r\nConnection: close\r\n\r\nSec-WebSocket-Key must be base64 of 16 bytes\n"
    );
    assert_eq!(
        text(Refusal::OriginNotAllowed),
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\
         Content-Length: 19\r\nConnection: close\r\n\r\nOrigin not allowed\n"
    );
}
