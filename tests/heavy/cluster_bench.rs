//! Figures of the Redis layer, measured against a real redis-server on this
//! machine. Ignored by default (they measure, they do not check); run with
//!
//! ```text
//! cargo test --release --test heavy cluster_bench -- --ignored --nocapture --test-threads=1
//! ```
//!
//! Each prints one line per figure with the Redis-side cost (INFO
//! commandstats and INFO cpu deltas). Client and Redis share the machine's
//! cores; note what else ran (`uptime`) next to any figure you quote.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::cluster::{config, Counts, PARAMS, WAIT};
use crate::support::redis::RedisServer;
use comet::cluster::{ChannelParams, Cluster, ClusterEvent, ConnId, Store};

fn field(redis: &RedisServer, section: &str, name: &str) -> f64 {
    redis.info_field(section, name).parse().unwrap_or(0.0)
}

fn cpu(redis: &RedisServer) -> f64 {
    field(redis, "cpu", "used_cpu_user") + field(redis, "cpu", "used_cpu_sys")
}

fn evalsha_usec_per_call(redis: &RedisServer) -> String {
    let info: String = redis.cmd(&["INFO", "commandstats"]);
    info.lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .and_then(|l| l.split(',').find(|f| f.starts_with("usec_per_call=")))
        .unwrap_or("usec_per_call=?")
        .to_string()
}

fn rss_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

/// CPU seconds (user + system) this process has used.
fn own_cpu() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass; nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A node whose sink only counts, except `Resynced` events, which it keeps.
struct Lean {
    cluster: Cluster,
    messages: Arc<AtomicU64>,
    resynced: Arc<Mutex<Vec<(ConnId, usize, Duration)>>>,
}

fn lean(redis: &RedisServer, node: &str, params: ChannelParams) -> Lean {
    let messages = Arc::new(AtomicU64::new(0));
    let resynced = Arc::new(Mutex::new(Vec::new()));
    let (m, r) = (messages.clone(), resynced.clone());
    let cluster = Cluster::start(
        &config(redis, node),
        params,
        Arc::new(Counts::default()),
        move |e| match e {
            ClusterEvent::Message { .. } => {
                m.fetch_add(1, Ordering::Relaxed);
            }
            ClusterEvent::Resynced {
                conn,
                channels,
                elapsed,
            } => r.lock().expect("lock").push((conn, channels, elapsed)),
            _ => {}
        },
    )
    .expect("cluster");
    Lean {
        cluster,
        messages,
        resynced,
    }
}

