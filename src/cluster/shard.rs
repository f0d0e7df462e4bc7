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

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ahash::AHashMap;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, RedisResult};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::events::{ClusterEvent, ConnId, LostReason, Sink};
use super::push::{encode_survey_reply, route, Routed, Routes};
use super::store::Store;
use super::survey::Surveys;
use super::LocalCounts;

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

    /// Takes up to one batch of still-valid names from a queue.
    fn take(&mut self, op: Op) -> Vec<Arc<str>> {
        let limit = self.ctx.settings.batch;
        let mut out = Vec::with_capacity(limit.min(64));
        let q = if op == Op::Sub {
            &mut self.sub_q
        } else {
            &mut self.unsub_q
        };
        while out.len() < limit {
            let Some(name) = q.pop_front() else { break };
            let Some(e) = self.entries.get_mut(&name) else { continue };
            match (op, e.want, e.at) {
                (Op::Sub, true, At::Idle) => e.at = At::Subscribing,
                (Op::Unsub, false, At::Subscribed) => e.at = At::Unsubscribing,
                _ => continue,
            }
            out.push(name);
        }
        out
    }

    /// Sends what the queues hold, within the batch and concurrency bounds.
    fn pump(&mut self) {
        if self.ready && self.conn.is_some() {
            let now = Instant::now();
            let batch = self.ctx.settings.batch;
            while self.inflight.len() < self.ctx.settings.concurrency {
                let due = self.queued_since.is_some_and(|t| now >= t + self.ctx.settings.linger);
                let op = if !self.unsub_q.is_empty() && (self.unsub_q.len() >= batch || due) {
                    Op::Unsub
                } else if !self.sub_q.is_empty() && (self.sub_q.len() >= batch || due) {
                    Op::Sub
                } else {
                    break;
                };
                let names = self.take(op);
                if !names.is_empty() {
                    let channels = names.iter().map(|n| self.ctx.store.keys().channel(n)).collect();
                    self.send(op, names, channels);
                }
            }
            if self.sub_q.is_empty() && self.unsub_q.is_empty() {
                self.queued_since = None;
            }
        }
        self.check_resynced();
    }

    fn send(&mut self, op: Op, names: Vec<Arc<str>>, channels: Vec<String>) {
        let Some(conn) = &self.conn else { return };
        let mut c = conn.clone();
        let gen = self.gen();
        let limit = self.ctx.settings.call_timeout * 4;
        if op == Op::Sub {
            self.subs_inflight += 1;
        }
        self.inflight.spawn(async move {
            let fut = async {
                match op {
                    Op::Service | Op::Sub => c.subscribe(&channels).await,
                    Op::Unsub => c.unsubscribe(&channels).await,
                }
            };
            let outcome = match tokio::time::timeout(limit, fut).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
            };
            Done {
                gen,
                op,
                names,
                outcome,
            }
        });
    }

    fn done(&mut self, d: Done) {
        if d.gen != self.gen() {
            return;
        }
        if d.op == Op::Sub {
            self.subs_inflight -= 1;
        }
        if let Err(why) = d.outcome {
            let what = match d.op {
                Op::Service => "subscribing the service channels",
                Op::Sub => "SUBSCRIBE",
                Op::Unsub => "UNSUBSCRIBE",
            };
            return self.lose(LostReason::CommandFailed, &format!("{what} failed: {why}"));
        }
        let stats = &self.shared.stats;
        match d.op {
            Op::Service => {
                self.ready = true;
                self.attempt = 0;
                let now = Instant::now();
                let mut n = 0;
                for (name, e) in &self.entries {
                    if e.want && e.at == At::Idle {
                        self.sub_q.push_back(name.clone());
                        n += 1;
                    }
                }
                if n > 0 {
                    self.queued_since = Some(now);
                }
                self.resync = Some((now, 0));
                self.probe = Probe {
                    seen: self.shared.activity.load(Ordering::Relaxed),
                    changed: now,
                    deadline: None,
                };
                match self.down_since.take() {
                    Some(t)
                        if stats.connects.load(Ordering::Relaxed) > 1
                            || stats.connect_failures.load(Ordering::Relaxed) > 0 =>
                    {
                        log::info!(
                            "cluster: {} connected to Redis again after {} ms; resubscribing {n} channels",
                            self.id,
                            t.elapsed().as_millis()
                        );
                    }
                    _ => log::debug!("cluster: {} connected; subscribing {n} channels", self.id),
                }
            }
            Op::Sub => {
                let mut confirmed = 0;
                for name in d.names {
                    let Some(e) = self.entries.get_mut(&name) else { continue };
                    e.at = At::Subscribed;
                    confirmed += 1;
                    if !e.want {
                        Self::queue(&mut self.unsub_q, &mut self.queued_since, name);
                    }
                }
                stats.live.fetch_add(confirmed, Ordering::Relaxed);
                stats.confirmed.fetch_add(confirmed, Ordering::Relaxed);
                if let Some((_, n)) = &mut self.resync {
                    *n += confirmed as usize;
                }
            }
            Op::Unsub => {
                let mut gone = 0;
                for name in d.names {
                    let Some(e) = self.entries.get_mut(&name) else { continue };
                    gone += 1;
                    if e.want {
                        e.at = At::Idle;
                        Self::queue(&mut self.sub_q, &mut self.queued_since, name);
                    } else {
                        self.entries.remove(&name);
                    }
                }
                stats.live.fetch_sub(gone, Ordering::Relaxed);
            }
        }
    }

    fn check_resynced(&mut self) {
        let Some((start, n)) = self.resync else { return };
        if !self.ready || !self.sub_q.is_empty() || self.subs_inflight > 0 {
            return;
        }
        self.resync = None;
        self.shared.stats.resyncs.fetch_add(1, Ordering::Relaxed);
        let elapsed = start.elapsed();
        if n > 0 {
            log::info!(
                "cluster: {} subscribed {n} channels in {} ms",
                self.id,
                elapsed.as_millis()
            );
        }
        let event = ClusterEvent::Resynced {
            conn: self.id,
            channels: n,
            elapsed,
        };
        self.ctx.sink.deliver(&self.shared.gen, self.gen(), [event]);
    }

    /// Gives up the current connection (or attempt) and schedules a reconnect.
    fn lose(&mut self, reason: LostReason, detail: &str) {
        let was_up = self.ready;
        let stats = &self.shared.stats;
        let joined = stats.joined.load(Ordering::Relaxed) as usize;
        let event = was_up.then_some(ClusterEvent::Lost {
            conn: self.id,
            channels: joined,
            reason,
        });
        self.ctx.sink.switch(&self.shared.gen, self.gen() + 1, event);
        if was_up {
            stats.lost.fetch_add(1, Ordering::Relaxed);
            if reason == LostReason::Hung {
                stats.hung.fetch_add(1, Ordering::Relaxed);
            }
            log::warn!(
                "cluster: {} lost ({detail}); {joined} channels unsynced until it is back",
                self.id
            );
            self.down_since = Some(Instant::now());
        } else {
            log::debug!("cluster: {} attempt failed: {detail}", self.id);
        }
        self.conn = None;
        self.ready = false;
        self.connecting = None;
        self.inflight = JoinSet::new();
        self.subs_inflight = 0;
        self.entries.retain(|_, e| {
            e.at = At::Idle;
            e.want
        });
        stats.live.store(0, Ordering::Relaxed);
        self.sub_q.clear();
        self.unsub_q.clear();
        self.queued_since = None;
        self.resync = None;
        self.probe.deadline = None;
        self.schedule_retry();
    }

    fn schedule_retry(&mut self) {
        let s = &self.ctx.settings;
        let base = s
            .reconnect_min
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(s.reconnect_max);
        // xorshift64: jitter only, no need for the CSPRNG.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let jitter_ms = self.rng % (base.as_millis() as u64 / 2 + 1);
        self.attempt = self.attempt.saturating_add(1);
        self.retry_at = Some(Instant::now() + base + Duration::from_millis(jitter_ms));
    }

    fn start_connect(&mut self) {
        let gen = self.gen();
        let sender = push_sender(gen, self.shared.clone(), self.ctx.clone(), self.lost_tx.clone());
        let s = &self.ctx.settings;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(s.connect_timeout))
            .set_response_timeout(Some(s.call_timeout * 4))
            .set_push_sender(sender);
        let client = self.ctx.client.clone();
        let bound = s.connect_timeout + Duration::from_millis(100);
        self.connecting = Some(Box::pin(async move {
            match tokio::time::timeout(bound, client.get_multiplexed_async_connection_with_config(&config)).await {
                Ok(r) => r,
                Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                ))),
            }
        }));
    }

    fn connected(&mut self, res: RedisResult<MultiplexedConnection>) {
        self.connecting = None;
        let stats = &self.shared.stats;
        match res {
            Ok(conn) => {
                stats.connects.fetch_add(1, Ordering::Relaxed);
                self.conn = Some(conn);
                let channels = self.service.clone();
                self.send(Op::Service, Vec::new(), channels);
            }
            Err(e) => {
                let first = stats.connect_failures.fetch_add(1, Ordering::Relaxed) == 0 || self.attempt == 0;
                if first {
                    log::warn!("cluster: {} cannot reach Redis ({e}); retrying with backoff", self.id);
                } else {
                    log::debug!("cluster: {} reconnect attempt {} failed: {e}", self.id, self.attempt);
                }
                self.schedule_retry();
            }
        }
    }

    fn probe_tick(&mut self) {
        if !self.ready {
            return;
        }
        let now = Instant::now();
        let seen = self.shared.activity.load(Ordering::Relaxed);
        if seen != self.probe.seen {
            self.probe = Probe {
                seen,
                changed: now,
                deadline: None,
            };
            return;
        }
        if let Some(deadline) = self.probe.deadline {
            if now >= deadline {
                self.lose(LostReason::Hung, "a probe through Redis did not come back");
            }
            return;
        }
        if now.duration_since(self.probe.changed) >= self.ctx.settings.probe_interval {
            self.shared.stats.probes.fetch_add(1, Ordering::Relaxed);
            self.probe.deadline = Some(now + self.ctx.settings.probe_timeout);
            let store = self.ctx.store.clone();
            let channel = self.probe_channel.clone();
            self.ctx.runtime.spawn(async move {
                let _ = store.publish_raw(&channel, b"probe").await;
            });
        }
    }
}

