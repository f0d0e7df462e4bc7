//! The `comet` binary's command line: the paths that exit before the server
//! binds (config printing and checking, usage errors) and their exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs the built binary with `args`.
fn comet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_comet"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the comet binary")
}

/// A config file in the temp dir, removed when dropped.
struct TempConfig(PathBuf);

impl TempConfig {
    /// Writes `text` to a file whose name is unique to this process and call.
    fn new(text: &str) -> TempConfig {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("comet-cli-test-{}-{n}.yaml", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).expect("write config file");
        TempConfig(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8")
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn shipped_yaml() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("comet.yaml")
}

#[test]
fn print_config_is_comet_yaml() {
    let o = comet(&["--print-config"]);
    assert_eq!(o.status.code(), Some(0));
    let shipped = std::fs::read_to_string(shipped_yaml()).expect("read comet.yaml");
    assert_eq!(stdout(&o), shipped);
}

#[test]
fn check_config_accepts_shipped_yaml() {
    let path = shipped_yaml();
    let o = comet(&["--check-config", "-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "config OK\n");
}

#[test]
fn check_config_without_file_checks_the_defaults() {
    let o = comet(&["--check-config"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "config OK\n");
}

#[test]
fn check_config_names_an_unknown_key() {
    let file = TempConfig::new("front:\n  polling_timeot: 5\n");
    let o = comet(&["--config", file.path(), "--check-config"]);
    assert_eq!(o.status.code(), Some(64));
    let err = stderr(&o);
    assert!(err.starts_with("invalid config: "), "{err}");
    assert!(err.contains("front.polling_timeot"), "{err}");
}

#[test]
fn check_config_names_an_invalid_value() {
    let file = TempConfig::new("front: {polling_timeout: 0}\n");
    let o = comet(&["--check-config", "-c", file.path()]);
    assert_eq!(o.status.code(), Some(64));
    let err = stderr(&o);
    assert!(
        err.contains("invalid config: front.polling_timeout must be > 0"),
        "{err}"
    );
    assert_eq!(stdout(&o), "");
}

#[test]
fn invalid_config_at_startup_exits_64() {
    // Without --check-config: the server must not start (it would bind).
    let file = TempConfig::new("admin: {threads: 0}\n");
    let o = comet(&["-c", file.path()]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("admin.threads"), "{}", stderr(&o));
}

#[test]
fn missing_config_file_exits_64() {
    let name = format!("comet-cli-test-{}-does-not-exist.yaml", std::process::id());
    let path = std::env::temp_dir().join(name);
    let o = comet(&["--check-config", "-c", path.to_str().expect("temp paths are UTF-8")]);
    assert_eq!(o.status.code(), Some(64));
    let err = stderr(&o);
    assert!(err.starts_with("invalid config: cannot read "), "{err}");
    assert!(err.contains("does-not-exist.yaml"), "{err}");
}

#[test]
fn unknown_flag_exits_64_with_usage() {
    let o = comet(&["--bogus"]);
    assert_eq!(o.status.code(), Some(64));
    let err = stderr(&o);
    assert!(err.contains("--bogus"), "{err}");
    assert!(err.contains("usage: comet"), "{err}");
    assert_eq!(stdout(&o), "");
}

#[test]
fn positional_argument_is_a_usage_error() {
    // icomet takes the config file as a positional argument; comet wants -c.
    let o = comet(&["comet.yaml"]);
    assert_eq!(o.status.code(), Some(64));
}

#[test]
fn config_flag_needs_a_file() {
    let o = comet(&["-c"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("-c needs a FILE"), "{}", stderr(&o));
}

#[test]
fn help_and_version_exit_0() {
    for flag in ["-h", "--help"] {
        let o = comet(&[flag]);
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        assert!(out.starts_with("usage: comet"), "{out}");
        assert!(out.contains("64"), "the usage text documents the exit codes: {out}");
    }
    for flag in ["-V", "--version"] {
        let o = comet(&[flag]);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(stdout(&o), format!("comet {}\n", env!("CARGO_PKG_VERSION")));
    }
}
