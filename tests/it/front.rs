//! The front listener: long-poll JSON and JSONP, seq semantics, refusals,
//! HTTP/1.0 and 1.1 handling, and bad input (reference §1.3, §2, §3, §10).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use comet::config::DescriptorTables;

use crate::support::{admin, config, eventually, header, json, metric, start, subscribers, Client};

fn sub_head(http10: bool) -> String {
    let v = if http10 { "1.0" } else { "1.1" };
    format!(
        "HTTP/{v} 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\nContent-Type: application/json; charset=utf-8\r\n"
    )
}

#[test]
fn new_subscriber_gets_next_seq_with_icomet_headers() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    c.get("/sub?cname=c5&seq=100");
    let head = c.head();
    assert!(head.starts_with(&sub_head(false)), "{head}");
    assert_eq!(header(&head, "connection"), Some("keep-alive"));
    assert_eq!(header(&head, "transfer-encoding"), Some("chunked"));
    assert!(header(&head, "date").is_some());
    assert_eq!(
        c.chunk_str(),
        "{\"type\":\"next_seq\",\"cname\":\"c5\",\"seq\":1,\"content\":\"\"}\n"
    );
    assert_eq!(c.chunk_str(), "");
    // The connection stays usable: a JSONP poll on it.
    c.get("/poll?cname=c5&cb=cb1");
    c.head();
    assert_eq!(
        c.chunk_str(),
        "cb1({\"type\":\"next_seq\",\"cname\":\"c5\",\"seq\":1,\"content\":\"\"});\n"
    );
    assert_eq!(c.chunk_str(), "");
}

#[test]
fn waiting_poll_gets_one_live_message_then_ends() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    c.get("/sub?cname=live&seq=1&cb=jq_1");
    c.head();
    eventually("subscriber registered", || subscribers(&s, "live") == 1);
    let (status, _, body) = admin(&s, "/push?cname=live&content=hello+%22world%22%09tab");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "{\"type\":\"ok\"}\n")
    );
    assert_eq!(
        c.chunk_str(),
        "jq_1({\"type\":\"data\",\"cname\":\"live\",\"seq\":1,\"content\":\"hello \\\"world\\\"\\ttab\"});\n"
    );
    assert_eq!(c.chunk_str(), "");
    eventually("subscriber gone", || subscribers(&s, "live") == 0);
}

#[test]
fn behind_client_gets_replay_as_one_array() {
    let mut cfg = config();
    cfg.front.channel_buffer_size = 3;
    let s = start(cfg);
    for i in 1..=6 {
        admin(&s, &format!("/push?cname=q&content=m{i}"));
    }
    let mut c = Client::connect(s.front_addr());
    c.get("/sub?cname=q&seq=1");
    c.head();
    let m = |n: i32| format!("{{\"type\":\"data\",\"cname\":\"q\",\"seq\":{n},\"content\":\"m{n}\"}}");
    assert_eq!(c.chunk_str(), format!("[{},{},{},{}]\n", m(3), m(4), m(5), m(6)));
    assert_eq!(c.chunk_str(), "");
    // A single replayed message is still an array.
    c.get("/sub?cname=q&seq=6&cb=f");
    c.head();
    assert_eq!(c.chunk_str(), format!("f([{}]);\n", m(6)));
    c.chunk_str();
    // Caught up: waits. The next message published is the next frame, alone
    // (not a replay array): nothing was sent before it.
    c.get("/sub?cname=q&seq=7");
    c.head();
    eventually("caught-up poll waiting", || subscribers(&s, "q") == 1);
    admin(&s, "/push?cname=q&content=m7");
    assert_eq!(c.chunk_str(), format!("{}\n", m(7)));
    assert_eq!(c.chunk_str(), "");
}

#[test]
fn broadcast_reaches_long_polls_as_a_pair_and_is_replayed() {
    let s = start(config());
    admin(&s, "/push?cname=c2&content=a");
    admin(&s, "/push?cname=c2&content=b");
    let mut c = Client::connect(s.front_addr());
    c.get("/sub?cname=c2&seq=3&cb=cb1");
    c.head();
    eventually("subscribed", || subscribers(&s, "c2") == 1);
    let (_, _, body) = admin(&s, "/broadcast?content=B2");
    assert_eq!(body, "ok\n");
    assert_eq!(
        c.chunk_str(),
        "cb1([{\"type\":\"broadcast\",\"cname\":\"c2\",\"seq\":3,\"content\":\"B2\"},{\"type\":\"next_seq\",\"cname\":\"c2\",\"seq\":4,\"content\":\"\"}]);\n"
    );
    c.chunk_str();
    c.get("/sub?cname=c2&seq=2");
    c.head();
    assert_eq!(
        c.chunk_str(),
        "[{\"type\":\"data\",\"cname\":\"c2\",\"seq\":2,\"content\":\"b\"},{\"type\":\"broadcast\",\"cname\":\"c2\",\"seq\":3,\"content\":\"B2\"},{\"type\":\"next_seq\",\"cname\":\"c2\",\"seq\":4,\"content\":\"\"}]\n"
    );
}

