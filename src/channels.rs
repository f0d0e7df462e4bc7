//! The channel table behind its lock, and the fan-out of what it reports.
//!
//! [`Channels`] owns the locking policy: every operation takes the table's
//! mutex once, runs one named table operation, and dispatches the notices
//! it produced while still holding it, so each worker's mailbox receives a
//! channel's messages in seq order and presence listeners hear channels
//! come and go in order. Nothing outside this module sees the lock or the
//! table: the front calls [`Channels::subscribe`] and
//! [`Channels::unsubscribe`]; the admin side reaches it only through
//! `crate::intake` and the read-only queries here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::channel::{
    ChannelId, ChannelTable, Limits, Message, Notice, Signed, SubscribeError, Subscribed, TooManyChannels, WorkerMask,
};
use crate::hooks::Events;
use crate::mailbox::{lock, Command, Mailboxes};
use crate::presence::Presence;

/// A subscribe request from a front worker.
#[derive(Debug, Clone, Copy)]
pub struct SubscribeReq<'a> {
    /// The channel name.
    pub name: &'a str,
    /// The channel token (token mode).
    pub token: &'a str,
    /// The client's resume seq (reference §2.5).
    pub seq: i32,
    /// The worker that holds the subscriber.
    pub worker: usize,
    /// A long poll: counted only if it waits.
    pub long_poll: bool,
}

/// The channel table, its lock, and where its notices go.
pub struct Channels {
    table: Mutex<ChannelTable>,
    mailboxes: Mailboxes,
    presence: Presence,
    /// Messages published (a broadcast counts once per channel).
    published: AtomicU64,
    /// Cluster mode: the Redis layer, set once it has started.
    cluster: OnceLock<Arc<crate::cluster::Cluster>>,
    /// Cluster mode: what syncing with Redis did.
    pub remote: crate::link::RemoteStats,
    /// Cluster mode with `front.auth: token`.
    cluster_tokens: std::sync::atomic::AtomicBool,
    /// The event hook, told of channels coming and going (when on).
    events: OnceLock<Arc<Events>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("cluster", &self.cluster.get().is_some())
            .finish_non_exhaustive()
    }
}

/// Per-worker channel lists of one broadcast, gathered under the lock.
type BroadcastLists = Vec<Vec<(ChannelId, i32)>>;

impl Channels {
    /// An empty table with `limits`, delivering to `mailboxes`.
    pub fn new(limits: Limits, mailboxes: Mailboxes) -> Channels {
        Channels {
            table: Mutex::new(ChannelTable::new(limits)),
            mailboxes,
            presence: Presence::default(),
            published: AtomicU64::new(0),
            cluster: OnceLock::new(),
            remote: crate::link::RemoteStats::default(),
            cluster_tokens: std::sync::atomic::AtomicBool::new(false),
            events: OnceLock::new(),
        }
    }