/// The push callback of connection generation `gen`: runs inside the redis
/// reader, never blocks.
fn push_sender(
    gen: u64,
    shared: Arc<Shared>,
    ctx: Arc<Context>,
    lost: mpsc::UnboundedSender<u64>,
) -> impl Fn(PushInfo) -> Result<(), std::convert::Infallible> + Send + Sync + 'static {
    move |info: PushInfo| {
        if shared.gen.load(Ordering::Acquire) != gen {
            return Ok(());
        }
        shared.activity.fetch_add(1, Ordering::Relaxed);
        match route(&ctx.routes, info.kind, info.data) {
            Routed::Events(events) => ctx.sink.deliver(&shared.gen, gen, events),
            Routed::Disconnected => {
                let _ = lost.send(gen);
            }
            Routed::SurveyRequest { id, origin, cname } => {
                let count = ctx.local.subscribers_of(&cname);
                let store = ctx.store.clone();
                let node = ctx.node.clone();
                ctx.runtime.spawn(async move {
                    let reply = store.keys().reply(&origin);
                    if let Err(e) = store.publish_raw(&reply, &encode_survey_reply(id, &node, count)).await {
                        log::debug!("cluster: survey answer to {origin} failed: {e}");
                    }
                });
            }
            Routed::SurveyReply { id, node, count } => ctx.surveys.answer(id, &node, count),
            Routed::Alive => {}
            Routed::Malformed(why) => {
                let n = shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
                if n == 0 || n.is_power_of_two() {
                    log::warn!("cluster: dropped a malformed push ({why}); {} so far", n + 1);
                }
            }
        }
        Ok(())
    }
}
