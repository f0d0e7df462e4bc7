//! What the Redis settings the README recommends protect against, shown on
//! real nodes and a real Redis: a full Redis under `maxmemory-policy
//! noeviction` refuses publishes (503, nothing delivered, nothing forked)
//! and takes them again once it has room; a node's PUB/SUB connection cut
//! by `client-output-buffer-limit pubsub` resubscribes and fills what it
//! missed from history. Counts and exact bytes, never times.

use crate::support::nodes::{data, poll, reconnected, tuple, wait_for, Kind, Nodes, Sub};

/// `maxmemory` reached with `noeviction`: every publish is refused with 503
/// and Redis's reason on every node, subscribers stay connected, and once
/// Redis has room again the seqs go on where they stopped.
#[test]
fn full_redis_with_noeviction_refuses_publishes_then_takes_them_again() {
    let nodes = Nodes::start(2);
    let mut s = Sub::open(nodes.front(1), Kind::Stream, "mm", 1);
    nodes.publish(0, "mm", "m1");
    assert_eq!(s.take(1), data(1, &["m1"]));
    // Any limit below what Redis already uses: it is full from now on.
    let _: String = nodes.redis.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    for i in 0..2 {
        let (code, body) = nodes.admin(i, "/pub?cname=mm&content=refused");
        assert_eq!(code, 503, "n{i}: {body}");
        assert!(
            body.starts_with("cluster: Redis refused the command: "),
            "n{i}: {body:?}"
        );
        assert!(body.contains("OOM"), "n{i}: {body:?}");
        let (code, body) = nodes.batch(i, "mm\trefused\n");
        assert_eq!(code, 503, "n{i}: {body}");
        assert!(body.contains("OOM"), "n{i}: {body:?}");
    }
    // Still connected: the subscriber gets its noop, not a message.
    let v = s.next_any();
    assert_eq!(
        (v["type"].as_str(), v["cname"].as_str()),
        (Some("noop"), Some("mm")),
        "{v}"
    );
    let _: String = nodes.redis.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    nodes.publish(0, "mm", "m2");
    nodes.publish(1, "mm", "m3");
    assert_eq!(s.take(2), data(2, &["m2", "m3"]));
    for i in 0..2 {
        assert!(nodes.metric(i, "comet_cluster_redis_errors_total") >= 2, "n{i}");
        assert_eq!(nodes.metric(i, "comet_cluster_epoch_resets_total"), 0, "n{i}");
    }
}

/// A message larger than the pubsub output buffer limit makes Redis close
/// the subscribing node's data connection; the node reconnects,
/// resubscribes, and reads the message from history, so its subscriber
/// gets every message once, in order, and the cut is counted.
#[test]
fn pubsub_connection_cut_by_its_output_buffer_limit_resyncs_from_history() {
    let nodes = Nodes::start(2);
    let mut s = Sub::open(nodes.front(1), Kind::Stream, "ob", 1);
    nodes.publish(0, "ob", "m1");
    assert_eq!(s.take(1), data(1, &["m1"]));
    // Redis's limit far below one message: the subscribing connection is
    // cut as soon as that message is queued for it.
    let _: String = nodes
        .redis
        .cmd(&["CONFIG", "SET", "client-output-buffer-limit", "pubsub 64kb 0 0"]);
    let big = "x".repeat(150_000);
    assert_eq!(
        nodes.batch(0, &format!("ob\t{big}\n")),
        (200, "{\"type\":\"ok\",\"published\":1}\n".to_string())
    );
    let got = s.take(1);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0.as_str(), got[0].1), ("data", 2));
    assert!(got[0].2 == big, "the 150,000-byte message arrived changed");
    nodes.publish(0, "ob", "m3");
    assert_eq!(s.take(1), data(3, &["m3"]));
    assert_eq!(
        nodes.metric(1, "comet_cluster_pubsub_lost_total{connection=\"data0\"}"),
        1
    );
    assert_eq!(nodes.metric(1, "comet_cluster_missed_total"), 0);
    assert_eq!(nodes.metric(1, "comet_cluster_duplicates_total"), 0);
    // n0 holds no subscriber of the channel: its connection was never cut.
    assert_eq!(
        nodes.metric(0, "comet_cluster_pubsub_lost_total{connection=\"data0\"}"),
        0
    );
    // Redis counts the cut too, where its version reports it (7.2 and later).
    let stats: String = nodes.redis.cmd(&["INFO", "stats"]);
    if let Some(cut) = stats
        .lines()
        .find_map(|l| l.strip_prefix("client_output_buffer_limit_disconnections:"))
    {
        assert_eq!(cut.trim(), "1");
    }
}

/// A Redis restarted from a snapshot has the channel's old seq under the
/// *same* epoch: new publishes reuse seqs a node's subscribers already got.
/// The node sees its copy is ahead of Redis (a rewind), reads the whole
/// history again and resets its subscribers to the first message that is
/// not the one they had, as for a new epoch: both nodes then agree on what
/// each seq is, nothing new is dropped as a duplicate, and the reset is
/// counted.
#[test]
fn redis_rewound_by_a_snapshot_resets_subscribers_to_the_new_seqs() {
    let mut nodes = Nodes::start(2);
    let mut s = Sub::open(nodes.front(1), Kind::Stream, "rw", 1);
    nodes.publish(0, "rw", "m1");
    nodes.publish(0, "rw", "m2");
    assert_eq!(s.take(2), data(1, &["m1", "m2"]));
    let _: String = nodes.redis.cmd(&["SAVE"]);
    nodes.publish(0, "rw", "m3");
    nodes.publish(0, "rw", "m4");
    assert_eq!(s.take(2), data(3, &["m3", "m4"]));
    // Killed, then started again from the snapshot (seq 2, same epoch).
    nodes.redis.restart(true);
    reconnected(nodes.node(1), 2);
    // n1 syncs its copy again before anything is published: Redis's top
    // (2) is below what it delivered (4). (Once new publishes have taken
    // Redis back to where the node was, seqs alone cannot tell; hence the
    // README's persistence advice.)
    wait_for("n1 synced its copy again", || {
        (nodes.metric(1, "comet_cluster_syncs_total") >= 2).then_some(())
    });
    wait_for("a publish accepted again", || {
        (nodes.admin(0, "/pub?cname=rw&content=m5").0 == 200).then_some(())
    });
    nodes.publish(0, "rw", "m6");
    nodes.publish(0, "rw", "m7");
    // Seqs 3 and 4 again (m5, m6): n1's subscriber is told so (next_seq 3)
    // and gets them.
    let mut want = vec![("next_seq".to_string(), 3, String::new())];
    want.extend(data(3, &["m5", "m6", "m7"]));
    assert_eq!(s.take(4), want);
    assert_eq!(nodes.metric(1, "comet_cluster_epoch_resets_total"), 1);
    // n0 held no copy: it serves Redis's seqs, the same ones.
    let got: Vec<_> = poll(nodes.front(0), "rw", 3, None).iter().map(tuple).collect();
    assert_eq!(got, data(3, &["m5", "m6", "m7"]));
}
