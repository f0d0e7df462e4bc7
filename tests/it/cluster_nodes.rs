//! Cluster mode end to end (issue 14): real `comet` binaries sharing a real
//! Redis behave as one server. Each test starts its own Redis and two or
//! three nodes (support/nodes.rs) and ends them by process id.
//!
//! Covered: cross-node delivery with one seq order on every node and every
//! transport (long poll and JSONP, `/stream`, `/sse`, `/ws`); resume by seq
//! on another node; a node killed and started again; Redis killed (503 with
//! a clear body, subscribers keep their heartbeats) and restarted with and
//! without its data (the epoch reset reaches subscribers as `next_seq`);
//! Redis paused (the hung connection is replaced and counted); cluster-wide
//! `/check`, `/info`, `/psub`, `/close`, `/clear`; `/sign` tokens across
//! nodes; `/broadcast` to channels held only by other nodes; every fault
//! logged once and counted in `/metrics`. Counts and exact bytes, never
//! times; every read has a deadline.

use std::collections::BTreeSet;

use crate::support::nodes::{
    data, metric, poll, poll_round_robin, poll_until, reconnected, tuple, wait_for, Kind, NodeOpts, Nodes, Sub,
};
use crate::support::redis::RedisOptions;
use crate::support::{eventually, json, Client};

/// Three publishers on three nodes, one channel: every subscriber on every
/// node and transport sees the same contiguous seqs in the same order.
#[test]
fn publishers_on_every_node_one_order_on_every_node_and_transport() {
    let nodes = Nodes::start(3);
    let kinds = [Kind::Stream, Kind::Sse, Kind::Ws];
    let mut subs: Vec<Sub> = Vec::new();
    for i in 0..3 {
        for k in kinds {
            subs.push(Sub::open(nodes.front(i), k, "room", 1));
        }
    }
    const EACH: usize = 10;
    let fronts: Vec<_> = (0..3).map(|i| nodes.front(i)).collect();
    let balanced = std::thread::scope(|s| {
        // A client behind a round-robin balancer: each long poll on the
        // next node, resuming from the seq after the last it got.
        let lb = s.spawn(|| poll_round_robin(&fronts, "room", 1, 3 * EACH));
        for i in 0..3 {
            let nodes = &nodes;
            s.spawn(move || {
                for m in 0..EACH {
                    nodes.publish(i, "room", &format!("n{i}m{m}"));
                }
            });
        }
        lb.join().expect("the balanced client")
    });
    let total = 3 * EACH;
    let first = subs[0].take(total);
    let seqs: Vec<i64> = first.iter().map(|t| t.1).collect();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());
    let contents: BTreeSet<&str> = first.iter().map(|t| t.2.as_str()).collect();
    assert_eq!(contents.len(), total, "{first:?}");
    // Each publisher's own messages keep their order.
    for i in 0..3 {
        let own: Vec<&str> = first
            .iter()
            .map(|t| t.2.as_str())
            .filter(|c| c.starts_with(&format!("n{i}m")))
            .collect();
        let want: Vec<String> = (0..EACH).map(|m| format!("n{i}m{m}")).collect();
        assert_eq!(own, want);
    }
    assert_eq!(balanced, first, "no loss, no duplicate across nodes");
    for (n, s) in subs.iter_mut().enumerate().skip(1) {
        assert_eq!(s.take(total), first, "subscriber {n}");
    }
    // Long polls (plain and JSONP) on every node read the same history.
    for i in 0..3 {
        // (History keeps the last 10.)
        assert_eq!(poll_until(nodes.front(i), "room", 21, 10, None), first[20..]);
        assert_eq!(poll_until(nodes.front(i), "room", 26, 5, Some("cb_7")), first[25..]);
    }
    // A second channel keeps its own seqs.
    nodes.publish(2, "hall", "h1");
    let hall: Vec<_> = poll(nodes.front(0), "hall", 1, Some("f")).iter().map(tuple).collect();
    assert_eq!(hall, data(1, &["h1"]));
}

