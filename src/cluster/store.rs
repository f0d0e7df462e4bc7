//! The command side of cluster mode: one [`Store`] per node, holding two
//! multiplexed Redis connections (`cmd` for publishes, reads and sign; `bulk`
//! for batches, broadcast pages, index refresh and the reaper, so long jobs
//! never queue in front of a single `/push`) and a typed wrapper per script.
//!
//! Every call is bounded by `cluster.call_timeout_ms`: when Redis is down or
//! hung the call fails fast with a [`ClusterError`] (503 on the admin side)
//! and never waits for recovery; the connections re-establish themselves in
//! the background. A timed-out command may still run later (it may sit in a
//! stopped Redis's socket): a 503 means "not known to be applied".
//! This module knows keys, scripts and icomet semantics; it knows nothing of
//! comet's channel table, workers or sockets. The index, registry, reaper and
//! broadcast calls live in `index.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, Value};

use super::config::ClusterConfig;
use super::error::{ClusterError, ClusterResult};
use super::keys::Keys;
use super::scripts::{self, array, bytes, epoch, is_nil, seq};
use super::wire::{decode_history_entry, Epoch, HistoryEntry};
use crate::encode::check_json_string_body;

/// The per-channel settings the scripts need, from the main config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelParams {
    /// `front.channel_buffer_size`: history entries kept (icomet's trim: at
    /// 1.5 x this, back to this).
    pub history_size: u32,
    /// `front.channel_timeout` (effective, seconds): how long a channel lives
    /// in the index after its last publish, sign or refresh.
    pub channel_timeout_secs: u32,
}

/// What a publish returns for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The seq Redis gave the message.
    pub seq: i32,
    /// The channel's epoch.
    pub epoch: Epoch,
    /// Whether this publish created the channel's state (a new epoch).
    pub created: bool,
}

/// What `/sign` (or a touch) returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed {
    /// icomet's `/sign` seq: the oldest seq still in history (the next seq
    /// when the history is empty).
    pub seq: i32,
    /// The channel's epoch.
    pub epoch: Epoch,
    /// Whether this call created the channel's state.
    pub created: bool,
    /// The effective `expires` in seconds.
    pub expires: i32,
}

/// A channel's state in Redis, as a syncing node reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// The epoch, or `None` when Redis holds no state for the channel.
    pub epoch: Option<Epoch>,
    /// The last seq given (0 for a new channel); the next one is `top_seq + 1`.
    pub top_seq: i32,
    /// The entries after the requested seq, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Entries that did not decode and were left out (counted, logged).
    pub malformed: usize,
}

/// Counters of the command side.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Calls that failed because Redis was unreachable or refused them.
    pub errors: AtomicU64,
    /// Calls that hit their time bound.
    pub timeouts: AtomicU64,
    /// History entries that did not decode.
    pub malformed: AtomicU64,
}

/// The command side of cluster mode. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Store {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) cmd: ConnectionManager,
    pub(super) bulk: ConnectionManager,
    pub(super) keys: Keys,
    pub(super) node: String,
    pub(super) params: ChannelParams,
    pub(super) call_timeout: Duration,
    pub(super) batch_messages: usize,
    pub(super) node_stale_ms: u64,
    pub(super) stats: StoreStats,
    /// Batch script calls in flight on `bulk`, over every batch of this
    /// node at once (see `batch.rs`).
    pub(super) bulk_calls: Arc<tokio::sync::Semaphore>,
}

/// Refuses to start outside a tokio runtime (the connections need one).
pub(crate) fn in_runtime() -> ClusterResult<()> {
    tokio::runtime::Handle::try_current()
        .map(|_| ())
        .map_err(|_| ClusterError::BadInput("cluster mode must be started inside a tokio runtime".into()))
}

/// A RESP3 client for `cfg.redis`.
pub(crate) fn client(cfg: &ClusterConfig) -> ClusterResult<redis::Client> {
    let info = cfg
        .redis
        .as_str()
        .into_connection_info()
        .map_err(|e| ClusterError::BadInput(format!("cluster.redis: {e}")))?;
    let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings))
        .map_err(|e| ClusterError::BadInput(format!("cluster.redis: {e}")))
}

fn manager(client: &redis::Client, cfg: &ClusterConfig) -> ClusterResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(cfg.connect_timeout()))
        .set_response_timeout(Some(cfg.call_timeout()))
        .set_min_delay(Duration::from_millis(cfg.reconnect_min_ms))
        .set_max_delay(Duration::from_millis(cfg.reconnect_max_ms))
        .set_number_of_retries(2);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|e| ClusterError::BadInput(format!("cluster.redis: {e}")))
}

