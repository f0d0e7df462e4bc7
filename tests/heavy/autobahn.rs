//! The Autobahn|Testsuite fuzzingclient (cases 1-7 and 10) against a
//! WebSocket echo server, through `tools/autobahn/run`.
//!
//! [`conformance`] takes a function that starts a server and returns it (a
//! guard kept alive for the run) with its echo URL: comet with
//! `front.ws_echo` on, whose `/ws_echo` runs the same front path and codec
//! as `/ws`. The test is skipped, with a printed message, where Python 2.7
//! is missing (the runner exits 77).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a whole run may take, installation included (a run takes about
/// 10 s on a 2-core machine, the first installation about 30 s more).
const RUN_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Starts a server with `start`, runs the fuzzingclient against the URL it
/// returns with the report in `target/tmp/autobahn/<name>`, and fails
/// naming the report unless every case passed.
fn conformance<S>(name: &str, start: impl FnOnce() -> (S, String)) {
    let (server, url) = start();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let outdir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("autobahn").join(name);
    let mut child = Command::new(root.join("tools/autobahn/run"))
        .arg(&url)
        .arg(&outdir)
        .stdin(Stdio::null())
        .spawn()
        .expect("tools/autobahn/run starts");
    let deadline = Instant::now() + RUN_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for tools/autobahn/run") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tools/autobahn/run {url} took longer than {RUN_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(server);
    match status.code() {
        Some(0) => {}
        Some(77) => println!("skipped: Autobahn needs Python 2.7 (pyenv 2.7.18), which this machine lacks"),
        other => panic!(
            "Autobahn cases failed against {name} (exit {other:?}); report: {}",
            outdir.join("index.html").display()
        ),
    }
}

#[test]
fn autobahn_cases_1_to_7_and_10_against_comet() {
    conformance("comet", || {
        let mut config = crate::support::config();
        config.front.ws_echo = true;
        // Case 9 (manual) sends up to 16 MiB; 1-7 and 10 stay far below
        // this queue bound.
        config.front.max_queued_bytes = 32 << 20;
        let server = crate::support::start(config);
        let url = format!("ws://{}/ws_echo", server.front_addr());
        (server, url)
    });
}