/// Messages published with no subscriber anywhere are replayed by seq on
/// any node, from Redis's history: no loss, no duplicate.
#[test]
fn resume_by_seq_on_another_node() {
    let nodes = Nodes::start(3);
    for m in 1..=5 {
        nodes.publish(0, "r", &format!("m{m}"));
    }
    // n1 has never held the channel: a poll from seq 3 replays 3..5.
    let got: Vec<_> = poll(nodes.front(1), "r", 3, None).iter().map(tuple).collect();
    assert_eq!(got, data(3, &["m3", "m4", "m5"]));
    // A stream on n2 from seq 2 gets the replay, then live messages from n1.
    let mut s = Sub::open(nodes.front(2), Kind::Stream, "r", 2);
    assert_eq!(s.take(4), data(2, &["m2", "m3", "m4", "m5"]));
    nodes.publish(1, "r", "m6");
    assert_eq!(s.take(1), data(6, &["m6"]));
    // A /pub answers once Redis took the message; every node's copy gets it
    // a moment later. Once n1's copy has m6 (a poll from 6 answers it), a
    // subscriber caught up there waits for the next one.
    assert_eq!(
        poll(nodes.front(1), "r", 6, None).iter().map(tuple).collect::<Vec<_>>(),
        data(6, &["m6"])
    );
    let mut w = Sub::open(nodes.front(1), Kind::Sse, "r", 7);
    nodes.publish(2, "r", "m7");
    assert_eq!(w.take(1), data(7, &["m7"]));
    assert_eq!(s.take(1), data(7, &["m7"]));
    // Older than the history (10 messages): what is left, icomet's jump.
    for m in 8..=15 {
        nodes.publish(0, "r", &format!("m{m}"));
    }
    assert_eq!(s.take(8).last().expect("m15").2, "m15");
    assert_eq!(
        poll(nodes.front(1), "r", 15, None)
            .iter()
            .map(tuple)
            .collect::<Vec<_>>(),
        data(15, &["m15"])
    );
    let got: Vec<_> = poll(nodes.front(1), "r", 1, None).iter().map(tuple).collect();
    let want: Vec<String> = (6..=15).map(|m| format!("m{m}")).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(got, data(6, &want));
}

/// `/broadcast` on a node that holds nothing reaches the channels held only
/// by other nodes: each gets its seq + 1, then `next_seq`.
#[test]
fn broadcast_reaches_channels_that_exist_only_on_other_nodes() {
    let nodes = Nodes::start(3);
    nodes.publish(1, "bx", "x1");
    let mut x = Sub::open(nodes.front(1), Kind::Stream, "bx", 1);
    assert_eq!(x.take(1), data(1, &["x1"]));
    // A channel that only has a subscriber (never published) exists too.
    let mut y = Sub::open(nodes.front(2), Kind::Ws, "by", 1);
    eventually("by exists cluster-wide", || {
        nodes.admin(0, "/check?cname=by").1 == "{\"by\": 1}\n"
    });
    assert_eq!(nodes.admin(0, "/broadcast?content=all"), (200, "ok\n".to_string()));
    assert_eq!(
        x.take(2),
        vec![
            ("broadcast".to_string(), 2, "all".to_string()),
            ("next_seq".to_string(), 3, String::new())
        ]
    );
    assert_eq!(
        y.take(2),
        vec![
            ("broadcast".to_string(), 1, "all".to_string()),
            ("next_seq".to_string(), 2, String::new())
        ]
    );
    // The broadcast is in history: a long poll on n0 from seq 1 replays it.
    let got: Vec<_> = poll(nodes.front(0), "bx", 1, None).iter().map(tuple).collect();
    assert_eq!(
        got,
        vec![
            ("data".to_string(), 1, "x1".to_string()),
            ("broadcast".to_string(), 2, "all".to_string()),
            ("next_seq".to_string(), 3, String::new())
        ]
    );
}

