//! The `comet` binary's command line: the paths that exit before the server
//! binds (config printing and checking, usage errors) and their exit codes.

use std::path::PathBuf;
use std::process::Output;

use comet::config::Config;

use crate::support::binary::command;
use crate::support::files::{repo, TempFile};

/// Runs the built binary with `args`.
fn comet(args: &[&str]) -> Output {
    comet_env(args, &[])
}

/// Runs the built binary with `args` and these environment variables (on a
/// clean environment: see `support::binary::hermetic`).
fn comet_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run the comet binary")
}

/// A config file holding `text`, removed when dropped.
fn config_file(text: &str) -> TempFile {
    TempFile::new("cli", "yaml", text)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn shipped_yaml() -> PathBuf {
    repo().join("comet.yaml")
}

#[test]
fn print_default_config_is_comet_yaml() {
    let o = comet(&["--print-default-config"]);
    assert_eq!(o.status.code(), Some(0));
    let shipped = std::fs::read_to_string(shipped_yaml()).expect("read comet.yaml");
    assert_eq!(stdout(&o), shipped);
    // The environment does not change the documented defaults.
    let o = comet_env(&["--print-default-config"], &[("COMET_WORKERS", "3")]);
    assert_eq!(stdout(&o), shipped);
}

#[test]
fn print_config_without_file_or_environment_is_the_default() {
    let o = comet(&["--print-config"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let printed = stdout(&o);
    assert!(printed.starts_with("# comet's effective configuration"), "{printed}");
    assert_eq!(
        Config::from_yaml(&printed).expect("the printed config parses"),
        Config::default()
    );
}

#[test]
fn environment_wins_over_file() {
    let file = config_file("workers: 2\nfront:\n  polling_timeout: 10\n  max_channels: 500\n");
    let env = [
        ("COMET_FRONT_POLLING_TIMEOUT", "20"),
        ("COMET_ADMIN_ALLOW", "127.0.0.1,10.0.0.5"),
    ];
    let o = comet_env(&["--print-config", "-c", file.path_str()], &env);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let c = Config::from_yaml(&stdout(&o)).expect("the printed config parses");
    assert_eq!(c.front.polling_timeout, 20, "the environment wins over the file");
    assert_eq!(c.front.max_channels, 500, "the file wins over the default");
    assert_eq!(c.workers, 2);
    assert_eq!(c.admin.allow, ["127.0.0.1", "10.0.0.5"]);
    assert_eq!(c.front.channel_timeout, 30, "the rest is the default");
    // --check-config applies the environment too.
    let o = comet_env(
        &["--check-config", "-c", file.path_str()],
        &[("COMET_FRONT_POLLING_TIMEOUT", "0")],
    );
    assert_eq!(o.status.code(), Some(64));
    assert_eq!(
        stderr(&o),
        "invalid config: COMET_FRONT_POLLING_TIMEOUT: front.polling_timeout must be > 0\n"
    );
}

#[test]
fn print_config_masks_the_admin_key() {
    let file = config_file("admin:\n  key: from-the-file\n");
    for env in [&[][..], &[("COMET_ADMIN_KEY", "from-the-env")][..]] {
        let o = comet_env(&["--print-config", "-c", file.path_str()], env);
        assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
        let out = stdout(&o);
        assert!(!out.contains("from-the-"), "{out}");
        assert!(out.contains("  key: '** masked **'\n"), "{out}");
    }
}

#[test]
fn bad_environment_value_exits_64_naming_the_variable() {
    let want = "invalid config: COMET_FRONT_POLLING_TIMEOUT: expected an integer (got \"abc\")\n";
    for args in [&["--check-config"][..], &["--print-config"][..], &[][..]] {
        // Without a flag the server must not start (it would bind).
        let o = comet_env(args, &[("COMET_FRONT_POLLING_TIMEOUT", "abc")]);
        assert_eq!(o.status.code(), Some(64), "{args:?}");
        assert_eq!(stderr(&o), want, "{args:?}");
        assert_eq!(stdout(&o), "", "{args:?}");
    }
}

#[test]
fn unknown_environment_variable_exits_64() {
    let o = comet_env(&["--check-config"], &[("COMET_FRONT_POLLING_TIMOUT", "5")]);
    assert_eq!(o.status.code(), Some(64));
    assert_eq!(
        stderr(&o),
        "invalid config: COMET_FRONT_POLLING_TIMOUT: no such config key; \
         did you mean COMET_FRONT_POLLING_TIMEOUT (front.polling_timeout)?\n"
    );
    // Variables comet's own tools set are not config and are left alone.
    let o = comet_env(&["--check-config"], &[("COMET_BIN", "/x"), ("COMET_CHROMIUM", "/y")]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
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
    let file = config_file("front:\n  polling_timeot: 5\n");
    let o = comet(&["--config", file.path_str(), "--check-config"]);
    assert_eq!(o.status.code(), Some(64));
    let err = stderr(&o);
    assert!(err.starts_with("invalid config: "), "{err}");
    assert!(err.contains("front.polling_timeot"), "{err}");
}

#[test]
fn check_config_names_an_invalid_value() {
    let file = config_file("front: {polling_timeout: 0}\n");
    let o = comet(&["--check-config", "-c", file.path_str()]);
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
    let file = config_file("admin: {threads: 0}\n");
    let o = comet(&["-c", file.path_str()]);
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
        assert!(out.contains("--print-default-config"), "{out}");
        assert!(out.contains("COMET_<SECTION>_<KEY>"), "{out}");
    }
    for flag in ["-V", "--version"] {
        let o = comet(&[flag]);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(stdout(&o), format!("comet {}\n", env!("CARGO_PKG_VERSION")));
    }
}
