//! Front worker threads: private descriptor tables, one epoll loop each, a
//! 1-second tick, and the connections each worker accepted.
//!
//! A worker owns its connections outright: only its thread reads or writes
//! their sockets. Other threads reach it through its [`Mailbox`]
//! (deliveries, shutdown). Every descriptor that several threads use (the
//! epoll instances, the mailbox eventfds, the listener) is created before
//! any worker takes a private descriptor table, because the private table
//! starts as a copy of the shared one. The connection logic itself (HTTP,
//! subscribe, delivery) is in `crate::front`.

mod accept;
mod drain;
mod renew;
pub(crate) mod sys;
pub(crate) mod wheel;

use std::os::fd::RawFd;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ahash::AHashMap;

use crate::front::conn::Conn;
use crate::front::LocalChannel;
use crate::hub::{Command, Hub};
use sys::Epoll;
use wheel::Wheel;

/// Per-worker read buffer. Request heads are at most 8 KB; with dozens of
/// workers (one per descriptor table at 1M connections) every KB here is
/// resident once the worker has been busy.
pub(crate) const READ_BUF: usize = 16 * 1024;
/// Events taken per epoll_wait.
const EVENTS: usize = 256;

const LISTENER: u64 = u64::MAX;
const MAILBOX: u64 = u64::MAX - 1;

/// Settings a worker copies out of the config.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub polling_timeout: u32,
    pub header_timeout: u32,
    pub max_queued: usize,
    pub max_cname: usize,
    pub sse_retry_ms: u32,
    pub send_buf: usize,
    pub recv_buf: usize,
}

/// One front worker (the state its thread owns).
pub(crate) struct Worker {
    pub index: usize,
    pub hub: Arc<Hub>,
    pub settings: Settings,
    pub epoll: Epoll,
    pub listener: RawFd,
    pub conns: Vec<Conn>,
    pub free: Vec<u32>,
    pub open: usize,
    pub capacity: usize,
    pub local: AHashMap<u64, LocalChannel>,
    pub wheel: Wheel,
    /// Ticks since the worker started (1 per second).
    pub now: u32,
    pub date: crate::front::respond::DateLine,
    /// The read buffer, allocated while the worker has connections.
    pub rbuf: Vec<u8>,
    accept_paused: bool,
    /// Whether this worker takes part in accepting (see `hand_off`).
    accepting: bool,
    /// The next worker to hand accepting to, shared by all workers.
    next_acceptor: Arc<AtomicUsize>,
    /// `front.max_connections`, over all workers.
    max_connections: u64,
    /// Failed accepts (descriptors exhausted) in the current burst.
    accept_failures: u64,
    /// No accepting before this tick (after a failed accept).
    accept_pause_until: u32,
    /// Refused connections waiting for their request (see `accept`).
    refusing: Vec<accept::Pending>,
    /// Set once a shutdown began: when the remaining connections are dropped.
    drain_deadline: Option<Instant>,
    running: bool,
    /// Everyone left after a burst: hand over to a fresh thread (see `renew`).
    pub renew: bool,
    /// Whether workers take private descriptor tables.
    unshare: bool,
    /// Every worker's current thread, replaced when a worker renews itself.
    threads: Threads,
    /// When to trim the heap (a successor, once its predecessor has exited).
    trim_at: Option<Instant>,
}

/// The thread of each worker (`None` once joined).
type Threads = Arc<std::sync::Mutex<Vec<Option<JoinHandle<()>>>>>;

/// Handles of the running workers.
pub(crate) struct Workers {
    threads: Threads,
}

impl Workers {
    /// Waits for every worker thread to end, following renewals.
    pub fn join(self) {
        let n = crate::hub::lock(&self.threads).len();
        for i in 0..n {
            while let Some(t) = crate::hub::lock(&self.threads)[i].take() {
                let _ = t.join();
            }
        }
    }
}

