//! The batches of a shard: taking still-valid names off the queues, sending
//! SUBSCRIBE/UNSUBSCRIBE of at most `subscribe_batch` channels with at most
//! `subscribe_concurrency` in flight, applying their completion to the
//! per-channel states, and telling the node when a (re)subscription is
//! complete (`Resynced`). A failed or timed-out batch gives the connection up.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::Instant;

use super::{At, Done, Op, Probe, Shard};
use crate::cluster::events::{ClusterEvent, LostReason};

impl Shard {
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
    pub(super) fn pump(&mut self) {
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

    pub(super) fn send(&mut self, op: Op, names: Vec<Arc<str>>, channels: Vec<String>) {
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

    pub(super) fn done(&mut self, d: Done) {
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
}