/// A token from `/sign` on one node opens the channel on another node in
/// `front.auth: token` mode; a wrong or missing token is refused there.
#[test]
fn tokens_signed_on_one_node_are_accepted_on_another() {
    let opts = NodeOpts {
        front: "  auth: token\n".into(),
        ..NodeOpts::default()
    };
    let nodes = Nodes::start_with(2, opts, RedisOptions::default());
    let (code, body) = nodes.admin(0, "/sign?cname=secret");
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    let token = v["token"].as_str().expect("token").to_string();
    assert_eq!(token.len(), 32, "{body}");
    assert!(
        token.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{body}"
    );
    assert_eq!(v["type"], "sign");
    // The same token from the other node: stateless, one secret.
    assert_eq!(json(&nodes.admin(1, "/sign?cname=secret").1)["token"], token.as_str());
    let refused = poll(nodes.front(1), "secret", 1, None);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["type"], "401");
    let bad = format!("{}0", &token[..31]);
    let mut c = Client::connect(nodes.front(1));
    c.get(&format!("/sub?cname=secret&seq=1&token={bad}"));
    let r = c.read_response(false);
    assert!(r.body().contains("\"type\":\"401\""), "{r:?}");
    let mut s = Sub::open_target(
        nodes.front(1),
        Kind::Stream,
        &format!("cname=secret&seq=1&token={token}"),
    );
    nodes.publish(0, "secret", "hush");
    assert_eq!(s.take(1), data(1, &["hush"]));
}

/// `/close` on one node ends the subscribers of every node with icomet's
/// close object; `/clear` on another empties every node's history.
#[test]
fn close_and_clear_act_on_every_node() {
    let nodes = Nodes::start(3);
    for m in 1..=3 {
        nodes.publish(0, "cc", &format!("m{m}"));
    }
    let mut subs: Vec<Sub> = (0..3)
        .map(|i| Sub::open(nodes.front(i), [Kind::Stream, Kind::Sse, Kind::Ws][i], "cc", 4))
        .collect();
    // Every node holds it and is synced: a message reaches all three.
    nodes.publish(2, "cc", "m4");
    for s in &mut subs {
        assert_eq!(s.take(1), data(4, &["m4"]));
    }
    // /clear on n1: the next seq stays, history is gone everywhere.
    assert_eq!(nodes.admin(1, "/clear?cname=cc"), (200, "ok 5\n".to_string()));
    nodes.publish(0, "cc", "m5");
    for s in &mut subs {
        assert_eq!(s.take(1), data(5, &["m5"]));
    }
    for i in 0..3 {
        let got: Vec<_> = poll(nodes.front(i), "cc", 1, None).iter().map(tuple).collect();
        assert_eq!(got, data(5, &["m5"]), "n{i} after /clear");
    }
    // /close on n0: every subscriber gets the close object, then the end.
    assert_eq!(nodes.admin(0, "/close?cname=cc"), (200, "ok 6\n".to_string()));
    for s in &mut subs {
        assert_eq!(s.take(1), vec![("close".to_string(), 6, String::new())]);
        s.expect_end();
    }
    eventually("cc gone cluster-wide", || nodes.admin(2, "/check?cname=cc").1 == "{}\n");
    assert_eq!(nodes.admin(1, "/close?cname=cc").0, 404);
    // A new channel of the same name starts again at 1.
    nodes.publish(1, "cc", "again");
    let got: Vec<_> = poll(nodes.front(2), "cc", 1, None).iter().map(tuple).collect();
    assert_eq!(got, data(1, &["again"]));
}

