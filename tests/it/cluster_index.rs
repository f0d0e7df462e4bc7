//! The cluster-wide index against a real redis-server: the node registry and
//! its totals, the reaper, index refresh by the nodes holding a channel,
//! broadcast over every channel, and surveys for `/info?cname=`. Every test
//! starts its own Redis (tests/it/support/redis.rs).

use std::collections::HashSet;

use crate::support::cluster::{config, eventually, Node, PARAMS};
use crate::support::redis::RedisServer;
use comet::cluster::{ChannelParams, ClusterEvent, Kind, Store};

fn store(redis: &RedisServer, node: &str, params: ChannelParams) -> Store {
    Store::new(&config(redis, node), node, params).expect("store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_totals_and_the_reaper() {
    let redis = RedisServer::start();
    let short = ChannelParams {
        history_size: 10,
        channel_timeout_secs: 1,
    };
    let a = Node::start(&config(&redis, "a"), short);
    let b = Node::start(&config(&redis, "b"), short);
    *a.counts.totals.lock().expect("lock") = (5, 2);
    *b.counts.totals.lock().expect("lock") = (7, 1);
    a.wait_resyncs(2).await;
    b.wait_resyncs(2).await;
    let st = a.cluster.store();
    st.publish("r1", "x").await.expect("publish");
    st.sign("r2", 0).await.expect("sign");
    let totals = eventually("both nodes in the registry", || async {
        let t = st.totals().await.expect("totals");
        (t.nodes.len() == 2 && t.subscribers == 12).then_some(t)
    })
    .await;
    assert_eq!(totals.channels, 2);
    let mut nodes = totals.nodes.clone();
    nodes.sort();
    assert_eq!(nodes, vec!["a".to_string(), "b".to_string()]);
    // Idle channels leave the index through the reaper (one of a, b) after ~1 s.
    a.wait_events("offline r1 and r2", |ev| {
        let off: HashSet<&str> = ev
            .iter()
            .filter_map(|e| match e {
                ClusterEvent::Presence { online: false, cname } => Some(cname.as_str()),
                _ => None,
            })
            .collect();
        off.contains("r1") && off.contains("r2")
    })
    .await;
    assert_eq!(st.check(&["r1", "r2"]).await.expect("check"), vec![false, false]);
    assert_eq!(st.channel_count().await.expect("count"), 0);
    let exists: i64 = redis.cmd(&["EXISTS", "comet:{r1}:m", "comet:{r1}:h", "comet:{r2}:m"]);
    assert_eq!(exists, 0, "meta and history deleted");
    let reaped = a
        .cluster
        .maintenance_stats()
        .reaped
        .load(std::sync::atomic::Ordering::Relaxed)
        + b.cluster
            .maintenance_stats()
            .reaped
            .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(reaped, 2, "freed exactly once");
    // A stopped node drops out of the totals once stale.
    b.cluster.shutdown().await;
    let t = eventually("b gone", || async {
        let t = st.totals().await.expect("totals");
        (t.nodes == vec!["a".to_string()]).then_some(t)
    })
    .await;
    assert_eq!(t.subscribers, 5);
    // The lock: a node that does not hold it is not the reaper.
    let _: String = redis.cmd(&["SET", "comet:reaper", "someone-else", "PX", "60000"]);
    let r = st.reap_once(3000, 10).await.expect("reap");
    assert_eq!((r.leader, r.freed), (false, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_held_by_a_node_outlives_its_timeout_until_released() {
    let redis = RedisServer::start();
    let short = ChannelParams {
        history_size: 10,
        channel_timeout_secs: 1,
    };
    let mut cfg = config(&redis, "holder");
    cfg.index_refresh_interval_ms = 100;
    let node = Node::start(&cfg, short);
    node.counts.held.lock().expect("lock").push(("held".into(), 1));
    node.wait_resyncs(2).await;
    let st = node.cluster.store();
    st.publish("held", "x").await.expect("publish");
    st.publish("idle", "x").await.expect("publish");
    node.wait_events("idle freed", |ev| {
        ev.iter()
            .any(|e| matches!(e, ClusterEvent::Presence { online: false, cname } if cname == "idle"))
    })
    .await;
    // Both were published at once with a 1 s timeout; only the held one is left.
    assert_eq!(st.check(&["held", "idle"]).await.expect("check"), vec![true, false]);
    node.counts.held.lock().expect("lock").clear();
    node.wait_events("held freed once released", |ev| {
        ev.iter()
            .any(|e| matches!(e, ClusterEvent::Presence { online: false, cname } if cname == "held"))
    })
    .await;
    assert_eq!(st.check(&["held"]).await.expect("check"), vec![false]);
    let refreshed = node
        .cluster
        .maintenance_stats()
        .refreshed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(refreshed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_raises_but_never_re_adds() {
    let redis = RedisServer::start();
    let st = store(&redis, "n", PARAMS);
    st.sign("kept", 5).await.expect("sign");
    let before: f64 = redis.cmd(&["ZSCORE", "comet:online", "kept"]);
    assert_eq!(st.refresh(&[("kept", 100), ("gone", 100)]).await.expect("refresh"), 1);
    let after: f64 = redis.cmd(&["ZSCORE", "comet:online", "kept"]);
    assert!(after >= before + 90_000.0, "raised by ~95 s: {before} -> {after}");
    assert_eq!(st.refresh(&[("kept", 1)]).await.expect("refresh"), 0, "never lowered");
    let gone: Option<f64> = redis.cmd(&["ZSCORE", "comet:online", "gone"]);
    assert_eq!(gone, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_gives_every_existing_channel_its_next_seq() {
    let redis = RedisServer::start();
    let node = Node::start(&config(&redis, "n"), PARAMS);
    node.wait_resyncs(2).await;
    let st = node.cluster.store();
    let names: Vec<String> = (0..600).map(|i| format!("bc{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        if i % 3 == 0 {
            st.publish(n, "before").await.expect("publish");
        } else {
            st.sign(n, 0).await.expect("sign");
        }
    }
    node.cluster.subscriptions().join("bc0");
    node.cluster.subscriptions().join("bc1");
    node.wait_confirmations(2).await;
    assert_eq!(st.broadcast("hello \\\"all\\\"").await.expect("broadcast"), 600);
    for (i, n) in names.iter().enumerate() {
        let h = st.history(n, None).await.expect("history");
        let want = if i % 3 == 0 { 2 } else { 1 };
        assert_eq!(h.top_seq, want, "{n}");
        let last = h.entries.last().expect("broadcast stored");
        assert_eq!(
            (last.seq, last.kind, last.content.as_str()),
            (want, Kind::Broadcast, "hello \\\"all\\\"")
        );
    }
    node.wait_events("both broadcasts", |ev| {
        ev.iter()
            .filter(|e| {
                matches!(
                    e,
                    ClusterEvent::Message {
                        kind: Kind::Broadcast,
                        ..
                    }
                )
            })
            .count()
            >= 2
    })
    .await;
    // bc0's "before" went out before the node joined it.
    assert_eq!(node.messages("bc0"), vec![(2, "hello \\\"all\\\"".into())]);
    assert_eq!(node.messages("bc1"), vec![(1, "hello \\\"all\\\"".into())]);
    assert_eq!(
        st.check(&["bc599", "bc600"]).await.expect("check"),
        vec![true, false],
        "none created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survey_sums_subscribers_over_live_nodes() {
    let redis = RedisServer::start();
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| Node::start(&config(&redis, n), PARAMS))
        .collect();
    for (n, count) in nodes.iter().zip([2u64, 3, 0]) {
        n.counts.per_channel.lock().expect("lock").insert("room".into(), count);
        *n.counts.totals.lock().expect("lock") = (count, 1);
        n.wait_resyncs(2).await;
    }
    let st = nodes[0].cluster.store();
    eventually("three live nodes", || async {
        (st.totals().await.expect("totals").nodes.len() == 3).then_some(())
    })
    .await;
    let s = nodes[1].cluster.subscriptions().survey("room").await.expect("survey");
    assert_eq!((s.subscribers, s.answered, s.expected), (5, 3, 3));
    let s = nodes[2]
        .cluster
        .subscriptions()
        .survey("elsewhere")
        .await
        .expect("survey");
    assert_eq!((s.subscribers, s.answered), (0, 3));
}
