//! Front worker threads: private descriptor tables, one epoll loop each,
//! the 1-second tick, accepting, and supervision.
//!
//! A worker owns its connections' descriptors outright: only its thread
//! reads or writes their sockets. It drives a `crate::front::Front` (the
//! protocol: requests, subscriptions, delivery, timers) with what epoll
//! reports, with what its [`Mailbox`](crate::mailbox::Mailbox) brings
//! (deliveries, settings, shutdown) and with the wall clock. Every
//! descriptor several threads use (the epoll instances, the mailbox
//! eventfds, the listener) is created before any worker takes a private
//! descriptor table, because the private table starts as a copy of the
//! shared one.
//!
//! A worker thread that ends in any way but a requested stop (a panic) is
//! reported: logged at error, counted in `/metrics`, and the server is told
//! so that it shuts down and exits non-zero instead of serving with a dead
//! worker.

mod accept;
pub(crate) mod sys;

use std::net::TcpListener;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::front::{Front, Settings, Token};
use crate::mailbox::Command;
use crate::shared::Shared;
use sys::{Epoll, Flags, Socket};

/// Events taken per epoll_wait.
const EVENTS: usize = 256;

const LISTENER: u64 = u64::MAX;
const MAILBOX: u64 = u64::MAX - 1;

/// What a worker copies out of the config besides the front's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizing {
    /// Connections this worker may hold.
    pub capacity: usize,
    /// SO_SNDBUF of accepted sockets (0: kernel default).
    pub send_buf: usize,
    /// SO_RCVBUF of accepted sockets (0: kernel default).
    pub recv_buf: usize,
}

/// One front worker (the state its thread owns).
pub(crate) struct Worker {
    index: usize,
    shared: Arc<Shared>,
    epoll: Epoll,
    listener: Arc<TcpListener>,
    front: Front<Socket>,
    capacity: usize,
    send_buf: usize,
    recv_buf: usize,
    accept_paused: bool,
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
}

/// Handles of the running workers.
pub(crate) struct Workers {
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Waits for every worker thread to end.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// What a worker is built from, on its own thread.
struct Seed {
    index: usize,
    shared: Arc<Shared>,
    settings: Settings,
    epoll: Epoll,
    listener: Arc<TcpListener>,
    sizing: Sizing,
}

impl Seed {
    fn into_worker(self) -> Worker {
        let max_connections = self.shared.config().front.max_connections as u64;
        Worker {
            index: self.index,
            front: Front::new(self.index, self.shared.clone(), self.settings),
            shared: self.shared,
            epoll: self.epoll,
            listener: self.listener,
            capacity: self.sizing.capacity,
            send_buf: self.sizing.send_buf,
            recv_buf: self.sizing.recv_buf,
            accept_paused: false,
            max_connections,
            accept_failures: 0,
            accept_pause_until: 0,
            refusing: Vec::new(),
            drain_deadline: None,
            running: true,
        }
    }
}

/// Starts one worker per mailbox on `listener`. Returns once every worker
/// has taken its private descriptor table (when `unshare`), so that the
/// caller may open descriptors that workers must not inherit.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    listener: Arc<TcpListener>,
    unshare: bool,
    sizing: Sizing,
    settings: Settings,
) -> std::io::Result<Workers> {
    let n = shared.channels.mailboxes().len();
    // Every worker with room listens, with EPOLLEXCLUSIVE: a new connection
    // wakes one waiting worker, and during a connect storm as many workers
    // accept as the CPUs allow. (With only as many acceptors as CPUs, a
    // local load generator's dozens of threads out-scheduled the two
    // accepting ones, the accept queue overflowed, and the kernel reset
    // connections whose handshake it had completed: 124,843 of 1M in an
    // open-loop storm at 40,000/s; with every worker listening, 0.)
    // Every epoll instance is built first, while the descriptor table is
    // still shared; each worker gets its own descriptor for it (a dup), and
    // the originals close once every worker has its table.
    let mut polls = Vec::with_capacity(n);
    for i in 0..n {
        let ep = Epoll::new()?;
        ep.add(listener.as_fd(), Flags::IN | Flags::EXCLUSIVE, LISTENER)?;
        let mailbox = shared.channels.mailboxes().get(i).expect("one mailbox per worker");
        ep.add(mailbox.wake_fd(), Flags::IN | Flags::ET, MAILBOX)?;
        polls.push(ep);
    }
    let barrier = Arc::new(Barrier::new(n + 1));
    let mut threads = Vec::with_capacity(n);
    for (index, epoll) in polls.iter().enumerate() {
        let seed = Seed {
            index,
            shared: shared.clone(),
            settings: settings.clone(),
            epoll: epoll.try_clone()?,
            listener: listener.clone(),
            sizing,
        };
        threads.push(start_thread(seed, unshare, barrier.clone())?);
    }
    barrier.wait();
    drop(polls);
    Ok(Workers { threads })
}

