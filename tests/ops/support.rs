//! The harness of the ops tests: the real `comet` binary as a child process
//! (config file on port 0, stderr lines collected, addresses read from the
//! startup line in either log format), one-shot HTTP/1.1 requests, and
//! temporary directories. Every wait has a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Deadline for any one expectation.
pub const WAIT: Duration = Duration::from_secs(20);

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh name under the temp dir, unique to this process and call.
pub fn temp_path(what: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("comet-ops-{what}-{}-{n}", std::process::id()))
}

/// A directory removed (with its contents) when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates a fresh directory, readable by everyone (nginx's workers run
    /// as an unprivileged user when the test runs as root).
    pub fn new(what: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_path(what);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes every `COMET_*` variable this process has from `cmd`, so that a
/// developer's environment cannot change the config under test.
pub fn without_comet_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("COMET_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A running comet whose stderr lines arrive on a channel; killed on drop.
pub struct Comet {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    config: PathBuf,
    front: SocketAddr,
    admin: SocketAddr,
}

impl Comet {
    /// Starts the binary with `yaml` (which should listen on port 0),
    /// `RUST_LOG` set to `rust_log` or removed, and waits for its startup line.
    pub fn start(yaml: &str, rust_log: Option<&str>) -> Comet {
        let config = temp_path("config").with_extension("yaml");
        std::fs::write(&config, yaml).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_comet"));
        cmd.arg("-c").arg(&config).stderr(Stdio::piped()).env_remove("RUST_LOG");
        without_comet_env(&mut cmd);
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let mut child = cmd.spawn().expect("start comet");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let unbound = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut comet = Comet {
            child,
            lines,
            seen: Vec::new(),
            config,
            front: unbound,
            admin: unbound,
        };
        let line = comet.line_with("listening: front ");
        let addr = |after: &str| -> SocketAddr {
            let rest = line.split(after).nth(1).expect("an address in the startup line");
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || ".:[]".contains(c)))
                .unwrap_or(rest.len());
            rest[..end].parse().expect("an address")
        };
        comet.front = addr("listening: front ");
        comet.admin = addr(", admin ");
        comet
    }

    /// The front listener.
    pub fn front(&self) -> SocketAddr {
        self.front
    }

    /// The admin listener.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// Waits for a log line containing `pat` (one seen before counts).
    pub fn line_with(&mut self, pat: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(pat)) {
            return l.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(pat) {
                        return line;
                    }
                }
                Err(e) => panic!("no log line with {pat:?} ({e}); have {:#?}", self.seen),
            }
        }
    }

    /// Stops the server with SIGTERM and returns every line it wrote.
    pub fn stop(mut self) -> Vec<String> {
        // SAFETY: kill only sends a signal to our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "comet did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The reader ends at EOF, once the process is gone.
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            self.seen.push(line);
        }
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Comet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Sends `head` (a whole request, which should ask for `Connection: close`)
/// on a new connection and reads the reply to its end; returns the status
/// code and the reply as text.
pub fn request(addr: SocketAddr, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(head.as_bytes()).expect("write");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("read the reply");
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

/// A GET of `target` with `Connection: close`.
pub fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    request(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
}

/// Polls `cond` until it holds; panics with `what` after [`WAIT`].
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
