//! The deployment files under `deploy/` that need no browser: the systemd
//! unit (checked by `systemd-analyze` where it exists), the sysctl drop-in,
//! the Grafana dashboard against a real `/metrics` answer, and the nginx
//! recipe's timeouts. The Debian package is `deb`; nginx with Chromium is
//! the heavy tier's `nginx`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use comet::config::Config;

use crate::support::binary::Binary;
use crate::support::files::{read_repo as read, TempDir};
use crate::support::{eventually, get, json, Client};

/// Whether `systemd-analyze` can run here; prints why a test is skipped.
fn systemd_analyze(test: &str) -> bool {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            println!("{test}: skipped, systemd-analyze is not installed (Debian package systemd)");
            false
        }
    }
}

/// The values of `key=` lines in a unit file, in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// The unit with ExecStart pointing at the binary cargo built, in a temp dir
/// (`verify` checks that the command exists); returns the dir and the path.
fn unit_for_verify() -> (TempDir, PathBuf) {
    let unit = read("deploy/systemd/comet.service");
    let runs = unit.matches("/usr/bin/comet").count();
    assert_eq!(runs, 1, "ExecStart runs /usr/bin/comet");
    let dir = TempDir::new("unit");
    let path = dir.path().join("comet.service");
    std::fs::write(&path, unit.replace("/usr/bin/comet", env!("CARGO_BIN_EXE_comet"))).expect("write unit");
    (dir, path)
}

#[test]
fn systemd_unit_verifies_cleanly() {
    if !systemd_analyze("systemd_unit_verifies_cleanly") {
        return;
    }
    let (dir, path) = unit_for_verify();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    // The offline security score (0 best, 10 worst): the hardening is in force.
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze security");
    drop(dir);
    let said = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(verify.status.success(), "systemd-analyze verify: {}", said(&verify));
    assert_eq!(said(&verify), "", "systemd-analyze verify warns");
    let report = said(&security);
    assert!(security.status.success(), "exposure above 2.0:\n{report}");
    assert!(report.contains("Overall exposure level for comet.service"), "{report}");
}

#[test]
fn systemd_unit_stops_gracefully_and_reloads_with_sighup() {
    let unit = read("deploy/systemd/comet.service");
    let one = |key: &str| -> &str {
        let v = unit_values(&unit, key);
        assert_eq!(v.len(), 1, "{key}= once in the unit");
        v[0]
    };
    assert_eq!(one("KillSignal"), "SIGTERM");
    let stop: u32 = one("TimeoutStopSec").parse().expect("TimeoutStopSec in seconds");
    let grace = Config::default().shutdown_grace_secs;
    assert!(
        stop >= grace + 5,
        "TimeoutStopSec={stop} must leave comet its {grace} s grace and some"
    );
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("RestartPreventExitStatus"), "64", "a bad config is not retried");
    let nofile: u64 = one("LimitNOFILE").parse().expect("a number");
    assert!(nofile >= 65536, "LimitNOFILE={nofile}");
    assert_eq!(one("DynamicUser"), "yes");
    assert_eq!(one("User"), "comet");
    assert_eq!(one("ExecStart"), "/usr/bin/comet -c /etc/comet/comet.yaml");
}

/// The syscalls of a `@group` (recursively) as `systemd-analyze` lists them.
fn syscall_group(name: &str, out: &mut BTreeSet<String>) {
    if !name.starts_with('@') {
        out.insert(name.to_string());
        return;
    }
    let o = Command::new("systemd-analyze")
        .args(["syscall-filter", name])
        .output()
        .expect("run systemd-analyze");
    assert!(o.status.success(), "unknown syscall group {name}");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    for entry in text.lines().skip(1).map(str::trim) {
        if !entry.is_empty() && !entry.starts_with('#') {
            syscall_group(entry, out);
        }
    }
}

#[test]
fn systemd_unit_allows_the_syscalls_comet_needs() {
    if !systemd_analyze("systemd_unit_allows_the_syscalls_comet_needs") {
        return;
    }
    let unit = read("deploy/systemd/comet.service");
    // The first SystemCallFilter= allows, the ones with ~ then deny.
    let (mut allowed, mut denied) = (BTreeSet::new(), BTreeSet::new());
    for value in unit_values(&unit, "SystemCallFilter") {
        let (set, list) = match value.strip_prefix('~') {
            Some(list) => (&mut denied, list),
            None => (&mut allowed, value),
        };
        for name in list.split_whitespace() {
            syscall_group(name, set);
        }
    }
    assert!(allowed.len() > 100, "an allow list: {allowed:?}");
    // unshare(CLONE_FILES): private descriptor tables; setrlimit: the soft
    // descriptor limit; execve: the restart with glibc's tcache off.
    let needed = [
        "unshare",
        "setrlimit",
        "prlimit64",
        "getrlimit",
        "execve",
        "socket",
        "bind",
        "listen",
        "accept4",
        "setsockopt",
        "shutdown",
        "epoll_create1",
        "epoll_ctl",
        "epoll_wait",
        "epoll_pwait",
        "eventfd2",
        "read",
        "write",
        "writev",
        "close",
        "mmap",
        "munmap",
        "madvise",
        "clone",
        "clone3",
        "futex",
        "rt_sigaction",
        "sched_getaffinity",
    ];
    for call in needed {
        assert!(
            allowed.contains(call) && !denied.contains(call),
            "the unit blocks {call}"
        );
    }
    // Namespaces are restricted, which filters unshare() by its CLONE_NEW*
    // flags only; CLONE_FILES is not one of them.
    assert_eq!(unit_values(&unit, "RestrictNamespaces"), ["yes"]);
}