impl Store {
    /// Builds the store. Connections are made lazily (a node may start while
    /// Redis is down; its calls fail until Redis is reachable). Must be called
    /// inside a tokio runtime. `node` is this node's id.
    pub fn new(cfg: &ClusterConfig, node: &str, params: ChannelParams) -> ClusterResult<Store> {
        in_runtime()?;
        let client = client(cfg)?;
        Ok(Store {
            inner: Arc::new(Inner {
                cmd: manager(&client, cfg)?,
                bulk: manager(&client, cfg)?,
                keys: Keys::new(&cfg.prefix),
                node: node.to_string(),
                params,
                call_timeout: cfg.call_timeout(),
                batch_messages: cfg.publish_batch_messages,
                node_stale_ms: cfg.node_stale_ms,
                stats: StoreStats::default(),
                bulk_calls: Arc::new(tokio::sync::Semaphore::new(super::batch::CALLS_IN_FLIGHT)),
            }),
        })
    }

    /// The key names in use.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The counters.
    pub fn stats(&self) -> &StoreStats {
        &self.inner.stats
    }

    /// The channel parameters the scripts use.
    pub fn params(&self) -> ChannelParams {
        self.inner.params
    }

    pub(super) fn index_ttl_ms(&self) -> u64 {
        u64::from(self.inner.params.channel_timeout_secs) * 1000
    }

    /// Runs one Redis future under the call bound and classifies its error.
    pub(super) async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> ClusterResult<T> {
        bounded(&self.inner.stats, self.inner.call_timeout, fut).await
    }

    /// PING: whether Redis answers within the call bound.
    pub async fn ping(&self) -> ClusterResult<()> {
        let mut c = self.inner.cmd.clone();
        let v: Value = self.bounded(redis::cmd("PING").query_async(&mut c)).await?;
        match v {
            Value::SimpleString(s) if s == "PONG" => Ok(()),
            other => Err(ClusterError::Reply(format!("PING: got {other:?}"))),
        }
    }

    /// Publishes one data message (`/pub`, `/push`; `content` already
    /// JSON-escaped): the seq comes from Redis, the message is stored in
    /// history and published to every node (this one included) atomically.
    pub async fn publish(&self, cname: &str, content: &str) -> ClusterResult<Published> {
        check_content(content, 0)?;
        let k = &self.inner.keys;
        let e = Epoch::random();
        let mut inv = scripts::PUBLISH.prepare_invoke();
        inv.key(k.online())
            .key(k.meta(cname))
            .key(k.hist(cname))
            .arg(self.inner.params.history_size)
            .arg(self.index_ttl_ms())
            .arg(k.psub())
            .arg(k.channel_prefix())
            .arg(cname)
            .arg(e.as_str())
            .arg(1)
            .arg(content);
        let mut c = self.inner.cmd.clone();
        let v: Value = self.bounded(inv.invoke_async(&mut c)).await?;
        let mut out = parse_groups(v, 1)?;
        Ok(out.pop().expect("parse_groups returned one group"))
    }

    /// Reads a channel's epoch, top seq and the history entries with seq after
    /// `after` (all of them for `None`).
    pub async fn history(&self, cname: &str, after: Option<i32>) -> ClusterResult<History> {
        let k = &self.inner.keys;
        let mut inv = scripts::HISTORY.prepare_invoke();
        inv.key(k.meta(cname))
            .key(k.hist(cname))
            .arg(after.map(|s| s.to_string()).unwrap_or_default());
        let mut c = self.inner.cmd.clone();
        let v: Value = self.bounded(inv.invoke_async(&mut c)).await?;
        self.parse_history(cname, after, v)
    }

    /// One history.lua answer (also one item of history_many.lua's).
    pub(super) fn parse_history(&self, cname: &str, after: Option<i32>, v: Value) -> ClusterResult<History> {
        let mut items = array(v, "history")?.into_iter();
        let (Some(e), Some(top)) = (items.next(), items.next()) else {
            return Err(ClusterError::Reply("history: fewer than two items".into()));
        };
        let top_seq = seq(&top, "history top")?;
        if is_nil(&e) {
            return Ok(History {
                epoch: None,
                top_seq,
                entries: Vec::new(),
                malformed: 0,
            });
        }
        let epoch = epoch(&e, "history epoch")?;
        let mut entries = Vec::with_capacity(items.len());
        let mut malformed = 0;
        for item in items {
            let raw = Bytes::from(bytes(item, "history entry")?);
            match decode_history_entry(&raw) {
                // Defensive: only entries after `after`, in the order stored.
                Ok(h) if after.is_none_or(|a| h.seq.wrapping_sub(a) > 0) => entries.push(h),
                Ok(_) => {}
                Err(err) => {
                    malformed += 1;
                    log::warn!("cluster: history entry of {cname:?} does not decode ({err}); left out");
                }
            }
        }
        if malformed > 0 {
            self.inner
                .stats
                .malformed
                .fetch_add(malformed as u64, Ordering::Relaxed);
        }
        Ok(History {
            epoch: Some(epoch),
            top_seq,
            entries,
            malformed,
        })
    }

