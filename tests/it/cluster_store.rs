//! The per-channel scripts of cluster mode against a real redis-server: seq
//! and epoch under concurrent publishers, history and its trim, wrapping
//! seqs, batch = singles, sign/close/clear, tokens across nodes, and refusal
//! of bad input and of bad bytes found in Redis. Every test starts its own
//! Redis (tests/it/support/redis.rs). The index, registry, reaper, broadcast
//! and surveys are in cluster_index.rs.

use std::collections::HashSet;

use crate::support::cluster::{config, Node, PARAMS};
use crate::support::redis::RedisServer;
use comet::cluster::{ChannelParams, ClusterError, ClusterEvent, Control, Kind, Store};

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
    node.wait_confirmations(8).await;
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
    node.wait_confirmations(1).await;
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
    node.wait_confirmations(1).await;
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
    node.wait_confirmations(1).await;
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

/// The batched reads and touches a syncing node uses answer exactly what
/// the per-channel calls answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_history_and_touch_equal_the_single_calls() {
    let redis = RedisServer::start();
    let st = store(&redis, "n", PARAMS);
    for i in 1..=12 {
        st.publish("a", &format!("a{i}")).await.expect("publish");
    }
    st.publish("b", "b1").await.expect("publish");
    st.publish("b", "b2").await.expect("publish");
    let asked = [
        ("a", None),
        ("b", Some(1)),
        ("a", Some(11)),
        ("a", Some(12)),
        ("none", None),
    ];
    let many = st.history_many(&asked).await.expect("history_many");
    assert_eq!(many.len(), asked.len());
    for ((cname, after), h) in asked.iter().zip(&many) {
        let one = st.history(cname, *after).await.expect("history");
        assert_eq!(h, &one, "{cname} after {after:?}");
    }
    assert_eq!(seqs_and_kinds(&many[2]), vec![(12, Kind::Data, "a12".to_string())]);
    assert_eq!(many[4].epoch, None);
    let too_many: Vec<(&str, Option<i32>)> = vec![("x", None); comet::cluster::SYNC_BATCH + 1];
    assert!(matches!(
        st.history_many(&too_many).await,
        Err(ClusterError::BadInput(_))
    ));
    // Touch: creates what Redis lacks (and indexes it), keeps what it has.
    assert_eq!(st.check(&["none", "a"]).await.expect("check"), vec![false, true]);
    assert_eq!(st.touch_many(&["none", "a"]).await.expect("touch_many"), 1);
    assert_eq!(st.check(&["none", "a"]).await.expect("check"), vec![true, true]);
    let h = st.history("none", None).await.expect("history");
    assert!(h.epoch.is_some());
    assert_eq!((h.top_seq, h.entries.len()), (0, 0));
    assert_eq!(st.history("a", None).await.expect("history").top_seq, 12);
}