#[test]
fn noop_after_polling_timeout_echoes_the_counter() {
    let mut cfg = config();
    cfg.front.polling_timeout = 1;
    let s = start(cfg);
    let mut c = Client::connect(s.front_addr());
    c.get("/sub?cname=n&seq=1&noop=42&cb=cb");
    c.head();
    assert_eq!(
        c.chunk_str(),
        "cb({\"type\":\"noop\",\"cname\":\"n\",\"seq\":42,\"content\":\"\"});\n"
    );
    assert_eq!(c.chunk_str(), "");
    eventually("subscriber gone", || subscribers(&s, "n") == 0);
}

#[test]
fn refusals_are_framed_200_responses() {
    let mut cfg = config();
    cfg.front.max_subscribers_per_channel = 1;
    cfg.front.max_channels = 2;
    let s = start(cfg);
    let mut first = Client::connect(s.front_addr());
    first.get("/sub?cname=full&seq=1");
    first.head();
    eventually("first subscribed", || subscribers(&s, "full") == 1);
    let mut c = Client::connect(s.front_addr());
    c.get("/sub?cname=full&seq=1&cb=c");
    let head = c.head();
    assert!(head.starts_with(&sub_head(false)), "{head}");
    assert_eq!(header(&head, "connection"), None);
    assert_eq!(
        c.chunk_str(),
        "c({\"type\":\"429\",\"cname\":\"full\",\"seq\":0,\"content\":\"Too many subscribers\"});\n"
    );
    assert_eq!(c.chunk_str(), "");
    admin(&s, "/push?cname=other&content=x");
    c.get("/sub?cname=third");
    c.head();
    assert_eq!(
        c.chunk_str(),
        "{\"type\":\"429\",\"cname\":\"third\",\"seq\":0,\"content\":\"Too many channels\"}\n"
    );
}

#[test]
fn token_auth_needs_the_signed_token() {
    let mut cfg = config();
    cfg.front.auth = comet::config::Auth::Token;
    let s = start(cfg);
    let mut c = Client::connect(s.front_addr());
    c.get("/sub?cname=t1&cb=c");
    c.head();
    assert_eq!(
        c.chunk_str(),
        "c({\"type\":\"401\",\"cname\":\"t1\",\"seq\":0,\"content\":\"Token error\"});\n"
    );
    c.chunk_str();
    let (_, _, signed) = admin(&s, "/sign?cname=t1");
    let signed = json(&signed);
    assert_eq!(signed["type"], "sign", "{signed}");
    let token = signed["token"].as_str().expect("a token in the sign reply").to_string();
    assert_eq!(token.len(), 32, "{signed}");
    c.get(&format!("/sub?cname=t1&token={}", token.to_uppercase()));
    c.head();
    assert_eq!(
        c.chunk_str(),
        "{\"type\":\"401\",\"cname\":\"t1\",\"seq\":0,\"content\":\"Token error\"}\n"
    );
    assert_eq!(c.chunk_str(), "");
    c.get(&format!("/sub?cname=t1&token={token}"));
    c.head();
    assert_eq!(
        c.chunk_str(),
        "{\"type\":\"next_seq\",\"cname\":\"t1\",\"seq\":1,\"content\":\"\"}\n"
    );
}

#[test]
fn ping_answers_with_sub_timeout() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    c.get("/ping");
    let (head, body) = c.response();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(header(&head, "content-type"), Some("text/html; charset=ISO-8859-1"));
    assert_eq!(body, b"icomet_cb({\"type\":\"ping\",\"sub_timeout\":30});\n");
    c.get("/ping?cb=");
    assert_eq!(c.response().1, b"({\"type\":\"ping\",\"sub_timeout\":30});\n");
    c.send(b"HEAD /ping?cb=x HTTP/1.1\r\n\r\n");
    let head = c.head();
    assert_eq!(header(&head, "content-length"), Some("37"));
    c.get("/ping?cb=p");
    assert_eq!(c.response().1, b"p({\"type\":\"ping\",\"sub_timeout\":30});\n");
}

