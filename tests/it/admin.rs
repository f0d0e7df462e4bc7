//! Integration tests of the admin listener: the real server on
//! `127.0.0.1:0`, literal request bytes over a TCP socket, and assertions on
//! the status line, headers and exact body bytes (reference §4, §10, §12).
//! Stored history is read through the channels.

use comet::channels::Channels;
use comet::config::Config;
use comet::encode;
use comet::server::Server;

use crate::support::{self, Client, Resp};

/// The real server, with the admin helpers these tests use.
struct TestServer {
    server: Option<Server>,
}

impl TestServer {
    fn start(config: Config) -> TestServer {
        TestServer {
            server: Some(support::start(config)),
        }
    }

    fn default() -> TestServer {
        TestServer::start(config(|_| {}))
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    fn channels(&self) -> &Channels {
        &self.server().shared().channels
    }

    fn connect(&self) -> Client {
        Client::connect(self.server().admin_addr())
    }

    /// One GET on a fresh connection.
    fn get(&self, target: &str) -> Resp {
        self.connect()
            .request(&format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n"))
    }

    /// Shuts the server down gracefully; true once it has stopped.
    fn shutdown(&mut self) -> bool {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        true
    }

    /// The stored messages of a channel, oldest first (their JSON objects).
    fn history(&self, cname: &str) -> Vec<String> {
        self.channels()
            .history(cname)
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let json = encode::message(m.kind.type_name(), cname, m.seq, &m.content);
                String::from_utf8(json).expect("utf-8")
            })
            .collect()
    }
}

/// The test config with the admin IP filter at its defaults, changed by `f`.
fn config(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = support::config();
    let defaults = Config::default();
    c.admin.allow = defaults.admin.allow;
    c.admin.deny = defaults.admin.deny;
    f(&mut c);
    c
}

const OK: &str = "{\"type\":\"ok\"}\n";
const JS: &str = "text/javascript; charset=utf-8";
const HTML_UTF8: &str = "text/html; charset=utf-8";
const DEFAULT: &str = "text/html; charset=ISO-8859-1";
const TEXT: &str = "text/plain; charset=utf-8";

