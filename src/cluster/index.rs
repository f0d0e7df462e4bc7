//! The global channel index (`<p>:online`, cname -> expiry on Redis's clock),
//! the node registry (`<p>:nodes`), the reaper and `/broadcast`: the calls
//! that make `/check`, `/info` totals, presence and broadcast cluster-wide.
//!
//! Expiry is the maximum over nodes: publish, sign and broadcast raise a
//! channel's score with `ZADD GT`; nodes holding a channel raise it through
//! [`Store::refresh`] (`ZADD XX GT`, which never re-adds a freed channel).
//! One node at a time, elected by the `<p>:reaper` lock, frees channels whose
//! score has passed ([`Store::reap_once`]). Broadcast is the research's v1:
//! page the index with ZSCAN (names deduplicated, since SCAN may repeat one)
//! and run the broadcast script per page; cost O(channels) in Redis.

use std::collections::HashSet;

use redis::Value;
use tokio::task::JoinSet;

use super::error::{ClusterError, ClusterResult};
use super::scripts::{self, array, bytes, int};
use super::store::{bounded, check_content, Store};
use super::wire::Epoch;

/// Names per index call (check, refresh, reap).
const PAGE: usize = 1000;
/// Channels per broadcast script call.
const BROADCAST_PAGE: usize = 256;
/// Broadcast script calls in flight at once.
const BROADCAST_IN_FLIGHT: usize = 4;

/// Cluster-wide totals for `/info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Channels in the index that have not expired.
    pub channels: u64,
    /// Sum of the subscriber counts of live nodes.
    pub subscribers: u64,
    /// Ids of the nodes whose registry entry is fresh.
    pub nodes: Vec<String>,
}

/// What one reaper round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// Whether this node holds the reaper lock.
    pub leader: bool,
    /// Channels freed.
    pub freed: u64,
}

impl Store {
    /// Runs index.lua `op` with `keys` and `args` on the bulk connection.
    async fn index_op(&self, op: &str, keys: &[String], args: &[&str]) -> ClusterResult<Value> {
        let mut inv = scripts::INDEX.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        inv.arg(op);
        for a in args {
            inv.arg(*a);
        }
        let mut c = self.inner.bulk.clone();
        self.bounded(inv.invoke_async(&mut c)).await
    }

    /// `/check`: whether each name is a live channel anywhere in the cluster.
    pub async fn check(&self, names: &[&str]) -> ClusterResult<Vec<bool>> {
        let mut out = Vec::with_capacity(names.len());
        for page in names.chunks(PAGE) {
            let v = self.index_op("check", &[self.inner.keys.online()], page).await?;
            for item in array(v, "check")? {
                out.push(int(&item, "check")? == 1);
            }
        }
        if out.len() != names.len() {
            return Err(ClusterError::Reply(format!(
                "check: {} answers for {} names",
                out.len(),
                names.len()
            )));
        }
        Ok(out)
    }

    /// Number of live channels in the cluster.
    pub async fn channel_count(&self) -> ClusterResult<u64> {
        let v = self.index_op("count", &[self.inner.keys.online()], &[]).await?;
        Ok(int(&v, "count")?.max(0) as u64)
    }

    /// Raises the index expiry of channels this node holds to at least
    /// `remaining_secs` from now (Redis's clock). Channels no longer in the
    /// index are not re-added (they were freed; the node recreates them with
    /// [`Store::sign`] when it receives `free`). Returns how many were raised.
    pub async fn refresh(&self, channels: &[(&str, u32)]) -> ClusterResult<u64> {
        let mut raised = 0;
        for page in channels.chunks(PAGE) {
            let ms: Vec<String> = page.iter().map(|(_, s)| (u64::from(*s) * 1000).to_string()).collect();
            let mut args = Vec::with_capacity(page.len() * 2);
            for ((cname, _), ms) in page.iter().zip(&ms) {
                args.push(*cname);
                args.push(ms.as_str());
            }
            let v = self.index_op("refresh", &[self.inner.keys.online()], &args).await?;
            raised += int(&v, "refresh")?.max(0) as u64;
        }
        Ok(raised)
    }

    /// Writes this node's counts into the registry (every
    /// `cluster.node_report_interval_ms`).
    pub async fn report_node(&self, subscribers: u64, channels: u64) -> ClusterResult<()> {
        let (s, c) = (subscribers.to_string(), channels.to_string());
        self.index_op("report", &[self.inner.keys.nodes()], &[&self.inner.node, &s, &c])
            .await?;
        Ok(())
    }

    /// Removes this node from the registry (clean shutdown).
    pub async fn remove_node(&self) -> ClusterResult<()> {
        let mut c = self.inner.bulk.clone();
        let _: Value = self
            .bounded(
                redis::cmd("HDEL")
                    .arg(self.inner.keys.nodes())
                    .arg(&self.inner.node)
                    .query_async(&mut c),
            )
            .await?;
        Ok(())
    }

    /// Cluster-wide `/info` totals: live channels in the index, and the
    /// subscribers of nodes whose entry is younger than `cluster.node_stale_ms`.
    pub async fn totals(&self) -> ClusterResult<Totals> {
        let stale = self.inner.node_stale_ms.to_string();
        let keys = [self.inner.keys.nodes(), self.inner.keys.online()];
        let v = self.index_op("totals", &keys, &[&stale]).await?;
        let mut items = array(v, "totals")?.into_iter();
        let (Some(ch), Some(subs)) = (items.next(), items.next()) else {
            return Err(ClusterError::Reply("totals: fewer than two items".into()));
        };
        let nodes = items
            .map(|v| bytes(v, "totals node").map(|b| String::from_utf8_lossy(&b).into_owned()))
            .collect::<ClusterResult<Vec<_>>>()?;
        Ok(Totals {
            channels: int(&ch, "totals channels")?.max(0) as u64,
            subscribers: int(&subs, "totals subscribers")?.max(0) as u64,
            nodes,
        })
    }