impl Lean {
    async fn wait_resync(&self, index: usize, channels: usize) -> Duration {
        let deadline = Instant::now() + WAIT * 6;
        loop {
            let got = self
                .resynced
                .lock()
                .expect("lock")
                .iter()
                .filter(|(c, _, _)| *c == ConnId::Data(0))
                .nth(index)
                .copied();
            if let Some((_, n, t)) = got {
                assert_eq!(n, channels);
                return t;
            }
            assert!(Instant::now() < deadline, "no resync {index}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn single_publish_rate() {
    let redis = RedisServer::start();
    let st = Store::new(&config(&redis, "p"), "p", PARAMS).expect("store");
    for (label, subscribed) in [("no subscriber", false), ("one node subscribed to every channel", true)] {
        let node = lean(&redis, "sub", PARAMS);
        if subscribed {
            for i in 0..10_000 {
                node.cluster.subscriptions().join(format!("c{i}"));
            }
            node.wait_resync(0, 10_000).await;
        }
        const TOTAL: usize = 200_000;
        const TASKS: usize = 64;
        let (c0, own0, t) = (cpu(&redis), own_cpu(), Instant::now());
        let mut set = tokio::task::JoinSet::new();
        for k in 0..TASKS {
            let st = st.clone();
            set.spawn(async move {
                for i in 0..TOTAL / TASKS {
                    st.publish(&format!("c{}", (i * TASKS + k) % 10_000), "hello-world-0123")
                        .await
                        .expect("publish");
                }
            });
        }
        while set.join_next().await.is_some() {}
        let secs = t.elapsed().as_secs_f64();
        let n = (TOTAL / TASKS * TASKS) as f64;
        if subscribed {
            let deadline = Instant::now() + WAIT;
            while node.messages.load(Ordering::Relaxed) < n as u64 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        println!(
            "single publish ({label}): {n} publishes, 64 concurrent callers on one connection, 10k channels: {:.0}/s; redis cpu {:.2}s, client cpu {:.2}s; {}; delivered {}; load {}",
            n / secs,
            cpu(&redis) - c0,
            own_cpu() - own0,
            evalsha_usec_per_call(&redis),
            node.messages.load(Ordering::Relaxed),
            load()
        );
        node.cluster.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn batch_publish_rate() {
    let redis = RedisServer::start();
    let st = Store::new(&config(&redis, "p"), "p", PARAMS).expect("store");
    const TOTAL: usize = 1_000_000;
    const BATCH: usize = 10_000;
    for per_channel in [1usize, 10, 100] {
        let channels = BATCH / per_channel;
        let names: Vec<String> = (0..channels).map(|i| format!("b{per_channel}-{i}")).collect();
        let contents: Vec<String> = (0..BATCH).map(|i| format!("msg-{i:06}")).collect();
        let items: Vec<(&str, &str)> = (0..BATCH)
            .map(|i| (names[i % channels].as_str(), contents[i].as_str()))
            .collect();
        let (c0, t) = (cpu(&redis), Instant::now());
        for _ in 0..TOTAL / BATCH {
            let r = st.publish_batch(&items).await.expect("batch");
            assert_eq!(r.len(), BATCH);
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "batch publish: {TOTAL} messages in batches of {BATCH}, {per_channel} per channel per batch ({channels} channels): {:.0} messages/s; redis cpu {:.2}s; {}; load {}",
            TOTAL as f64 / secs,
            cpu(&redis) - c0,
            evalsha_usec_per_call(&redis),
            load()
        );
    }
}

async fn resubscribe(n: usize) {
    let mut redis = RedisServer::start();
    let node = lean(&redis, "n", PARAMS);
    node.wait_resync(0, 0).await;
    let m0 = field(&redis, "memory", "used_memory");
    // The names as the node's channel table would hold them (shared Arc<str>).
    let names: Vec<Arc<str>> = (0..n).map(|i| Arc::from(format!("channel-{i}").as_str())).collect();
    let rss0 = rss_bytes();
    let t = Instant::now();
    for name in &names {
        node.cluster.subscriptions().join(name.clone());
    }
    node.wait_resync(0, 0).await;
    let deadline = Instant::now() + WAIT * 6;
    while node
        .cluster
        .subscriptions()
        .counters()
        .iter()
        .any(|(id, c)| *id == ConnId::Data(0) && c.live < n as u64)
    {
        assert!(Instant::now() < deadline, "first subscription of {n} did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = t.elapsed();
    let per_sub = (field(&redis, "memory", "used_memory") - m0) / n as f64;
    let client_per_sub = (rss_bytes() - rss0) / n as f64;
    let c0 = own_cpu();
    redis.restart(false);
    let again = node.wait_resync(1, n).await;
    let client_cpu = own_cpu() - c0;
    let redis_cpu = cpu(&redis);
    println!(
        "resubscribe: {n} channels (names like channel-123456) first subscribed in {} ms, resubscribed after a Redis restart in {} ms (CPU: client {client_cpu:.2} s, Redis {redis_cpu:.2} s); Redis memory {per_sub:.0} B per subscription; client RSS {client_per_sub:.0} B per subscription (manager state plus the redis crate's own set of subscribed names); load {}",
        first.as_millis(),
        again.as_millis(),
        load()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn resubscribe_100k() {
    resubscribe(100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn resubscribe_1m() {
    resubscribe(1_000_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn broadcast_100k_channels() {
    let redis = RedisServer::start();
    let st = Store::new(&config(&redis, "p"), "p", PARAMS).expect("store");
    const N: usize = 100_000;
    let names: Vec<String> = (0..N).map(|i| format!("bc-{i}")).collect();
    for chunk in names.chunks(10_000) {
        let items: Vec<(&str, &str)> = chunk.iter().map(|n| (n.as_str(), "first")).collect();
        st.publish_batch(&items).await.expect("batch");
    }
    let (c0, t) = (cpu(&redis), Instant::now());
    let reached = st.broadcast("to everyone").await.expect("broadcast");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(reached, N as u64);
    println!(
        "broadcast: {N} channels in {:.0} ms ({:.1} us per channel); redis cpu {:.2}s; {}; load {}",
        secs * 1000.0,
        secs * 1e6 / N as f64,
        cpu(&redis) - c0,
        evalsha_usec_per_call(&redis),
        load()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn redis_memory_per_channel() {
    let redis = RedisServer::start();
    let st = Store::new(&config(&redis, "p"), "p", PARAMS).expect("store");
    const N: usize = 100_000;
    let names: Vec<String> = (0..N).map(|i| format!("room-{i:06}")).collect();
    let m0 = field(&redis, "memory", "used_memory");
    for chunk in names.chunks(1000) {
        for n in chunk {
            st.sign(n, 0).await.expect("sign");
        }
    }
    let m1 = field(&redis, "memory", "used_memory");
    let contents: Vec<String> = (0..10).map(|i| format!("message-{i:02}")).collect();
    for chunk in names.chunks(1000) {
        let items: Vec<(&str, &str)> = chunk
            .iter()
            .flat_map(|n| contents.iter().map(move |c| (n.as_str(), c.as_str())))
            .collect();
        st.publish_batch(&items).await.expect("batch");
    }
    let m2 = field(&redis, "memory", "used_memory");
    println!(
        "redis memory: {N} channels named room-NNNNNN: {:.0} B per channel with no history (meta + index), {:.0} B per channel with 10 messages of 10 B in history; load {}",
        (m1 - m0) / N as f64,
        (m2 - m0) / N as f64,
        load()
    );
}
