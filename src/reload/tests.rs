use std::sync::atomic::Ordering;

use super::*;
use crate::config::MASK;

fn config(yaml: &str) -> Config {
    let c = Config::from_yaml(yaml).expect("parses");
    c.validate().expect("valid");
    c
}

const START: &str =
    "workers: 2\nfront:\n  listen: \"127.0.0.1:0\"\n  polling_timeout: 30\nadmin:\n  listen: \"127.0.0.1:0\"\n";

/// Shared state as a server started with `START` would have it (its front
/// listener bound to a real port), and the reloader for it.
fn started() -> (Shared, Reloader) {
    let loaded = config(START);
    let mut running = loaded.clone();
    running.front.listen = "127.0.0.1:8123".parse().expect("addr");
    let shared = Shared::new(running, 2).expect("eventfds");
    (shared, Reloader::new(loaded, None))
}

/// The commands waiting in worker `w`'s mailbox.
fn commands(shared: &Shared, w: usize) -> Vec<Command> {
    let mut out = Vec::new();
    shared.channels.mailboxes().get(w).expect("a worker").take_all(&mut out);
    out
}

fn keys(changes: &[Changed]) -> Vec<&str> {
    changes.iter().map(|c| c.key.as_str()).collect()
}

#[test]
fn live_keys_are_put_in_force_everywhere() {
    let (shared, reloader) = started();
    let mut new = config(START);
    new.front.polling_timeout = 5;
    new.front.max_queued_bytes = 8192;
    new.front.channel_buffer_size = 2;
    new.front.max_channels = 77;
    new.front.max_connections = 1000;
    new.admin.key = "s3cret".into();
    new.admin.allow = vec![];
    new.admin.deny = vec![];
    let report = reloader.apply(&shared, new).expect("valid");
    assert_eq!(
        keys(&report.applied),
        [
            "front.max_channels",
            "front.channel_buffer_size",
            "front.polling_timeout",
            "front.max_connections",
            "front.max_queued_bytes",
            "admin.allow",
            "admin.deny",
            "admin.key",
        ]
    );
    assert!(report.restart.is_empty());
    let c = shared.config();
    assert_eq!(c.front.polling_timeout, 5);
    assert_eq!(c.admin.key, "s3cret");
    assert_eq!(c.front.listen.port(), 8123, "the bound address stays");
    let limits = shared.channels.limits();
    assert_eq!((limits.max_channels, limits.buffer_size), (77, 2));
    for w in 0..2 {
        match &commands(&shared, w)[..] {
            [Command::Settings(s)] => {
                assert_eq!((s.polling_timeout, s.max_queued), (5, 8192));
            }
            other => panic!("worker {w} got {other:?}"),
        }
    }
    assert_eq!(shared.stats.reloads_applied.load(Ordering::Relaxed), 1);
    let line = report.to_string();
    assert!(
        line.starts_with("config reloaded from the built-in defaults: applied front.max_channels 1000000 → 77, "),
        "{line}"
    );
    assert!(line.contains("front.polling_timeout 30 → 5"), "{line}");
    assert!(line.contains(&format!("admin.key \"\" → {MASK}")), "{line}");
    assert!(!line.contains("s3cret"), "{line}");
    assert!(!line.contains("restart"), "{line}");
}

#[test]
fn restart_keys_keep_their_running_value_and_are_reported_each_time() {
    let (shared, reloader) = started();
    let new = config(
        &START
            .replace("workers: 2", "workers: 4")
            .replace("polling_timeout: 30", "polling_timeout: 7"),
    );
    let report = reloader.apply(&shared, new.clone()).expect("valid");
    assert_eq!(keys(&report.applied), ["front.polling_timeout"]);
    assert_eq!(keys(&report.restart), ["workers"]);
    assert_eq!(shared.config().workers, 2);
    assert_eq!(shared.config().front.polling_timeout, 7);
    let line = report.to_string();
    assert!(
        line.ends_with("applied front.polling_timeout 30 → 7; needs a restart (running value kept): workers 2 → 4"),
        "{line}"
    );
    // The same file again: nothing new to apply, the restart still pending.
    let again = reloader.apply(&shared, new).expect("valid");
    assert!(again.applied.is_empty());
    assert_eq!(keys(&again.restart), ["workers"]);
    assert_eq!(
        again.to_string(),
        "config reloaded from the built-in defaults: nothing to apply; needs a restart (running value kept): workers 2 → 4"
    );
    assert_eq!(commands(&shared, 0).len(), 1, "no Settings when nothing live changed");
    assert_eq!(shared.stats.reloads_applied.load(Ordering::Relaxed), 2);
}

