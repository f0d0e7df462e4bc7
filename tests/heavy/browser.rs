//! The browser suite: web/comet.js and the demo pages in Debian's chromium,
//! driven headless by playwright-core from node (`tests/browser/`), against
//! the real `comet` binary that cargo built for this test run.
//!
//! A missing node, chromium or `node_modules` fails this test with what to
//! install; it never skips. `./tools/test` installs them when missing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole suite takes about a minute; this only stops a hung browser.
const SUITE_LIMIT: Duration = Duration::from_secs(600);

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("COMET_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// A count from node's test summary (`# pass 12`).
fn summary(output: &str, key: &str) -> Option<u32> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("# {key} "))?.trim().parse().ok())
}

#[test]
fn browser_suite_passes_in_chromium() {
    let dir = suite_dir();
    let browser = chromium();
    assert!(
        browser.exists(),
        "{} is missing: run ./tools/test (it installs chromium with apt-get) or apt-get install -y chromium",
        browser.display()
    );
    assert!(
        dir.join("node_modules").join("playwright-core").exists(),
        "playwright-core is not installed: run ./tools/test, or npm ci in {}",
        dir.display()
    );
    // A screenshot left by an earlier run must not pass for this one's.
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts/chat.png");
    match std::fs::remove_file(&screenshot) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot remove the old {}: {e}", screenshot.display()),
    }
    let mut child = Command::new("node")
        .args([
            "--test",
            "--test-concurrency=1",
            "--test-reporter=tap",
            "unit/",
            "browser/",
        ])
        .current_dir(&dir)
        .env("COMET_BIN", env!("CARGO_BIN_EXE_comet"))
        .env("COMET_CHROMIUM", &browser)
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
    let deadline = Instant::now() + SUITE_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser suite ran longer than {SUITE_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = reader.join().expect("reader thread");
    println!("{output}");
    let (pass, fail) = (summary(&output, "pass"), summary(&output, "fail"));
    assert!(
        status.success(),
        "the browser suite failed ({status}); see its output above"
    );
    assert_eq!(fail, Some(0), "node reported failures");
    assert!(pass.is_some_and(|n| n > 0), "node ran no test");
    assert!(screenshot.exists(), "the chat screenshot was not saved");
}
