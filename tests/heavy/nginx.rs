//! deploy/nginx/comet.conf, run as shipped in Debian's nginx in front of the
//! real `comet` binary, with Chromium as the client (the node test
//! `tests/browser/deploy/nginx.test.mjs`): HTTP/2 over TLS with a certificate
//! made for this run, 10 SSE subscriptions from one page, JSONP long poll and
//! the forever iframe through the proxy, nothing of the admin listener.
//!
//! A missing nginx, chromium, openssl or node fails this test with what to
//! install; it never skips. `./tools/test` installs them when missing. Run it
//! alone with `cargo test --test heavy nginx -- --nocapture`.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::node;
use crate::support::binary::Binary;
use crate::support::files::{read_repo, TempDir};
use crate::support::WAIT;

/// The node test takes some 20 s; this only stops a hung browser.
const NODE_LIMIT: Duration = Duration::from_secs(300);

fn nginx_bin() -> PathBuf {
    std::env::var_os("COMET_NGINX").map_or_else(|| PathBuf::from("/usr/sbin/nginx"), PathBuf::from)
}

/// A loopback port nobody listened on a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// `text` with `from` replaced by `to`, which must occur exactly once (so a
/// change to the shipped file fails here, not silently).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "deploy/nginx/comet.conf should contain {from:?} once"
    );
    text.replacen(from, to, 1)
}

/// The shipped config with its addresses and certificate for this run.
fn render(shipped: &str, dir: &Path, front: SocketAddr, https: u16, plain: u16) -> String {
    let c = replace_once(shipped, "server 127.0.0.1:8100;", &format!("server {front};"));
    let c = replace_once(
        &c,
        "listen 443 ssl http2;",
        &format!("listen 127.0.0.1:{https} ssl http2;"),
    );
    let c = replace_once(&c, "listen [::]:443 ssl http2;", "");
    let c = replace_once(&c, "listen 80;", &format!("listen 127.0.0.1:{plain};"));
    let c = replace_once(&c, "listen [::]:80;", "");
    let c = replace_once(
        &c,
        "/etc/ssl/comet/fullchain.pem",
        &dir.join("cert.pem").display().to_string(),
    );
    replace_once(
        &c,
        "/etc/ssl/comet/privkey.pem",
        &dir.join("key.pem").display().to_string(),
    )
}

/// The main nginx.conf around the shipped file, as Debian's nginx.conf
/// includes conf.d/*.conf inside its http block. Debian's http block also
/// turns gzip on, so this one does too.
fn main_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log stderr notice;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
         \x20 include /etc/nginx/mime.types;\n\
         \x20 gzip on;\n\
         \x20 log_format deploy_test '$server_protocol $status \"$request_uri\"';\n\
         \x20 access_log {d}/access.log deploy_test;\n\
         \x20 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         \x20 include {d}/comet.conf;\n\
         }}\n"
    )
}

/// A running nginx; stopped (SIGTERM to its master, by pid) when dropped.
struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts nginx on fresh loopback ports (again with new ports if another
/// process took one in between); returns it with its https and http ports.
fn start_nginx(dir: &Path, front: SocketAddr) -> (Nginx, u16, u16) {
    let shipped = read_repo("deploy/nginx/comet.conf");
    std::fs::write(dir.join("nginx.conf"), main_conf(dir)).expect("write nginx.conf");
    let mut last_error = String::new();
    for _ in 0..5 {
        let (https, plain) = (free_port(), free_port());
        if https == plain {
            continue;
        }
        std::fs::write(dir.join("comet.conf"), render(&shipped, dir, front, https, plain)).expect("write");
        let mut child = Command::new(nginx_bin())
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg("stderr")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): run ./tools/test (it installs nginx) or apt-get install -y nginx",
                    nginx_bin().display()
                )
            });
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for nginx") {
                let mut err = String::new();
                let _ = child.stderr.take().expect("stderr").read_to_string(&mut err);
                last_error = format!("nginx exited with {status}: {err}");
                break;
            }
            if TcpStream::connect(("127.0.0.1", https)).is_ok() && TcpStream::connect(("127.0.0.1", plain)).is_ok() {
                // Its log goes on to our stderr from here.
                let mut stderr = child.stderr.take().expect("stderr");
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut stderr, &mut std::io::stderr());
                });
                return (Nginx { child }, https, plain);
            }
            assert!(Instant::now() < deadline, "nginx did not listen within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        if !last_error.contains("Address already in use") {
            break;
        }
    }
    panic!("nginx did not start: {last_error}");
}

/// A self-signed certificate for 127.0.0.1, made with the openssl CLI.
fn make_certificate(dir: &Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install -y openssl"));
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fails early, saying what to install, when a tool is missing.
fn check_tools() {
    node::check_tools();
    assert!(
        nginx_bin().exists(),
        "{} is missing: run ./tools/test (it installs nginx) or apt-get install -y nginx",
        nginx_bin().display()
    );
}

#[test]
fn nginx_recipe_serves_chromium_over_http2() {
    check_tools();
    let dir = TempDir::new("nginx");
    make_certificate(dir.path());
    let comet = Binary::start(
        "workers: 1\nfront:\n  listen: \"127.0.0.1:0\"\n  max_connections: 2000\n\
         admin:\n  listen: \"127.0.0.1:0\"\n  threads: 1\n",
    );
    let (nginx, https, plain) = start_nginx(dir.path(), comet.front());
    let output = node::run(
        &["deploy/"],
        &[
            ("COMET_DEPLOY_URL", format!("https://127.0.0.1:{https}")),
            ("COMET_DEPLOY_HTTP", format!("http://127.0.0.1:{plain}")),
            ("COMET_DEPLOY_ADMIN", format!("http://{}", comet.admin())),
        ],
        NODE_LIMIT,
    );
    assert!(
        node::summary(&output, "pass").is_some_and(|n| n >= 6),
        "node ran too few tests"
    );

    // nginx logs a request when it ends; the browser has closed them all.
    let log = dir.path().join("access.log");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + WAIT;
    while read().lines().filter(|l| l.contains("\"/sse?")).count() < 10 {
        assert!(
            Instant::now() < deadline,
            "10 /sse requests in nginx's log; have:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(nginx);
    let text = read();
    for path in ["\"/sse?", "\"/sub?", "\"/iframe?"] {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(path)).collect();
        assert!(!lines.is_empty(), "no {path} request in nginx's log:\n{text}");
        // Chromium's requests came over HTTP/2 (node's checks are HTTP/1.1).
        assert!(
            lines.iter().all(|l| l.starts_with("HTTP/2.0 ")),
            "{path} not all over HTTP/2:\n{text}"
        );
    }
    // comet served all of it and stops cleanly.
    comet.stop();
}
