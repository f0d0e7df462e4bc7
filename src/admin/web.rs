//! The browser client and demo pages, served by the admin listener under `/demo/`.
//!
//! Every file of `web/` is compiled into the binary (`include_bytes!`), so
//! `/demo/` works whatever the working directory and needs no install step;
//! a file is found by exact name in [`FILES`], never on the filesystem, so no
//! path can reach anything else. One file is generated per request:
//! `config.js` tells the pages the front listener's port from the running
//! server (tests bind port 0), and the pages build the front URL from
//! `location.hostname`. Serving the pages from the admin origin lets the
//! chat demo publish with plain same-origin requests while the admin
//! listener stays localhost-only (its IP filter applies to `/demo/` too).
//!
//! Every reply carries `Origin-Agent-Cluster: ?0`: the iframe transport
//! embeds the front's `/iframe` (another port, so another origin), whose
//! scripts call `parent.icomet_cb` after both documents set
//! `document.domain`; Chromium ignores that setter unless both documents opt
//! out of origin-keyed agent clusters with this header.
//!
//! This module only maps a path to bytes; it never touches the channels.

use hyper::header::{HeaderValue, CACHE_CONTROL, LOCATION};
use hyper::{Method, StatusCode};

use super::body::AdminBody;
use super::response::{reply, AdminError, AdminResponse};

/// The path prefix of the demo pages.
pub const PREFIX: &[u8] = b"/demo";

/// One embedded file.
struct File {
    /// Its name under `/demo/`.
    name: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes.
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! file {
    ($name:literal, $type:expr) => {
        File {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../web/", $name)),
        }
    };
}

/// Every file of `web/`; `index.html` is also served for `/demo/`.
const FILES: &[File] = &[
    file!("index.html", HTML),
    file!("chat.html", HTML),
    file!("chat.js", JS),
    file!("ws.html", HTML),
    file!("sse.html", HTML),
    file!("poll.html", HTML),
    file!("iframe.html", HTML),
    file!("transport.js", JS),
    file!("channels.html", HTML),
    file!("channels.js", JS),
    file!("ops.html", HTML),
    file!("ops.js", JS),
    file!("comet.js", JS),
    file!("style.css", CSS),
];

/// The generated file that tells pages where the front listener is.
const CONFIG_JS: &str = "config.js";

/// Whether `path` (percent-decoded) belongs to the demo pages: `/demo` or `/demo/...`.
pub fn is_demo(path: &[u8]) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
}

/// Answers a request for a demo path; `front_port` is the front listener's bound port.
pub fn serve(method: &Method, path: &[u8], target: &str, front_port: u16) -> Result<AdminResponse, AdminError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(AdminError::InvalidMethod);
    }
    let Some(name) = path.strip_prefix(b"/demo/") else {
        // `/demo` itself: relative links in the pages need the slash.
        let mut r = reply(StatusCode::MOVED_PERMANENTLY, None, AdminBody::empty());
        r.headers_mut().insert(LOCATION, HeaderValue::from_static("/demo/"));
        return Ok(r);
    };
    let (content_type, body): (&'static str, AdminBody) = if name == CONFIG_JS.as_bytes() {
        (JS, AdminBody::full(config_js(front_port)))
    } else {
        let name = if name.is_empty() { &b"index.html"[..] } else { name };
        match FILES.iter().find(|f| f.name.as_bytes() == name) {
            Some(f) => (f.content_type, AdminBody::full(f.body)),
            None => return Err(AdminError::NotFound(target.to_owned())),
        }
    };
    let mut r = reply(StatusCode::OK, Some(content_type), body);
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("origin-agent-cluster", HeaderValue::from_static("?0"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    Ok(r)
}

/// `config.js`: the running server's front port, for pages that build the front URL.
fn config_js(front_port: u16) -> String {
    format!("window.COMET_SERVER = {{\"front_port\": {front_port}}};\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn demo_paths() {
        assert!(is_demo(b"/demo"));
        assert!(is_demo(b"/demo/"));
        assert!(is_demo(b"/demo/chat.html"));
        for p in [&b"/demos"[..], b"/dem", b"/", b"/pub", b"/Demo/"] {
            assert!(!is_demo(p), "{}", String::from_utf8_lossy(p));
        }
    }

    #[test]
    fn every_file_has_a_distinct_name_and_content() {
        for (i, f) in FILES.iter().enumerate() {
            assert!(!f.body.is_empty(), "{} is empty", f.name);
            assert!(FILES[..i].iter().all(|g| g.name != f.name), "{} twice", f.name);
            assert_ne!(f.name, CONFIG_JS);
        }
    }

    fn body_of(r: AdminResponse) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(r.into_body().collect()).expect("body").to_bytes().to_vec()
    }

    #[test]
    fn config_names_the_front_port() {
        let r = serve(&Method::GET, b"/demo/config.js", "/demo/config.js", 40123).expect("served");
        assert_eq!(r.headers()["content-type"], JS);
        assert_eq!(body_of(r), b"window.COMET_SERVER = {\"front_port\": 40123};\n");
    }

    #[test]
    fn index_for_the_directory_and_redirect_for_the_bare_prefix() {
        let r = serve(&Method::GET, b"/demo/", "/demo/", 1).expect("served");
        assert_eq!(r.headers()["content-type"], HTML);
        assert_eq!(r.headers()["origin-agent-cluster"], "?0");
        assert_eq!(body_of(r), include_bytes!("../../web/index.html"));
        let r = serve(&Method::HEAD, b"/demo", "/demo", 1).expect("served");
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(r.headers()["location"], "/demo/");
    }

    #[test]
    fn unknown_files_and_other_methods_are_refused() {
        for p in [&b"/demo/nope.html"[..], b"/demo/../Cargo.toml", b"/demo//index.html"] {
            let e = serve(&Method::GET, p, "t", 1).expect_err("refused");
            assert!(matches!(e, AdminError::NotFound(_)), "{e:?}");
        }
        let e = serve(&Method::POST, b"/demo/index.html", "t", 1).expect_err("refused");
        assert!(matches!(e, AdminError::InvalidMethod), "{e:?}");
    }
}
