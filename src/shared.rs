//! What the listeners share: the configuration, the channels, the admin
//! intake, the counters, the per-address connection table and the backend
//! integration (JWT, hooks).
//!
//! `Shared` only holds these together; each keeps its own locking policy in
//! its own module (`channels`, `intake`, `metrics`, `per_ip`, `backend`).
//! It is built once by `server` before any thread starts. The configuration is the one
//! in force: a reload (`crate::reload`) swaps it whole, so a reader holds
//! one consistent version for as long as it keeps the `Arc`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::backend::Backend;
use crate::channel::Limits;
use crate::channels::Channels;
use crate::config::{Auth, Config};
use crate::intake::Intake;
use crate::mailbox::Mailboxes;
use crate::metrics::Stats;
use crate::per_ip::PerIp;

/// State shared by the admin listener and the front workers.
#[derive(Debug)]
pub struct Shared {
    config: RwLock<Arc<Config>>,
    /// The channel table and its fan-out.
    pub channels: Arc<Channels>,
    /// Where admin commands go.
    pub intake: Intake,
    /// Counters for `/stats` and `/metrics`.
    pub stats: Stats,
    /// Connections per client address (`front.max_connections_per_ip`;
    /// its cap can change at run time, 0 counting nothing).
    pub per_ip: PerIp,
    /// Whether the server is serving, draining, or lost a worker.
    pub lifecycle: Lifecycle,
    /// The kernel's listen-queue counters when the server started (they
    /// count since boot; `/metrics` and `incidents` report the growth).
    pub kernel_base: crate::incidents::Kernel,
    /// JWT verification and the hooks to the application (all off unless
    /// configured, see [`Shared::with_backend`]).
    pub backend: Backend,
    started: Instant,
}

/// Where the server is in its life, for supervision and readiness.
#[derive(Debug)]
pub struct Lifecycle {
    dead_workers: watch::Sender<usize>,
    draining: AtomicBool,
    /// When the graceful shutdown under way gives up on what is left.
    drain_deadline: Mutex<Option<Instant>>,
    /// Workers whose accepts fail (descriptors or kernel memory exhausted).
    accept_failing: AtomicUsize,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle {
            dead_workers: watch::channel(0).0,
            draining: AtomicBool::new(false),
            drain_deadline: Mutex::new(None),
            accept_failing: AtomicUsize::new(0),
        }
    }
}

impl Lifecycle {
    /// A worker thread ended unexpectedly.
    pub fn worker_died(&self) {
        self.dead_workers.send_modify(|n| *n += 1);
    }

    /// Worker threads that ended unexpectedly.
    pub fn dead_workers(&self) -> usize {
        *self.dead_workers.borrow()
    }

    /// Changes whenever a worker dies.
    pub fn watch_dead_workers(&self) -> watch::Receiver<usize> {
        self.dead_workers.subscribe()
    }

    /// A graceful shutdown began; it drops what is left at `deadline`.
    pub fn set_draining(&self, deadline: Instant) {
        *crate::mailbox::lock(&self.drain_deadline) = Some(deadline);
        self.draining.store(true, Ordering::Relaxed);
    }

    /// When the graceful shutdown under way ends at the latest (`None`
    /// before one began).
    pub fn drain_deadline(&self) -> Option<Instant> {
        *crate::mailbox::lock(&self.drain_deadline)
    }

    /// A worker's accepts began failing (`true`) or work again (`false`);
    /// each call with `true` is matched by one with `false`.
    pub fn set_accept_failing(&self, failing: bool) {
        if failing {
            self.accept_failing.fetch_add(1, Ordering::Relaxed);
        } else {
            // Never below 0, whatever the order of calls.
            let _ = self
                .accept_failing
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// Workers whose accepts currently fail.
    pub fn accept_failing(&self) -> usize {
        self.accept_failing.load(Ordering::Relaxed)
    }

    /// Whether a graceful shutdown began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// The channel table's limits as `config` sets them.
pub fn limits(config: &Config) -> Limits {
    let f = &config.front;
    Limits {
        max_channels: f.max_channels,
        max_subscribers: f.max_subscribers_per_channel,
        buffer_size: f.channel_buffer_size,
        channel_timeout: f.effective_channel_timeout(),
        // In cluster mode tokens are checked without the table (the
        // same HMAC on every node), and Redis owns seqs and history.
        token_auth: f.auth == Auth::Token && !config.cluster.enabled(),
        cluster: config.cluster.enabled(),
    }
}

impl Shared {
    /// Builds the shared state for `workers` front workers.
    pub fn new(config: Config, workers: usize) -> std::io::Result<Shared> {
        let per_ip = PerIp::new(config.front.max_connections_per_ip);
        let channels = Arc::new(Channels::new(limits(&config), Mailboxes::new(workers)?));
        Ok(Shared {
            intake: Intake::local(channels.clone()),
            channels,
            config: RwLock::new(Arc::new(config)),
            stats: Stats::default(),
            per_ip,
            lifecycle: Lifecycle::default(),
            kernel_base: crate::incidents::Kernel::read(),
            backend: Backend::none(),
            started: Instant::now(),
        })
    }

    /// The shared state with `backend` in place, and the channel table
    /// reporting to its event hook.
    pub fn with_backend(mut self, backend: Backend) -> Shared {
        if let Some(events) = backend.events() {
            self.channels.set_events(events.clone());
        }
        self.backend = backend;
        self
    }

    /// The configuration in force: the one the server started with, with
    /// the live keys of the last reload applied (keys that need a restart
    /// keep their running value). Read it where the value is used, not
    /// once at start, so that a reload reaches it.
    pub fn config(&self) -> Arc<Config> {
        // A poisoned lock only means a reader panicked; the Arc inside is whole.
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `config` in force (a reload; see `crate::reload`). Only what
    /// reads the configuration afterwards sees it: the reload itself tells
    /// the workers and the channel table.
    pub(crate) fn replace_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    /// Time since the server started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}
