//! Server assembly: binds both listeners, starts the front workers, the admin
//! runtime and the channel tick, and stops them again.
//!
//! Start-up order matters for private descriptor tables: every descriptor
//! shared between threads (listeners, epoll instances, mailbox eventfds) is
//! created first; then the workers take their private tables; only then does
//! the admin side start accepting, so that no worker table holds a copy of
//! an admin connection (a copy would keep the socket open after admin closes it).

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Backend, BackendError};
use crate::config::ConfigError;
use crate::config::{Config, DescriptorTables};
use crate::front::Settings;
use crate::mailbox::Command;
use crate::reload::{Reloader, Report};
use crate::shared::Shared;
use crate::worker::{self, sys, Sizing, Workers};

/// Descriptors kept free in each table for listeners, logs and admin connections.
const TABLE_RESERVE: usize = 512;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({which}): {source}")]
    Bind {
        /// `front` or `admin`.
        which: &'static str,
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Anything else that failed while starting (threads, epoll, eventfd).
    #[error("cannot start: {0}")]
    Start(#[from] std::io::Error),
    /// Cluster mode could not start (a bad Redis URL, no tokio runtime).
    #[error("cannot start cluster mode: {0}")]
    Cluster(String),
    /// `front.jwt` or `hooks` could not be set up (a key file, a URL); the
    /// message names the key.
    #[error("{0}")]
    Backend(#[from] BackendError),
    /// A front worker thread ended unexpectedly; the server stopped rather
    /// than serve without it.
    #[error("{0} front worker thread(s) died; the server stopped (see the error above)")]
    WorkerDied(usize),
}

/// How many workers, whether they unshare, and how many connections each may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Worker threads.
    pub workers: usize,
    /// Private descriptor tables.
    pub unshare: bool,
    /// Connections per worker.
    pub per_worker: usize,
}

/// Decides the worker layout from the config, the CPU count and the
/// per-table descriptor limit.
pub fn plan(config: &Config, cpus: usize, nofile: usize) -> Plan {
    let per_table = nofile.saturating_sub(TABLE_RESERVE).max(64);
    let want = config.front.max_connections;
    let unshare = match config.front.descriptor_tables {
        DescriptorTables::Always => true,
        DescriptorTables::Never => false,
        DescriptorTables::Auto => want > per_table,
    };
    let needed = if unshare { want.div_ceil(per_table) } else { 1 };
    let workers = if config.workers > 0 {
        config.workers
    } else {
        cpus.max(needed)
    };
    let workers = workers.clamp(1, crate::channel::MAX_WORKERS);
    let per_worker = if unshare {
        per_table.min(want.div_ceil(workers))
    } else {
        want.min(per_table).div_ceil(workers)
    };
    Plan {
        workers,
        unshare,
        per_worker: per_worker.max(1),
    }
}

/// A running server.
pub struct Server {
    shared: Arc<Shared>,
    front: SocketAddr,
    admin: SocketAddr,
    /// The listening socket the workers accept on; the workers hold it too.
    front_listener: Arc<TcpListener>,
    workers: Option<Workers>,
    admin_threads: Vec<std::thread::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    reloader: Reloader,
}

fn bind(which: &'static str, addr: SocketAddr, backlog: u32) -> Result<TcpListener, ServerError> {
    let l = TcpListener::bind(addr).map_err(|source| ServerError::Bind { which, addr, source })?;
    l.set_nonblocking(true)?;
    // std listens with a backlog of 128; a connect burst needs far more
    // (the kernel caps it at net.core.somaxconn).
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    rustix::net::listen(&l, backlog).map_err(std::io::Error::from)?;
    Ok(l)
}

impl Server {
    /// Binds both listeners and starts serving in background threads.
    pub fn bind(config: Config) -> Result<Server, ServerError> {
        let nofile = sys::raise_nofile_limit().min(usize::MAX as u64) as usize;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        crate::malloc::tune(cpus);
        let plan = plan(&config, cpus, nofile);
        log::info!(
            "{} front workers, {} connections each, {} (descriptor limit {nofile} per table, max_connections {})",
            plan.workers,
            plan.per_worker,
            if plan.unshare {
                "private descriptor tables"
            } else {
                "one shared descriptor table"
            },
            config.front.max_connections
        );
        let front_listener = bind("front", config.front.listen, config.front.listen_backlog)?;
        let admin_listener = bind("admin", config.admin.listen, 65535)?;
        let front = front_listener.local_addr()?;
        let admin = admin_listener.local_addr()?;
        let settings = Settings::from_config(&config);
        let sizing = Sizing {
            capacity: plan.per_worker,
            send_buf: config.front.socket_send_buffer_bytes,
            recv_buf: config.front.socket_recv_buffer_bytes,
        };
        let admin_count = config.admin.threads.max(1);
        // A reload compares with the configuration as loaded.
        let reloader = Reloader::new(config.clone(), None);
        // The bound address, not port 0: the admin's demo pages tell
        // browsers which port the front listener is on.
        let mut config = config;
        config.front.listen = front;
        // Build the admin runtimes before the workers take private tables:
        // their epoll and waker descriptors must exist in the shared table.
        let mut runtimes = Vec::with_capacity(admin_count);
        for _ in 0..admin_count {
            runtimes.push(tokio::runtime::Builder::new_current_thread().enable_all().build()?);
        }
        // JWT and the hooks: their HTTP runs on the first admin runtime.
        let backend = Backend::start(&config, runtimes[0].handle())?;
        let shared = Arc::new(Shared::new(config, plan.workers)?.with_backend(backend));
        // Cluster mode's tasks run on the first admin runtime (its
        // connections are made in the background: the node starts even
        // while Redis is down).
        let cluster = if shared.config().cluster.enabled() {
            let _guard = runtimes[0].enter();
            let c = crate::link::start(&shared.channels, &shared.config())
                .map_err(|e| ServerError::Cluster(e.to_string()))?;
            Some(c)
        } else {
            None
        };
        let front_listener = Arc::new(front_listener);
        let workers = worker::spawn(shared.clone(), front_listener.clone(), plan.unshare, sizing, settings)?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut admin_threads = Vec::with_capacity(admin_count);
        for (i, rt) in runtimes.into_iter().enumerate() {
            let listener = {
                let _guard = rt.enter();
                tokio::net::TcpListener::from_std(admin_listener.try_clone()?)?
            };
            if i == 0 {
                rt.spawn(tick(shared.clone(), stop_rx.clone()));
                rt.spawn(crate::incidents::run(shared.clone(), stop_rx.clone()));
            }
            let serve = crate::admin::serve(shared.clone(), listener, stop_rx.clone());
            let cluster = if i == 0 { cluster.clone() } else { None };
            // The hooks' runtime lives on until the event hook has flushed.
            let hooks = (i == 0).then(|| shared.clone());
            let serve = async move {
                serve.await;
                if let Some(shared) = hooks {
                    shared.backend.finish().await;
                }
            };
            admin_threads.push(
                std::thread::Builder::new()
                    .name(format!("comet-admin{i}"))
                    .spawn(move || {
                        rt.block_on(serve);
                        if let Some(c) = cluster {
                            // Leaves the node registry and closes the connections.
                            rt.block_on(c.shutdown());
                        }
                        rt.shutdown_timeout(Duration::from_secs(1));
                    })?,
            );
        }
        drop(admin_listener);
        Ok(Server {
            shared,
            front,
            admin,
            front_listener,
            workers: Some(workers),
            admin_threads,
            stop,
            reloader,
        })
    }

    /// Makes a reload read `file` (the `-c` file; `None`, the default:
    /// the built-in defaults) besides the `COMET_*` variables.
    pub fn reload_from(mut self, file: Option<PathBuf>) -> Server {
        self.reloader.set_file(file);
        self
    }

    /// Reloads the configuration from its file and the process environment
    /// (what SIGHUP does; see `crate::reload`): live keys take effect, the
    /// others are reported. An invalid configuration changes nothing.
    pub fn reload(&self) -> Result<Report, ConfigError> {
        self.reloader.reload(&self.shared, std::env::vars_os())
    }

    /// Validates `config` and applies it as a reload would.
    pub fn reload_with(&self, config: crate::config::Config) -> Result<Report, ConfigError> {
        self.reloader.apply(&self.shared, config)
    }

    /// The front listener's bound address.
    pub fn front_addr(&self) -> SocketAddr {
        self.front
    }

    /// The admin listener's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Makes front worker `worker` panic, as a bug would: for tests that
    /// prove a dead worker is never silent. Nothing in comet calls it.
    #[doc(hidden)]
    pub fn inject_worker_panic(&self, worker: usize) {
        self.shared.channels.mailboxes().push(worker, Command::Panic);
    }

    /// Serves until `stop` completes, then shuts down gracefully and
    /// returns `Ok`; or, if a worker thread dies first, shuts down and
    /// returns [`ServerError::WorkerDied`].
    pub fn run_until(self, stop: impl std::future::Future<Output = ()>) -> Result<(), ServerError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let mut dead = self.shared.lifecycle.watch_dead_workers();
        let died = rt.block_on(async {
            tokio::select! {
                () = stop => false,
                _ = dead.wait_for(|n| *n > 0) => true,
            }
        });
        let n = self.shared.lifecycle.dead_workers();
        self.shutdown();
        if died {
            Err(ServerError::WorkerDied(n))
        } else {
            Ok(())
        }
    }

    /// Serves until SIGINT or SIGTERM arrives through `signals`, then shuts
    /// down gracefully (see [`Server::shutdown`]); SIGHUP reloads the
    /// configuration meanwhile ([`Server::reload`]). A second signal during the
    /// shutdown exits the process at once with status 128 + the signal number.
    /// If a worker thread dies, shuts down and returns
    /// [`ServerError::WorkerDied`] (the process then exits non-zero, so that
    /// a supervisor restarts it).
    pub fn run_until_signal(self, signals: Signals) -> Result<(), ServerError> {
        let Signals {
            rt,
            mut term,
            mut int,
            mut hup,
        } = signals;
        let mut dead = self.shared.lifecycle.watch_dead_workers();
        let first = rt.block_on(async {
            loop {
                tokio::select! {
                    _ = int.recv() => break "SIGINT",
                    _ = term.recv() => break "SIGTERM",
                    _ = dead.wait_for(|n| *n > 0) => break "a dead worker",
                    // The outcome is logged and counted by the reload itself.
                    Some(()) = hup.recv() => { let _ = self.reload(); }
                }
            }
        });
        let died = self.shared.lifecycle.dead_workers();
        let grace = self.shared.config().shutdown_grace_secs;
        log::info!("{first}: shutting down (grace {grace} s; a second signal exits at once)");
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let stopper = std::thread::Builder::new()
            .name("comet-shutdown".into())
            .spawn(move || {
                self.shutdown();
                let _ = done_tx.send(());
            })?;
        rt.block_on(async {
            tokio::select! {
                _ = done_rx => {}
                _ = int.recv() => second_signal(libc::SIGINT),
                _ = term.recv() => second_signal(libc::SIGTERM),
            }
        });
        let _ = stopper.join();
        log::info!("stopped");
        if died > 0 {
            return Err(ServerError::WorkerDied(died));
        }
        Ok(())
    }

    /// Shuts down gracefully: stops the front listener (queued and new
    /// connections are refused), ends every front response (a noop for long
    /// polls, the last chunk for streams) and waits until the front
    /// connections are gone or `shutdown_grace_secs` have passed; the
    /// admin listener answers meanwhile (`/ready` says `draining`,
    /// `/health` stays 200), then stops too, letting its replies in flight
    /// finish.
    pub fn shutdown(mut self) {
        let grace = Duration::from_secs(u64::from(self.shared.config().shutdown_grace_secs));
        self.stop_all(grace);
    }

    /// Stops the workers and admin threads (once; `Drop` calls it again with
    /// no grace). The front listener's descriptor closes when the `Server`
    /// itself is dropped.
    fn stop_all(&mut self, grace: Duration) {
        let Some(workers) = self.workers.take() else { return };
        let deadline = std::time::Instant::now() + grace;
        self.shared.lifecycle.set_draining(deadline);
        // Stops the socket in every descriptor table that holds a copy.
        sys::stop_listening(self.front_listener.as_fd());
        for mb in self.shared.channels.mailboxes().iter() {
            mb.push(Command::Drain(deadline));
        }
        workers.join();
        self.shared.backend.workers_stopped(deadline);
        // Until now the admin side answered (`/ready`: draining).
        let _ = self.stop.send(true);
        for t in self.admin_threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP handlers and the small runtime that waits for them.
///
/// Installed before [`Server::bind`]: once the server runs, clients may take
/// every free descriptor, and a runtime created then could fail to start.
pub struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; from now on these signals no longer kill the process.
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (term, int, hup) = {
            let _guard = rt.enter();
            (
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
                signal(SignalKind::hangup())?,
            )
        };
        Ok(Signals { rt, term, int, hup })
    }
}

/// A second signal during shutdown: leave now.
fn second_signal(signo: i32) {
    log::warn!("second signal: exiting at once");
    std::process::exit(128 + signo);
}

/// The 1-second channel maintenance tick.
async fn tick(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {
                if shared.channels.tick() {
                    // The last channel went: its history was freed just now;
                    // hand the pages back so idle RSS returns to its baseline.
                    crate::malloc::trim();
                }
            }
            _ = stop.changed() => break,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_all(Duration::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_scales_workers_with_capacity() {
        let mut c = Config::default();
        let p = plan(&c, 2, 20_000);
        assert!(p.unshare);
        assert_eq!(p.workers, 1_000_000usize.div_ceil(19_488));
        assert!(p.per_worker * p.workers >= 1_000_000 && p.per_worker <= 19_488);
        c.front.max_connections = 10_000;
        let p = plan(&c, 2, 20_000);
        assert_eq!(
            p,
            Plan {
                workers: 2,
                unshare: false,
                per_worker: 5_000
            }
        );
        c.front.descriptor_tables = DescriptorTables::Always;
        c.workers = 3;
        assert_eq!(
            plan(&c, 2, 20_000),
            Plan {
                workers: 3,
                unshare: true,
                per_worker: 3_334
            }
        );
    }
}