    /// Cluster mode: hands the table the started Redis layer (once);
    /// `tokens` is `front.auth: token`.
    pub fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>, tokens: bool) {
        self.cluster_tokens.store(tokens, Ordering::Relaxed);
        let _ = self.cluster.set(cluster);
    }

    /// The Redis layer, in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Puts new limits in force (a reload); see `ChannelTable::set_limits`.
    pub fn set_limits(&self, limits: Limits) {
        lock(&self.table).set_limits(limits);
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        *lock(&self.table).limits()
    }

    /// Reports channels coming online and going offline to `events` too
    /// (once, at start; a second call is ignored).
    pub fn set_events(&self, events: Arc<Events>) {
        let _ = self.events.set(events);
    }

    /// The event hook, when on.
    pub fn events(&self) -> Option<&Arc<Events>> {
        self.events.get()
    }

    /// The worker mailboxes deliveries go to.
    pub fn mailboxes(&self) -> &Mailboxes {
        &self.mailboxes
    }

    /// The presence listeners.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Messages published since start (a broadcast counts once per channel).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Hands one notice on: presence lines to the listeners, messages and
    /// closes to the mailboxes of the workers that hold subscribers (a
    /// message with `arrival`: when its admin request arrived, or when
    /// this node took it from Redis).
    /// Broadcast notices are gathered by [`Channels::broadcast_at`] itself.
    fn dispatch(&self, n: Notice, arrival: Instant) {
        let cluster = self.cluster.get();
        match n {
            // In cluster mode presence is cluster-wide: it comes from Redis
            // (and the event hook does not report it, see `hooks::node`).
            Notice::Online(_) | Notice::Offline(_) if cluster.is_some() => {}
            Notice::Online(name) => {
                self.presence.emit(true, name);
                if let Some(events) = self.events.get() {
                    events.online(name);
                }
            }
            Notice::Offline(name) => {
                self.presence.emit(false, name);
                if let Some(events) = self.events.get() {
                    events.offline(name);
                }
            }
            Notice::Message(mask, id, m) => {
                for w in workers(mask) {
                    self.mailboxes.push(w, Command::Message(id, m.clone(), arrival));
                }
            }
            Notice::Close(mask, id, next) => {
                for w in workers(mask) {
                    self.mailboxes.push(w, Command::Close(id, next));
                }
            }
            Notice::Synced(mask, id, next, history) => {
                let history: Arc<[Message]> = history.into();
                for w in workers(mask) {
                    self.mailboxes.push(w, Command::Synced(id, next, history.clone()));
                }
            }
            Notice::Reset(mask, id, next) => {
                for w in workers(mask) {
                    self.mailboxes.push(w, Command::Reset(id, next));
                }
            }
            Notice::Joined(name) => {
                if let Some(c) = cluster {
                    c.subscriptions().join(name.clone());
                    // Created here by a subscriber: it exists cluster-wide.
                    c.touch(name.clone());
                }
            }
            Notice::Left(name) => {
                if let Some(c) = cluster {
                    c.subscriptions().leave(name.clone());
                }
            }
            Notice::Broadcast(..) => debug_assert!(false, "a broadcast notice outside broadcast()"),
        }
    }

    /// Runs `f` on the locked table, dispatching its notices while the lock is held.
    fn with_table<R>(&self, f: impl FnOnce(&mut ChannelTable, &mut dyn FnMut(Notice)) -> R) -> R {
        self.with_table_at(Instant::now(), f)
    }

    /// [`Channels::with_table`] for a command whose request arrived at `arrival`.
    fn with_table_at<R>(&self, arrival: Instant, f: impl FnOnce(&mut ChannelTable, &mut dyn FnMut(Notice)) -> R) -> R {
        let mut table = lock(&self.table);
        f(&mut table, &mut |n| self.dispatch(n, arrival))
    }

    /// Subscribes a front client (reference §3.1, §2.5). In cluster mode
    /// with token auth, the token is checked against the cluster's key (the
    /// same on every node, no Redis call).
    pub fn subscribe(&self, req: SubscribeReq<'_>) -> Result<Subscribed, SubscribeError> {
        if let Some(c) = self.cluster.get() {
            if self.cluster_tokens.load(Ordering::Relaxed) && !c.verify_token(req.name, req.token) {
                return Err(SubscribeError::TokenError);
            }
        }
        self.with_table(|t, out| t.subscribe(req.name, req.token, req.seq, req.worker, req.long_poll, out))
    }

    /// Whether a subscribe with `token` to `name` would pass token mode's
    /// check (`front.auth: token`), without subscribing: for the hooks
    /// that run after it and before the subscription.
    pub fn check_token(&self, name: &str, token: &str) -> Result<(), SubscribeError> {
        if let Some(c) = self.cluster.get() {
            // The table keeps no tokens in cluster mode (see `subscribe`).
            if self.cluster_tokens.load(Ordering::Relaxed) && !c.verify_token(name, token) {
                return Err(SubscribeError::TokenError);
            }
            return Ok(());
        }
        lock(&self.table).check_token(name, token)
    }

    /// Removes `count` subscribers of `worker` from a channel; `worker_empty`
    /// says the worker holds no more of them.
    pub fn unsubscribe(&self, id: ChannelId, count: u32, worker: usize, worker_empty: bool) {
        lock(&self.table).unsubscribe(id, count, worker, worker_empty);
    }

    /// Runs `f` on the locked table with its notices dispatched (the
    /// cluster link's operations).
    pub(crate) fn with_locked<R>(&self, f: impl FnOnce(&mut ChannelTable, &mut dyn FnMut(Notice)) -> R) -> R {
        self.with_table(f)
    }

    /// Publishes one data message (content already JSON-escaped); its seq.
    pub fn publish(&self, name: &str, content: &Arc<str>) -> Result<i32, TooManyChannels> {
        self.publish_at(name, content, Instant::now())
    }

    /// [`Channels::publish`] for a request that arrived at `arrival`.
    pub fn publish_at(&self, name: &str, content: &Arc<str>, arrival: Instant) -> Result<i32, TooManyChannels> {
        let seq = self.with_table_at(arrival, |t, out| t.publish(name, content, out))?;
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(seq)
    }

    /// Publishes many data messages under one lock, in order; each one's
    /// seq, or the error that stopped the batch (the messages before it are
    /// published).
    pub fn publish_many(&self, items: &[(String, Arc<str>)]) -> (Vec<i32>, Option<TooManyChannels>) {
        self.publish_many_at(items, Instant::now())
    }

    /// [`Channels::publish_many`] for a request that arrived at `arrival`.
    pub fn publish_many_at(
        &self,
        items: &[(String, Arc<str>)],
        arrival: Instant,
    ) -> (Vec<i32>, Option<TooManyChannels>) {
        let (seqs, err) = self.with_table_at(arrival, |t, out| {
            let mut seqs = Vec::with_capacity(items.len());
            for (name, content) in items {
                match t.publish(name, content, out) {
                    Ok(seq) => seqs.push(seq),
                    Err(e) => return (seqs, Some(e)),
                }
            }
            (seqs, None)
        });
        self.published.fetch_add(seqs.len() as u64, Ordering::Relaxed);
        (seqs, err)
    }

    /// Broadcasts to every channel; the number of channels reached. Each
    /// worker holding subscribers gets one command listing its channels and
    /// the seq the broadcast took in each, queued before the lock is
    /// released: not one command (or allocation) per channel.
    pub fn broadcast(&self, content: &Arc<str>) -> usize {
        self.broadcast_at(content, Instant::now())
    }

    /// [`Channels::broadcast`] for a request that arrived at `arrival`.
    pub fn broadcast_at(&self, content: &Arc<str>, arrival: Instant) -> usize {
        let mut table = lock(&self.table);
        let mut lists: BroadcastLists = vec![Vec::new(); self.mailboxes.len()];
        let reached = table.broadcast(content, &mut |n| match n {
            Notice::Broadcast(mask, id, seq) => {
                for w in workers(mask) {
                    if let Some(l) = lists.get_mut(w) {
                        l.push((id, seq));
                    }
                }
            }
            other => self.dispatch(other, arrival),
        });
        for (w, list) in lists.into_iter().enumerate() {
            if !list.is_empty() {
                self.mailboxes
                    .push(w, Command::Broadcast(content.clone(), list, arrival));
            }
        }
        drop(table);
        self.published.fetch_add(reached as u64, Ordering::Relaxed);
        reached
    }

    /// `/sign`.
    pub fn sign(&self, name: &str, expires: i32) -> Result<Signed, TooManyChannels> {
        self.with_table(|t, out| t.sign(name, expires, out))
    }

    /// `/close`: the channel's next seq, or `None` if it does not exist.
    pub fn close(&self, name: &str) -> Option<i32> {
        self.with_table(|t, out| t.close(name, out))
    }

    /// `/clear`: the channel's next seq, or `None` if it does not exist.
    pub fn clear(&self, name: &str) -> Option<i32> {
        lock(&self.table).clear(name)
    }

    /// `(channels, subscribers)` over the whole server.
    pub fn totals(&self) -> (usize, u64) {
        let t = lock(&self.table);
        (t.channels(), t.subscribers())
    }

    /// Subscribers of one channel (0 if it does not exist).
    pub fn subscribers_of(&self, name: &str) -> u32 {
        lock(&self.table).subscribers_of(name)
    }

    /// Whether a channel exists.
    pub fn exists(&self, name: &str) -> bool {
        lock(&self.table).lookup(name).is_some()
    }

    /// The messages a channel's history holds, oldest first (`None` if the
    /// channel does not exist): for tests and diagnostics.
    pub fn history(&self, name: &str) -> Option<Vec<Message>> {
        lock(&self.table).history(name).map(|h| h.iter().cloned().collect())
    }

    /// The 1-second maintenance tick (idle expiry, periodic presence); true
    /// when it freed the last channel.
    pub fn tick(&self) -> bool {
        self.with_table(|t, out| {
            let before = t.channels();
            t.tick(out);
            before > 0 && t.channels() == 0
        })
    }
}

/// The worker indexes set in `mask`.
fn workers(mut mask: WorkerMask) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let w = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(w)
    })
}
