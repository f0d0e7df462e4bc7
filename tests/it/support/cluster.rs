//! Cluster-mode fixtures: a test node (a `Cluster` whose events are
//! recorded), fixed local counts, and polling with a deadline.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use comet::cluster::{ChannelParams, Cluster, ClusterConfig, ClusterEvent, ConnCounters, ConnId, LocalCounts};

use super::redis::RedisServer;

/// Deadline of every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// The secret every test node shares.
pub const SECRET: &str = "test-secret-0123456789";

/// A cluster config for `redis`, with short registry and reaper periods.
pub fn config(redis: &RedisServer, node: &str) -> ClusterConfig {
    ClusterConfig {
        redis: redis.url(),
        node_id: node.to_string(),
        hmac_secret: SECRET.to_string(),
        node_report_interval_ms: 100,
        node_stale_ms: 1000,
        reaper_interval_ms: 100,
        ..ClusterConfig::default()
    }
}

/// icomet's defaults: 10 messages of history, 30 s channel timeout.
pub const PARAMS: ChannelParams = ChannelParams {
    history_size: 10,
    channel_timeout_secs: 30,
};

/// Local counts a test sets by hand.
#[derive(Default)]
pub struct Counts {
    pub per_channel: Mutex<HashMap<String, u64>>,
    pub totals: Mutex<(u64, u64)>,
    /// Channels held, with their local idle seconds left.
    pub held: Mutex<Vec<(String, u32)>>,
}

impl LocalCounts for Counts {
    fn subscribers_of(&self, cname: &str) -> u64 {
        *self.per_channel.lock().expect("lock").get(cname).unwrap_or(&0)
    }
    fn totals(&self) -> (u64, u64) {
        *self.totals.lock().expect("lock")
    }
    fn held_channels(&self, visit: &mut dyn FnMut(&str, u32)) {
        for (c, s) in self.held.lock().expect("lock").iter() {
            visit(c, *s);
        }
    }
}

/// A node under test: its `Cluster` and everything it received.
pub struct Node {
    pub cluster: Cluster,
    pub events: Arc<Mutex<Vec<ClusterEvent>>>,
    pub counts: Arc<Counts>,
}

impl Node {
    /// Starts a node with `cfg` and `params`.
    pub fn start(cfg: &ClusterConfig, params: ChannelParams) -> Node {
        cfg.validate().expect("test config is valid");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let counts = Arc::new(Counts::default());
        let cluster = Cluster::start(cfg, params, counts.clone(), move |e| {
            sink.lock().expect("events lock").push(e);
        })
        .expect("cluster starts");
        Node {
            cluster,
            events,
            counts,
        }
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<ClusterEvent> {
        self.events.lock().expect("events lock").clone()
    }

    /// Waits until `cond` holds over the events, returning them.
    pub async fn wait_events(&self, what: &str, cond: impl FnMut(&[ClusterEvent]) -> bool) -> Vec<ClusterEvent> {
        self.wait_events_within(WAIT, what, cond).await
    }

    /// [`Node::wait_events`] with its own deadline (scale tests).
    pub async fn wait_events_within(
        &self,
        limit: Duration,
        what: &str,
        mut cond: impl FnMut(&[ClusterEvent]) -> bool,
    ) -> Vec<ClusterEvent> {
        let deadline = Instant::now() + limit;
        loop {
            {
                let ev = self.events.lock().expect("events lock");
                if cond(&ev) {
                    return ev.clone();
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the counters of `conn` satisfy `cond`.
    pub async fn wait_counters(
        &self,
        conn: ConnId,
        what: &str,
        mut cond: impl FnMut(&ConnCounters) -> bool,
    ) -> ConnCounters {
        eventually(what, || {
            let c = self
                .cluster
                .subscriptions()
                .counters()
                .into_iter()
                .find(|(id, _)| *id == conn)
                .map(|(_, c)| c)
                .expect("connection exists");
            let ok = cond(&c);
            async move { ok.then_some(c) }
        })
        .await
    }

    /// Number of `Resynced` events so far.
    pub fn resyncs(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, ClusterEvent::Resynced { .. }))
            .count()
    }

    /// Waits for the `n`th `Resynced` event of the data connection(s) and the
    /// control connection together (every connection is up and subscribed).
    pub async fn wait_resyncs(&self, n: usize) {
        self.wait_events(&format!("{n} resyncs"), |ev| {
            ev.iter().filter(|e| matches!(e, ClusterEvent::Resynced { .. })).count() >= n
        })
        .await;
    }

    /// Waits until `n` `Confirmed` events have arrived in all (every channel
    /// joined so far is subscribed in Redis); returns the events.
    pub async fn wait_confirmations(&self, n: usize) -> Vec<ClusterEvent> {
        self.wait_events(&format!("{n} confirmations"), |ev| {
            ev.iter()
                .filter(|e| matches!(e, ClusterEvent::Confirmed { .. }))
                .count()
                >= n
        })
        .await
    }

    /// The (seq, content) of every data/broadcast message of `cname`, in order.
    pub fn messages(&self, cname: &str) -> Vec<(i32, String)> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                ClusterEvent::Message {
                    cname: c, seq, content, ..
                } if &**c == cname => Some((*seq, content.as_str().to_string())),
                _ => None,
            })
            .collect()
    }
}

/// Polls `f` until it returns `Some`, failing after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
