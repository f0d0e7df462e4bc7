//! The connection side of a shard: connecting with a bound, giving a
//! connection up (and telling the node, atomically with the generation
//! switch), reconnecting with exponential backoff and jitter, the liveness
//! probe, and the push callback that runs inside the redis reader. The
//! subscription state machine is in `mod.rs`; this file never touches the
//! per-channel states beyond resetting them on a loss.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, RedisResult};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{At, Context, Op, Probe, Shard, Shared};
use crate::cluster::events::{ClusterEvent, LostReason};
use crate::cluster::push::{encode_survey_reply, route, Routed};

impl Shard {
    /// Gives up the current connection (or attempt) and schedules a reconnect.
    pub(super) fn lose(&mut self, reason: LostReason, detail: &str) {
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

    pub(super) fn schedule_retry(&mut self) {
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

    pub(super) fn start_connect(&mut self) {
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

    pub(super) fn connected(&mut self, res: RedisResult<MultiplexedConnection>) {
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

    pub(super) fn probe_tick(&mut self) {
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
