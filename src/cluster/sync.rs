//! Batched reads and touches for a node syncing many channels at once (after
//! a reconnect every channel it holds is confirmed again): one script call
//! for up to [`SYNC_BATCH`] channels instead of one per channel, so that a
//! million channels are synced in seconds rather than minutes. Same answers
//! as `Store::history` and `Store::sign` per channel; same call bound.

use redis::Value;

use super::error::{ClusterError, ClusterResult};
use super::scripts::{self, array};
use super::store::{History, Store};
use super::wire::Epoch;

/// Most channels in one batched call.
pub const SYNC_BATCH: usize = 256;

impl Store {
    /// [`Store::history`] of each `(cname, after)`, in order, in one call
    /// (at most [`SYNC_BATCH`] channels; more is a caller error).
    pub async fn history_many(&self, channels: &[(&str, Option<i32>)]) -> ClusterResult<Vec<History>> {
        if channels.len() > SYNC_BATCH {
            return Err(ClusterError::BadInput(format!(
                "history_many: {} channels, at most {SYNC_BATCH}",
                channels.len()
            )));
        }
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.inner.keys;
        let mut inv = scripts::HISTORY_MANY.prepare_invoke();
        for (cname, after) in channels {
            inv.key(k.meta(cname))
                .key(k.hist(cname))
                .arg(after.map(|s| s.to_string()).unwrap_or_default());
        }
        let mut c = self.inner.cmd.clone();
        let v: Value = self.bounded(inv.invoke_async(&mut c)).await?;
        let items = array(v, "history_many")?;
        if items.len() != channels.len() {
            return Err(ClusterError::Reply(format!(
                "history_many: {} answers for {} channels",
                items.len(),
                channels.len()
            )));
        }
        items
            .into_iter()
            .zip(channels)
            .map(|(v, (cname, after))| self.parse_history(cname, *after, v))
            .collect()
    }

    /// Creates each channel's state if Redis has none and raises its index
    /// expiry to `channel_timeout` from now (the `1 cname` presence event
    /// when its entry is new), in one call of at most [`SYNC_BATCH`]
    /// channels; how many it created.
    pub async fn touch_many(&self, cnames: &[&str]) -> ClusterResult<u64> {
        if cnames.len() > SYNC_BATCH {
            return Err(ClusterError::BadInput(format!(
                "touch_many: {} channels, at most {SYNC_BATCH}",
                cnames.len()
            )));
        }
        if cnames.is_empty() {
            return Ok(0);
        }
        let k = &self.inner.keys;
        let mut inv = scripts::TOUCH_MANY.prepare_invoke();
        inv.key(k.online()).arg(k.psub()).arg(self.index_ttl_ms());
        for cname in cnames {
            inv.key(k.meta(cname))
                .key(k.hist(cname))
                .arg(*cname)
                .arg(Epoch::random().as_str());
        }
        let mut c = self.inner.bulk.clone();
        let v: Value = self.bounded(inv.invoke_async(&mut c)).await?;
        let n = scripts::int(&v, "touch_many")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
