//! The subscription manager's handle: routes `join`/`leave` to the connection
//! that owns the channel, runs surveys, reports counters. The connection tasks
//! (`shard.rs`) do the work; this file only starts, addresses and stops them.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::ClusterConfig;
use super::error::ClusterResult;
use super::events::{ConnId, Sink};
use super::push::{encode_survey_request, Routes};
use super::shard::{Command, Context, Settings, Shard, Shared};
use super::store::{client, Store};
use super::survey::{Survey, Surveys};
use super::LocalCounts;

/// A snapshot of one connection's counters (see `ConnStats` for meanings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnCounters {
    /// Connections established.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Working connections lost.
    pub lost: u64,
    /// Of those, found hung by a probe.
    pub hung: u64,
    /// Probes published.
    pub probes: u64,
    /// Malformed pushes dropped.
    pub malformed: u64,
    /// Subscriptions confirmed (resubscriptions count again).
    pub confirmed: u64,
    /// Completed (re)subscriptions.
    pub resyncs: u64,
    /// Channels joined on this connection.
    pub joined: u64,
    /// Channels live on the current connection.
    pub live: u64,
}

/// The PUB/SUB side of a node: `data_connections` data connections plus one
/// control connection (presence, surveys), each owned by its own task.
pub struct Subscriptions {
    data: Vec<mpsc::UnboundedSender<Command>>,
    control: mpsc::UnboundedSender<Command>,
    shared: Vec<(ConnId, Arc<Shared>)>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    surveys: Arc<Surveys>,
    store: Store,
    survey_timeout: Duration,
}

/// FNV-1a: a stable hash, so a channel's connection does not depend on the process.
fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Subscriptions {
    /// Starts the connection tasks on the current tokio runtime. They connect
    /// in the background (and keep retrying while Redis is unreachable).
    pub(crate) fn start(
        cfg: &ClusterConfig,
        store: Store,
        sink: Sink,
        local: Arc<dyn LocalCounts>,
    ) -> ClusterResult<Subscriptions> {
        let node = store.node().to_string();
        let surveys = Arc::new(Surveys::default());
        let ctx = Arc::new(Context {
            routes: Routes::new(store.keys(), &node),
            sink,
            surveys: surveys.clone(),
            store: store.clone(),
            local,
            node: node.clone(),
            client: client(cfg)?,
            settings: Settings {
                batch: cfg.subscribe_batch,
                concurrency: cfg.subscribe_concurrency,
                linger: Duration::from_millis(cfg.subscribe_linger_ms),
                probe_interval: Duration::from_millis(cfg.probe_interval_ms),
                probe_timeout: Duration::from_millis(cfg.probe_timeout_ms),
                reconnect_min: Duration::from_millis(cfg.reconnect_min_ms),
                reconnect_max: Duration::from_millis(cfg.reconnect_max_ms),
                call_timeout: cfg.call_timeout(),
                connect_timeout: cfg.connect_timeout(),
            },
            runtime: tokio::runtime::Handle::current(),
        });
        let mut tasks = Vec::new();
        let mut shared_all = Vec::new();
        let mut spawn = |id: ConnId, service: Vec<String>| {
            let (tx, rx) = mpsc::unbounded_channel();
            let shared = Arc::new(Shared::default());
            shared_all.push((id, shared.clone()));
            let shard = Shard::new(id, ctx.clone(), shared, service, rx);
            tasks.push(tokio::spawn(shard.run()));
            tx
        };
        let data = (0..cfg.data_connections)
            .map(|n| spawn(ConnId::Data(n as u16), Vec::new()))
            .collect();
        let k = store.keys();
        let control = spawn(ConnId::Control, vec![k.psub(), k.ctl(), k.reply(&node)]);
        Ok(Subscriptions {
            data,
            control,
            shared: shared_all,
            tasks: Mutex::new(tasks),
            surveys,
            store,
            survey_timeout: Duration::from_millis(cfg.survey_timeout_ms),
        })
    }

    /// The data connection a channel always uses.
    pub fn conn_of(&self, cname: &str) -> ConnId {
        ConnId::Data((fnv(cname) % self.data.len() as u64) as u16)
    }

    fn sender(&self, cname: &str) -> &mpsc::UnboundedSender<Command> {
        match self.conn_of(cname) {
            ConnId::Data(n) => &self.data[usize::from(n)],
            ConnId::Control => &self.control,
        }
    }

    /// The node created `cname` locally: subscribe it (a `Confirmed` event
    /// follows once Redis confirmed it). Never blocks.
    pub fn join(&self, cname: impl Into<Arc<str>>) {
        let cname = cname.into();
        let _ = self.sender(&cname).send(Command::Join(cname));
    }

    /// The node freed `cname` locally: unsubscribe it. Never blocks.
    pub fn leave(&self, cname: impl Into<Arc<str>>) {
        let cname = cname.into();
        let _ = self.sender(&cname).send(Command::Leave(cname));
    }

    /// Counters of every connection, data connections first.
    pub fn counters(&self) -> Vec<(ConnId, ConnCounters)> {
        self.shared
            .iter()
            .map(|(id, s)| {
                let st = &s.stats;
                let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                (
                    *id,
                    ConnCounters {
                        connects: l(&st.connects),
                        connect_failures: l(&st.connect_failures),
                        lost: l(&st.lost),
                        hung: l(&st.hung),
                        probes: l(&st.probes),
                        malformed: l(&st.malformed),
                        confirmed: l(&st.confirmed),
                        resyncs: l(&st.resyncs),
                        joined: l(&st.joined),
                        live: l(&st.live),
                    },
                )
            })
            .collect()
    }

    /// Cluster-wide subscriber count of `cname` (`/info?cname=`): asks every
    /// live node (this one included) and sums the answers that arrive within
    /// `cluster.survey_timeout_ms`.
    pub async fn survey(&self, cname: &str) -> ClusterResult<Survey> {
        let totals = self.store.totals().await?;
        let mut expected: HashSet<String> = totals.nodes.into_iter().collect();
        expected.insert(self.store.node().to_string());
        let (id, done) = self.surveys.begin(expected);
        let request = encode_survey_request(id, self.store.node(), cname);
        if let Err(e) = self.store.publish_raw(&self.store.keys().ctl(), &request).await {
            self.surveys.finish(id);
            return Err(e);
        }
        let _ = tokio::time::timeout(self.survey_timeout, done).await;
        Ok(self.surveys.finish(id))
    }

    /// Stops every connection task and waits for them.
    pub async fn shutdown(&self) {
        for tx in self.data.iter().chain(std::iter::once(&self.control)) {
            let _ = tx.send(Command::Shutdown);
        }
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv_is_stable() {
        assert_eq!(super::fnv(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
