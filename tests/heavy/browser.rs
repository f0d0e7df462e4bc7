//! The browser suite: web/comet.js and the demo pages in Debian's chromium,
//! driven headless by playwright-core from node (`tests/browser/unit` and
//! `tests/browser/browser`), against the real `comet` binary that cargo
//! built for this test run (the node suite starts and restarts it itself).

use std::time::Duration;

use crate::node;
use crate::support::files::repo;

/// The whole suite takes about a minute; this only stops a hung browser.
const SUITE_LIMIT: Duration = Duration::from_secs(600);

#[test]
fn browser_suite_passes_in_chromium() {
    node::check_tools();
    // A screenshot left by an earlier run must not pass for this one's.
    let screenshot = repo().join("test-artifacts/chat.png");
    match std::fs::remove_file(&screenshot) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot remove the old {}: {e}", screenshot.display()),
    }
    let output = node::run(
        &["unit/", "browser/"],
        &[("COMET_BIN", env!("CARGO_BIN_EXE_comet").to_string())],
        SUITE_LIMIT,
    );
    assert!(
        node::summary(&output, "pass").is_some_and(|n| n > 0),
        "node ran no test"
    );
    assert!(screenshot.exists(), "the chat screenshot was not saved");
}