/// Starts a worker thread, which first takes a private descriptor table
/// when `unshare` (a copy of the spawning thread's table), then meets
/// `barrier`, then builds its worker from `seed` and runs. A panic on the
/// thread is reported (see [`report_death`]).
fn start_thread(seed: Seed, unshare: bool, barrier: Arc<Barrier>) -> std::io::Result<JoinHandle<()>> {
    let index = seed.index;
    std::thread::Builder::new()
        .name(format!("comet-w{index}"))
        .stack_size(256 * 1024)
        .spawn(move || {
            if unshare {
                // SAFETY: every descriptor a worker uses and did not open
                // itself (its epoll instance, the mailbox eventfds, the
                // listener) was created before this call, by `spawn`, and is
                // never closed in this table while the worker runs; a worker
                // hands no descriptor it opens to another thread.
                if let Err(e) = unsafe { sys::unshare_files() } {
                    log::error!("worker {index}: unshare(CLONE_FILES) failed, sharing the process table: {e}");
                }
            }
            barrier.wait();
            let shared = seed.shared.clone();
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| seed.into_worker().run()));
            if let Err(panic) = run {
                report_death(&shared, index, &*panic);
            }
        })
}

/// A worker thread panicked: say so everywhere, and ask the server to stop.
fn report_death(shared: &Shared, index: usize, panic: &(dyn std::any::Any + Send)) {
    let why = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    log::error!("worker {index} died: {why}; its connections are lost; the server stops (exit status 1)");
    shared.stats.workers_dead.fetch_add(1, Ordering::Relaxed);
    shared.lifecycle.worker_died();
}

impl Worker {
    fn run(mut self) {
        let mut events = vec![sys::no_event(); EVENTS];
        let start = Instant::now();
        let mut cmds = Vec::new();
        while self.running {
            let mut wake = start + Duration::from_secs(u64::from(self.front.now()));
            if let Some(d) = self.drain_deadline {
                wake = wake.min(d);
            }
            let timeout = wake.saturating_duration_since(Instant::now());
            let n = match self.epoll.wait(&mut events, timeout.as_millis() as u64 + 1) {
                Ok(n) => n,
                Err(e) => {
                    log::error!("worker {}: epoll_wait: {e}", self.index);
                    std::thread::sleep(Duration::from_millis(100));
                    0
                }
            };
            for ev in &events[..n] {
                let (token, flags) = (ev.data.u64(), ev.flags);
                match token {
                    LISTENER => self.accept_ready(),
                    MAILBOX => self.commands(&mut cmds),
                    t if t & accept::REFUSED_TAG == accept::REFUSED_TAG => self.on_refused_event(t),
                    t => {
                        let readable = flags.intersects(Flags::IN | Flags::RDHUP | Flags::HUP);
                        let writable = flags.contains(Flags::OUT);
                        self.front
                            .on_event(Token(t), readable, writable, flags.contains(Flags::ERR));
                    }
                }
            }
            let elapsed = start.elapsed().as_secs() as u32 + 1;
            if elapsed > self.front.now() {
                self.front.tick(elapsed);
                self.tick();
            }
            self.maybe_resume_accept();
            if let Some(deadline) = self.drain_deadline {
                if self.front.open() == 0 || Instant::now() >= deadline {
                    self.running = false;
                }
            } else if self.front.should_release_memory() {
                // Everyone left: the front gives back what it grew, here
                // between events and never from inside one; after a large
                // burst the freed pages go back to the OS at once. (Handing
                // the worker to a fresh thread, as earlier versions did, left
                // more behind: the new thread's state landed on pages the
                // burst had fragmented; 150,000 private channels after ten
                // broadcasts ended +30% to +33% of idle with it, +21% to
                // +26% without.)
                let large = self.front.burst_was_large();
                self.front.release_memory();
                self.shared.stats.worker_releases.fetch_add(1, Ordering::Relaxed);
                if large {
                    crate::malloc::trim();
                }
            }
        }
        self.expire_refused(true);
        self.front.close_all();
    }

    /// Runs the commands waiting in this worker's mailbox.
    fn commands(&mut self, cmds: &mut Vec<Command>) {
        if let Some(mb) = self.shared.channels.mailboxes().get(self.index) {
            mb.take_all(cmds);
        }
        for cmd in cmds.drain(..) {
            let Some(cmd) = self.front.apply(cmd) else { continue };
            match cmd {
                Command::Message(..)
                | Command::Broadcast(..)
                | Command::Close(..)
                | Command::Synced(..)
                | Command::Reset(..)
                | Command::Authorized(..) => {}
                Command::Drain(deadline) => self.begin_drain(deadline),
                Command::Settings(settings) => {
                    // The reload put the new configuration in force first.
                    self.max_connections = self.shared.config().front.max_connections as u64;
                    self.front.set_settings(settings);
                }
                Command::Panic => panic!("a panic injected by Server::inject_worker_panic"),
            }
        }
    }

    /// Starts a graceful shutdown: the loop stops when every connection is
    /// gone or at `deadline`.
    fn begin_drain(&mut self, deadline: Instant) {
        if self.drain_deadline.is_some() {
            return;
        }
        self.drain_deadline = Some(deadline);
        self.pause_accept();
        self.expire_refused(true);
        self.front.drain();
    }

    /// The worker's part of the 1-second tick (the front's runs first).
    fn tick(&mut self) {
        self.accept_tick();
    }
}
