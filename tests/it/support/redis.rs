//! A real `redis-server` per test: started on a free loopback port with its
//! own temporary directory, no persistence unless asked, ended by process id.
//!
//! `RedisServer::start()` waits until the server answers PING. `kill()` is
//! SIGKILL by pid, `restart(keep_data)` starts it again on the same port (with
//! AOF on, `keep_data` keeps what the AOF holds; otherwise the directory is
//! emptied), `pause()`/`resume()` are SIGSTOP/SIGCONT. Dropping it kills it
//! and removes its directory. A missing binary is a failure that says to run
//! ./tools/test (CI installs redis-server, so a skip would hide a broken CI).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a start may take before the test fails.
const START_DEADLINE: Duration = Duration::from_secs(15);

/// Options of a test Redis.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `appendonly yes` with `appendfsync always`, for durability tests.
    pub aof: bool,
    /// More `--key value` arguments.
    pub extra: Vec<String>,
}

/// One running test Redis.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    opts: RedisOptions,
    paused: bool,
}

fn binary() -> String {
    std::env::var("COMET_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string())
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

fn fresh_dir(port: u16) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "comet-redis-{}-{}-{port}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the Redis test directory");
    d
}

/// Sends PING and reads one line, with a deadline on every step.
fn ping(port: u16) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"*1\r\n$4\r\nPING\r\n").ok()?;
    let mut buf = [0u8; 128];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

impl RedisServer {
    /// Starts a Redis without persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(RedisOptions::default())
    }

    /// Starts a Redis with `opts`.
    pub fn start_with(opts: RedisOptions) -> RedisServer {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = fresh_dir(port);
            match spawn(port, &dir, &opts) {
                Ok(child) => {
                    return RedisServer {
                        child: Some(child),
                        port,
                        dir,
                        opts,
                        paused: false,
                    }
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    last = e;
                }
            }
        }
        panic!("could not start redis-server: {last}");
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (panics when it is not running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is running").id()
    }

    /// SIGKILL by pid, then reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.paused {
                // A stopped process dies of SIGKILL too; resume anyway so the
                // kernel does not keep it around stopped.
                signal(c.id(), libc::SIGCONT);
                self.paused = false;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it if running and starts it again on the same port. With
    /// `keep_data` false the directory is emptied first (a Redis that lost
    /// everything); with true, whatever the AOF holds is loaded.
    pub fn restart(&mut self, keep_data: bool) {
        self.kill();
        if !keep_data {
            let _ = std::fs::remove_dir_all(&self.dir);
            std::fs::create_dir_all(&self.dir).expect("recreate the Redis test directory");
        }
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match spawn(self.port, &self.dir, &self.opts) {
                Ok(c) => {
                    self.child = Some(c);
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("redis restart on port {} failed, retrying: {e}", self.port);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("could not restart redis-server on port {}: {e}", self.port),
            }
        }
    }

    /// SIGSTOP: the server hangs with its sockets open.
    pub fn pause(&mut self) {
        signal(self.pid(), libc::SIGSTOP);
        self.paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        signal(self.pid(), libc::SIGCONT);
        self.paused = false;
    }

    /// A plain synchronous connection with 5 s timeouts, for inspection.
    pub fn connection(&self) -> ::redis::Connection {
        let client = ::redis::Client::open(self.url()).expect("client");
        let c = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("connect to the test Redis");
        c.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
        c.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("write timeout");
        c
    }

    /// Runs one command and returns its reply.
    pub fn cmd<T: ::redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut c = self.connection();
        let mut cmd = ::redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut c)
            .unwrap_or_else(|e| panic!("redis command {args:?} failed: {e}"))
    }

    /// A field of `INFO <section>` as text.
    pub fn info_field(&self, section: &str, field: &str) -> String {
        let info: String = self.cmd(&["INFO", section]);
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
            .trim()
            .to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) with a pid this test started and still owns (not yet
    // reaped), so it cannot name another process.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}) failed: {}", std::io::Error::last_os_error());
}

/// Starts redis-server and waits until it answers PING.
fn spawn(port: u16, dir: &std::path::Path, opts: &RedisOptions) -> Result<Child, String> {
    let log = dir.join("redis.log");
    let mut cmd = Command::new(binary());
    cmd.arg("--port")
        .arg(port.to_string())
        .arg("--bind")
        .arg("127.0.0.1")
        .arg("--save")
        .arg("")
        .arg("--dir")
        .arg(dir)
        .arg("--daemonize")
        .arg("no")
        .arg("--logfile")
        .arg(&log)
        .arg("--maxmemory-policy")
        .arg("noeviction")
        .arg("--client-output-buffer-limit")
        .arg("pubsub 256mb 64mb 60");
    if opts.aof {
        cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        cmd.args(["--appendonly", "no"]);
    }
    cmd.args(&opts.extra);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{} not found: the cluster tests need Debian's redis-server; run ./tools/test \
             (it installs it with apt-get) or `apt-get install -y redis-server`",
            binary()
        ),
        Err(e) => return Err(format!("spawn {}: {e}", binary())),
    };
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            return Err(format!("redis-server exited with {status}: {tail}"));
        }
        if let Some(reply) = ping(port) {
            if reply.starts_with("+PONG") {
                return Ok(child);
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("redis-server on port {port} did not answer PING in time"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
