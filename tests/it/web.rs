//! The demo pages on the admin listener: `/demo/` serves the embedded `web/`
//! files with their content types, `config.js` names the front listener's
//! bound port, the pages need no admin key (the endpoints they call do),
//! and the admin IP filter still applies.

use crate::support::{admin, config, header, json, start, Client};

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One request with `method` on a fresh admin connection: (head, body).
fn request(server: &comet::server::Server, method: &str, target: &str) -> (String, Vec<u8>) {
    let mut c = Client::connect(server.admin_addr());
    c.send(format!("{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
    if method == "HEAD" {
        return (c.head(), c.read_to_eof());
    }
    c.response()
}

#[test]
fn files_are_served_with_their_types() {
    let s = start(config());
    for (target, file, content_type) in [
        ("/demo/", &include_bytes!("../../web/index.html")[..], HTML),
        ("/demo/index.html", include_bytes!("../../web/index.html"), HTML),
        ("/demo/chat.html", include_bytes!("../../web/chat.html"), HTML),
        ("/demo/comet.js", include_bytes!("../../web/comet.js"), JS),
        ("/demo/ops.js", include_bytes!("../../web/ops.js"), JS),
        ("/demo/style.css", include_bytes!("../../web/style.css"), CSS),
        ("/demo/%63omet.js", include_bytes!("../../web/comet.js"), JS),
        ("/demo/sse.html?channel=x", include_bytes!("../../web/sse.html"), HTML),
    ] {
        let (head, body) = request(&s, "GET", target);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{target}: {head}");
        assert_eq!(header(&head, "content-type"), Some(content_type), "{target}");
        assert_eq!(header(&head, "origin-agent-cluster"), Some("?0"), "{target}");
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"), "{target}");
        assert_eq!(body, file, "{target}");
    }
    let (head, body) = request(&s, "HEAD", "/demo/chat.html");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let len = include_bytes!("../../web/chat.html").len().to_string();
    assert_eq!(header(&head, "content-length"), Some(len.as_str()));
    assert!(body.is_empty(), "HEAD has no body");
}

#[test]
fn config_js_names_the_bound_front_port() {
    let s = start(config());
    let port = s.front_addr().port();
    assert_ne!(port, 0);
    let (status, head, body) = admin(&s, "/demo/config.js");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&head, "content-type"), Some(JS));
    assert_eq!(body, format!("window.COMET_SERVER = {{\"front_port\": {port}}};\n"));
}

#[test]
fn bare_prefix_redirects_and_unknown_files_are_404() {
    let s = start(config());
    let (status, head, _) = admin(&s, "/demo");
    assert_eq!(status, "HTTP/1.1 301 Moved Permanently");
    assert_eq!(header(&head, "location"), Some("/demo/"));
    for target in [
        "/demo/missing.html",
        "/demo/../Cargo.toml",
        "/demo/web/comet.js",
        "/demos",
    ] {
        let (status, head, body) = admin(&s, target);
        assert_eq!(status, "HTTP/1.1 404 Not Found", "{target}");
        assert_eq!(header(&head, "content-type"), Some("text/html"), "{target}");
        assert!(body.contains("was not found on this server"), "{target}: {body}");
    }
}

#[test]
fn only_get_and_head() {
    let s = start(config());
    for method in ["POST", "PUT", "DELETE"] {
        let (head, _) = request(&s, method, "/demo/index.html");
        assert!(head.starts_with("HTTP/1.1 405 Invalid Method\r\n"), "{method}: {head}");
    }
}

#[test]
fn the_admin_ip_filter_applies() {
    let mut c = config();
    c.admin.allow = vec!["10.1.2.3".to_string()];
    c.admin.deny = vec!["all".to_string()];
    let s = start(c);
    let (status, _, body) = admin(&s, "/demo/");
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert_eq!(body, "");
}

/// One GET with extra header lines on a fresh admin connection: (status line, head, body).
fn get_with(server: &comet::server::Server, target: &str, headers: &str) -> (String, String, Vec<u8>) {
    let mut c = Client::connect(server.admin_addr());
    c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n").as_bytes());
    let (head, body) = c.response();
    (head.lines().next().unwrap_or("").to_string(), head, body)
}

#[test]
fn pages_need_no_admin_key_but_what_they_call_does() {
    let mut c = config();
    c.admin.key = "demo-k3y".to_string();
    let s = start(c);
    for (target, content_type) in [
        ("/demo/", HTML),
        ("/demo/chat.html", HTML),
        ("/demo/comet.js", JS),
        ("/demo/ops.html?key=demo-k3y", HTML),
        ("/demo/config.js", JS),
    ] {
        let (status, head, _) = get_with(&s, target, "");
        assert_eq!(status, "HTTP/1.1 200 OK", "{target}");
        assert_eq!(header(&head, "content-type"), Some(content_type), "{target}");
    }
    // The pages' own requests: refused without the key, served with it as
    // the pages send it (Authorization: Bearer, or key= for JSONP).
    let (status, _, body) = get_with(&s, "/push?cname=demo&content=hi", "");
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    assert_eq!(body, b"admin key required\n");
    let (status, _, _) = get_with(&s, "/stats", "");
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    let (status, _, body) = get_with(&s, "/push?cname=demo&content=hi", "Authorization: Bearer demo-k3y\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, b"{\"type\":\"ok\"}\n");
    let (status, head, _) = get_with(&s, "/stats", "Authorization: Bearer demo-k3y\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    let (status, _, body) = get_with(&s, "/sign?cname=demo&cb=f&key=demo-k3y", "");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let body = String::from_utf8(body).expect("utf-8 body");
    let signed = body
        .strip_prefix("f(")
        .and_then(|b| b.strip_suffix(");\n"))
        .unwrap_or_else(|| panic!("not a JSONP reply: {body:?}"));
    let signed = json(signed);
    assert_eq!(
        (&signed["type"], &signed["cname"]),
        (&"sign".into(), &"demo".into()),
        "{body}"
    );
}
