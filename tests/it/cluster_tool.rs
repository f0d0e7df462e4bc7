//! `tools/cluster`: starts Redis plus three nodes on free loopback ports,
//! prints where they are, and ends all four by pid on a signal, leaving no
//! process and no directory behind.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::nodes::{data, poll, tuple};
use crate::support::{get, json, WAIT};

/// Whether process `pid` still exists (a zombie counts as gone).
fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn tools_cluster_starts_redis_and_three_nodes_and_ends_them_all() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/cluster");
    let mut child = Command::new("bash")
        .arg(script)
        .args(["--bench", "--bin", env!("CARGO_BIN_EXE_comet")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tools/cluster");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = loop {
        let l = rx.recv_timeout(WAIT * 3).expect("a CLUSTER line from tools/cluster");
        if let Some(rest) = l.strip_prefix("CLUSTER ") {
            break rest.to_string();
        }
    };
    let info = json(&line);
    let nodes = info["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{line}");
    let addr = |i: usize, k: &str| nodes[i][k].as_str().expect("address").parse().expect("socket address");
    let mut pids: Vec<i64> = nodes.iter().map(|n| n["pid"].as_i64().expect("pid")).collect();
    pids.push(info["redis_pid"].as_i64().expect("redis pid"));
    let dir = info["dir"].as_str().expect("dir").to_string();
    // Publish on the first node, read on the last.
    let (status, _, body) = get(addr(0, "admin"), "/pub?cname=tool&content=hi");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "{\"type\":\"ok\"}\n")
    );
    let got: Vec<_> = poll(addr(2, "front"), "tool", 1, None).iter().map(tuple).collect();
    assert_eq!(got, data(1, &["hi"]));
    // Ctrl-C: the script ends all four by pid and removes its directory.
    // SAFETY: kill only sends a signal, to the script this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert_eq!(status.code(), Some(130), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tools/cluster did not end on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in pids {
        assert!(!alive(pid), "pid {pid} left running");
    }
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
}