    /// One reaper round: take or renew the reaper lock (valid `lock_ms`); if
    /// this node holds it, free up to `limit` expired channels and drop
    /// registry entries older than ten times `cluster.node_stale_ms`.
    pub async fn reap_once(&self, lock_ms: u64, limit: usize) -> ClusterResult<Reaped> {
        let k = &self.inner.keys;
        let ms = lock_ms.to_string();
        let v = self.index_op("lock", &[k.reaper()], &[&self.inner.node, &ms]).await?;
        if int(&v, "lock")? != 1 {
            return Ok(Reaped {
                leader: false,
                freed: 0,
            });
        }
        let limit_s = limit.to_string();
        let v = self.index_op("expired", &[k.online()], &[&limit_s]).await?;
        let names = array(v, "expired")?
            .into_iter()
            .map(|v| bytes(v, "expired name"))
            .collect::<ClusterResult<Vec<_>>>()?;
        let mut freed = 0;
        for page in names.chunks(PAGE) {
            let mut inv = scripts::REAP.prepare_invoke();
            inv.key(k.online()).arg(k.psub()).arg(k.channel_prefix());
            for name in page {
                inv.key(k.meta_raw(name)).key(k.hist_raw(name)).arg(name.as_slice());
            }
            let mut c = self.inner.bulk.clone();
            let v: Value = self.bounded(inv.invoke_async(&mut c)).await?;
            freed += int(&v, "reap")?.max(0) as u64;
        }
        let max_age = (self.inner.node_stale_ms * 10).to_string();
        self.index_op("prune", &[k.nodes()], &[&max_age]).await?;
        Ok(Reaped { leader: true, freed })
    }

    /// `/broadcast`: every channel that exists in the cluster takes its next
    /// seq with a `broadcast` message of `content` (JSON-escaped), stored in
    /// its history; nodes deliver it and send `next_seq` after it. Channels
    /// created while it runs may or may not get it. Returns the number of
    /// channels reached; a failure part way is [`ClusterError::Interrupted`].
    pub async fn broadcast(&self, content: &str) -> ClusterResult<u64> {
        check_content(content, 0)?;
        let k = &self.inner.keys;
        let e = Epoch::random();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut cursor: u64 = 0;
        let mut reached: u64 = 0;
        let mut set: JoinSet<ClusterResult<Value>> = JoinSet::new();
        let fail = |reached: u64, err: ClusterError| ClusterError::Interrupted {
            done: reached,
            source: Box::new(err),
        };
        loop {
            let mut c = self.inner.bulk.clone();
            let v: Value = self
                .bounded(
                    redis::cmd("ZSCAN")
                        .arg(k.online())
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(PAGE)
                        .query_async(&mut c),
                )
                .await
                .map_err(|e| fail(reached, e))?;
            let mut parts = array(v, "zscan").map_err(|e| fail(reached, e))?.into_iter();
            let (Some(next), Some(members)) = (parts.next(), parts.next()) else {
                return Err(fail(reached, ClusterError::Reply("zscan: short reply".into())));
            };
            cursor = int(&next, "zscan cursor").map_err(|e| fail(reached, e))? as u64;
            let members = match members {
                // RESP3 may answer with a map of member -> score.
                Value::Map(pairs) => pairs.into_iter().map(|(m, _)| m).collect(),
                other => array(other, "zscan members")
                    .map_err(|e| fail(reached, e))?
                    .into_iter()
                    .step_by(2)
                    .collect::<Vec<_>>(),
            };
            for m in members {
                let name = bytes(m, "zscan member").map_err(|e| fail(reached, e))?;
                if seen.insert(name.clone()) {
                    pending.push(name);
                }
            }
            let last = cursor == 0;
            while pending.len() >= BROADCAST_PAGE || (last && !pending.is_empty()) {
                let take = pending.len().min(BROADCAST_PAGE);
                let page: Vec<Vec<u8>> = pending.drain(..take).collect();
                let mut inv = scripts::BROADCAST.prepare_invoke();
                inv.key(k.online())
                    .arg(self.inner.params.history_size)
                    .arg(self.index_ttl_ms())
                    .arg(k.channel_prefix())
                    .arg(content);
                for name in &page {
                    inv.key(k.meta_raw(name))
                        .key(k.hist_raw(name))
                        .arg(name.as_slice())
                        .arg(e.as_str());
                }
                if set.len() >= BROADCAST_IN_FLIGHT {
                    reached += self.join_broadcast(&mut set).await.map_err(|e| fail(reached, e))?;
                }
                let mut conn = self.inner.bulk.clone();
                let store = self.clone();
                set.spawn(async move {
                    bounded(
                        &store.inner.stats,
                        store.inner.call_timeout,
                        inv.invoke_async(&mut conn),
                    )
                    .await
                });
            }
            if last {
                break;
            }
        }
        while !set.is_empty() {
            reached += self.join_broadcast(&mut set).await.map_err(|e| fail(reached, e))?;
        }
        Ok(reached)
    }

    async fn join_broadcast(&self, set: &mut JoinSet<ClusterResult<Value>>) -> ClusterResult<u64> {
        match set.join_next().await {
            Some(Ok(Ok(v))) => Ok(int(&v, "broadcast")?.max(0) as u64),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => Err(ClusterError::Reply(format!("broadcast task failed: {e}"))),
            None => Ok(0),
        }
    }
}
