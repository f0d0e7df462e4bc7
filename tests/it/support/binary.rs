//! The real `comet` binary as a child process: started with a YAML config on
//! port 0, its bound addresses read from its log, signals, exit status.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `comet` process; killed when dropped.
pub struct Binary {
    child: Child,
    front: SocketAddr,
    admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    config: PathBuf,
}

impl Binary {
    /// Starts the binary with `yaml` (which should listen on port 0).
    pub fn start(yaml: &str) -> Binary {
        Binary::start_with_limit(yaml, None)
    }

    /// Starts the binary with `yaml` and, if given, a descriptor limit (soft
    /// and hard) set by the shell that execs it.
    pub fn start_with_limit(yaml: &str, nofile: Option<u32>) -> Binary {
        Binary::start_with(yaml, nofile, &[])
    }

    /// Starts the binary with `yaml`, a descriptor limit if given, and these
    /// environment variables set (`Some`) or removed (`None`).
    pub fn start_with(yaml: &str, nofile: Option<u32>, env: &[(&str, Option<&str>)]) -> Binary {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config = std::env::temp_dir().join(format!("comet-bin-{}-{n}.yaml", std::process::id()));
        std::fs::write(&config, yaml).expect("write config");
        let bin = env!("CARGO_BIN_EXE_comet");
        let mut cmd = match nofile {
            Some(limit) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("ulimit -n {limit} && exec \"$0\" -c \"$1\""));
                c.arg(bin).arg(&config);
                c
            }
            None => {
                let mut c = Command::new(bin);
                c.arg("-c").arg(&config);
                c
            }
        };
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start comet");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
                if let Some(rest) = line.split("listening: front ").nth(1) {
                    let _ = tx.send(rest.to_string());
                }
                sink.lock().expect("log").push(line);
            }
        });
        let addrs = rx.recv_timeout(Duration::from_secs(30)).expect("server listening");
        let (front, admin) = addrs.split_once(", admin ").expect("both addresses");
        Binary {
            child,
            front: front.trim().parse().expect("front address"),
            admin: admin.trim().parse().expect("admin address"),
            log,
            config,
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
        self.child.id() as i32
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill only sends a signal to our own child.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0, "kill");
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

    /// Log lines so far that contain `pat`.
    pub fn log_lines(&self, pat: &str) -> Vec<String> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains(pat))
            .cloned()
            .collect()
    }

    /// CPU time (user + system) the process has used, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the command name (which may contain spaces) start at state.
        let after = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        // SAFETY: sysconf only reads a system constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}
