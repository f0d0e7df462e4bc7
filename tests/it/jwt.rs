//! JWT subscribe tokens (`front.auth: jwt`) through real subscribes: tokens
//! minted here with `jsonwebtoken` (and `alg: none` built by hand), sent
//! over `/sse`, `/sub` with a JSONP callback, `/ws` (the URL channel) and a
//! WebSocket `sub` command; the answers compared byte for byte, the
//! refusals counted by reason in `/metrics`, and a bad key file refused at
//! start with the key's name.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use comet::config::{Auth, Config};
use comet::server::Server;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::support::ws::Ws;
use crate::support::{admin, config, metric, start, Client};

/// The HS256 secret of these tests (test-only).
pub const SECRET: &str = "comet-it-secret-0123456789abcdef0123";

/// A JWT-mode test config.
pub fn jwt_config() -> Config {
    let mut c = config();
    c.front.auth = Auth::Jwt;
    c.front.jwt.secret = SECRET.to_string();
    c
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// `claims` signed with HS256 and `secret`.
pub fn mint_with(secret: &str, claims: &Value) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).expect("a secret");
    encode(&Header::new(Algorithm::HS256), claims, &key).expect("mint")
}

/// `claims` signed with HS256 and the test secret.
pub fn mint(claims: &Value) -> String {
    mint_with(SECRET, claims)
}

/// An icomet message object.
fn msg(kind: &str, cname: &str, seq: i32, content: &str) -> String {
    format!(r#"{{"type":"{kind}","cname":"{cname}","seq":{seq},"content":"{content}"}}"#)
}

/// How a subscribe was answered: its first object, accepted or refused.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Accepted(String),
    Refused(String),
}

/// Subscribes over `/sse`; reads the head and the first event.
fn over_sse(s: &Server, cname: &str, token: &str) -> Answer {
    let mut c = Client::connect(s.front_addr());
    c.get(&format!("/sse?cname={cname}&token={token}"));
    let head = c.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    if head.contains("\r\nConnection: keep-alive\r\n") {
        assert_eq!(c.chunk_str(), "retry: 3000\n\n");
        let event = c.chunk_str();
        let json = event
            .strip_prefix("id: 0\ndata: ")
            .and_then(|e| e.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("an SSE event: {event:?}"));
        Answer::Accepted(json.to_string())
    } else {
        // A refusal: one event without an id, then the end.
        let event = c.chunk_str();
        assert_eq!(c.chunk_str(), "", "the response ends");
        let json = event
            .strip_prefix("data: ")
            .and_then(|e| e.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("an SSE event: {event:?}"));
        Answer::Refused(json.to_string())
    }
}

/// Subscribes with a JSONP long poll (seq 0: answered at once either way).
fn over_jsonp(s: &Server, cname: &str, token: &str) -> Answer {
    let mut c = Client::connect(s.front_addr());
    c.get(&format!("/sub?cname={cname}&cb=cb&token={token}"));
    let head = c.head();
    let body = c.chunk_str();
    assert_eq!(c.chunk_str(), "", "a long poll's answer ends it");
    let json = body
        .strip_prefix("cb(")
        .and_then(|b| b.strip_suffix(");\n"))
        .unwrap_or_else(|| panic!("JSONP: {body:?}"))
        .to_string();
    if head.contains("\r\nConnection: keep-alive\r\n") {
        Answer::Accepted(json)
    } else {
        Answer::Refused(json)
    }
}

/// Subscribes with the URL channel of a WebSocket: a refusal is the 401
/// object then close 4401.
fn over_ws_url(s: &Server, cname: &str, token: &str) -> Answer {
    let mut ws = Ws::connect(s.front_addr(), &format!("/ws?cname={cname}&token={token}"));
    let first = ws.text();
    if first.starts_with(r#"{"type":"401""#) {
        ws.expect_close(4401);
        Answer::Refused(first)
    } else {
        Answer::Accepted(first)
    }
}

