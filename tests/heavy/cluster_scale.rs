//! Cluster mode at scale against a real redis-server: 100,000 channels
//! subscribed, Redis restarted without data, every channel confirmed again
//! in bounded batches. Counts are asserted; the times are printed (run with
//! `--nocapture`) for the record, never asserted.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use comet::cluster::{ClusterEvent, ConnId};

use crate::support::cluster::{config, Node, PARAMS};
use crate::support::redis::RedisServer;

fn confirmed_after(ev: &[ClusterEvent], from: usize) -> HashSet<String> {
    ev[from..]
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::Confirmed { cname } => Some(cname.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_thousand_channels_resubscribed_after_a_restart() {
    const N: usize = 100_000;
    let mut redis = RedisServer::start();
    let mut cfg = config(&redis, "n");
    cfg.reconnect_max_ms = 200;
    let node = Node::start(&cfg, PARAMS);
    node.wait_resyncs(2).await;
    let t = Instant::now();
    for i in 0..N {
        node.cluster.subscriptions().join(format!("c{i}"));
    }
    const SCALE_WAIT: Duration = Duration::from_secs(180);
    node.wait_events_within(SCALE_WAIT, "first subscription of all", |ev| {
        ev.iter()
            .any(|e| matches!(e, ClusterEvent::Resynced { channels: N, .. }))
            || ev
                .iter()
                .filter(|e| matches!(e, ClusterEvent::Confirmed { .. }))
                .count()
                >= N
    })
    .await;
    eprintln!("subscribed {N} channels in {} ms", t.elapsed().as_millis());
    let mark = node.events().len();
    redis.restart(false);
    let ev = node
        .wait_events_within(SCALE_WAIT, "resync of every channel", |ev| {
            ev[mark..].iter().any(|e| {
                matches!(
                    e,
                    ClusterEvent::Resynced {
                        conn: ConnId::Data(0),
                        channels: N,
                        ..
                    }
                )
            })
        })
        .await;
    let elapsed = ev[mark..]
        .iter()
        .find_map(|e| match e {
            ClusterEvent::Resynced {
                conn: ConnId::Data(0),
                elapsed,
                ..
            } => Some(*elapsed),
            _ => None,
        })
        .expect("resynced");
    eprintln!(
        "resubscribed {N} channels in {} ms after the restart",
        elapsed.as_millis()
    );
    assert_eq!(confirmed_after(&ev, mark).len(), N);
    let channels: i64 = {
        let info: String = redis.cmd(&["INFO", "stats"]);
        info.lines()
            .find_map(|l| l.strip_prefix("pubsub_channels:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("pubsub_channels")
    };
    // Every data channel plus the service channels of both connections.
    assert_eq!(channels as usize, N + 5);
}