/// Starts `hub.mailboxes().len()` workers on `listener`. Returns once every
/// worker has taken its private descriptor table (when `unshare`), so that the
/// caller may open descriptors that workers must not inherit.
pub(crate) fn spawn(
    hub: Arc<Hub>,
    listener: RawFd,
    unshare: bool,
    capacity: usize,
    settings: Settings,
) -> std::io::Result<Workers> {
    let n = hub.mailboxes().len();
    // Only as many workers as CPUs accept at once: new connections land on a
    // few busy threads instead of waking dozens of them on two cores. A
    // worker that fills up hands accepting on to the next one.
    let acceptors = std::thread::available_parallelism().map_or(1, |c| c.get()).min(n);
    let next_acceptor = Arc::new(AtomicUsize::new(acceptors));
    // Build every epoll instance first, while the descriptor table is still shared.
    let mut polls = Vec::with_capacity(n);
    for i in 0..n {
        let ep = Epoll::new()?;
        if i < acceptors {
            ep.add(listener, sys::IN | sys::EXCLUSIVE, LISTENER)?;
        }
        ep.add(hub.mailboxes()[i].wake_fd(), sys::IN | sys::ET, MAILBOX)?;
        polls.push(ep);
    }
    let barrier = Arc::new(Barrier::new(n + 1));
    let threads: Threads = Arc::new(std::sync::Mutex::new((0..n).map(|_| None).collect()));
    for (index, epoll) in polls.into_iter().enumerate() {
        let epoll_fd = epoll.raw();
        // The worker owns the epoll instance from here (see `Handover`).
        std::mem::forget(epoll);
        let seed = renew::Handover {
            index,
            hub: hub.clone(),
            settings: settings.clone(),
            epoll_fd,
            listener,
            capacity,
            accept_paused: index >= acceptors,
            accepting: index < acceptors,
            next_acceptor: next_acceptor.clone(),
            max_connections: hub.config().front.max_connections as u64,
            unshare,
            threads: threads.clone(),
        };
        let t = start_thread(index, unshare, Some(barrier.clone()), move || seed.into_worker(None))?;
        crate::hub::lock(&threads)[index] = Some(t);
    }
    barrier.wait();
    Ok(Workers { threads })
}

/// Runs the worker `make` builds on a new thread, which first takes a
/// private descriptor table when `unshare` (a copy of the spawning thread's
/// table), then meets `barrier` if given.
fn start_thread(
    index: usize,
    unshare: bool,
    barrier: Option<Arc<Barrier>>,
    make: impl FnOnce() -> Worker + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("comet-w{index}"))
        .stack_size(256 * 1024)
        .spawn(move || {
            if unshare {
                if let Err(e) = sys::unshare_files() {
                    log::error!("worker {index}: unshare(CLONE_FILES) failed, sharing the process table: {e}");
                }
            }
            if let Some(b) = barrier {
                b.wait();
            }
            make().run();
        })
}

impl Worker {
    fn run(mut self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        let start = Instant::now();
        let mut cmds = Vec::new();
        // A successor may have been handed a wake-up its predecessor never saw.
        self.commands(&mut cmds);
        while self.running {
            let mut wake = start + Duration::from_secs(u64::from(self.now));
            if let Some(d) = self.drain_deadline {
                wake = wake.min(d);
            }
            let timeout = wake.saturating_duration_since(Instant::now());
            let n = match self.epoll.wait(&mut events, timeout.as_millis() as i32 + 1) {
                Ok(n) => n,
                Err(e) => {
                    log::error!("worker {}: epoll_wait: {e}", self.index);
                    std::thread::sleep(Duration::from_millis(100));
                    0
                }
            };
            for ev in &events[..n] {
                let (token, bits) = (ev.u64, ev.events);
                match token {
                    LISTENER => self.accept_ready(),
                    MAILBOX => self.commands(&mut cmds),
                    t if t & accept::REFUSED_TAG == accept::REFUSED_TAG => self.on_refused_event(t),
                    t => self.on_event((t & 0xffff_ffff) as u32, (t >> 32) as u32, bits),
                }
            }
            while Instant::now() >= start + Duration::from_secs(u64::from(self.now)) {
                self.now += 1;
                self.tick();
            }
            if let Some(deadline) = self.drain_deadline {
                if self.open == 0 || Instant::now() >= deadline {
                    self.running = false;
                }
            } else if self.renew {
                self.renew = false;
                if self.open == 0 {
                    match self.start_successor() {
                        Ok(()) => return self.retire(),
                        Err(e) => log::warn!(
                            "worker {}: cannot start a fresh thread, keeping this one: {e}",
                            self.index
                        ),
                    }
                }
            }
        }
        self.expire_refused(true);
        for idx in 0..self.conns.len() as u32 {
            self.close_conn(idx);
        }
    }

    /// Runs the commands waiting in this worker's mailbox.
    fn commands(&mut self, cmds: &mut Vec<Command>) {
        self.hub.mailboxes()[self.index].drain(cmds);
        for cmd in std::mem::take(cmds) {
            match cmd {
                Command::Deliver(event) => self.deliver(&event),
                Command::StartAccepting => {
                    self.accepting = true;
                    self.maybe_resume_accept();
                }
                Command::Drain(deadline) => self.begin_drain(deadline),
            }
        }
    }

    /// The token epoll reports for a connection.
    pub fn token(idx: u32, gen: u32) -> u64 {
        (u64::from(gen) << 32) | u64::from(idx)
    }

    fn tick(&mut self) {
        self.date = crate::front::respond::date_line();
        if self.trim_at.is_some_and(|t| Instant::now() >= t) {
            self.trim_at = None;
            // SAFETY: malloc_trim only returns free heap memory to the kernel.
            unsafe { libc::malloc_trim(0) };
        }
        self.accept_tick();
        let bucket = self.wheel.take(self.now);
        for &(idx, gen) in &bucket {
            self.on_timer(idx, gen);
        }
        self.wheel.give_back(self.now, bucket);
    }
}