#[test]
fn methods_paths_and_malformed_requests() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    c.send(b"POST /sub?cname=a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    let (head, body) = c.response();
    assert!(head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{head}");
    assert!(body.is_empty());
    c.send(b"HEAD /sse?cname=a HTTP/1.1\r\n\r\n");
    assert!(c.response().0.starts_with("HTTP/1.1 405 "));

    let mut c = Client::connect(s.front_addr());
    c.get("/nothing?x=<b>");
    let head = c.head();
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert_eq!(header(&head, "connection"), Some("close"));
    assert_eq!(header(&head, "content-type"), Some("text/html"));
    let body = String::from_utf8(c.read_to_eof()).expect("utf8");
    assert_eq!(
        body,
        "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><p>The requested URL /nothing?x=&lt;b&gt; was not found on this server.</p></body></html>\n"
    );

    let mut c = Client::connect(s.front_addr());
    c.send(b"OPTIONS /sub HTTP/1.1\r\n\r\n");
    assert!(c.head().starts_with("HTTP/1.1 501 Not Implemented\r\n"));
    c.read_to_eof();

    let mut c = Client::connect(s.front_addr());
    c.send(b"GET /sub a b HTTP/1.1\r\n\r\n");
    assert!(c.head().starts_with("HTTP/1.1 400 Bad Request\r\n"));
    let reason = c.read_to_eof();
    assert!(reason.len() > 1 && reason.ends_with(b"\n"), "{reason:?}");

    // /sub/ and /SUB are not /sub; %73 decodes to s.
    for (target, want) in [("/sub/", "404"), ("/SUB", "404"), ("/%73ub?cname=x", "200")] {
        let mut c = Client::connect(s.front_addr());
        c.get(target);
        assert!(c.head().starts_with(&format!("HTTP/1.1 {want}")), "{target}");
    }
}

#[test]
fn oversized_heads_and_bodies_are_refused() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    let big = format!("GET /sub?cname=a HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
    c.send(big.as_bytes());
    assert!(c.head().starts_with("HTTP/1.1 431 "));
    c.read_to_eof();
    // An HTTP/1.0 client gets its own version in the status line.
    let mut c = Client::connect(s.front_addr());
    c.send(big.replace("HTTP/1.1", "HTTP/1.0").as_bytes());
    assert!(c.head().starts_with("HTTP/1.0 431 "));
    c.read_to_eof();
    let mut c = Client::connect(s.front_addr());
    c.send(b"POST /ping HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n");
    assert!(c.head().starts_with("HTTP/1.1 413 "));
    c.read_to_eof();
    // The server still serves others.
    let mut c = Client::connect(s.front_addr());
    c.get("/ping");
    assert!(c.head().starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn bad_parameters_get_400_with_a_reason() {
    let s = start(config());
    for (target, reason) in [
        ("/sub?cname=a&cb=alert(1)", "cb may only contain"),
        ("/sub?cname=a%0Ab", "cname contains a control character"),
        (
            &format!("/sub?cname={}", "x".repeat(300)),
            "cname is longer than 256 bytes",
        ),
        ("/ping?cb=%3Cscript%3E", "cb may only contain"),
    ] {
        let mut c = Client::connect(s.front_addr());
        c.get(target);
        assert!(c.head().starts_with("HTTP/1.1 400 Bad Request\r\n"), "{target}");
        let body = String::from_utf8(c.read_to_eof()).expect("utf8");
        assert!(body.starts_with(reason), "{target}: {body}");
    }
}

#[test]
fn lenient_query_keeps_what_it_can() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    // icomet drops every parameter of such a query; comet uses them.
    c.get("/sub?cname=len&flag&&seq=0&x={\"a\"}&cb=f");
    c.head();
    assert_eq!(
        c.chunk_str(),
        "f({\"type\":\"next_seq\",\"cname\":\"len\",\"seq\":1,\"content\":\"\"});\n"
    );
    c.chunk_str();
    // Case-insensitive keys, first occurrence wins, + is a space.
    c.get("/sub?CNAME=a+b&cname=zzz");
    c.head();
    assert_eq!(
        c.chunk_str(),
        "{\"type\":\"next_seq\",\"cname\":\"a b\",\"seq\":1,\"content\":\"\"}\n"
    );
}

#[test]
fn http10_responses_are_close_delimited() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    c.send(b"GET /sub?cname=h&cb=x HTTP/1.0\r\n\r\n");
    let head = c.head();
    assert!(head.starts_with(&sub_head(true)), "{head}");
    assert_eq!(header(&head, "connection"), Some("close"));
    assert_eq!(header(&head, "transfer-encoding"), None);
    assert_eq!(
        c.read_to_eof(),
        b"x({\"type\":\"next_seq\",\"cname\":\"h\",\"seq\":1,\"content\":\"\"});\n"
    );
    // A waiting 1.0 poll gets the raw message, then EOF.
    let mut c = Client::connect(s.front_addr());
    c.send(b"GET /sub?cname=h&seq=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    c.head();
    eventually("subscribed", || subscribers(&s, "h") == 1);
    admin(&s, "/push?cname=h&content=z");
    assert_eq!(
        c.read_to_eof(),
        b"{\"type\":\"data\",\"cname\":\"h\",\"seq\":1,\"content\":\"z\"}\n"
    );
}

#[test]
fn connection_close_and_pipelining() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    c.send(b"GET /sub?cname=p1 HTTP/1.1\r\n\r\nGET /ping?cb=a HTTP/1.1\r\n\r\nGET /sub?cname=p2&cb=z HTTP/1.1\r\nConnection: close\r\n\r\n");
    c.head();
    assert_eq!(
        c.chunk_str(),
        "{\"type\":\"next_seq\",\"cname\":\"p1\",\"seq\":1,\"content\":\"\"}\n"
    );
    assert_eq!(c.chunk_str(), "");
    assert_eq!(c.response().1, b"a({\"type\":\"ping\",\"sub_timeout\":30});\n");
    let head = c.head();
    assert_eq!(header(&head, "connection"), Some("close"));
    assert_eq!(
        c.chunk_str(),
        "z({\"type\":\"next_seq\",\"cname\":\"p2\",\"seq\":1,\"content\":\"\"});\n"
    );
    assert_eq!(c.chunk_str(), "");
    assert!(c.read_to_eof().is_empty());
}

#[test]
fn body_arriving_after_the_answer_is_skipped_and_the_connection_kept() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    // The head and part of the body; the server answers before the rest comes.
    c.send(b"POST /ping?cb=first HTTP/1.1\r\nContent-Length: 11\r\n\r\nhel");
    let (head, body) = c.response();
    assert_eq!(header(&head, "connection"), None, "{head}");
    assert_eq!(body, b"first({\"type\":\"ping\",\"sub_timeout\":30});\n");
    // The rest of the body is not taken for a request head; what follows it is.
    c.send(b"lo=worldGET /ping?cb=second HTTP/1.1\r\n\r\n");
    let (head, body) = c.response();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, b"second({\"type\":\"ping\",\"sub_timeout\":30});\n");
}

