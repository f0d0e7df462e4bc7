//! One dedicated RESP3 PUB/SUB connection and the task that owns it: which
//! channels are wanted, which are subscribed, batching, reconnects, probes.
//!
//! The node says `join`/`leave`; the task turns that into SUBSCRIBE and
//! UNSUBSCRIBE of at most `subscribe_batch` channels, up to
//! `subscribe_concurrency` in flight, each channel in one of four states
//! (idle, subscribing, subscribed, unsubscribing) so a leave that overtakes
//! its own subscribe is sent after it, never before. A channel is live only
//! once its own subscribe confirmation arrived (the `Confirmed` event, emitted
//! by the reader in wire order, before any message of the channel).
//!
//! After a loss (disconnect push, failed command, or a probe that did not come
//! back) the task reconnects with exponential backoff plus jitter, subscribes
//! its service channels, then resubscribes every wanted channel in the same
//! bounded batches, and reports `Resynced`. The library's automatic
//! resubscription is never used: it sends one SUBSCRIBE with every channel,
//! which Redis kills past ~700k channels. The reader never blocks: pushes go
//! straight to the node's callback (or to the survey registry). This module
//! knows nothing of comet's channel table.
//!
//! Files: `mod.rs` holds the state, the task's loop and join/leave;
//! `batches.rs` the SUBSCRIBE/UNSUBSCRIBE batches; `link.rs` the connection's
//! life (connect, loss, backoff, probe, push callback).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ahash::AHashMap;
use redis::aio::MultiplexedConnection;
use redis::RedisResult;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::events::{ConnId, LostReason, Sink};
use super::push::Routes;
use super::store::Store;
use super::survey::Surveys;
use super::LocalCounts;

mod batches;
mod link;

/// What the node asks of a connection task.
#[derive(Debug)]
pub(crate) enum Command {
    Join(Arc<str>),
    Leave(Arc<str>),
    Shutdown,
}

/// Timing and batching, from `ClusterConfig`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) batch: usize,
    pub(crate) concurrency: usize,
    pub(crate) linger: Duration,
    pub(crate) probe_interval: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) call_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

/// Everything the connections of one node share.
pub(crate) struct Context {
    pub(crate) routes: Routes,
    pub(crate) sink: Sink,
    pub(crate) surveys: Arc<Surveys>,
    pub(crate) store: Store,
    pub(crate) local: Arc<dyn LocalCounts>,
    pub(crate) node: String,
    pub(crate) client: redis::Client,
    pub(crate) settings: Settings,
    pub(crate) runtime: tokio::runtime::Handle,
}

/// Counters of one connection. All only grow except `joined` and `live`.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections established.
    pub connects: AtomicU64,
    /// Connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// Times a working connection was lost (any reason).
    pub lost: AtomicU64,
    /// Of those, times a probe found it hung.
    pub hung: AtomicU64,
    /// Probes published.
    pub probes: AtomicU64,
    /// Pushes that did not decode (never delivered).
    pub malformed: AtomicU64,
    /// Channel subscriptions confirmed (every resubscribe counts again).
    pub confirmed: AtomicU64,
    /// Completed resubscriptions (`Resynced` events).
    pub resyncs: AtomicU64,
    /// Channels the node has joined on this connection.
    pub joined: AtomicU64,
    /// Channels whose subscription is confirmed on the current connection.
    pub live: AtomicU64,
}

/// State shared between the task and its connection's push callback.
#[derive(Default)]
pub(crate) struct Shared {
    /// Current generation; pushes of older connections are dropped.
    gen: AtomicU64,
    /// Pushes received on the current connection (the probe watches it).
    activity: AtomicU64,
    pub(crate) stats: ConnStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Idle,
    Subscribing,
    Subscribed,
    Unsubscribing,
}

struct Entry {
    want: bool,
    at: At,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Service,
    Sub,
    Unsub,
}

struct Done {
    gen: u64,
    op: Op,
    names: Vec<Arc<str>>,
    outcome: Result<(), String>,
}

struct Probe {
    seen: u64,
    changed: Instant,
    deadline: Option<Instant>,
}

type Connecting = Pin<Box<dyn Future<Output = RedisResult<MultiplexedConnection>> + Send>>;

/// One connection's task.
pub(crate) struct Shard {
    id: ConnId,
    ctx: Arc<Context>,
    shared: Arc<Shared>,
    service: Vec<String>,
    probe_channel: String,
    rx: mpsc::UnboundedReceiver<Command>,
    lost_tx: mpsc::UnboundedSender<u64>,
    lost_rx: mpsc::UnboundedReceiver<u64>,
    entries: AHashMap<Arc<str>, Entry>,
    sub_q: VecDeque<Arc<str>>,
    unsub_q: VecDeque<Arc<str>>,
    queued_since: Option<Instant>,
    inflight: JoinSet<Done>,
    subs_inflight: usize,
    conn: Option<MultiplexedConnection>,
    ready: bool,
    connecting: Option<Connecting>,
    retry_at: Option<Instant>,
    attempt: u32,
    down_since: Option<Instant>,
    resync: Option<(Instant, usize)>,
    probe: Probe,
    rng: u64,
}