#[test]
fn pub_and_push_acknowledge_with_and_without_callback() {
    let s = TestServer::default();
    for path in ["/pub", "/push"] {
        s.get(&format!("{path}?cname=a&content=hi"))
            .assert("HTTP/1.1 200 OK", JS, OK);
        s.get(&format!("{path}?cname=a&content=hi&cb=jq1"))
            .assert("HTTP/1.1 200 OK", JS, "jq1({\"type\":\"ok\"});\n");
        s.get(&format!("{path}?cname=a&content=hi&cb="))
            .assert("HTTP/1.1 200 OK", JS, "({\"type\":\"ok\"});\n");
    }
    let h = s.history("a");
    assert_eq!(h.len(), 6);
    assert_eq!(h[0], r#"{"type":"data","cname":"a","seq":1,"content":"hi"}"#);
}

#[test]
fn bad_callback_is_400() {
    let s = TestServer::default();
    for path in ["/pub?cname=a&content=x", "/push?cname=a", "/sign?cname=a"] {
        let r = s.get(&format!("{path}&cb=alert(1)//"));
        r.assert(
            "HTTP/1.1 400 Bad Request",
            TEXT,
            "cb may only contain A-Z a-z 0-9 _ . $\n",
        );
    }
    assert!(!s.channels().exists("a"), "nothing was created");
}

#[test]
fn bad_cname_is_400() {
    let s = TestServer::start(config(|c| c.front.max_cname_bytes = 8));
    for path in ["/push?content=x&cname=", "/pub?content=x&cname=", "/sign?cname="] {
        s.get(&format!("{path}a%01b"))
            .assert("HTTP/1.1 400 Bad Request", TEXT, "cname contains a control character\n");
        s.get(&format!("{path}abcdefghi"))
            .assert("HTTP/1.1 400 Bad Request", TEXT, "cname is longer than 8 bytes\n");
    }
    s.get("/push?content=x&cname=abcdefgh")
        .assert("HTTP/1.1 200 OK", JS, OK);
    assert_eq!(s.channels().totals().0, 1);
}

#[test]
fn pub_rejects_content_that_is_not_json_string_text() {
    let s = TestServer::default();
    s.get("/pub?cname=p&content=a%22b").assert(
        "HTTP/1.1 400 Bad Request",
        TEXT,
        "content contains an unescaped '\"'\n",
    );
    s.get("/pub?cname=p&content=a%0Ab").assert(
        "HTTP/1.1 400 Bad Request",
        TEXT,
        "content contains a raw control character\n",
    );
    s.get("/pub?cname=p&content=a%5Cx").assert(
        "HTTP/1.1 400 Bad Request",
        TEXT,
        "content has a bad backslash escape\n",
    );
    assert!(!s.channels().exists("p"));
    // Valid pre-encoded content is stored verbatim.
    s.get("/pub?cname=p&content=a%5C%22b%5Cn")
        .assert("HTTP/1.1 200 OK", JS, OK);
    assert_eq!(
        s.history("p"),
        vec![r#"{"type":"data","cname":"p","seq":1,"content":"a\"b\n"}"#]
    );
}

#[test]
fn push_escapes_raw_content() {
    let s = TestServer::default();
    s.get("/push?cname=e&content=hello%22%5C%0A%0D%09%01end")
        .assert("HTTP/1.1 200 OK", JS, OK);
    assert_eq!(
        s.history("e"),
        vec![r#"{"type":"data","cname":"e","seq":1,"content":"hello\"\\\n\r\t\u0001end"}"#]
    );
}

#[test]
fn post_content_length_body_overrides_query() {
    let s = TestServer::default();
    let body = "content=from+body&cb=b1";
    let r = s.connect().request(&format!(
        "POST /push?cname=pc&content=from-query HTTP/1.1\r\nHost: t\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    r.assert("HTTP/1.1 200 OK", JS, "b1({\"type\":\"ok\"});\n");
    assert_eq!(
        s.history("pc"),
        vec![r#"{"type":"data","cname":"pc","seq":1,"content":"from body"}"#]
    );
    // A GET ignores any body-looking text and uses the query.
    s.get("/push?cname=pc&content=q").assert("HTTP/1.1 200 OK", JS, OK);
    assert_eq!(
        s.history("pc")[1],
        r#"{"type":"data","cname":"pc","seq":2,"content":"q"}"#
    );
}

#[test]
fn post_chunked_body_overrides_query() {
    let s = TestServer::default();
    let r = s.connect().request(
        "POST /push?cname=ch&content=from-query HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
         8\r\ncontent=\r\n9\r\nchunked+x\r\n0\r\n\r\n",
    );
    r.assert("HTTP/1.1 200 OK", JS, OK);
    assert_eq!(
        s.history("ch"),
        vec![r#"{"type":"data","cname":"ch","seq":1,"content":"chunked x"}"#]
    );
    // /sign takes POST parameters too.
    let r = s
        .connect()
        .request("POST /sign HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\ncname=ch");
    assert_eq!(sign_fields(r.body(), None, "ch").0, 1, "{r:?}");
}

#[test]
fn body_larger_than_the_limit_is_413() {
    let s = TestServer::start(config(|c| c.admin.max_body_bytes = 16));
    let reason = "request body is larger than 16 bytes\n";
    let body = "content=0123456789abcdef";
    let r = s.connect().request(&format!(
        "POST /push?cname=big HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    r.assert("HTTP/1.1 413 Payload Too Large", TEXT, reason);
    assert_eq!(r.header("Connection"), Some("close"));
    let r = s.connect().request(&format!(
        "POST /push?cname=big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    ));
    r.assert("HTTP/1.1 413 Payload Too Large", TEXT, reason);
    // Content in the query is bounded the same way.
    s.get("/push?cname=big&content=0123456789abcdefg").assert(
        "HTTP/1.1 413 Payload Too Large",
        TEXT,
        "content is larger than 16 bytes\n",
    );
    assert!(!s.channels().exists("big"));
    s.get("/push?cname=big&content=0123456789abcdef")
        .assert("HTTP/1.1 200 OK", JS, OK);
}

#[test]
fn wrong_methods_get_405_invalid_method() {
    let s = TestServer::default();
    let mut c = s.connect();
    let r = c.request("PUT /pub?cname=m&content=x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    r.assert("HTTP/1.1 405 Invalid Method", DEFAULT, "");
    let r = c.request("POST /broadcast HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\ncontent=x");
    r.assert("HTTP/1.1 405 Invalid Method", DEFAULT, "");
    let r = s.connect().request("DELETE /push?cname=m HTTP/1.1\r\nHost: t\r\n\r\n");
    r.assert("HTTP/1.1 405 Invalid Method", DEFAULT, "");
    assert!(!s.channels().exists("m"));
}

#[test]
fn other_methods_get_501() {
    let s = TestServer::default();
    let mut c = s.connect();
    let r = c.request("OPTIONS /pub HTTP/1.1\r\nHost: t\r\n\r\n");
    r.assert(
        "HTTP/1.1 501 Not Implemented",
        "text/html",
        "<HTML><HEAD>\n<TITLE>501 Not Implemented</TITLE>\n</HEAD><BODY>\n<H1>Not Implemented</H1>\n</BODY></HTML>\n",
    );
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());
}

#[test]
fn unknown_paths_get_the_libevent_404_page() {
    let s = TestServer::default();
    let page = |target: &str| {
        format!(
            "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>\
             <p>The requested URL {target} was not found on this server.</p></body></html>\n"
        )
    };
    let mut c = s.connect();
    let r = c.request("GET /nothing?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    r.assert("HTTP/1.1 404 Not Found", "text/html", &page("/nothing?x=1"));
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());
    s.get("/x?a='b'&c")
        .assert("HTTP/1.1 404 Not Found", "text/html", &page("/x?a=&#039;b&#039;&amp;c"));
    // Front paths and near misses are unknown here.
    for p in ["/sub", "/poll", "/stream", "/sse", "/iframe", "/ping", "/pub/", "/PUB"] {
        s.get(&format!("{p}?cname=a"))
            .assert("HTTP/1.1 404 Not Found", "text/html", &page(&format!("{p}?cname=a")));
    }
    // The path is percent-decoded before matching.
    s.get("/%70ush?cname=pd&content=x").assert("HTTP/1.1 200 OK", JS, OK);
    assert!(s.channels().exists("pd"));
}

#[test]
fn head_info_has_headers_and_no_body() {
    let s = TestServer::default();
    let mut c = s.connect();
    c.send(b"HEAD /info HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert_eq!(r.header("Server"), Some("icomet 0.2.5"));
    assert_eq!(r.header("Content-Type"), Some(HTML_UTF8));
    // The next response follows at once: no body bytes were sent.
    let r = c.request("GET /check?cname=zz HTTP/1.1\r\nHost: t\r\n\r\n");
    r.assert("HTTP/1.1 200 OK", HTML_UTF8, "{}\n");
}

#[test]
fn filtered_clients_get_403_and_a_closed_connection() {
    let s = TestServer::start(config(|c| {
        c.admin.allow = vec!["10.1.2.3".to_string()];
        c.admin.deny = Vec::new();
    }));
    for target in ["/push?cname=f&content=x", "/info", "/psub", "/nothing"] {
        let mut c = s.connect();
        let r = c.request(&format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n"));
        r.assert("HTTP/1.1 403 Forbidden", DEFAULT, "");
        assert_eq!(r.header("Connection"), Some("Close"));
        assert_eq!(r.header("Content-Length"), Some("0"));
        assert!(c.closed());
    }
    assert!(!s.channels().exists("f"));
}

#[test]
fn channel_limit_gives_429_too_many_channels() {
    let s = TestServer::start(config(|c| c.front.max_channels = 1));
    s.get("/push?cname=a&content=x").assert("HTTP/1.1 200 OK", JS, OK);
    s.get("/push?cname=b&content=x&cb=c")
        .assert("HTTP/1.1 429 Too Many Channels", DEFAULT, "");
    s.get("/pub?cname=b&content=x")
        .assert("HTTP/1.1 429 Too Many Channels", DEFAULT, "");
    s.get("/sign?cname=b&cb=c")
        .assert("HTTP/1.1 429 Too Many Channels", DEFAULT, "");
    // Existing channels keep working.
    s.get("/push?cname=a&content=y").assert("HTTP/1.1 200 OK", JS, OK);
}

/// Reads a sign reply for `cname` (`{...}\n`, or `cb({...});\n` with a
/// callback) with serde_json; checks that it is exactly the bytes icomet
/// writes (its members in icomet's order) and returns (seq, token, expires,
/// sub_timeout).
fn sign_fields(body: &str, cb: Option<&str>, cname: &str) -> (i64, String, i64, i64) {
    let inner = match cb {
        Some(cb) => body
            .strip_prefix(&format!("{cb}("))
            .and_then(|b| b.strip_suffix(");\n")),
        None => body.strip_suffix('\n'),
    };
    let inner = inner.unwrap_or_else(|| panic!("{body:?} is not a sign reply with callback {cb:?}"));
    let v = support::json(inner);
    assert_eq!(v["type"], "sign", "{body:?}");
    assert_eq!(v["cname"], cname, "{body:?}");
    let n = |key: &str| v[key].as_i64().unwrap_or_else(|| panic!("{key} in {body:?}"));
    let (seq, expires, sub_timeout) = (n("seq"), n("expires"), n("sub_timeout"));
    let token = v["token"].as_str().expect("a token").to_string();
    let exact = format!(
        "{{\"type\":\"sign\",\"cname\":{},\"seq\":{seq},\"token\":\"{token}\",\"expires\":{expires},\"sub_timeout\":{sub_timeout}}}",
        serde_json::to_string(cname).expect("a JSON string")
    );
    assert_eq!(inner, exact);
    (seq, token, expires, sub_timeout)
}

#[test]
fn sign_returns_the_same_token_and_its_fields() {
    let s = TestServer::start(config(|c| {
        c.front.polling_timeout = 7;
        c.front.channel_timeout = 4;
    }));
    let r = s.get("/sign?cname=s1&expires=100&cb=s1");
    r.assert("HTTP/1.1 200 OK", HTML_UTF8, r.body());
    let (seq, token, expires, sub_timeout) = sign_fields(r.body(), Some("s1"), "s1");
    assert_eq!((seq, expires, sub_timeout), (1, 100, 7));
    assert_eq!(token.len(), 32);
    assert!(
        token.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{token}"
    );
    s.get("/push?cname=s1&content=a").assert("HTTP/1.1 200 OK", JS, OK);
    s.get("/push?cname=s1&content=b").assert("HTTP/1.1 200 OK", JS, OK);
    let r = s.get("/sign?cname=s1");
    r.assert("HTTP/1.1 200 OK", HTML_UTF8, r.body());
    let (seq, again, expires, _) = sign_fields(r.body(), None, "s1");
    assert_eq!(again, token, "re-signing keeps the token");
    assert_eq!(
        (seq, expires),
        (1, 4),
        "oldest available seq; default expires is channel_timeout"
    );
    // Empty cb wraps too; the name is JSON-escaped.
    let r = s.get("/sign?cname=q%22x&cb=");
    assert_eq!(sign_fields(r.body(), Some(""), "q\"x").0, 1);
}

#[test]
fn close_and_clear() {
    let s = TestServer::default();
    for path in ["/close", "/clear"] {
        s.get(&format!("{path}?cname=none")).assert(
            "HTTP/1.1 404 Not Found",
            HTML_UTF8,
            "channel[none] not connected\n",
        );
        s.get(path)
            .assert("HTTP/1.1 404 Not Found", HTML_UTF8, "channel[] not connected\n");
    }
    s.get("/push?cname=c&content=1").assert("HTTP/1.1 200 OK", JS, OK);
    s.get("/push?cname=c&content=2").assert("HTTP/1.1 200 OK", JS, OK);
    assert_eq!(s.history("c").len(), 2);
    s.get("/clear?cname=c").assert("HTTP/1.1 200 OK", HTML_UTF8, "ok 3\n");
    assert!(s.history("c").is_empty(), "clear empties the history");
    let r = s.connect().request("DELETE /close?cname=c HTTP/1.1\r\nHost: t\r\n\r\n");
    r.assert("HTTP/1.1 200 OK", HTML_UTF8, "ok 3\n");
    assert!(!s.channels().exists("c"));
    s.get("/close?cname=c")
        .assert("HTTP/1.1 404 Not Found", HTML_UTF8, "channel[c] not connected\n");
}

#[test]
fn info_global_and_per_channel() {
    let s = TestServer::default();
    s.get("/info").assert(
        "HTTP/1.1 200 OK",
        HTML_UTF8,
        "{\"version\": \"0.2.5\", \"channels\": 0, \"subscribers\": 0}\n",
    );
    s.get("/push?cname=a&content=x").assert("HTTP/1.1 200 OK", JS, OK);
    s.get("/push?cname=b&content=x").assert("HTTP/1.1 200 OK", JS, OK);
    let global = "{\"version\": \"0.2.5\", \"channels\": 2, \"subscribers\": 0}\n";
    s.get("/info").assert("HTTP/1.1 200 OK", HTML_UTF8, global);
    s.get("/info?cname=").assert("HTTP/1.1 200 OK", HTML_UTF8, global);
    s.get("/info?cname=a")
        .assert("HTTP/1.1 200 OK", HTML_UTF8, "{\"cname\": \"a\", \"subscribers\": 0}\n");
    s.get("/info?cname=a%22b").assert(
        "HTTP/1.1 200 OK",
        HTML_UTF8,
        "{\"cname\": \"a\\\"b\", \"subscribers\": 0}\n",
    );
    assert_eq!(s.channels().totals().0, 2, "info creates nothing");
}

#[test]
fn check_single_list_and_empty_name() {
    let s = TestServer::default();
    s.get("/check?cname=a").assert("HTTP/1.1 200 OK", HTML_UTF8, "{}\n");
    s.get("/push?cname=a&content=x").assert("HTTP/1.1 200 OK", JS, OK);
    s.get("/push?cname=c&content=x").assert("HTTP/1.1 200 OK", JS, OK);
    s.get("/check?cname=a")
        .assert("HTTP/1.1 200 OK", HTML_UTF8, "{\"a\": 1}\n");
    s.get("/check?cname=a,b,c")
        .assert("HTTP/1.1 200 OK", HTML_UTF8, "{\"a\": 1, \"c\": 1}\n");
    s.get("/check?cname=c,zz,a,c")
        .assert("HTTP/1.1 200 OK", HTML_UTF8, "{\"c\": 1, \"a\": 1}\n");
    s.get("/check?cname=x,y").assert("HTTP/1.1 200 OK", HTML_UTF8, "{}\n");
    s.get("/check?cname=").assert("HTTP/1.1 200 OK", HTML_UTF8, "{}\n");
    s.get("/push?content=x").assert("HTTP/1.1 200 OK", JS, OK);
    s.get("/check?cname=")
        .assert("HTTP/1.1 200 OK", HTML_UTF8, "{\"\": 1}\n");
    s.get("/check").assert("HTTP/1.1 200 OK", HTML_UTF8, "{\"\": 1}\n");
}

#[test]
fn broadcast_reaches_every_channel() {
    let s = TestServer::default();
    s.get("/broadcast?content=none")
        .assert("HTTP/1.1 200 OK", DEFAULT, "ok\n");
    assert_eq!(s.channels().totals().0, 0, "broadcast creates nothing");
    s.get("/push?cname=a&content=x").assert("HTTP/1.1 200 OK", JS, OK);
    s.get("/broadcast?content=B%22x&cname=ignored")
        .assert("HTTP/1.1 200 OK", DEFAULT, "ok\n");
    assert_eq!(
        s.history("a")[1],
        r#"{"type":"broadcast","cname":"a","seq":2,"content":"B\"x"}"#
    );
    assert!(!s.channels().exists("ignored"));
}

#[test]
fn psub_streams_presence_events() {
    let s = TestServer::default();
    let mut p = s.connect();
    p.send(b"GET /psub HTTP/1.1\r\nHost: t\r\n\r\n");
    // The headers arrive before any event; the listener is registered by then.
    let r = p.head_resp();
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert_eq!(r.header("Server"), Some("icomet 0.2.5"));
    assert_eq!(r.header("Content-Type"), Some(DEFAULT));
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    s.get("/push?cname=a&content=x").assert("HTTP/1.1 200 OK", JS, OK);
    assert_eq!(p.chunk_opt().as_deref(), Some(&b"1 a\n"[..]));
    assert_eq!(s.get("/sign?cname=b").status, "HTTP/1.1 200 OK");
    assert_eq!(p.chunk_opt().as_deref(), Some(&b"1 b\n"[..]));
    s.get("/close?cname=a").assert("HTTP/1.1 200 OK", HTML_UTF8, "ok 2\n");
    assert_eq!(p.chunk_opt().as_deref(), Some(&b"0 a\n"[..]));
}

#[test]
fn shutdown_ends_psub_streams_and_serve() {
    let mut s = TestServer::default();
    let mut p = s.connect();
    p.send(b"GET /psub HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(p.head_resp().status, "HTTP/1.1 200 OK");
    assert!(s.shutdown(), "serve returned");
    assert_eq!(p.chunk_opt(), None, "the stream ended with its last chunk");
}

#[test]
fn lenient_query_keeps_what_it_can() {
    let s = TestServer::default();
    // `{`, `}`, `&&`, a key without `=` and a bad escape each made icomet drop
    // the whole query; here every usable pair counts.
    s.get("/push?cname=q5&content={%22a%22:1}&&flag&bad=%zz")
        .assert("HTTP/1.1 200 OK", JS, OK);
    assert_eq!(
        s.history("q5"),
        vec![r#"{"type":"data","cname":"q5","seq":1,"content":"{\"a\":1}"}"#]
    );
    let r = s.get("/sign?CNAME=q5");
    assert_eq!(sign_fields(r.body(), None, "q5").0, 1, "{r:?}");
    s.get("/check?cname=q5")
        .assert("HTTP/1.1 200 OK", HTML_UTF8, "{\"q5\": 1}\n");
    assert!(!s.channels().exists(""), "nothing went to the channel \"\"");
}

#[test]
fn raw_quotes_and_braces_in_the_target_are_used_as_sent() {
    // curl sends `{"a":1}` as typed; icomet dropped every parameter of such
    // a query (§10), hyper alone would refuse it: comet publishes it.
    let s = TestServer::default();
    let mut c = s.connect();
    c.request("GET /push?cname=q5&content={\"a\":1}|<b> HTTP/1.1\r\nHost: t\r\n\r\n")
        .assert("HTTP/1.1 200 OK", JS, OK);
    assert_eq!(
        s.history("q5"),
        vec![r#"{"type":"data","cname":"q5","seq":1,"content":"{\"a\":1}|<b>"}"#.to_string()]
    );
    // A POST body holding quotes, pipelined with another raw-quote GET.
    let body = "cname=q5&content=\"x\"";
    c.send(
        format!(
            "POST /push HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET /push?cname=q5&content=\"y\" HTTP/1.1\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.read_response(false);
    c.read_response(false);
    let h = s.history("q5");
    assert_eq!(h.len(), 3, "{h:?}");
    assert!(h[1].ends_with(r#""seq":2,"content":"\"x\""}"#), "{}", h[1]);
    assert!(h[2].ends_with(r#""seq":3,"content":"\"y\""}"#), "{}", h[2]);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let s = TestServer::default();
    let mut c = s.connect();
    c.request("GET /push?cname=k&content=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .assert("HTTP/1.1 200 OK", JS, OK);
    c.request("GET /info?cname=k HTTP/1.1\r\n\r\n").assert(
        "HTTP/1.1 200 OK",
        HTML_UTF8,
        "{\"cname\": \"k\", \"subscribers\": 0}\n",
    );
    let body = "cname=k&content=2";
    c.request(&format!(
        "POST /push HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
    .assert("HTTP/1.1 200 OK", JS, OK);
    assert_eq!(s.history("k").len(), 2);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = TestServer::default();
    let mut c = s.connect();
    c.send(
        b"GET /push?cname=pp&content=1 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /check?cname=pp HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /clear HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\ncname=pp",
    );
    c.read_response(false).assert("HTTP/1.1 200 OK", JS, OK);
    c.read_response(false)
        .assert("HTTP/1.1 200 OK", HTML_UTF8, "{\"pp\": 1}\n");
    c.read_response(false).assert("HTTP/1.1 200 OK", HTML_UTF8, "ok 2\n");
}

/// A `/pub_batch` POST of `body` on a fresh connection, with `query` after
/// the path.
fn batch(s: &TestServer, query: &str, body: &str) -> Resp {
    s.connect().request(&format!(
        "POST /pub_batch{query} HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

const BATCH_JSON: &str = "application/json";

#[test]
fn pub_batch_publishes_every_line_in_order_and_delivers_it() {
    let s = TestServer::default();
    s.get("/push?cname=b1&content=first").assert("HTTP/1.1 200 OK", JS, OK);
    // A long-polling subscriber of b2 waiting for seq 1 is answered by the
    // batch's first b2 message.
    let mut sub = Client::connect(s.server().front_addr());
    sub.get("/poll?cname=b2&seq=1&cb=cb");
    support::eventually("the subscriber is waiting", || {
        support::subscribers(s.server(), "b2") == 1
    });
    let body = "b1\t{\\\"n\\\":1}\r\nb2\tone\n\nb1\t\nb2\ttwo";
    batch(&s, "", body).assert("HTTP/1.1 200 OK", BATCH_JSON, "{\"type\":\"ok\",\"published\":4}\n");
    assert_eq!(
        s.history("b1"),
        vec![
            r#"{"type":"data","cname":"b1","seq":1,"content":"first"}"#,
            r#"{"type":"data","cname":"b1","seq":2,"content":"{\"n\":1}"}"#,
            r#"{"type":"data","cname":"b1","seq":3,"content":""}"#,
        ]
    );
    assert!(sub.head().starts_with("HTTP/1.1 200 OK"));
    assert_eq!(
        sub.chunk_str(),
        "cb({\"type\":\"data\",\"cname\":\"b2\",\"seq\":1,\"content\":\"one\"});\n"
    );
    assert_eq!(s.history("b2").len(), 2);
    // An empty body publishes nothing and says so.
    batch(&s, "", "").assert("HTTP/1.1 200 OK", BATCH_JSON, "{\"type\":\"ok\",\"published\":0}\n");
}

#[test]
fn pub_batch_refuses_a_bad_body_whole() {
    let s = TestServer::default();
    let r = batch(&s, "", "ok\tfine\nbad\tsay \"hi\"\n");
    r.assert(
        "HTTP/1.1 400 Bad Request",
        TEXT,
        "line 2: content contains an unescaped '\"'\n",
    );
    batch(&s, "", "just-a-name\n").assert(
        "HTTP/1.1 400 Bad Request",
        TEXT,
        "line 1: no TAB between the channel name and the content\n",
    );
    assert!(!s.channels().exists("ok"), "nothing of a refused batch is published");
    // POST only; the body is the messages, never form parameters.
    s.get("/pub_batch").assert("HTTP/1.1 405 Invalid Method", DEFAULT, "");
    let small = TestServer::start(config(|c| c.admin.max_body_bytes = 16));
    batch(&small, "", "a\t0123456789abcdef").assert(
        "HTTP/1.1 413 Payload Too Large",
        TEXT,
        "request body is larger than 16 bytes\n",
    );
}

#[test]
fn pub_batch_stopped_by_the_channel_limit_says_how_many_went_out() {
    let s = TestServer::start(config(|c| c.front.max_channels = 2));
    let r = batch(&s, "", "a\t1\nb\t2\na\t3\nc\t4\na\t5\n");
    r.assert(
        "HTTP/1.1 429 Too Many Requests",
        BATCH_JSON,
        "{\"type\":\"too_many_channels\",\"published\":3}\n",
    );
    assert_eq!(
        s.history("a").len(),
        2,
        "the messages before c are published, none after"
    );
    assert!(!s.channels().exists("c"));
}

#[test]
fn pub_batch_takes_the_admin_key_in_the_query_or_header() {
    let s = TestServer::start(config(|c| c.admin.key = "batch-key-0123".into()));
    batch(&s, "", "k\tx").assert("HTTP/1.1 401 Unauthorized", TEXT, "admin key required\n");
    batch(&s, "?key=wrong", "k\tx").assert("HTTP/1.1 401 Unauthorized", TEXT, "wrong admin key\n");
    // A key inside the body is content, not a parameter.
    batch(&s, "", "key=batch-key-0123").assert("HTTP/1.1 401 Unauthorized", TEXT, "admin key required\n");
    batch(&s, "?key=batch-key-0123", "k\tx").assert(
        "HTTP/1.1 200 OK",
        BATCH_JSON,
        "{\"type\":\"ok\",\"published\":1}\n",
    );
    let r = s.connect().request(
        "POST /pub_batch HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer batch-key-0123\r\nContent-Length: 3\r\n\r\nk\ty",
    );
    r.assert("HTTP/1.1 200 OK", BATCH_JSON, "{\"type\":\"ok\",\"published\":1}\n");
    assert_eq!(s.history("k").len(), 2);
}