#[test]
fn pipelined_request_behind_a_waiting_poll_is_answered_after_it() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    c.send(b"GET /sub?cname=w&seq=1 HTTP/1.1\r\n\r\nGET /ping HTTP/1.1\r\n\r\n");
    c.head();
    eventually("subscribed", || subscribers(&s, "w") == 1);
    admin(&s, "/push?cname=w&content=1");
    assert_eq!(
        c.chunk_str(),
        "{\"type\":\"data\",\"cname\":\"w\",\"seq\":1,\"content\":\"1\"}\n"
    );
    assert_eq!(c.chunk_str(), "");
    assert_eq!(c.response().1, b"icomet_cb({\"type\":\"ping\",\"sub_timeout\":30});\n");
}

#[test]
fn disconnect_removes_the_subscriber_and_the_channel_expires() {
    let mut cfg = config();
    cfg.front.channel_timeout = 1;
    let s = start(cfg);
    let mut c = Client::connect(s.front_addr());
    c.get("/sub?cname=gone&seq=1");
    c.head();
    eventually("subscribed", || subscribers(&s, "gone") == 1);
    drop(c);
    eventually("unsubscribed", || subscribers(&s, "gone") == 0);
    eventually("channel expired", || admin(&s, "/check?cname=gone").2 == "{}\n");
    assert_eq!(
        admin(&s, "/info").2,
        "{\"version\": \"0.2.5\", \"channels\": 0, \"subscribers\": 0}\n"
    );
}

