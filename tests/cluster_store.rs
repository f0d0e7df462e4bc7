//! The Redis scripts of cluster mode against a real redis-server: seq and
//! epoch, history and its trim, batch = singles, sign/close/clear, the index,
//! the registry, the reaper, broadcast, surveys, and refusal of bad bytes.
//! Every test starts its own Redis (tests/support/redis.rs).

mod support;

use std::collections::HashSet;

use comet::cluster::{ChannelParams, ClusterError, ClusterEvent, Control, Kind, Store};
use support::cluster::{config, eventually, Node, PARAMS};
use support::redis::RedisServer;

fn store(redis: &RedisServer, node: &str, params: ChannelParams) -> Store {
    Store::new(&config(redis, node), node, params).expect("store")
}

fn seqs_and_kinds(h: &comet::cluster::History) -> Vec<(i32, Kind, String)> {
    h.entries
        .iter()
        .map(|e| (e.seq, e.kind, e.content.as_str().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_get_one_order_seen_identically_by_every_node() {
    let redis = RedisServer::start();
    // Three subscriber nodes, each with its own PUB/SUB connection.
    let nodes: Vec<Node> = (0..3)
        .map(|i| Node::start(&config(&redis, &format!("sub{i}")), PARAMS))
        .collect();
    for n in &nodes {
        n.wait_resyncs(2).await;
        n.cluster.subscriptions().join("race");
        n.wait_events("confirmation", |ev| {
            ev.iter()
                .any(|e| matches!(e, ClusterEvent::Confirmed { cname } if &**cname == "race"))
        })
        .await;
    }
    // Four publishers on four separate connections, 250 messages each, at once.
    let mut tasks = Vec::new();
    for p in 0..4 {
        let s = store(&redis, &format!("pub{p}"), PARAMS);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..250 {
                let r = s.publish("race", &format!("p{p}-{i}")).await.expect("publish");
                got.push((r.seq, r.epoch));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("publisher task"));
    }
    let seqs: HashSet<i32> = all.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=1000).collect::<HashSet<i32>>(),
        "every seq given exactly once"
    );
    let epochs: HashSet<_> = all.iter().map(|(_, e)| *e).collect();
    assert_eq!(epochs.len(), 1, "one epoch for the whole channel life");

    let first = nodes[0]
        .wait_events("1000 messages", |ev| {
            ev.iter().filter(|e| matches!(e, ClusterEvent::Message { .. })).count() >= 1000
        })
        .await;
    assert!(!first.is_empty());
    let reference = nodes[0].messages("race");
    assert_eq!(
        reference.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<_>>()
    );
    for n in &nodes[1..] {
        n.wait_events("1000 messages", |ev| {
            ev.iter().filter(|e| matches!(e, ClusterEvent::Message { .. })).count() >= 1000
        })
        .await;
        assert_eq!(n.messages("race"), reference, "identical order on every node");
    }
    // Each publisher's own messages appear in the order it sent them.
    for p in 0..4 {
        let mine: Vec<String> = reference
            .iter()
            .filter(|(_, c)| c.starts_with(&format!("p{p}-")))
            .map(|(_, c)| c.clone())
            .collect();
        assert_eq!(mine, (0..250).map(|i| format!("p{p}-{i}")).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_after_a_seq_and_trims_like_icomet() {
    let redis = RedisServer::start();
    let size3 = ChannelParams {
        history_size: 3,
        channel_timeout_secs: 30,
    };
    let s = store(&redis, "n", size3);
    let empty = s.history("h", None).await.expect("history");
    assert_eq!((empty.epoch, empty.top_seq, empty.entries.len()), (None, 0, 0));

    let mut epoch = None;
    for i in 1..=5 {
        let p = s.publish("h", &format!("m{i}")).await.expect("publish");
        assert_eq!(p.seq, i);
        assert_eq!(p.created, i == 1);
        epoch.get_or_insert(p.epoch);
    }
    // icomet: size 3 trims at 1.5 x 3 = 4.5, so at the 5th push back to 3.
    let h = s.history("h", None).await.expect("history");
    assert_eq!(h.epoch, epoch);
    assert_eq!(h.top_seq, 5);
    assert_eq!(h.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
    s.publish("h", "m6").await.expect("publish");
    // icomet observed: after 6 pushes with size 3 the history holds 3, 4, 5, 6.
    let h = s.history("h", None).await.expect("history");
    assert_eq!(
        seqs_and_kinds(&h),
        vec![
            (3, Kind::Data, "m3".into()),
            (4, Kind::Data, "m4".into()),
            (5, Kind::Data, "m5".into()),
            (6, Kind::Data, "m6".into())
        ]
    );
    let after = |a: i32| {
        let s = s.clone();
        async move {
            s.history("h", Some(a))
                .await
                .expect("history")
                .entries
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(after(4).await, vec![5, 6]);
    assert_eq!(after(0).await, vec![3, 4, 5, 6], "older than the ring: all of it");
    assert_eq!(after(-5).await, vec![3, 4, 5, 6]);
    assert_eq!(after(6).await, Vec::<i32>::new(), "caught up");
    assert_eq!(after(100).await, Vec::<i32>::new(), "ahead");

    // No history at all with size 0; seq still counts.
    let s0 = store(
        &redis,
        "n0",
        ChannelParams {
            history_size: 0,
            channel_timeout_secs: 30,
        },
    );
    s0.publish("z", "a").await.expect("publish");
    let h = s0.history("z", None).await.expect("history");
    assert_eq!((h.top_seq, h.entries.len()), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seq_wraps_like_an_i32() {
    let redis = RedisServer::start();
    let s = store(&redis, "n", PARAMS);
    s.publish("w", "first").await.expect("publish");
    let _: i64 = redis.cmd(&["HSET", "comet:{w}:m", "s", "2147483646"]);
    let seqs: Vec<i32> = [
        s.publish("w", "a").await.expect("publish").seq,
        s.publish("w", "b").await.expect("publish").seq,
    ]
    .to_vec();
    assert_eq!(seqs, vec![2147483647, -2147483648]);
    let batch = s
        .publish_batch(&[("w", "c"), ("w", "d")])
        .await
        .expect("batch")
        .iter()
        .map(|p| p.seq)
        .collect::<Vec<_>>();
    assert_eq!(batch, vec![-2147483647, -2147483646]);
    let h = s.history("w", Some(2147483647)).await.expect("history");
    assert_eq!(
        h.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![-2147483648, -2147483647, -2147483646]
    );
    assert_eq!(h.top_seq, -2147483646);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_publish_equals_single_publishes() {
    let redis = RedisServer::start();
    let mut cfg = config(&redis, "n");
    cfg.publish_batch_messages = 7; // several calls, one channel bigger than a call
    let node = Node::start(&cfg, PARAMS);
    node.wait_resyncs(2).await;
    // The same traffic, on "s-*" one by one and on "b-*" as one batch.
    let mut traffic: Vec<(String, String)> = Vec::new();
    for i in 0..40 {
        let ch = match i % 5 {
            0 | 1 => "x",
            2 => "y",
            _ => "z",
        };
        traffic.push((ch.to_string(), format!("m{i} \\\"q\\\"")));
    }
    for i in 0..23 {
        traffic.push(("big".to_string(), format!("big{i}")));
    }
    for ch in ["x", "y", "z", "big"] {
        node.cluster.subscriptions().join(format!("s-{ch}"));
        node.cluster.subscriptions().join(format!("b-{ch}"));
    }
    node.wait_events("8 confirmations", |ev| {
        ev.iter()
            .filter(|e| matches!(e, ClusterEvent::Confirmed { .. }))
            .count()
            >= 8
    })
    .await;
    let st = node.cluster.store();
    let mut singles = Vec::new();
    for (ch, content) in &traffic {
        singles.push(st.publish(&format!("s-{ch}"), content).await.expect("publish").seq);
    }
    let names: Vec<String> = traffic.iter().map(|(ch, _)| format!("b-{ch}")).collect();
    let items: Vec<(&str, &str)> = names
        .iter()
        .zip(&traffic)
        .map(|(n, (_, c))| (n.as_str(), c.as_str()))
        .collect();
    let batch: Vec<i32> = st
        .publish_batch(&items)
        .await
        .expect("batch")
        .iter()
        .map(|p| p.seq)
        .collect();
    assert_eq!(batch, singles, "same seqs per message");
    node.wait_events("all messages twice", |ev| {
        ev.iter().filter(|e| matches!(e, ClusterEvent::Message { .. })).count() >= 2 * traffic.len()
    })
    .await;
    for ch in ["x", "y", "z", "big"] {
        let a = st.history(&format!("s-{ch}"), None).await.expect("history");
        let b = st.history(&format!("b-{ch}"), None).await.expect("history");
        assert_eq!(a.top_seq, b.top_seq, "{ch}");
        assert_eq!(seqs_and_kinds(&a), seqs_and_kinds(&b), "history of {ch}");
        assert_eq!(
            node.messages(&format!("s-{ch}")),
            node.messages(&format!("b-{ch}")),
            "delivery of {ch}"
        );
    }
    let big = node.messages("b-big");
    assert_eq!(big.len(), 23);
    assert_eq!(big[22], (23, "big22".to_string()));
    assert_eq!(
        st.history("b-big", None).await.expect("history").entries.len(),
        13,
        "23 pushes leave 13 (trim at 15 to 10, then 3 more)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_creates_once_and_reports_the_oldest_seq() {
    let redis = RedisServer::start();
    let node = Node::start(&config(&redis, "n"), PARAMS);
    node.wait_resyncs(2).await;
    let st = node.cluster.store();
    let a = st.sign("s", 0).await.expect("sign");
    assert_eq!((a.seq, a.created, a.expires), (1, true, 30));
    let b = st.sign("s", 100).await.expect("sign");
    assert_eq!((b.seq, b.created, b.epoch, b.expires), (1, false, a.epoch, 100));
    assert_eq!(st.check(&["s", "nope"]).await.expect("check"), vec![true, false]);
    for i in 0..3 {
        st.publish("s", &format!("{i}")).await.expect("publish");
    }
    assert_eq!(
        st.sign("s", 0).await.expect("sign").seq,
        1,
        "3 in history, next 4: oldest 1"
    );
    for i in 0..12 {
        st.publish("s", &format!("{i}")).await.expect("publish");
    }
    // 15 pushes: trimmed to 10 at the 15th; next seq 16, oldest 6.
    assert_eq!(st.sign("s", 0).await.expect("sign").seq, 6);
    let p = st.publish("s", "x").await.expect("publish");
    assert_eq!((p.seq, p.epoch, p.created), (16, a.epoch, false));
    // One presence event for the creation, none for re-signing.
    let ev = node
        .wait_events("presence", |ev| {
            ev.iter().any(|e| matches!(e, ClusterEvent::Presence { .. }))
        })
        .await;
    let presence: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::Presence { online, cname } => Some((*online, cname.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(presence, vec![(true, "s".to_string())]);
    // Tokens: the same on any node, checked without Redis.
    let other = Node::start(&config(&redis, "other"), PARAMS);
    let t = node.cluster.token("s");
    assert!(other.cluster.verify_token("s", &t));
    assert!(!other.cluster.verify_token("t", &t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_frees_everywhere_and_the_next_life_has_a_new_epoch() {
    let redis = RedisServer::start();
    let node = Node::start(&config(&redis, "n"), PARAMS);
    node.wait_resyncs(2).await;
    node.cluster.subscriptions().join("c");
    node.wait_events("confirmed", |ev| {
        ev.iter().any(|e| matches!(e, ClusterEvent::Confirmed { .. }))
    })
    .await;
    let st = node.cluster.store();
    assert_eq!(st.close("c").await.expect("close"), None, "no such channel");
    let first = st.publish("c", "a").await.expect("publish");
    st.publish("c", "b").await.expect("publish");
    assert_eq!(st.close("c").await.expect("close"), Some(3));
    assert_eq!(st.close("c").await.expect("close"), None, "already closed");
    assert_eq!(st.check(&["c"]).await.expect("check"), vec![false]);
    let h = st.history("c", None).await.expect("history");
    assert_eq!((h.epoch, h.top_seq, h.entries.len()), (None, 0, 0));
    let ev = node
        .wait_events("close control", |ev| {
            ev.iter().any(|e| matches!(e, ClusterEvent::Control { .. }))
        })
        .await;
    let ctl: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::Control {
                cname,
                epoch,
                control,
                next_seq,
            } => Some((cname.to_string(), *epoch, *control, *next_seq)),
            _ => None,
        })
        .collect();
    assert_eq!(ctl, vec![("c".to_string(), Some(first.epoch), Control::Close, 3)]);
    node.wait_events("offline presence", |ev| {
        ev.iter()
            .any(|e| matches!(e, ClusterEvent::Presence { online: false, cname } if cname == "c"))
    })
    .await;
    let again = st.publish("c", "new life").await.expect("publish");
    assert_eq!((again.seq, again.created), (1, true));
    assert_ne!(again.epoch, first.epoch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_empties_history_and_keeps_the_seq() {
    let redis = RedisServer::start();
    let node = Node::start(&config(&redis, "n"), PARAMS);
    node.wait_resyncs(2).await;
    node.cluster.subscriptions().join("k");
    node.wait_events("confirmed", |ev| {
        ev.iter().any(|e| matches!(e, ClusterEvent::Confirmed { .. }))
    })
    .await;
    let st = node.cluster.store();
    assert_eq!(st.clear("k").await.expect("clear"), None);
    let p = st.publish("k", "a").await.expect("publish");
    st.publish("k", "b").await.expect("publish");
    st.publish("k", "c").await.expect("publish");
    assert_eq!(st.clear("k").await.expect("clear"), Some(4));
    let h = st.history("k", None).await.expect("history");
    assert_eq!((h.epoch, h.top_seq, h.entries.len()), (Some(p.epoch), 3, 0));
    assert_eq!(
        st.sign("k", 0).await.expect("sign").seq,
        4,
        "empty history: the next seq"
    );
    assert_eq!(st.publish("k", "d").await.expect("publish").seq, 4);
    let ev = node
        .wait_events("clear control", |ev| {
            ev.iter().any(|e| matches!(e, ClusterEvent::Control { .. }))
        })
        .await;
    assert!(ev.iter().any(|e| matches!(
        e,
        ClusterEvent::Control { control: Control::Clear, next_seq: 4, epoch: Some(ep), .. } if *ep == p.epoch
    )));
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
    node.wait_events("2 confirmations", |ev| {
        ev.iter()
            .filter(|e| matches!(e, ClusterEvent::Confirmed { .. }))
            .count()
            >= 2
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_bad_bytes_in_redis_are_dropped() {
    let redis = RedisServer::start();
    let node = Node::start(&config(&redis, "n"), PARAMS);
    node.wait_resyncs(2).await;
    let st = node.cluster.store();
    for bad in ["a\"b", "line\nbreak", "bad \\x escape"] {
        let e = st.publish("in", bad).await.expect_err("refused");
        assert!(matches!(e, ClusterError::BadInput(_)) && !e.is_unavailable(), "{e}");
    }
    let e = st
        .publish_batch(&[("in", "ok"), ("in", "no\"")])
        .await
        .expect_err("refused");
    assert_eq!(e.to_string(), "message 2: content contains an unescaped '\"'");
    assert_eq!(
        st.history("in", None).await.expect("history").top_seq,
        0,
        "nothing published"
    );
    assert!(matches!(st.broadcast("x\"").await, Err(ClusterError::BadInput(_))));

    // Garbage written into Redis by someone else: history skips it, PUB/SUB
    // drops it, both count it.
    st.publish("in", "good").await.expect("publish");
    let _: i64 = redis.cmd(&["RPUSH", "comet:{in}:h", "not an entry"]);
    let h = st.history("in", None).await.expect("history");
    assert_eq!((h.entries.len(), h.malformed), (1, 1));
    node.cluster.subscriptions().join("in");
    node.wait_events("confirmed", |ev| {
        ev.iter().any(|e| matches!(e, ClusterEvent::Confirmed { .. }))
    })
    .await;
    let _: i64 = redis.cmd(&["PUBLISH", "comet:{in}", "0123456789abcdef 9 d \"broken"]);
    let _: i64 = redis.cmd(&["PUBLISH", "comet:psub", "x"]);
    st.publish("in", "after").await.expect("publish");
    node.wait_events("the good message", |ev| {
        ev.iter().any(|e| matches!(e, ClusterEvent::Message { seq: 2, .. }))
    })
    .await;
    assert_eq!(node.messages("in"), vec![(2, "after".to_string())]);
    let malformed: u64 = node
        .cluster
        .subscriptions()
        .counters()
        .iter()
        .map(|(_, c)| c.malformed)
        .sum();
    assert_eq!(malformed, 2);
}
