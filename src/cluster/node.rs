//! [`Cluster`]: one node's whole Redis layer, started and stopped as a unit:
//! the command [`Store`], the PUB/SUB [`Subscriptions`], the token keys, and a
//! maintenance task that writes this node's counts to the registry every
//! `cluster.node_report_interval_ms`, raises the index expiry of the channels
//! it holds every `cluster.index_refresh_interval_ms`, and takes its turn as
//! reaper every `cluster.reaper_interval_ms`. Failures of maintenance are
//! logged once per outage and counted, never fatal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::ClusterConfig;
use super::error::ClusterResult;
use super::events::{ClusterEvent, Sink};
use super::store::{ChannelParams, Store};
use super::subs::Subscriptions;
use super::wire::Epoch;
use super::{token, LocalCounts};

/// Channels one reaper round frees at most.
const REAP_LIMIT: usize = 1000;

/// Counters of the maintenance task.
#[derive(Debug, Default)]
pub struct MaintenanceStats {
    /// Registry writes that failed.
    pub report_errors: AtomicU64,
    /// Reaper rounds that failed.
    pub reap_errors: AtomicU64,
    /// Channels this node freed as reaper.
    pub reaped: AtomicU64,
    /// Index refresh rounds that failed.
    pub refresh_errors: AtomicU64,
    /// Index entries this node raised.
    pub refreshed: AtomicU64,
    /// Touches (a channel created here, or found missing in Redis while
    /// held here) that failed.
    pub touch_errors: AtomicU64,
}

/// One node's Redis layer.
pub struct Cluster {
    node: String,
    store: Store,
    subs: Subscriptions,
    secret: Vec<u8>,
    previous: Vec<u8>,
    stop: watch::Sender<bool>,
    maintenance: std::sync::Mutex<Option<JoinHandle<()>>>,
    stats: Arc<MaintenanceStats>,
    runtime: tokio::runtime::Handle,
}