#[test]
fn slow_request_heads_are_cut_off() {
    let mut cfg = config();
    cfg.front.header_timeout_secs = 1;
    // One worker, one timer wheel: the order of the cut-offs below is the
    // order of their deadlines.
    cfg.workers = 1;
    let s = start(cfg);
    let head_timeouts = || s.shared().stats.head_timeouts.load(Ordering::Relaxed);
    // A keep-alive connection idle after a complete response.
    let mut kept = Client::connect(s.front_addr());
    kept.get("/ping");
    kept.response();
    // Connections opened after it that never complete a head are cut off.
    let mut idle = Client::connect(s.front_addr());
    let mut partial = Client::connect(s.front_addr());
    partial.send(b"GET /sub?cname=a HTTP/1.1\r\nX-Slow: ");
    assert!(partial.read_to_eof().is_empty());
    assert!(idle.read_to_eof().is_empty());
    // Twice over: `kept` has been idle for two head timeouts since.
    let mut later = Client::connect(s.front_addr());
    assert!(later.read_to_eof().is_empty());
    assert_eq!(head_timeouts(), 3);
    // A head deadline for `kept` would have come before theirs (it went
    // idle first, on the same wheel): it was not cut off, and answers.
    kept.get("/ping");
    assert_eq!(
        kept.response().1,
        b"icomet_cb({\"type\":\"ping\",\"sub_timeout\":30});\n"
    );
    assert_eq!(head_timeouts(), 3);
}

/// The header timeout is a lower bound: a connection whose head is not
/// complete is cut off no sooner than `header_timeout_secs` after it was
/// accepted, however close to a timer tick that was. Checked from the
/// client's side, which connects before the server accepts and sees the
/// close after the server made it, so the bound holds without slack.
#[test]
fn no_head_is_cut_off_before_the_header_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let mut cfg = config();
    cfg.front.header_timeout_secs = 2;
    let s = start(cfg);
    // Accepted at eight points of a tick (the spacing spreads them over the
    // one-second tick; it is not what is checked): half send nothing, half
    // the start of a head.
    let clients: Vec<_> = (0..8u32)
        .map(|i| {
            let addr = s.front_addr();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(125) * i);
                let connecting = Instant::now();
                let mut c = Client::connect(addr);
                if i % 2 == 1 {
                    c.send(b"GET /ping HTTP/1.1\r\nHost: t\r\n");
                }
                let rest = c.read_to_eof();
                (rest, connecting.elapsed())
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let (rest, open_for) = c.join().expect("client thread");
        assert!(rest.is_empty(), "client {i}: {rest:?}");
        assert!(
            open_for >= TIMEOUT,
            "client {i} was cut off {open_for:?} after connecting"
        );
    }
    assert_eq!(s.shared().stats.head_timeouts.load(Ordering::Relaxed), 8);
}

#[test]
fn close_ends_a_waiting_poll_with_a_close_frame() {
    let s = start(config());
    admin(&s, "/push?cname=cl&content=x");
    let mut c = Client::connect(s.front_addr());
    c.get("/sub?cname=cl&seq=2&cb=k");
    c.head();
    eventually("subscribed", || subscribers(&s, "cl") == 1);
    assert_eq!(admin(&s, "/close?cname=cl").2, "ok 2\n");
    assert_eq!(
        c.chunk_str(),
        "k({\"type\":\"close\",\"cname\":\"cl\",\"seq\":2,\"content\":\"\"});\n"
    );
    assert_eq!(c.chunk_str(), "");
    assert_eq!(
        admin(&s, "/info").2,
        "{\"version\": \"0.2.5\", \"channels\": 0, \"subscribers\": 0}\n"
    );
}