/// Subscribes with a `sub` command on a WebSocket without a URL channel;
/// a refusal is a 401 object and the socket stays (checked with a ping).
fn over_ws_sub(s: &Server, cname: &str, token: &str) -> Answer {
    let mut ws = Ws::connect(s.front_addr(), "/ws");
    ws.send_text(&json!({"type": "sub", "cname": cname, "token": token}).to_string());
    let first = ws.text();
    if first.starts_with(r#"{"type":"401""#) {
        ws.send_raw(&crate::support::ws::masked(0x89, b"still"));
        let pong = ws.frame();
        assert_eq!((pong.opcode, pong.payload.as_slice()), (10, &b"still"[..]));
        Answer::Refused(first)
    } else {
        Answer::Accepted(first)
    }
}

type Transport = fn(&Server, &str, &str) -> Answer;

const TRANSPORTS: [(&str, Transport); 4] = [
    ("sse", over_sse),
    ("jsonp", over_jsonp),
    ("ws url", over_ws_url),
    ("ws sub", over_ws_sub),
];

/// The `alg: none` form of `claims`: no signature at all.
fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

#[test]
fn tokens_are_checked_the_same_way_on_every_transport() {
    // A wide leeway, so that the tokens within it stay so however slowly
    // the test runs.
    let mut c = jwt_config();
    c.front.jwt.leeway_secs = 120;
    let s = start(c);
    let hour = now() + 3600;
    let accepted = [
        ("room", mint(&json!({"cname": "room", "exp": hour, "sub": "u1"}))),
        ("chat.7", mint(&json!({"channels": ["news", "chat.*"], "exp": hour}))),
        // Within the leeway of its expiry, and of its start.
        ("room", mint(&json!({"cname": "room", "exp": now() - 60}))),
        ("room", mint(&json!({"cname": "room", "exp": hour, "nbf": now() + 60}))),
    ];
    let refused = [
        ("room", mint(&json!({"cname": "room", "exp": now() - 600})), "expired"),
        (
            "room",
            mint(&json!({"cname": "room", "exp": hour, "nbf": now() + 600})),
            "not_yet_valid",
        ),
        (
            "room",
            mint(&json!({"cname": "other", "exp": hour})),
            "channel_not_allowed",
        ),
        (
            "chatroom",
            mint(&json!({"channels": ["chat.*"], "exp": hour})),
            "channel_not_allowed",
        ),
        (
            "room",
            mint_with(
                "another-secret-0123456789abcdef0123",
                &json!({"cname": "room", "exp": hour}),
            ),
            "bad_signature",
        ),
        (
            "room",
            unsigned(&json!({"cname": "room", "exp": hour})),
            "wrong_algorithm",
        ),
        ("room", String::new(), "malformed"),
        ("room", "not.a-jwt".to_string(), "malformed"),
    ];
    for (name, transport) in TRANSPORTS {
        for (cname, token) in &accepted {
            assert_eq!(
                transport(&s, cname, token),
                Answer::Accepted(msg("next_seq", cname, 1, "")),
                "{name}: {cname} with {token}"
            );
        }
        for (cname, token, reason) in &refused {
            assert_eq!(
                transport(&s, cname, token),
                Answer::Refused(msg("401", cname, 0, "Token error")),
                "{name}: {reason}"
            );
        }
    }
    // A granted channel is created by its subscribe (unlike token mode).
    assert!(s.shared().channels.exists("chat.7"));
    assert!(!s.shared().channels.exists("chatroom"));
    let n = TRANSPORTS.len() as u64;
    assert_eq!(
        metric(&s, "comet_jwt_verifications_total"),
        n * (accepted.len() + refused.len()) as u64
    );
    for (reason, count) in [
        ("expired", 1),
        ("not_yet_valid", 1),
        ("channel_not_allowed", 2),
        ("bad_signature", 1),
        ("wrong_algorithm", 1),
        ("malformed", 2),
        ("wrong_audience", 0),
        ("wrong_issuer", 0),
    ] {
        assert_eq!(
            metric(&s, &format!("comet_jwt_refusals_total{{reason=\"{reason}\"}}")),
            n * count,
            "{reason}"
        );
    }
    // Each accepted (token, channel) pair was verified once with its
    // signature, then answered from the cache.
    assert_eq!(
        metric(&s, "comet_jwt_cache_hits_total"),
        (n - 1) * accepted.len() as u64
    );
}

