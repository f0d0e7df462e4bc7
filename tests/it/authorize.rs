//! The authorize hook (`hooks.authorize_url`) through real subscribes,
//! against a scripted application each test starts: the exact request it
//! gets, allow and deny over every transport and a WebSocket `sub`, the
//! cache (a cached subscribe asks nothing), timeouts and an application
//! that is down under both policies, requests pipelined behind a waiting
//! subscribe, and a waiting subscribe that holds up nobody else.

use std::sync::Arc;

use comet::config::Config;
use comet::hooks::OnError;
use comet::server::Server;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::support::app::{Answer, AppThread};
use crate::support::ws::Ws;
use crate::support::{admin, config, connect_from, eventually, metric, start, subscribers, Client};

/// An icomet message object.
fn msg(kind: &str, cname: &str, seq: i32, content: &str) -> String {
    format!(r#"{{"type":"{kind}","cname":"{cname}","seq":{seq},"content":"{content}"}}"#)
}

/// A config asking `app` at `/auth`.
fn with_app(app: &AppThread, f: impl FnOnce(&mut Config)) -> Config {
    let mut c = config();
    c.hooks.authorize_url = app.url("/auth");
    f(&mut c);
    c
}

/// The application: allows channels named `ok...`, refuses the others.
fn by_name(_: usize, hit: &crate::support::app::Hit) -> Answer {
    let v: Value = serde_json::from_slice(&hit.body).expect("a JSON body");
    let cname = v["cname"].as_str().expect("cname");
    Answer::Status(if cname.starts_with("ok") { 204 } else { 403 })
}

/// The bodies the application received, parsed.
fn asked(app: &AppThread) -> Vec<Value> {
    app.hits()
        .iter()
        .map(|h| {
            assert_eq!(
                (h.path.as_str(), h.content_type.as_str()),
                ("/auth", "application/json")
            );
            serde_json::from_slice(&h.body).expect("a JSON body")
        })
        .collect()
}

/// A JSONP long poll (seq 0: answered at once); returns its body.
fn jsonp(s: &Server, cname: &str, token: &str) -> String {
    let mut c = Client::connect(s.front_addr());
    c.get(&format!("/sub?cname={cname}&cb=cb&token={token}"));
    c.head();
    let body = c.chunk_str();
    assert_eq!(c.chunk_str(), "");
    body
}

/// The first event of an SSE subscribe (the next_seq, or a refusal).
fn sse_first(c: &mut Client) -> String {
    let head = c.head();
    if head.contains("keep-alive") {
        assert_eq!(c.chunk_str(), "retry: 3000\n\n");
    }
    c.chunk_str()
}

#[test]
fn allow_and_deny_over_every_transport() {
    let app = AppThread::start(by_name);
    let s = start(with_app(&app, |c| c.hooks.authorize_cache_secs = 0));
    // SSE from another local address: the request carries it.
    let mut c = connect_from([127, 0, 0, 7].into(), s.front_addr());
    c.get("/sse?cname=ok1&token=t1");
    assert_eq!(
        sse_first(&mut c),
        format!("id: 0\ndata: {}\n\n", msg("next_seq", "ok1", 1, ""))
    );
    let mut c = Client::connect(s.front_addr());
    c.get("/sse?cname=no1&token=t%22x");
    assert_eq!(
        sse_first(&mut c),
        format!("data: {}\n\n", msg("401", "no1", 0, "Not authorized"))
    );
    assert_eq!(
        jsonp(&s, "ok2", ""),
        format!("cb({});\n", msg("next_seq", "ok2", 1, ""))
    );
    assert_eq!(
        jsonp(&s, "no2", ""),
        format!("cb({});\n", msg("401", "no2", 0, "Not authorized"))
    );
    let mut ws = Ws::connect(s.front_addr(), "/ws?cname=no3");
    assert_eq!(ws.text(), msg("401", "no3", 0, "Not authorized"));
    ws.expect_close(4401);
    let mut ws = Ws::connect(s.front_addr(), "/ws?cname=ok3&seq=1");
    ws.send_text(r#"{"type":"sub","cname":"no4","token":"w"}"#);
    assert_eq!(ws.text(), msg("401", "no4", 0, "Not authorized"));
    ws.send_text(r#"{"type":"sub","cname":"ok4","seq":1}"#);
    eventually("ok4 subscribed", || subscribers(&s, "ok4") == 1);
    admin(&s, "/push?cname=ok4&content=four");
    admin(&s, "/push?cname=ok3&content=three");
    assert_eq!(ws.text(), msg("data", "ok4", 1, "four"));
    assert_eq!(ws.text(), msg("data", "ok3", 1, "three"));
    assert_eq!(
        asked(&app),
        [
            json!({"cname": "ok1", "token": "t1", "ip": "127.0.0.7", "transport": "sse"}),
            json!({"cname": "no1", "token": "t\"x", "ip": "127.0.0.1", "transport": "sse"}),
            json!({"cname": "ok2", "token": "", "ip": "127.0.0.1", "transport": "poll"}),
            json!({"cname": "no2", "token": "", "ip": "127.0.0.1", "transport": "poll"}),
            json!({"cname": "no3", "token": "", "ip": "127.0.0.1", "transport": "ws"}),
            json!({"cname": "ok3", "token": "", "ip": "127.0.0.1", "transport": "ws"}),
            json!({"cname": "no4", "token": "w", "ip": "127.0.0.1", "transport": "ws"}),
            json!({"cname": "ok4", "token": "", "ip": "127.0.0.1", "transport": "ws"}),
        ]
    );
    // Refused subscribes never reached the table.
    for cname in ["no1", "no2", "no3", "no4"] {
        assert!(!s.shared().channels.exists(cname), "{cname}");
    }
    assert_eq!(metric(&s, "comet_authorize_requests_total"), 8);
    assert_eq!(metric(&s, "comet_authorize_checks_total{verdict=\"allow\"}"), 4);
    assert_eq!(metric(&s, "comet_authorize_checks_total{verdict=\"refuse\"}"), 4);
}

#[test]
fn a_cached_answer_decides_without_asking_again() {
    let app = AppThread::start(by_name);
    let s = start(with_app(&app, |c| c.hooks.authorize_cache_secs = 60));
    for _ in 0..3 {
        assert_eq!(jsonp(&s, "ok", "a"), format!("cb({});\n", msg("next_seq", "ok", 1, "")));
        assert_eq!(
            jsonp(&s, "no", "a"),
            format!("cb({});\n", msg("401", "no", 0, "Not authorized"))
        );
    }
    // Another token is another question.
    jsonp(&s, "ok", "b");
    assert_eq!(app.count(), 3);
    assert_eq!(metric(&s, "comet_authorize_cache_hits_total"), 4);
    assert_eq!(metric(&s, "comet_authorize_checks_total{verdict=\"allow\"}"), 4);
    assert_eq!(metric(&s, "comet_authorize_checks_total{verdict=\"refuse\"}"), 3);
}

#[test]
fn no_answer_in_time_and_an_application_that_is_down_apply_the_policy() {
    let never = AppThread::start(|_, _| Answer::Never);
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        format!("http://{addr}/auth")
    };
    for (url, cause) in [(never.url("/auth"), "timeout"), (down, "connect")] {
        for (policy, allowed) in [(OnError::Refuse, false), (OnError::Allow, true)] {
            let mut c = config();
            c.hooks.authorize_url = url.clone();
            c.hooks.authorize_timeout_ms = 300;
            c.hooks.authorize_on_error = policy;
            let s = start(c);
            let mut sse = Client::connect(s.front_addr());
            sse.get("/sse?cname=c1");
            let want = if allowed {
                format!("id: 0\ndata: {}\n\n", msg("next_seq", "c1", 1, ""))
            } else {
                format!("data: {}\n\n", msg("401", "c1", 0, "Not authorized"))
            };
            assert_eq!(sse_first(&mut sse), want, "{cause} {policy:?}");
            let want = if allowed {
                format!("cb({});\n", msg("next_seq", "c2", 1, ""))
            } else {
                format!("cb({});\n", msg("401", "c2", 0, "Not authorized"))
            };
            assert_eq!(jsonp(&s, "c2", "t"), want, "{cause} {policy:?}");
            // Counted by cause; an answer that never came is not cached.
            assert_eq!(
                metric(&s, &format!("comet_authorize_errors_total{{cause=\"{cause}\"}}")),
                2,
                "{policy:?}"
            );
            assert_eq!(metric(&s, "comet_authorize_cache_hits_total"), 0);
        }
    }
}

#[test]
fn requests_pipelined_behind_a_waiting_subscribe_wait_for_it() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let app = AppThread::start(move |_, _| Answer::Gated(g.clone(), 200));
    let s = start(with_app(&app, |_| {}));
    let mut c = Client::connect(s.front_addr());
    c.send(b"GET /sub?cname=p&cb=first HTTP/1.1\r\n\r\nGET /ping?cb=second HTTP/1.1\r\n\r\n");
    eventually("the check reached the application", || app.count() == 1);
    gate.add_permits(1);
    c.head();
    assert_eq!(c.chunk_str(), format!("first({});\n", msg("next_seq", "p", 1, "")));
    assert_eq!(c.chunk_str(), "");
    let (head, body) = c.response();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"second({\"type\":\"ping\",\"sub_timeout\":30});\n");
}