#[test]
fn the_per_address_cap_and_log_level_change_live() {
    let (shared, reloader) = started();
    let new = config(&START.replace(
        "  polling_timeout: 30\n",
        "  polling_timeout: 30\n  max_connections_per_ip: 3\n",
    ));
    reloader.apply(&shared, new).expect("valid");
    assert_eq!(shared.per_ip.cap(), 3);
}

#[test]
fn an_invalid_configuration_changes_nothing() {
    let (shared, reloader) = started();
    let before = shared.config();
    let mut bad = config(START);
    bad.front.polling_timeout = 0;
    bad.admin.key = "new".into();
    match reloader.apply(&shared, bad) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "front.polling_timeout"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(*shared.config(), *before);
    assert!(commands(&shared, 0).is_empty());
    assert_eq!(shared.stats.reloads_invalid.load(Ordering::Relaxed), 1);
    assert_eq!(shared.stats.reloads_applied.load(Ordering::Relaxed), 0);
}

#[test]
fn a_reload_reads_the_file_and_the_environment_again() {
    let dir = std::env::temp_dir().join(format!("comet-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("comet.yaml");
    std::fs::write(&file, START).expect("write");
    let (shared, mut reloader) = started();
    reloader.set_file(Some(file.clone()));
    assert_eq!(reloader.file(), Some(file.as_path()));
    std::fs::write(&file, START.replace("polling_timeout: 30", "polling_timeout: 12")).expect("write");
    let vars = [(OsString::from("COMET_ADMIN_MAX_BODY_BYTES"), OsString::from("2048"))];
    let report = reloader.reload(&shared, vars).expect("valid");
    assert_eq!(keys(&report.applied), ["front.polling_timeout", "admin.max_body_bytes"]);
    assert_eq!(report.source, file.display().to_string());
    assert_eq!(shared.config().admin.max_body_bytes, 2048);

    std::fs::write(&file, "front:\n  polling_timeout: [\n").expect("write");
    let e = reloader.reload(&shared, []).expect_err("not YAML");
    assert!(e.to_string().starts_with(&file.display().to_string()), "{e}");
    std::fs::write(&file, START).expect("write");
    let e = reloader
        .reload(
            &shared,
            [(OsString::from("COMET_FRONT_POLLING_TIMEOUT"), OsString::from("soon"))],
        )
        .expect_err("a bad variable");
    assert!(e.to_string().starts_with("COMET_FRONT_POLLING_TIMEOUT: "), "{e}");
    assert_eq!(shared.config().front.polling_timeout, 12, "the last good one stays");
    assert_eq!(shared.stats.reloads_invalid.load(Ordering::Relaxed), 2);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn in_cluster_mode_what_redis_holds_waits_for_a_restart() {
    let yaml = format!("{START}cluster:\n  redis: \"redis://127.0.0.1:1/0\"\n  hmac_secret: 0123456789abcdef0123\n")
        .replace("polling_timeout: 30", "polling_timeout: 30\n  channel_timeout: 0");
    let loaded = config(&yaml);
    assert!(loaded.cluster.enabled());
    let shared = Shared::new(loaded.clone(), 2).expect("eventfds");
    let reloader = Reloader::new(loaded.clone(), None);
    let before = shared.channels.limits();
    assert_eq!(before.channel_timeout, 15, "polling_timeout / 2");
    let mut new = loaded;
    new.front.channel_buffer_size = 3;
    new.front.polling_timeout = 10;
    new.cluster.prefix = "other".into();
    let report = reloader.apply(&shared, new).expect("valid");
    assert_eq!(keys(&report.applied), ["front.polling_timeout"]);
    assert_eq!(keys(&report.restart), ["front.channel_buffer_size", "cluster.prefix"]);
    let after = shared.channels.limits();
    assert_eq!(
        (after.buffer_size, after.channel_timeout),
        (before.buffer_size, before.channel_timeout),
        "the table keeps what Redis was given"
    );
    assert_eq!(shared.config().front.polling_timeout, 10);
    assert_eq!(shared.config().cluster.prefix, "comet");
}