#[test]
fn a_subscriber_with_a_token_gets_its_messages() {
    let s = start(jwt_config());
    let token = mint(&json!({"channels": ["live.*"], "exp": now() + 60}));
    let mut c = Client::connect(s.front_addr());
    c.get(&format!("/stream?cname=live.1&seq=1&token={token}"));
    c.head();
    crate::support::eventually("subscribed", || crate::support::subscribers(&s, "live.1") == 1);
    admin(&s, "/push?cname=live.1&content=hi");
    assert_eq!(c.chunk_str(), format!("{}\n", msg("data", "live.1", 1, "hi")));
    // A WebSocket holds several granted channels, each checked on its own.
    let mut ws = Ws::connect(s.front_addr(), &format!("/ws?cname=live.2&seq=1&token={token}"));
    ws.send_text(&json!({"type": "sub", "cname": "live.3", "seq": 1, "token": token}).to_string());
    ws.send_text(&json!({"type": "sub", "cname": "dead.1", "token": token}).to_string());
    assert_eq!(ws.text(), msg("401", "dead.1", 0, "Token error"));
    crate::support::eventually("both channels held", || crate::support::subscribers(&s, "live.3") == 1);
    admin(&s, "/push?cname=live.3&content=three");
    admin(&s, "/push?cname=live.2&content=two");
    assert_eq!(ws.text(), msg("data", "live.3", 1, "three"));
    assert_eq!(ws.text(), msg("data", "live.2", 1, "two"));
}

#[test]
fn public_key_tokens_and_a_bad_key_file_at_start() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jwt/");
    let mut c = config();
    c.front.auth = Auth::Jwt;
    c.front.jwt.algorithm = comet::auth::JwtAlgorithm::ES256;
    c.front.jwt.public_key_file = format!("{dir}es256-public.pem");
    let s = start(c.clone());
    let pem = std::fs::read(format!("{dir}es256-private.pem")).expect("test key");
    let key = EncodingKey::from_ec_pem(&pem).expect("EC key");
    let claims = json!({"cname": "ec", "exp": now() + 60});
    let token = encode(&Header::new(Algorithm::ES256), &claims, &key).expect("mint");
    assert_eq!(
        over_sse(&s, "ec", &token),
        Answer::Accepted(msg("next_seq", "ec", 1, ""))
    );
    // An HS256 token is another algorithm here, whatever its secret.
    assert_eq!(
        over_sse(&s, "ec", &mint(&claims)),
        Answer::Refused(msg("401", "ec", 0, "Token error"))
    );
    assert_eq!(metric(&s, "comet_jwt_refusals_total{reason=\"wrong_algorithm\"}"), 1);
    drop(s);

    c.front.jwt.public_key_file = format!("{dir}missing.pem");
    match Server::bind(c.clone()) {
        Ok(_) => panic!("started without its key file"),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("front.jwt.public_key_file: cannot read {dir}missing.pem: ")),
                "{text}"
            );
        }
    }
    // A file that is not a key of the algorithm: an RSA key for ES256.
    c.front.jwt.public_key_file = format!("{dir}rs256-public.pem");
    match Server::bind(c) {
        Ok(_) => panic!("started with an RSA key for ES256"),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.starts_with(&format!(
                    "front.jwt.public_key_file: {dir}rs256-public.pem is not a ES256 public key in PEM form"
                )),
                "{text}"
            );
        }
    }
}