    /// `/sign` (and the touch a node makes when a subscriber creates a channel
    /// locally): creates the channel's state if absent, raises its index expiry
    /// to at least `expires` seconds from now (`<= 0` means
    /// `channel_timeout`), and returns icomet's `/sign` seq. The token is
    /// [`super::token::token`]; it needs no Redis call.
    ///
    /// Unlike icomet, `expires` cannot shorten a channel's life: other nodes
    /// may hold subscribers of it, so the index keeps the maximum.
    pub async fn sign(&self, cname: &str, expires: i32) -> ClusterResult<Signed> {
        let expires = if expires <= 0 {
            i32::try_from(self.inner.params.channel_timeout_secs).unwrap_or(i32::MAX)
        } else {
            expires
        };
        let k = &self.inner.keys;
        let e = Epoch::random();
        let mut inv = scripts::SIGN.prepare_invoke();
        inv.key(k.meta(cname))
            .key(k.hist(cname))
            .key(k.online())
            .arg(cname)
            .arg(e.as_str())
            .arg(i64::from(expires) * 1000)
            .arg(k.psub())
            .arg(self.inner.params.history_size);
        let mut c = self.inner.cmd.clone();
        let v: Value = self.bounded(inv.invoke_async(&mut c)).await?;
        let items = array(v, "sign")?;
        let [s, e, created] = items.as_slice() else {
            return Err(ClusterError::Reply(format!(
                "sign: expected 3 items, got {}",
                items.len()
            )));
        };
        Ok(Signed {
            seq: seq(s, "sign seq")?,
            epoch: epoch(e, "sign epoch")?,
            created: scripts::int(created, "sign created")? == 1,
            expires,
        })
    }

    /// `/close`: frees the channel cluster-wide (every node closes its
    /// subscribers with icomet's close frame, a "0 name" presence event
    /// fires). Returns the channel's next seq, or `None` if it does not exist.
    pub async fn close(&self, cname: &str) -> ClusterResult<Option<i32>> {
        self.close_or_clear(cname, "close").await
    }

    /// `/clear`: empties the channel's history on Redis and on every node.
    /// Returns the next seq, or `None` if the channel does not exist.
    pub async fn clear(&self, cname: &str) -> ClusterResult<Option<i32>> {
        self.close_or_clear(cname, "clear").await
    }

    async fn close_or_clear(&self, cname: &str, op: &str) -> ClusterResult<Option<i32>> {
        let k = &self.inner.keys;
        let mut inv = scripts::CLOSE.prepare_invoke();
        inv.key(k.meta(cname))
            .key(k.hist(cname))
            .key(k.online())
            .arg(cname)
            .arg(op)
            .arg(k.psub())
            .arg(k.channel(cname));
        let mut c = self.inner.cmd.clone();
        let v: Value = self.bounded(inv.invoke_async(&mut c)).await?;
        if is_nil(&v) {
            Ok(None)
        } else {
            seq(&v, op).map(Some)
        }
    }

    /// Publishes `payload` on a service channel (probes, survey traffic).
    pub(crate) async fn publish_raw(&self, channel: &str, payload: &[u8]) -> ClusterResult<i64> {
        let mut c = self.inner.cmd.clone();
        self.bounded(redis::cmd("PUBLISH").arg(channel).arg(payload).query_async(&mut c))
            .await
    }
}

/// Runs `fut` under `limit`, counting failures.
pub(super) async fn bounded<T>(
    stats: &StoreStats,
    limit: Duration,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> ClusterResult<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            if e.is_timeout() {
                stats.timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(ClusterError::Timeout(limit));
            }
            Err(ClusterError::from_redis(e))
        }
        Err(_) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            stats.timeouts.fetch_add(1, Ordering::Relaxed);
            Err(ClusterError::Timeout(limit))
        }
    }
}

/// Refuses content that is not a JSON string body (it would break every
/// node's frames, and every node's decoder would refuse it).
pub(super) fn check_content(content: &str, index: usize) -> ClusterResult<()> {
    check_json_string_body(content).map_err(|why| {
        if index == 0 {
            ClusterError::BadInput(why.to_string())
        } else {
            ClusterError::BadInput(format!("message {index}: {why}"))
        }
    })
}

/// Parses publish.lua's reply: `groups` triples of (first seq, epoch, created).
pub(super) fn parse_groups(v: Value, groups: usize) -> ClusterResult<Vec<Published>> {
    let items = array(v, "publish")?;
    if items.len() != groups * 3 {
        return Err(ClusterError::Reply(format!(
            "publish: expected {} items, got {}",
            groups * 3,
            items.len()
        )));
    }
    items
        .chunks_exact(3)
        .map(|t| {
            Ok(Published {
                seq: seq(&t[0], "publish seq")?,
                epoch: epoch(&t[1], "publish epoch")?,
                created: scripts::int(&t[2], "publish created")? == 1,
            })
        })
        .collect()
}