impl Shard {
    /// A task for connection `id` that also subscribes `service` channels
    /// (the probe channel is added).
    pub(crate) fn new(
        id: ConnId,
        ctx: Arc<Context>,
        shared: Arc<Shared>,
        mut service: Vec<String>,
        rx: mpsc::UnboundedReceiver<Command>,
    ) -> Shard {
        let tag = match id {
            ConnId::Data(n) => format!("d{n}"),
            ConnId::Control => "ctl".to_string(),
        };
        let probe_channel = ctx.store.keys().probe(&ctx.node, &tag);
        service.push(probe_channel.clone());
        let (lost_tx, lost_rx) = mpsc::unbounded_channel();
        let mut seed = [0u8; 8];
        getrandom::getrandom(&mut seed).expect("the OS random source is available");
        shared.gen.store(1, Ordering::Release);
        Shard {
            id,
            ctx,
            shared,
            service,
            probe_channel,
            rx,
            lost_tx,
            lost_rx,
            entries: AHashMap::new(),
            sub_q: VecDeque::new(),
            unsub_q: VecDeque::new(),
            queued_since: None,
            inflight: JoinSet::new(),
            subs_inflight: 0,
            conn: None,
            ready: false,
            connecting: None,
            retry_at: None,
            attempt: 0,
            down_since: Some(Instant::now()),
            resync: None,
            probe: Probe {
                seen: 0,
                changed: Instant::now(),
                deadline: None,
            },
            rng: u64::from_le_bytes(seed) | 1,
        }
    }

    fn gen(&self) -> u64 {
        self.shared.gen.load(Ordering::Acquire)
    }

    /// Runs until `Command::Shutdown` or until every sender is gone.
    pub(crate) async fn run(mut self) {
        self.start_connect();
        let s = &self.ctx.settings;
        let tick = (s.probe_interval.min(s.probe_timeout) / 4).clamp(Duration::from_millis(5), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let far = Instant::now() + Duration::from_secs(86400 * 365);
        loop {
            // Armed only while a batch could be sent: with every slot in
            // flight a past deadline would wake the loop in a busy spin; the
            // next completion wakes it instead.
            let room = self.inflight.len() < self.ctx.settings.concurrency;
            let flush_at = match (self.ready && room, self.queued_since) {
                (true, Some(t)) => t + self.ctx.settings.linger,
                _ => far,
            };
            let retry_at = match (&self.connecting, self.retry_at) {
                (None, Some(t)) => t,
                _ => far,
            };
            let connecting = &mut self.connecting;
            let waiting = connecting.is_some();
            tokio::select! {
                cmd = self.rx.recv() => {
                    let mut next = cmd;
                    loop {
                        match next {
                            None | Some(Command::Shutdown) => return self.stop(),
                            Some(c) => self.command(c),
                        }
                        match self.rx.try_recv() {
                            Ok(c) => next = Some(c),
                            Err(_) => break,
                        }
                    }
                }
                Some(g) = self.lost_rx.recv() => {
                    if g == self.gen() && self.conn.is_some() {
                        self.lose(LostReason::Disconnected, "Redis closed the connection");
                    }
                }
                Some(joined) = self.inflight.join_next(), if !self.inflight.is_empty() => {
                    if let Ok(done) = joined {
                        self.done(done);
                    }
                }
                res = async {
                    match connecting.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                }, if waiting => self.connected(res),
                _ = tokio::time::sleep_until(retry_at), if retry_at < far => {
                    self.retry_at = None;
                    self.start_connect();
                }
                _ = tokio::time::sleep_until(flush_at), if flush_at < far => {}
                _ = ticker.tick() => self.probe_tick(),
            }
            self.pump();
        }
    }

    fn stop(&mut self) {
        self.connecting = None;
        self.inflight = JoinSet::new();
        self.conn = None;
        self.ready = false;
    }

    fn queue(q: &mut VecDeque<Arc<str>>, since: &mut Option<Instant>, name: Arc<str>) {
        q.push_back(name);
        if since.is_none() {
            *since = Some(Instant::now());
        }
    }

    fn command(&mut self, c: Command) {
        let stats = &self.shared.stats;
        match c {
            Command::Join(name) => match self.entries.get_mut(&name) {
                Some(e) if e.want => {}
                Some(e) => {
                    e.want = true;
                    stats.joined.fetch_add(1, Ordering::Relaxed);
                    if e.at == At::Idle && self.ready {
                        Self::queue(&mut self.sub_q, &mut self.queued_since, name);
                    } else if e.at == At::Subscribed {
                        // Left and joined again before the UNSUBSCRIBE went
                        // out: the subscription never stopped, so no new
                        // confirmation will come from Redis. The node's new
                        // copy still needs one to sync (read history; every
                        // later message arrives on this subscription).
                        let event = super::events::ClusterEvent::Confirmed { cname: name };
                        self.ctx.sink.deliver(&self.shared.gen, self.gen(), [event]);
                    }
                }
                None => {
                    self.entries.insert(
                        name.clone(),
                        Entry {
                            want: true,
                            at: At::Idle,
                        },
                    );
                    stats.joined.fetch_add(1, Ordering::Relaxed);
                    if self.ready {
                        Self::queue(&mut self.sub_q, &mut self.queued_since, name);
                    }
                }
            },
            Command::Leave(name) => {
                let Some(e) = self.entries.get_mut(&name) else {
                    return;
                };
                if !e.want {
                    return;
                }
                e.want = false;
                stats.joined.fetch_sub(1, Ordering::Relaxed);
                match e.at {
                    At::Idle => {
                        self.entries.remove(&name);
                    }
                    At::Subscribed => Self::queue(&mut self.unsub_q, &mut self.queued_since, name),
                    // Re-examined when the command in flight completes.
                    At::Subscribing | At::Unsubscribing => {}
                }
            }
            Command::Shutdown => {}
        }
    }
}