/// `/check`, `/info` (totals and `cname=`) and `/psub` answer for the whole
/// cluster on every node.
#[test]
fn check_info_and_psub_are_cluster_wide() {
    let opts = NodeOpts {
        front: "  channel_timeout: 1\n".into(),
        ..NodeOpts::default()
    };
    let nodes = Nodes::start_with(3, opts, RedisOptions::default());
    let mut psub = Client::connect(nodes.node(0).admin());
    psub.send(b"GET /psub HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = psub.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    // Subscribers on n1 (two) and n2 (one) of q1; q2 published on n2 only.
    let mut a = Sub::open(nodes.front(1), Kind::Stream, "q1", 1);
    let mut b = Sub::open(nodes.front(1), Kind::Sse, "q1", 1);
    let mut c = Sub::open(nodes.front(2), Kind::Ws, "q1", 1);
    nodes.publish(2, "q2", "x");
    // (q1 is created by its subscribers' nodes in the background: either
    // line may come first.)
    let online = BTreeSet::from([psub.chunk_str(), psub.chunk_str()]);
    assert_eq!(online, BTreeSet::from(["1 q1\n".to_string(), "1 q2\n".to_string()]));
    for i in 0..3 {
        assert_eq!(
            nodes.admin(i, "/check?cname=q1,q2,q3").1,
            "{\"q1\": 1, \"q2\": 1}\n",
            "n{i}"
        );
    }
    eventually("totals", || {
        nodes.admin(0, "/info").1 == "{\"version\": \"0.2.5\", \"channels\": 2, \"subscribers\": 3}\n"
    });
    for i in 0..3 {
        assert_eq!(
            nodes.admin(i, "/info?cname=q1").1,
            "{\"cname\": \"q1\", \"subscribers\": 3}\n",
            "n{i}"
        );
    }
    // The subscribers leave; q1 lives channel_timeout on its nodes, then is
    // freed cluster-wide once no node holds it: "0 q1" on n0's /psub.
    nodes.publish(0, "q1", "bye");
    for s in [&mut a, &mut b, &mut c] {
        assert_eq!(s.take(1), data(1, &["bye"]));
    }
    drop((a, b, c));
    let mut gone = BTreeSet::new();
    while gone.len() < 2 {
        let line = psub.chunk_str();
        let name = line.strip_prefix("0 ").unwrap_or_else(|| panic!("{line:?}"));
        gone.insert(name.trim_end().to_string());
    }
    assert_eq!(gone, BTreeSet::from(["q1".to_string(), "q2".to_string()]));
    assert_eq!(nodes.admin(1, "/check?cname=q1,q2").1, "{}\n");
}

/// A node killed by SIGKILL: its clients resume by seq on another node and
/// on the node once it is back, with nothing lost and nothing doubled.
#[test]
fn node_killed_and_restarted_clients_resume_by_seq() {
    let mut nodes = Nodes::start(2);
    let mut s = Sub::open(nodes.front(1), Kind::Stream, "k", 1);
    for m in 1..=3 {
        nodes.publish(0, "k", &format!("m{m}"));
    }
    assert_eq!(s.take(3), data(1, &["m1", "m2", "m3"]));
    nodes.kill(1);
    // The stream ended with the process (the kernel closed its sockets).
    if let Sub::Http(_, mut c, _) = s {
        c.read_to_eof();
    }
    for m in 4..=6 {
        nodes.publish(0, "k", &format!("m{m}"));
    }
    // Resume on n0 from the last seq seen + 1.
    let mut on0 = Sub::open(nodes.front(0), Kind::Sse, "k", 4);
    assert_eq!(on0.take(3), data(4, &["m4", "m5", "m6"]));
    nodes.restart(1);
    let mut on1 = Sub::open(nodes.front(1), Kind::Ws, "k", 4);
    assert_eq!(on1.take(3), data(4, &["m4", "m5", "m6"]));
    nodes.publish(1, "k", "m7");
    assert_eq!(on0.take(1), data(7, &["m7"]));
    assert_eq!(on1.take(1), data(7, &["m7"]));
    // The killed node's registry entry ages out: only live subscribers count.
    eventually("totals without the dead node's entry", || {
        json(&nodes.admin(0, "/info").1)["subscribers"] == 2
    });
}

/// Redis killed: publishes answer 503 with a clear body, subscribers stay
/// connected and get their noops; Redis back without its data: the epoch
/// reset reaches subscribers as `next_seq`, publishes flow again.
#[test]
fn redis_killed_then_restarted_empty_resets_subscribers() {
    let mut nodes = Nodes::start(2);
    let mut subs = vec![
        Sub::open(nodes.front(1), Kind::Stream, "e", 1),
        Sub::open(nodes.front(0), Kind::Ws, "e", 1),
    ];
    nodes.publish(0, "e", "before");
    for s in &mut subs {
        assert_eq!(s.take(1), data(1, &["before"]));
    }
    nodes.redis.kill();
    for i in 0..2 {
        let (code, body) = nodes.admin(i, "/pub?cname=e&content=lost");
        assert_eq!(code, 503, "{body}");
        assert!(body.starts_with("cluster: Redis "), "{body:?}");
    }
    // Still connected, still heartbeating: two noops each (polling_timeout 1).
    for s in &mut subs {
        for _ in 0..2 {
            let v = s.next_any();
            assert_eq!((&v["type"], &v["cname"]), (&json("\"noop\""), &json("\"e\"")), "{v}");
        }
    }
    nodes.redis.restart(false);
    // Redis lost the channel: the first publish starts a new epoch at 1.
    // It may land before a node has resubscribed (then that node's sync
    // reads it from history) or after (then it comes live): same bytes.
    let code = wait_for("a publish accepted again", || {
        let (code, _) = nodes.admin(0, "/pub?cname=e&content=after");
        (code == 200).then_some(code)
    });
    assert_eq!(code, 200);
    for i in 0..2 {
        reconnected(nodes.node(i), 2);
    }
    for s in &mut subs {
        assert_eq!(
            s.take(2),
            vec![
                ("next_seq".to_string(), 1, String::new()),
                ("data".to_string(), 1, "after".to_string())
            ]
        );
    }
    // Every fault counted in /metrics, each family with its HELP line.
    for i in 0..2 {
        let (_, text) = nodes.admin(i, "/metrics");
        assert_eq!(metric(&text, "comet_cluster_epoch_resets_total"), 1, "n{i}");
        assert_eq!(
            metric(&text, "comet_cluster_pubsub_lost_total{connection=\"data0\"}"),
            1,
            "n{i}"
        );
        assert_eq!(
            metric(&text, "comet_cluster_pubsub_lost_total{connection=\"control\"}"),
            1,
            "n{i}"
        );
        assert_eq!(
            metric(&text, "comet_cluster_pubsub_resyncs_total{connection=\"data0\"}"),
            2,
            "n{i}"
        );
        assert_eq!(
            metric(&text, "comet_cluster_pubsub_channels{connection=\"data0\"}"),
            1,
            "n{i}"
        );
        assert!(metric(&text, "comet_cluster_redis_errors_total") >= 1, "n{i}: {text}");
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE comet_cluster_"))
            .collect();
        assert!(families.len() >= 20, "{families:?}");
        for f in families {
            let name = f.split(' ').next().expect("name");
            assert!(text.contains(&format!("# HELP comet_cluster_{name} ")), "{name}");
        }
    }
    // Logged once per connection and outage, not once per retry.
    for i in 0..2 {
        let node = nodes.node(i);
        assert_eq!(node.log_lines("cluster: data connection 0 lost").len(), 1, "n{i}");
        assert_eq!(node.log_lines("cluster: control connection lost").len(), 1, "n{i}");
        assert!(
            node.log_lines("cluster: data connection 0 cannot reach Redis").len() <= 1,
            "n{i}"
        );
        assert_eq!(node.log_lines("cluster: Redis lost channel \"e\"").len(), 1, "n{i}");
    }
}

/// Redis killed and restarted with its data (AOF): no reset, seqs go on,
/// and what a node missed while it was resubscribing is filled from history.
#[test]
fn redis_restarted_with_its_data_subscribers_catch_up() {
    let mut nodes = Nodes::start_with(
        2,
        NodeOpts::default(),
        RedisOptions {
            aof: true,
            ..RedisOptions::default()
        },
    );
    let mut s = Sub::open(nodes.front(1), Kind::Sse, "d", 1);
    nodes.publish(0, "d", "m1");
    assert_eq!(s.take(1), data(1, &["m1"]));
    nodes.redis.restart(true);
    // Publishes on n0 as soon as it can: n1 may still be resubscribing.
    wait_for("a publish accepted again", || {
        (nodes.admin(0, "/pub?cname=d&content=m2").0 == 200).then_some(())
    });
    nodes.publish(0, "d", "m3");
    assert_eq!(s.take(2), data(2, &["m2", "m3"]));
    assert_eq!(nodes.metric(1, "comet_cluster_epoch_resets_total"), 0);
    // Every fault is logged once per connection, not once per retry.
    let lost = nodes.node(1).log_lines("cluster: data connection 0 lost");
    assert_eq!(lost.len(), 1, "{lost:#?}");
    let back = nodes
        .node(1)
        .log_lines("cluster: data connection 0 connected to Redis again");
    assert_eq!(back.len(), 1, "{back:#?}");
}

/// Redis stopped with SIGSTOP: publishes fail fast, the PUB/SUB connections
/// are found hung by their probe and replaced (logged once, counted); after
/// SIGCONT messages flow again.
#[test]
fn redis_paused_hung_connections_are_replaced() {
    let opts = NodeOpts {
        cluster: "  probe_interval_ms: 200\n  probe_timeout_ms: 300\n  connect_timeout_ms: 300\n".into(),
        ..NodeOpts::default()
    };
    let mut nodes = Nodes::start_with(2, opts, RedisOptions::default());
    let mut s = Sub::open(nodes.front(1), Kind::Stream, "h", 1);
    nodes.publish(0, "h", "m1");
    assert_eq!(s.take(1), data(1, &["m1"]));
    nodes.redis.pause();
    let (code, body) = nodes.admin(0, "/pub?cname=h&content=paused");
    assert_eq!(
        (code, body.as_str()),
        (503, "cluster: Redis did not answer within 300 ms\n")
    );
    nodes
        .node(1)
        .wait_log("cluster: data connection 0 lost (a probe through Redis did not come back)");
    nodes
        .node(1)
        .wait_log("cluster: control connection lost (a probe through Redis did not come back)");
    eventually("the hung connection counted", || {
        nodes.metric(1, "comet_cluster_pubsub_hung_total{connection=\"data0\"}") >= 1
    });
    nodes.redis.resume();
    reconnected(nodes.node(1), 2);
    wait_for("a publish accepted again", || {
        (nodes.admin(0, "/pub?cname=h&content=m2").0 == 200).then_some(())
    });
    // The publish that timed out may have run once Redis resumed (it was
    // in its socket): if so it is seq 2, and everyone sees it in order.
    let top: String = nodes.redis.cmd(&["HGET", "comet:{h}:m", "s"]);
    let got = s.take(top.parse::<usize>().expect("seq") - 1);
    let last = got.last().expect("one at least").clone();
    assert_eq!(
        last,
        ("data".to_string(), top.parse::<i64>().expect("seq"), "m2".to_string())
    );
    let hung = nodes.node(1).log_lines("a probe through Redis did not come back");
    assert_eq!(hung.len(), 2, "data and control connection, once each: {hung:#?}");
}

/// `/pub_batch` on one node: every node's subscribers get each channel's
/// messages in body order with Redis's seqs, interleaved with single
/// publishes from other nodes; Redis down, the batch is refused whole.
#[test]
fn batch_publish_reaches_every_node_in_body_order() {
    let mut nodes = Nodes::start(3);
    let mut a = [
        Sub::open(nodes.front(1), Kind::Stream, "ba", 1),
        Sub::open(nodes.front(2), Kind::Ws, "ba", 1),
    ];
    let mut b = Sub::open(nodes.front(2), Kind::Sse, "bb", 1);
    nodes.publish(1, "ba", "single");
    let body = "ba\ta1\nbb\tb1\nba\ta2\nba\ta3\nbb\tb2\n";
    assert_eq!(
        nodes.batch(0, body),
        (200, "{\"type\":\"ok\",\"published\":5}\n".to_string())
    );
    nodes.publish(2, "ba", "after");
    for s in &mut a {
        assert_eq!(s.take(5), data(1, &["single", "a1", "a2", "a3", "after"]));
    }
    assert_eq!(b.take(2), data(1, &["b1", "b2"]));
    // History in Redis: a long poll on n0 replays the batch too.
    let got: Vec<_> = poll(nodes.front(0), "bb", 1, None).iter().map(tuple).collect();
    assert_eq!(got, data(1, &["b1", "b2"]));
    // Redis gone: the batch is refused whole (503), never delivered locally.
    nodes.redis.kill();
    let (code, reply) = nodes.batch(0, "ba\tlost\n");
    assert_eq!(code, 503, "{reply}");
    assert!(
        reply.starts_with("cluster: stopped after 0 applied: Redis "),
        "{reply:?}"
    );
}