/// A JSONP long-poll client that resumes by seq loses nothing that is
/// published while it is between requests.
#[test]
fn jsonp_client_resuming_by_seq_loses_no_message() {
    let mut cfg = config();
    // History must cover what piles up while the client is between polls.
    cfg.front.channel_buffer_size = 400;
    let s = start(cfg);
    let publisher = {
        let addr = s.admin_addr();
        std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            for i in 0..200 {
                c.send(format!("GET /push?cname=r&content=m{i} HTTP/1.1\r\n\r\n").as_bytes());
                c.response();
                if i % 7 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };
    let mut c = Client::connect(s.front_addr());
    // The channel is new to this client: it wants everything from seq 1.
    let mut seq = 1i64;
    let mut got = Vec::new();
    while got.len() < 200 {
        c.get(&format!("/sub?cname=r&seq={seq}&cb=icomet_cb_0"));
        c.head();
        let frame = c.chunk_str();
        assert_eq!(c.chunk_str(), "");
        let inner = frame
            .strip_prefix("icomet_cb_0(")
            .and_then(|f| f.strip_suffix(");\n"))
            .unwrap_or_else(|| panic!("not a JSONP frame: {frame:?}"));
        // One message alone, or an array of them (a replay).
        let messages = match json(inner) {
            serde_json::Value::Array(all) => all,
            one => vec![one],
        };
        for m in messages {
            let n = m["seq"].as_i64().unwrap_or_else(|| panic!("no seq in {m}"));
            match m["type"].as_str() {
                Some("next_seq") => {
                    assert_eq!(m["content"], "", "{m}");
                    seq = n;
                }
                Some("data") => {
                    assert_eq!(n, seq, "in order, no gap: {m}");
                    got.push(m["content"].as_str().expect("content").to_string());
                    seq = n + 1;
                }
                _ => panic!("unexpected {m}"),
            }
            assert_eq!(m["cname"], "r", "{m}");
        }
        // Pause between polls so that messages pile up in history meanwhile.
        if got.len() % 10 == 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    publisher.join().expect("publisher");
    let want: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
}

/// A worker that held more than 1,024 connections and then lost them all
/// gives back its connection array, timer wheel and read buffer; it must
/// serve new subscribers exactly as before,
/// whether it shares the process's descriptor table or has its own.
#[test]
fn workers_serve_again_after_everyone_left() {
    for tables in [DescriptorTables::Never, DescriptorTables::Always] {
        let mut cfg = config();
        cfg.workers = 1;
        cfg.front.descriptor_tables = tables;
        let s = start(cfg);
        for round in 1..=2u64 {
            let clients: Vec<Client> = (0..1100)
                .map(|_| {
                    let mut c = Client::connect(s.front_addr());
                    c.get(&format!("/sub?cname=burst&seq={round}"));
                    c
                })
                .collect();
            eventually("all subscribed", || subscribers(&s, "burst") == 1100);
            drop(clients);
            eventually("all gone", || subscribers(&s, "burst") == 0);
            assert_eq!(s.shared().stats.connections.load(Ordering::Relaxed), 0);
            eventually("the arrays given back", || {
                s.shared().stats.worker_releases.load(Ordering::Relaxed) == round
            });
            assert_eq!(metric(&s, "comet_worker_memory_releases_total"), round);
            let mut c = Client::connect(s.front_addr());
            c.get(&format!("/sub?cname=burst&seq={round}&cb=again"));
            c.head();
            eventually("subscribed again", || subscribers(&s, "burst") == 1);
            admin(&s, &format!("/push?cname=burst&content=after{round}"));
            let seq = round;
            assert_eq!(
                c.chunk_str(),
                format!(
                    "again({{\"type\":\"data\",\"cname\":\"burst\",\"seq\":{seq},\"content\":\"after{round}\"}});\n"
                ),
                "{tables:?}"
            );
        }
        drop(s);
    }
}

/// Issue 17 bug 1: the last connection of a worker that held more than
/// 1,024 closing from inside request processing (an HTTP/1.0 `/ping`,
/// answered and closed) must not take the worker down: the worker used to
/// release its connection array while the request loop still indexed it,
/// panicked, and every later connection to the front timed out.
#[test]
fn last_connection_closing_inside_a_request_keeps_the_worker_alive() {
    let mut cfg = config();
    cfg.workers = 1;
    let s = start(cfg);
    let mut idle = Client::connect(s.front_addr());
    let clients: Vec<Client> = (0..1100)
        .map(|_| {
            let mut c = Client::connect(s.front_addr());
            c.get("/stream?cname=many&seq=1");
            c
        })
        .collect();
    eventually("all subscribed", || subscribers(&s, "many") == 1100);
    drop(clients);
    eventually("all gone", || subscribers(&s, "many") == 0);
    idle.send(b"GET /ping HTTP/1.0\r\n\r\n");
    let reply = String::from_utf8(idle.read_to_eof()).expect("utf8");
    assert!(reply.starts_with("HTTP/1.0 200 OK\r\n"), "{reply}");
    // The worker still serves.
    let mut next = Client::connect(s.front_addr());
    next.send(b"GET /ping HTTP/1.0\r\n\r\n");
    let reply = String::from_utf8(next.read_to_eof()).expect("utf8");
    assert!(
        reply.ends_with("icomet_cb({\"type\":\"ping\",\"sub_timeout\":30});\n"),
        "{reply}"
    );
}
