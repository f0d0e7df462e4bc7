//! The real `comet` binary as a child process: the one way the tests run it.
//! [`command`] is the binary with a clean environment (no `COMET_*`
//! variable, no `RUST_LOG` of the developer's), for runs that end by
//! themselves (`--check-config`, usage errors); [`Binary`] is a running
//! server, started with a YAML config on port 0 ([`Launch`] for a
//! descriptor limit or environment variables), its bound addresses read from
//! its startup line in either log format, every stderr line kept, signals,
//! exit status. It never touches a process it did not start.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::files::TempFile;
use super::WAIT;

/// How long the binary may take to log that it listens.
const STARTUP: Duration = Duration::from_secs(30);

/// Removes every `COMET_*` variable this process has, and `RUST_LOG`, from
/// `cmd`, so that a developer's environment cannot change what is tested.
pub fn hermetic(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("COMET_") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("RUST_LOG")
}

/// The `comet` binary cargo built for this test run, environment cleaned
/// by [`hermetic`].
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_comet"));
    hermetic(&mut cmd);
    cmd
}

/// What a server is started with besides its config: see [`Binary::launch`].
pub struct Launch<'a> {
    yaml: &'a str,
    nofile: Option<u32>,
    env: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> Launch<'a> {
    /// A descriptor limit (soft and hard), set by the shell that execs the
    /// binary.
    pub fn nofile(mut self, limit: u32) -> Self {
        self.nofile = Some(limit);
        self
    }

    /// Sets (`Some`) or removes (`None`) an environment variable, after the
    /// environment was cleaned (so `RUST_LOG` can be given here).
    pub fn env(mut self, name: &'a str, value: Option<&'a str>) -> Self {
        self.env.push((name, value));
        self
    }

    /// Starts the binary and waits until it logs its bound addresses.
    pub fn start(self) -> Binary {
        let config = TempFile::new("config", "yaml", self.yaml);
        let bin = env!("CARGO_BIN_EXE_comet");
        let mut cmd = match self.nofile {
            Some(limit) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("ulimit -n {limit} && exec \"$0\" -c \"$1\""));
                c.arg(bin).arg(config.path());
                c
            }
            None => {
                let mut c = Command::new(bin);
                c.arg("-c").arg(config.path());
                c
            }
        };
        hermetic(&mut cmd);
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start comet");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Log::default());
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
                sink.push(line);
            }
            sink.end();
        });
        let mut bin = Binary {
            child,
            front: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
            _config: config,
        };
        let line = bin.log.wait_for("listening: front ", STARTUP);
        bin.front = address_after(&line, "listening: front ");
        bin.admin = address_after(&line, ", admin ");
        bin
    }
}

/// The socket address that follows `after` in a log line (text or JSON).
fn address_after(line: &str, after: &str) -> SocketAddr {
    let rest = line
        .split(after)
        .nth(1)
        .unwrap_or_else(|| panic!("no {after:?} in {line:?}"));
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || ".:[]".contains(c)))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("an address after {after:?} in {line:?}: {e}"))
}

/// The lines a child wrote to stderr so far, and whether it closed stderr.
#[derive(Default)]
struct Log {
    state: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

impl Log {
    fn push(&self, line: String) {
        self.state.lock().expect("log lock").0.push(line);
        self.changed.notify_all();
    }

    fn end(&self) {
        self.state.lock().expect("log lock").1 = true;
        self.changed.notify_all();
    }

    /// The first line containing `pat`, waiting up to `limit` for it.
    fn wait_for(&self, pat: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().expect("log lock");
        loop {
            if let Some(l) = state.0.iter().find(|l| l.contains(pat)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && !state.1,
                "no log line with {pat:?}{}; have {:#?}",
                if state.1 { " before stderr closed" } else { "" },
                state.0
            );
            state = self.changed.wait_timeout(state, left).expect("log lock").0;
        }
    }

    /// Every line, once the child closed stderr (waiting up to `limit`).
    fn all_at_end(&self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().expect("log lock");
        while !state.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "stderr still open; have {:#?}", state.0);
            state = self.changed.wait_timeout(state, left).expect("log lock").0;
        }
        state.0.clone()
    }
}

/// A running `comet` process; killed when dropped.
pub struct Binary {
    child: Child,
    front: SocketAddr,
    admin: SocketAddr,
    log: Arc<Log>,
    _config: TempFile,
}

impl Binary {
    /// Starts the binary with `yaml` (which should listen on port 0).
    pub fn start(yaml: &str) -> Binary {
        Binary::launch(yaml).start()
    }

    /// The binary with `yaml` and options to add before [`Launch::start`].
    pub fn launch(yaml: &str) -> Launch<'_> {
        Launch {
            yaml,
            nofile: None,
            env: Vec::new(),
        }
    }

    /// The front listener.
    pub fn front(&self) -> SocketAddr {
        self.front
    }

    /// The admin listener.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid fits in pid_t")
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill only sends a signal, and only to our own child.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0, "kill");
    }

    /// Whether the process has not exited yet.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Replaces the config file the server was started with (`-c`), for
    /// a reload (SIGHUP) to read.
    pub fn rewrite_config(&self, yaml: &str) {
        let path = self._config.path();
        std::fs::write(path, yaml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Log lines so far that contain `pat`.
    pub fn log_lines(&self, pat: &str) -> Vec<String> {
        let state = self.log.state.lock().expect("log lock");
        state.0.iter().filter(|l| l.contains(pat)).cloned().collect()
    }

    /// The first log line that contains `pat`, waiting up to [`WAIT`] for it.
    pub fn wait_log(&self, pat: &str) -> String {
        self.log.wait_for(pat, WAIT)
    }

    /// Stops the server with SIGTERM, asserts that it exits 0, and returns
    /// every line it wrote.
    pub fn stop(mut self) -> Vec<String> {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(WAIT).expect("comet exits after SIGTERM");
        assert!(status.success(), "comet exited with {status} after SIGTERM");
        self.log.all_at_end(WAIT)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
