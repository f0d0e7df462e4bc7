//! What the listeners share: the configuration, the channels, the admin
//! intake, the counters and the per-address connection table.
//!
//! `Shared` only holds these together; each keeps its own locking policy in
//! its own module (`channels`, `intake`, `metrics`, `per_ip`). It is built
//! once by `server` before any thread starts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

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
    config: Config,
    /// The channel table and its fan-out.
    pub channels: Arc<Channels>,
    /// Where admin commands go.
    pub intake: Intake,
    /// Counters for `/stats` and `/metrics`.
    pub stats: Stats,
    /// Connections per client address, when `front.max_connections_per_ip` is set.
    pub per_ip: Option<PerIp>,
    /// Whether the server is serving, draining, or lost a worker.
    pub lifecycle: Lifecycle,
    /// The kernel's listen-queue counters when the server started (they
    /// count since boot; `/metrics` and `incidents` report the growth).
    pub kernel_base: crate::incidents::Kernel,
    started: Instant,
}

/// Where the server is in its life, for supervision and readiness.
#[derive(Debug)]
pub struct Lifecycle {
    dead_workers: watch::Sender<usize>,
    draining: AtomicBool,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle {
            dead_workers: watch::channel(0).0,
            draining: AtomicBool::new(false),
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

    /// A graceful shutdown began.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether a graceful shutdown began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

impl Shared {
    /// Builds the shared state for `workers` front workers.
    pub fn new(config: Config, workers: usize) -> std::io::Result<Shared> {
        let f = &config.front;
        let limits = Limits {
            max_channels: f.max_channels,
            max_subscribers: f.max_subscribers_per_channel,
            buffer_size: f.channel_buffer_size,
            channel_timeout: f.effective_channel_timeout(),
            // In cluster mode tokens are checked without the table (the
            // same HMAC on every node), and Redis owns seqs and history.
            token_auth: f.auth == Auth::Token && !config.cluster.enabled(),
            cluster: config.cluster.enabled(),
        };
        let per_ip = (f.max_connections_per_ip > 0).then(|| PerIp::new(f.max_connections_per_ip));
        let channels = Arc::new(Channels::new(limits, Mailboxes::new(workers)?));
        Ok(Shared {
            intake: Intake::local(channels.clone()),
            channels,
            config,
            stats: Stats::default(),
            per_ip,
            lifecycle: Lifecycle::default(),
            kernel_base: crate::incidents::Kernel::read(),
            started: Instant::now(),
        })
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Time since the server started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}