/// The `key = value` settings of a sysctl file, a leading `-` (ignore
/// errors) dropped.
fn sysctl_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not key = value: {l}"));
            (
                k.trim().trim_start_matches('-').to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

#[test]
fn sysctl_dropin_has_the_c1000k_settings() {
    let deployed = sysctl_settings(&read("deploy/sysctl/60-comet.conf"));
    let c1000k = sysctl_settings(&read("tools/c1000k.d/sysctl.conf"));
    assert!(deployed.len() >= 10, "{deployed:?}");
    assert_eq!(
        deployed, c1000k,
        "deploy/sysctl/60-comet.conf and tools/c1000k.d/sysctl.conf differ"
    );
}

/// Metric names the dashboard uses that comet does not export yet. The test
/// fails when one of them appears in /metrics: remove it from here then.
const PENDING: &[&str] = &[];

/// Every PromQL expression in the dashboard (panel targets and variable
/// queries).
fn dashboard_queries(dash: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut panels: Vec<&serde_json::Value> = dash["panels"].as_array().expect("panels").iter().collect();
    while let Some(p) = panels.pop() {
        // A collapsed row holds its panels.
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().expect("a target has an expr").to_string());
        }
    }
    for v in dash["templating"]["list"].as_array().expect("variables") {
        if let Some(q) = v["query"]["query"].as_str() {
            out.push(q.to_string());
        }
    }
    out
}

/// The metric names in a PromQL expression: comet's all start with
/// `comet_` or `process_`.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if starts_word && (expr[i..].starts_with("comet_") || expr[i..].starts_with("process_")) {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(b.len(), |n| i + n);
            names.push(expr[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(r#"sum by (le) (rate(comet_a_bucket{instance=~"$instance"}[5m])) / process_b"#),
        ["comet_a_bucket", "process_b"]
    );
    assert_eq!(
        metric_names("label_values(comet_uptime_seconds, instance)"),
        ["comet_uptime_seconds"]
    );
    assert!(metric_names("sum(my_comet_x)").is_empty());
}

#[test]
fn grafana_dashboard_queries_only_metrics_comet_exports() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/comet.json")).expect("the dashboard is JSON");
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 12, "{queries:?}");
    let mut used = BTreeSet::new();
    for q in &queries {
        let names = metric_names(q);
        assert!(!names.is_empty(), "a query without a comet metric: {q}");
        used.extend(names);
    }
    // Every panel the dashboard promises.
    for name in [
        "comet_connections",
        "comet_subscribers",
        "comet_channels",
        "comet_messages_published_total",
        "comet_messages_delivered_total",
        "comet_slow_consumer_drops_total",
        "comet_connections_refused_total",
        "process_resident_memory_bytes",
        "comet_delivery_latency_seconds_bucket",
        "comet_admin_request_duration_seconds_bucket",
    ] {
        assert!(used.contains(name), "the dashboard does not chart {name}");
    }

    // A real /metrics answer after a delivery and some admin requests, so
    // that metrics which appear only once used are there.
    let comet = Binary::start(
        "workers: 1\nfront: {listen: \"127.0.0.1:0\", max_connections: 100}\n\
         admin: {listen: \"127.0.0.1:0\", threads: 1}\n",
    );
    let mut sub = Client::connect(comet.front());
    sub.send(b"GET /sub?cname=dash&seq=1 HTTP/1.1\r\nConnection: close\r\n\r\n");
    eventually("a subscriber", || {
        json(&get(comet.admin(), "/info?cname=dash").2) == serde_json::json!({"cname": "dash", "subscribers": 1})
    });
    assert_eq!(get(comet.admin(), "/push?cname=dash&content=x").0, "HTTP/1.1 200 OK");
    let reply = sub.read_response(false);
    assert_eq!(reply.code(), 200, "{reply:?}");
    assert_eq!(
        reply.json(),
        serde_json::json!({"type": "data", "cname": "dash", "seq": 1, "content": "x"})
    );
    let (status, _, text) = get(comet.admin(), "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    comet.stop();
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().expect("a name"))
        .collect();
    for name in &used {
        let pending = PENDING.contains(&name.as_str());
        if exported.contains(name.as_str()) {
            assert!(
                !pending,
                "{name} is in /metrics now: remove it from PENDING in tests/it/deploy.rs"
            );
        } else {
            assert!(
                pending,
                "the dashboard queries {name}, which /metrics does not have:\n{text}"
            );
        }
    }
    for name in PENDING {
        assert!(
            used.contains(*name),
            "PENDING lists {name}, which the dashboard does not use"
        );
    }
}

#[test]
fn nginx_read_timeouts_outlast_the_polling_timeout() {
    // comet writes to an idle subscriber every front.polling_timeout seconds;
    // a proxy that gives up sooner cuts healthy subscriptions.
    let shipped = read("deploy/nginx/comet.conf");
    let polling = u64::from(Config::default().front.polling_timeout);
    let mut timeouts = 0;
    for line in shipped.lines().map(str::trim) {
        for directive in ["proxy_read_timeout ", "proxy_send_timeout ", "send_timeout "] {
            if let Some(value) = line.strip_prefix(directive) {
                let secs: u64 = value
                    .trim_end_matches(';')
                    .trim_end_matches('s')
                    .parse()
                    .expect("seconds");
                assert!(secs > 2 * polling, "{line}: should be well above {polling} s");
                timeouts += 1;
            }
        }
    }
    assert_eq!(timeouts, 6, "three timeouts in each of the two proxied locations");
    assert!(shipped.contains("proxy_buffering off;") && shipped.contains("proxy_request_buffering off;"));
}
