//! Running node's test runner on the suites in `tests/browser/` (driven
//! through playwright-core in Debian's chromium): the tools they need, one
//! run with a time limit, and the counts of its TAP summary. The suites
//! themselves (`browser`, `nginx`) say what to run and against what.
//!
//! A missing node, chromium or `node_modules` fails the test with what to
//! install; it never skips. `./tools/test` installs them when missing.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::files::repo;

/// The node project with the browser suites.
pub fn suite_dir() -> PathBuf {
    repo().join("tests").join("browser")
}

/// The browser: `COMET_CHROMIUM`, or Debian's.
pub fn chromium() -> PathBuf {
    std::env::var_os("COMET_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Fails early, saying what to install, when chromium or playwright-core
/// is missing (node itself is checked when it is started).
pub fn check_tools() {
    let browser = chromium();
    assert!(
        browser.exists(),
        "{} is missing: run ./tools/test (it installs chromium with apt-get) or apt-get install -y chromium",
        browser.display()
    );
    let dir = suite_dir();
    assert!(
        dir.join("node_modules").join("playwright-core").exists(),
        "playwright-core is not installed: run ./tools/test, or npm ci in {}",
        dir.display()
    );
}

/// Runs `node --test` (one file at a time, TAP output) on `paths` of the
/// suite with these environment variables, for at most `limit` (which only
/// stops a hung browser); prints and returns its TAP output. Panics when
/// node fails or reports a failed test.
pub fn run(paths: &[&str], env: &[(&str, String)], limit: Duration) -> String {
    let mut child = Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=tap"])
        .args(paths)
        .current_dir(suite_dir())
        .env("COMET_CHROMIUM", chromium())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): run ./tools/test, which installs it"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node --test {paths:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = reader.join().expect("reader thread");
    println!("{output}");
    assert!(
        status.success(),
        "node --test {paths:?} failed ({status}); see its output above"
    );
    assert_eq!(summary(&output, "fail"), Some(0), "node reported failures");
    output
}

/// A count from node's test summary (`# pass 12`).
pub fn summary(output: &str, key: &str) -> Option<u32> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("# {key} "))?.trim().parse().ok())
}
