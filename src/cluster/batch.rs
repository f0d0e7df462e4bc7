//! Batch publishing: many `(cname, content)` messages in as few script calls
//! as possible.
//!
//! The batch is grouped by channel (first-appearance order, input order kept
//! within a channel), groups are packed whole into calls of at most
//! `cluster.publish_batch_messages` messages, and up to [`CALLS_IN_FLIGHT`]
//! calls run at once on the `bulk` connection (auto-pipelined), over every
//! batch of the node together: concurrent batches wait for their turn here,
//! not in Redis's queue, where waiting would count against each call's
//! `cluster.call_timeout_ms` (8 concurrent 25,000-message batches otherwise
//! got 503 part way on this machine). Because no
//! channel is split across calls, calls may complete in any order. Inside a
//! call each channel costs one HGET, one HINCRBY, one RPUSH (plus LLEN/LTRIM
//! when trimming), one ZADD and ONE PUBLISH carrying all its messages, so the
//! cost per message falls as messages per channel rise. The history a batch
//! leaves is exactly what the same messages published one by one leave.

use ahash::AHashMap;
use redis::Value;
use tokio::task::JoinSet;

use super::error::{ClusterError, ClusterResult};
use super::scripts;
use super::store::{bounded, check_content, parse_groups, Published, Store};
use super::wire::Epoch;

/// Script calls of one batch in flight at once.
pub const CALLS_IN_FLIGHT: usize = 8;

/// One channel's messages: (cname, indexes into the input).
type Group<'a> = (&'a str, Vec<usize>);

/// Groups `items` by channel, first appearance first.
fn group<'a>(items: &[(&'a str, &'a str)]) -> Vec<Group<'a>> {
    let mut at: AHashMap<&str, usize> = AHashMap::new();
    let mut groups: Vec<Group<'a>> = Vec::new();
    for (i, (cname, _)) in items.iter().enumerate() {
        match at.get(cname) {
            Some(&g) => groups[g].1.push(i),
            None => {
                at.insert(cname, groups.len());
                groups.push((cname, vec![i]));
            }
        }
    }
    groups
}

/// Packs groups into calls of at most `max` messages (a bigger group is a call
/// of its own). Returns ranges of group indexes.
fn pack(groups: &[Group<'_>], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut calls = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (g, (_, idx)) in groups.iter().enumerate() {
        if count > 0 && count + idx.len() > max {
            calls.push(start..g);
            start = g;
            count = 0;
        }
        count += idx.len();
    }
    if count > 0 {
        calls.push(start..groups.len());
    }
    calls
}

impl Store {
    /// Publishes every `(cname, content)` (content JSON-escaped) as data
    /// messages. Returns one [`Published`] per input message, in input order;
    /// the messages of one channel take consecutive seqs in input order.
    ///
    /// All contents are checked before anything is sent (a bad one fails the
    /// whole batch with [`ClusterError::BadInput`]). If a call fails part way,
    /// the error is [`ClusterError::Interrupted`] with the number of messages
    /// known to be applied; the others may or may not be.
    pub async fn publish_batch(&self, items: &[(&str, &str)]) -> ClusterResult<Vec<Published>> {
        for (i, (_, content)) in items.iter().enumerate() {
            check_content(content, i + 1)?;
        }
        let groups = group(items);
        let calls = pack(&groups, self.inner.batch_messages);
        let k = &self.inner.keys;
        // One fresh epoch serves every channel this batch creates: epochs only
        // need to differ between lives of the same channel.
        let e = Epoch::random();
        let mut set: JoinSet<(usize, ClusterResult<Vec<Published>>)> = JoinSet::new();
        let mut results: Vec<Option<Published>> = vec![None; items.len()];
        let mut done: u64 = 0;
        let mut next = 0;
        let mut failure: Option<ClusterError> = None;
        while failure.is_none() && (next < calls.len() || !set.is_empty()) {
            while next < calls.len() && set.len() < CALLS_IN_FLIGHT {
                let range = calls[next].clone();
                let mut inv = scripts::PUBLISH.prepare_invoke();
                inv.key(k.online())
                    .arg(self.inner.params.history_size)
                    .arg(self.index_ttl_ms())
                    .arg(k.psub())
                    .arg(k.channel_prefix());
                for (cname, idx) in &groups[range.clone()] {
                    inv.key(k.meta(cname)).key(k.hist(cname));
                    inv.arg(*cname).arg(e.as_str()).arg(idx.len());
                    for &i in idx {
                        inv.arg(items[i].1);
                    }
                }
                let n_groups = range.len();
                let mut conn = self.inner.bulk.clone();
                let store = self.clone();
                let call = next;
                let permits = self.inner.bulk_calls.clone();
                set.spawn(async move {
                    // Closed never: the semaphore lives as long as the store.
                    let _permit = permits.acquire_owned().await;
                    let v: ClusterResult<Value> = bounded(
                        &store.inner.stats,
                        store.inner.call_timeout,
                        inv.invoke_async(&mut conn),
                    )
                    .await;
                    (call, v.and_then(|v| parse_groups(v, n_groups)))
                });
                next += 1;
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let (call, outcome) = joined.map_err(|e| ClusterError::Reply(format!("publish task failed: {e}")))?;
            match outcome {
                Ok(published) => {
                    for ((_, idx), p) in groups[calls[call].clone()].iter().zip(published) {
                        for (j, &i) in idx.iter().enumerate() {
                            let offset = i32::try_from(j).expect("a group holds fewer than 2^31 messages");
                            results[i] = Some(Published {
                                seq: p.seq.wrapping_add(offset),
                                ..p
                            });
                            done += 1;
                        }
                    }
                }
                Err(err) => failure = Some(err),
            }
        }
        if let Some(err) = failure {
            set.abort_all();
            return Err(ClusterError::Interrupted {
                done,
                source: Box::new(err),
            });
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every message belongs to a call that succeeded"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_first_appearance_and_input_order() {
        let items = [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("b", "5")];
        let g = group(&items);
        assert_eq!(g, vec![("a", vec![0, 2]), ("b", vec![1, 4]), ("c", vec![3])]);
    }

    #[test]
    fn packing_keeps_groups_whole() {
        let g: Vec<Group<'_>> = vec![
            ("a", vec![0, 1, 2]),
            ("b", vec![3]),
            ("c", vec![4, 5, 6, 7, 8, 9]),
            ("d", vec![10]),
            ("e", vec![11]),
        ];
        assert_eq!(pack(&g, 4), vec![0..2, 2..3, 3..5]);
        assert_eq!(pack(&g, 100), vec![0..5]);
        assert_eq!(pack(&g, 1), vec![0..1, 1..2, 2..3, 3..4, 4..5]);
        assert_eq!(pack(&[], 4), Vec::<std::ops::Range<usize>>::new());
    }
}
