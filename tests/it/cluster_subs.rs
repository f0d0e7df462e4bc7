//! The subscription manager of cluster mode against a real redis-server:
//! batched, per-channel confirmation of 10,000 channels, leave and
//! join/leave races, and several data connections. Faults are in
//! cluster_faults.rs; 100,000 channels resubscribed after a restart is in the
//! heavy tier (tests/heavy/cluster_scale.rs). Counts, not times; every wait
//! has a deadline.

use std::collections::HashSet;

use crate::support::cluster::{config, eventually, Node, PARAMS};
use crate::support::redis::RedisServer;
use comet::cluster::{ClusterEvent, ConnId};

fn confirmed_after(ev: &[ClusterEvent], from: usize) -> HashSet<String> {
    ev[from..]
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::Confirmed { cname } => Some(cname.to_string()),
            _ => None,
        })
        .collect()
}

fn subscribe_calls(redis: &RedisServer) -> u64 {
    let info: String = redis.cmd(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_subscribe:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_channels_confirmed_one_by_one_in_batches() {
    let redis = RedisServer::start();
    let node = Node::start(&config(&redis, "n"), PARAMS);
    node.wait_resyncs(2).await;
    let before = subscribe_calls(&redis);
    let names: Vec<String> = (0..10_000).map(|i| format!("ch{i}")).collect();
    for n in &names {
        node.cluster.subscriptions().join(n.as_str());
    }
    let ev = node.wait_confirmations(10_000).await;
    let got = confirmed_after(&ev, 0);
    assert_eq!(
        got,
        names.iter().cloned().collect::<HashSet<_>>(),
        "each channel confirmed"
    );
    let calls = subscribe_calls(&redis) - before;
    assert!(
        calls >= 10_000_u64.div_ceil(512),
        "at most 512 per SUBSCRIBE: {calls} calls"
    );
    let numsub: i64 = redis.cmd(&["PUBSUB", "NUMPAT"]);
    assert_eq!(numsub, 0);
    let channels: Vec<String> = redis.cmd(&["PUBSUB", "CHANNELS", "comet:{ch*"]);
    assert_eq!(channels.len(), 10_000);
    // Counters move when a whole batch is done, just after its last confirmation.
    let data = node
        .wait_counters(ConnId::Data(0), "10,000 live", |c| c.live == 10_000)
        .await;
    assert_eq!((data.joined, data.live, data.confirmed), (10_000, 10_000, 10_000));
    // Messages flow on all of them.
    node.cluster.store().publish("ch9999", "last").await.expect("publish");
    node.wait_events("the message", |ev| {
        ev.iter().any(|e| matches!(e, ClusterEvent::Message { .. }))
    })
    .await;
    assert_eq!(node.messages("ch9999"), vec![(1, "last".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_unsubscribes_and_races_settle_on_the_last_word() {
    let redis = RedisServer::start();
    let node = Node::start(&config(&redis, "n"), PARAMS);
    node.wait_resyncs(2).await;
    let subs = node.cluster.subscriptions();
    for i in 0..100 {
        subs.join(format!("l{i}"));
    }
    node.wait_confirmations(100).await;
    for i in 0..50 {
        subs.leave(format!("l{i}"));
    }
    // Races: joined and left over and over without waiting; the last word wins.
    for round in 0..20 {
        for i in 0..20 {
            let name = format!("r{i}");
            subs.join(name.as_str());
            if round % 2 == 0 || i % 2 == 0 {
                subs.leave(name.as_str());
            }
        }
    }
    // Final: r odd joined (last round is odd and leaves only even i).
    let want: HashSet<String> = (50..100)
        .map(|i| format!("comet:{{l{i}}}"))
        .chain((0..20).filter(|i| i % 2 == 1).map(|i| format!("comet:{{r{i}}}")))
        .collect();
    eventually("Redis holds exactly the wanted subscriptions", || async {
        let mut got: Vec<String> = redis.cmd(&["PUBSUB", "CHANNELS", "comet:{*"]);
        got.sort();
        let got: HashSet<String> = got.into_iter().collect();
        (got == want).then_some(())
    })
    .await;
    let data = node.wait_counters(ConnId::Data(0), "60 live", |c| c.live == 60).await;
    assert_eq!((data.joined, data.live), (60, 60));
    // A message to a left channel does not arrive; one sent after it to a kept
    // channel does, so the first would have arrived before it.
    let st = node.cluster.store();
    st.publish("l0", "left").await.expect("publish");
    st.publish("l99", "kept").await.expect("publish");
    node.wait_events("kept message", |ev| {
        ev.iter().any(|e| matches!(e, ClusterEvent::Message { .. }))
    })
    .await;
    assert_eq!(node.messages("l0"), vec![]);
    assert_eq!(node.messages("l99"), vec![(1, "kept".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_spread_over_several_data_connections() {
    let redis = RedisServer::start();
    let mut cfg = config(&redis, "n");
    cfg.data_connections = 3;
    let node = Node::start(&cfg, PARAMS);
    node.wait_resyncs(4).await;
    let subs = node.cluster.subscriptions();
    for i in 0..300 {
        subs.join(format!("m{i}"));
    }
    node.wait_confirmations(300).await;
    let mut per_conn = Vec::new();
    for n in 0..3 {
        let c = node
            .wait_counters(ConnId::Data(n), "its channels live", |c| c.live == c.joined)
            .await;
        per_conn.push(c.live);
    }
    assert_eq!(per_conn.len(), 3);
    assert_eq!(per_conn.iter().sum::<u64>(), 300);
    assert!(per_conn.iter().all(|&n| n > 50), "spread by hash: {per_conn:?}");
    // Every channel's connection is the one its hash names, and stays so.
    assert_eq!(subs.conn_of("m7"), subs.conn_of("m7"));
    let mark = node.events().len();
    let killed: i64 = redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert_eq!(killed, 4);
    let ev = node
        .wait_events("three data resyncs", |ev| {
            ev[mark..]
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        ClusterEvent::Resynced {
                            conn: ConnId::Data(_),
                            ..
                        }
                    )
                })
                .count()
                == 3
        })
        .await;
    let lost: usize = ev[mark..]
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::Lost {
                conn: ConnId::Data(_),
                channels,
                ..
            } => Some(*channels),
            _ => None,
        })
        .sum();
    assert_eq!(lost, 300, "each connection reports its own channels");
    assert_eq!(confirmed_after(&ev, mark).len(), 300);
    let st = node.cluster.store();
    for i in [0, 1, 2, 3, 4] {
        st.publish(&format!("m{i}"), "x").await.expect("publish");
    }
    node.wait_events("5 messages", |ev| {
        ev.iter().filter(|e| matches!(e, ClusterEvent::Message { .. })).count() >= 5
    })
    .await;
}

/// A channel left and joined again before its UNSUBSCRIBE went out is
/// confirmed again: the node's new copy of it needs that to sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_then_join_before_the_unsubscribe_is_confirmed_again() {
    let redis = RedisServer::start();
    let mut cfg = config(&redis, "n");
    // The leave waits for its batch long enough for the join to overtake it.
    cfg.subscribe_linger_ms = 200;
    let node = Node::start(&cfg, PARAMS);
    node.wait_resyncs(2).await;
    node.cluster.subscriptions().join("again");
    node.wait_events("the first confirmation", |ev| confirmed_after(ev, 0).contains("again"))
        .await;
    let from = node.events().len();
    node.cluster.subscriptions().leave("again");
    node.cluster.subscriptions().join("again");
    node.wait_events("a second confirmation", |ev| {
        confirmed_after(ev, from).contains("again")
    })
    .await;
    // Still subscribed: a publish arrives.
    node.cluster.store().publish("again", "x").await.expect("publish");
    node.wait_events("the message", |ev| {
        ev.iter()
            .any(|e| matches!(e, ClusterEvent::Message { cname, seq: 1, .. } if &**cname == "again"))
    })
    .await;
}