impl Cluster {
    /// Starts cluster mode on the current tokio runtime: connections are made
    /// in the background (the node starts even while Redis is down). `cfg`
    /// must have passed `validate()` with `redis` set. `local` answers this
    /// node's counts; `on_event` receives every [`ClusterEvent`] and must not
    /// block.
    pub fn start(
        cfg: &ClusterConfig,
        params: ChannelParams,
        local: Arc<dyn LocalCounts>,
        on_event: impl FnMut(ClusterEvent) + Send + 'static,
    ) -> ClusterResult<Cluster> {
        super::store::in_runtime()?;
        let node = if cfg.node_id.is_empty() {
            Epoch::random().as_str().to_string()
        } else {
            cfg.node_id.clone()
        };
        let store = Store::new(cfg, &node, params)?;
        let subs = Subscriptions::start(cfg, store.clone(), Sink::new(on_event), local.clone())?;
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(MaintenanceStats::default());
        let maintenance = tokio::spawn(maintain(
            store.clone(),
            local,
            Periods {
                report: Duration::from_millis(cfg.node_report_interval_ms),
                reap: Duration::from_millis(cfg.reaper_interval_ms),
                refresh: Duration::from_millis(cfg.index_refresh_interval_ms),
            },
            stats.clone(),
            stopped,
        ));
        log::info!("cluster: node {node} on Redis {}", redacted(&cfg.redis));
        Ok(Cluster {
            node,
            store,
            subs,
            secret: cfg.hmac_secret.as_bytes().to_vec(),
            previous: cfg.hmac_secret_previous.as_bytes().to_vec(),
            stop,
            maintenance: std::sync::Mutex::new(Some(maintenance)),
            stats,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// This node's id in Redis.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// The command side (publish, history, sign, close, clear, broadcast, index).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The PUB/SUB side (join, leave, survey).
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subs
    }

    /// The maintenance counters.
    pub fn maintenance_stats(&self) -> &MaintenanceStats {
        &self.stats
    }

    /// Makes sure `cname` exists cluster-wide, as a subscriber creating it
    /// does on a single node: its state in Redis, its index entry (so
    /// `/check`, `/info` and `/broadcast` see it) and, when the entry is
    /// new, the `1 cname` presence event. Never blocks (callable from any
    /// thread): the call runs on the Redis layer's runtime; a failure is
    /// counted (`touch_errors`) and repaired by the next touch or publish.
    pub fn touch(&self, cname: Arc<str>) {
        let store = self.store.clone();
        let stats = self.stats.clone();
        self.runtime.spawn(async move {
            if let Err(e) = store.sign(&cname, 0).await {
                stats.touch_errors.fetch_add(1, Ordering::Relaxed);
                log::debug!("cluster: cannot touch {cname:?}: {e}");
            }
        });
    }

    /// The `/sign` token of `cname` (the same on every node).
    pub fn token(&self, cname: &str) -> String {
        token::token(&self.secret, cname)
    }

    /// Whether `candidate` is `cname`'s token under the current or previous secret.
    pub fn verify_token(&self, cname: &str, candidate: &str) -> bool {
        token::verify_rotating(&self.secret, Some(&self.previous), cname, candidate)
    }

    /// Stops maintenance and every connection, and removes this node from the
    /// registry (best effort, bounded by the call timeout).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.maintenance.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
        if let Err(e) = self.store.remove_node().await {
            log::debug!("cluster: could not remove node {} from the registry: {e}", self.node);
        }
        self.subs.shutdown().await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(t) = self.maintenance.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

/// The URL without its password, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

/// The periods of the maintenance task.
struct Periods {
    report: Duration,
    reap: Duration,
    refresh: Duration,
}

/// One index refresh round: the channels this node holds, with their local
/// idle time plus two refresh periods of slack.
async fn refresh(store: &Store, local: &dyn LocalCounts, period: Duration) -> ClusterResult<u64> {
    let slack = u32::try_from(period.as_secs().saturating_mul(2))
        .unwrap_or(u32::MAX)
        .max(1);
    let mut held: Vec<(String, u32)> = Vec::new();
    local.held_channels(&mut |cname, secs| held.push((cname.to_string(), secs.saturating_add(slack))));
    let mut raised = 0;
    for chunk in held.chunks(1000) {
        let page: Vec<(&str, u32)> = chunk.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        raised += store.refresh(&page).await?;
    }
    Ok(raised)
}

async fn maintain(
    store: Store,
    local: Arc<dyn LocalCounts>,
    periods: Periods,
    stats: Arc<MaintenanceStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut report = tokio::time::interval(periods.report);
    let mut reap = tokio::time::interval(periods.reap);
    let mut index = tokio::time::interval(periods.refresh);
    for i in [&mut report, &mut reap, &mut index] {
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    }
    let lock_ms = (periods.reap.as_millis() as u64).saturating_mul(3);
    let (mut report_down, mut reap_down, mut refresh_down) = (false, false, false);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = report.tick() => {
                let (subscribers, channels) = local.totals();
                match store.report_node(subscribers, channels).await {
                    Ok(()) if report_down => {
                        report_down = false;
                        log::info!("cluster: node registry writable again");
                    }
                    Ok(()) => {}
                    Err(e) => {
                        stats.report_errors.fetch_add(1, Ordering::Relaxed);
                        if !report_down {
                            report_down = true;
                            log::warn!("cluster: cannot write the node registry: {e}");
                        }
                    }
                }
            }
            _ = index.tick() => {
                match refresh(&store, &*local, periods.refresh).await {
                    Ok(n) => {
                        refresh_down = false;
                        stats.refreshed.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        stats.refresh_errors.fetch_add(1, Ordering::Relaxed);
                        if !refresh_down {
                            refresh_down = true;
                            log::warn!("cluster: index refresh failed: {e}");
                        }
                    }
                }
            }
            _ = reap.tick() => {
                match store.reap_once(lock_ms, REAP_LIMIT).await {
                    Ok(r) => {
                        reap_down = false;
                        stats.reaped.fetch_add(r.freed, Ordering::Relaxed);
                        if r.freed > 0 {
                            log::debug!("cluster: reaper freed {} idle channels", r.freed);
                        }
                    }
                    Err(e) => {
                        stats.reap_errors.fetch_add(1, Ordering::Relaxed);
                        if !reap_down {
                            reap_down = true;
                            log::warn!("cluster: reaper round failed: {e}");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl LocalCounts for Nothing {
        fn subscribers_of(&self, _: &str) -> u64 {
            0
        }
        fn totals(&self) -> (u64, u64) {
            (0, 0)
        }
    }

    #[test]
    fn starting_outside_a_runtime_is_an_error_not_a_panic() {
        let cfg = ClusterConfig {
            redis: "redis://127.0.0.1:1/0".into(),
            hmac_secret: "0123456789abcdef".into(),
            ..ClusterConfig::default()
        };
        let params = ChannelParams {
            history_size: 10,
            channel_timeout_secs: 30,
        };
        let e = Cluster::start(&cfg, params, Arc::new(Nothing), |_| {})
            .err()
            .expect("refused");
        assert_eq!(e.to_string(), "cluster mode must be started inside a tokio runtime");
        assert!(Store::new(&cfg, "n", params).is_err());
    }

    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(super::redacted("redis://:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(super::redacted("redis://u:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(super::redacted("redis://h:1/0"), "redis://h:1/0");
    }
}