#[test]
fn a_subscribe_waiting_for_its_verdict_holds_up_nobody() {
    // "slow" is never answered within the minute; everything else at once.
    let app = AppThread::start(|_, hit| {
        let v: Value = serde_json::from_slice(&hit.body).expect("JSON");
        if v["cname"] == "slow" {
            Answer::Never
        } else {
            Answer::Status(200)
        }
    });
    let s = start(with_app(&app, |c| {
        c.workers = 1;
        c.hooks.authorize_timeout_ms = 60_000;
    }));
    let mut waiting = Client::connect(s.front_addr());
    waiting.get("/stream?cname=slow");
    let mut ws = Ws::connect(s.front_addr(), "/ws");
    ws.send_text(r#"{"type":"sub","cname":"slow","seq":1}"#);
    eventually("both checks at the application", || app.count() == 2);
    // A `sub` that waits counts as held: no second one, and `unsub`
    // cancels it.
    ws.send_text(r#"{"type":"sub","cname":"slow","seq":1}"#);
    assert_eq!(ws.text(), msg("400", "slow", 0, "Already subscribed"));
    ws.send_text(r#"{"type":"unsub","cname":"slow"}"#);
    assert_eq!(ws.text(), msg("unsub", "slow", 1, ""));
    // The same worker serves everyone else meanwhile.
    let mut other = Client::connect(s.front_addr());
    other.get("/stream?cname=fast&seq=1");
    other.head();
    eventually("fast subscribed", || subscribers(&s, "fast") == 1);
    admin(&s, "/push?cname=fast&content=go");
    assert_eq!(other.chunk_str(), format!("{}\n", msg("data", "fast", 1, "go")));
    assert_eq!(metric(&s, "comet_authorize_pending"), 2);
    assert_eq!(subscribers(&s, "slow"), 0);
    // A waiting subscribe sent nothing yet: at shutdown it just closes.
    let stopping = std::thread::spawn(move || s.shutdown());
    assert!(waiting.closed(), "{:?}", String::from_utf8_lossy(&waiting.buf));
    stopping.join().expect("shutdown");
}

#[test]
fn the_application_hears_only_of_subscribes_that_passed_the_token_checks() {
    let app = AppThread::start(|_, _| Answer::Status(204));
    // Token mode: the channel's own token is checked first.
    let s = start(with_app(&app, |c| c.front.auth = comet::config::Auth::Token));
    let (_, _, signed) = admin(&s, "/sign?cname=tk");
    let token = crate::support::json(&signed)["token"]
        .as_str()
        .expect("a token")
        .to_string();
    assert_eq!(
        jsonp(&s, "tk", "wrong"),
        format!("cb({});\n", msg("401", "tk", 0, "Token error"))
    );
    assert_eq!(
        jsonp(&s, "unsigned", ""),
        format!("cb({});\n", msg("401", "unsigned", 0, "Token error"))
    );
    assert_eq!(app.count(), 0);
    assert_eq!(
        jsonp(&s, "tk", &token),
        format!("cb({});\n", msg("next_seq", "tk", 1, ""))
    );
    assert_eq!(asked(&app)[0]["token"], token.as_str());
    drop(s);
    // JWT mode: a refused token never reaches the application.
    let mut c = crate::jwt::jwt_config();
    c.hooks.authorize_url = app.url("/auth");
    let s = start(c);
    let expired = crate::jwt::mint(&json!({"cname": "j", "exp": crate::jwt::now() - 600}));
    assert_eq!(
        jsonp(&s, "j", &expired),
        format!("cb({});\n", msg("401", "j", 0, "Token error"))
    );
    assert_eq!(app.count(), 1);
    let good = crate::jwt::mint(&json!({"cname": "j", "exp": crate::jwt::now() + 600}));
    assert_eq!(jsonp(&s, "j", &good), format!("cb({});\n", msg("next_seq", "j", 1, "")));
    assert_eq!(asked(&app)[1]["token"], good.as_str());
}
