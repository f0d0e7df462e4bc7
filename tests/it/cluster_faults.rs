//! Faults in cluster mode against a real redis-server: Redis killed and
//! restarted (without data, and with AOF), SIGSTOPped and resumed, pub/sub
//! clients killed, and a node started while Redis is down. Calls must fail
//! fast with a typed error, connections must come back by themselves, and
//! every channel must be confirmed again. Counts, not times; every wait has a
//! deadline.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::cluster::{config, eventually, Node, PARAMS};
use crate::support::redis::{RedisOptions, RedisServer};
use comet::cluster::{ClusterError, ClusterEvent, ConnId, LostReason};

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
async fn redis_killed_then_restarted_fails_fast_then_resubscribes_everything() {
    let mut redis = RedisServer::start();
    let mut cfg = config(&redis, "n");
    cfg.call_timeout_ms = 300;
    cfg.reconnect_max_ms = 500;
    let node = Node::start(&cfg, PARAMS);
    node.wait_resyncs(2).await;
    for i in 0..1000 {
        node.cluster.subscriptions().join(format!("k{i}"));
    }
    node.wait_confirmations(1000).await;
    let st = node.cluster.store();
    st.publish("k1", "before").await.expect("publish");
    redis.kill();
    // Every call fails, each within its bound (plus scheduling slack).
    for _ in 0..5 {
        let t = Instant::now();
        let e = st.publish("k1", "during").await.expect_err("Redis is down");
        assert!(e.is_unavailable(), "{e}");
        assert!(
            t.elapsed() < Duration::from_millis(300 + 1000),
            "took {:?}",
            t.elapsed()
        );
    }
    let ev = node
        .wait_events("Lost of the data connection", |ev| {
            ev.iter().any(|e| {
                matches!(
                    e,
                    ClusterEvent::Lost {
                        conn: ConnId::Data(0),
                        ..
                    }
                )
            })
        })
        .await;
    let lost_at = ev
        .iter()
        .position(|e| {
            matches!(
                e,
                ClusterEvent::Lost {
                    conn: ConnId::Data(0),
                    ..
                }
            )
        })
        .expect("lost");
    assert!(matches!(
        ev[lost_at],
        ClusterEvent::Lost {
            channels: 1000,
            reason: LostReason::Disconnected,
            ..
        }
    ));
    redis.restart(false);
    let ev = node
        .wait_events("resync of 1000 channels", |ev| {
            ev[lost_at..].iter().any(|e| {
                matches!(
                    e,
                    ClusterEvent::Resynced {
                        conn: ConnId::Data(0),
                        channels: 1000,
                        ..
                    }
                )
            })
        })
        .await;
    assert_eq!(confirmed_after(&ev, lost_at).len(), 1000, "every channel reconfirmed");
    // Calls recover by themselves.
    let p = eventually("publishing works again", || async {
        st.publish("k1", "after").await.ok()
    })
    .await;
    assert!(p.created, "Redis lost everything: a new epoch");
    node.wait_events("the new message", |ev| {
        ev[lost_at..].iter().any(|e| matches!(e, ClusterEvent::Message { .. }))
    })
    .await;
    let c = node.cluster.subscriptions().counters();
    let (_, data) = c
        .iter()
        .find(|(id, _)| *id == ConnId::Data(0))
        .expect("data connection");
    assert_eq!((data.lost, data.live, data.resyncs), (1, 1000, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_without_data_gives_a_new_epoch_with_aof_the_same_one() {
    // Without persistence: the next publish starts a new life at seq 1.
    let mut redis = RedisServer::start();
    let node = Node::start(&config(&redis, "n"), PARAMS);
    let st = node.cluster.store();
    let a = st.publish("e", "1").await.expect("publish");
    st.publish("e", "2").await.expect("publish");
    redis.restart(false);
    let b = eventually("publish after restart", || async { st.publish("e", "3").await.ok() }).await;
    assert_eq!((b.seq, b.created), (1, true));
    assert_ne!(b.epoch, a.epoch, "the node sees a reset");

    // With AOF: seq, epoch and history survive a kill -9.
    let mut durable = RedisServer::start_with(RedisOptions {
        aof: true,
        ..RedisOptions::default()
    });
    let node = Node::start(&config(&durable, "n"), PARAMS);
    let st = node.cluster.store();
    let a = st.publish("e", "1").await.expect("publish");
    st.publish("e", "2").await.expect("publish");
    durable.restart(true);
    let b = eventually("publish after restart", || async { st.publish("e", "3").await.ok() }).await;
    assert_eq!((b.seq, b.created, b.epoch), (3, false, a.epoch));
    let h = st.history("e", None).await.expect("history");
    assert_eq!(h.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstopped_redis_times_out_and_the_probe_replaces_the_connection() {
    let mut redis = RedisServer::start();
    let mut cfg = config(&redis, "n");
    cfg.call_timeout_ms = 300;
    cfg.connect_timeout_ms = 300;
    cfg.probe_interval_ms = 200;
    cfg.probe_timeout_ms = 300;
    cfg.reconnect_max_ms = 300;
    let node = Node::start(&cfg, PARAMS);
    node.wait_resyncs(2).await;
    for i in 0..100 {
        node.cluster.subscriptions().join(format!("s{i}"));
    }
    node.wait_confirmations(100).await;
    let st = node.cluster.store();
    redis.pause();
    let t = Instant::now();
    let e = st.publish("s1", "hung").await.expect_err("Redis is stopped");
    assert!(matches!(e, ClusterError::Timeout(_)), "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(300 + 1000),
        "took {:?}",
        t.elapsed()
    );
    let ev = node
        .wait_events("the probe declaring the data connection hung", |ev| {
            ev.iter().any(|e| {
                matches!(
                    e,
                    ClusterEvent::Lost {
                        conn: ConnId::Data(0),
                        reason: LostReason::Hung,
                        ..
                    }
                )
            })
        })
        .await;
    let lost_at = ev.len();
    redis.resume();
    node.wait_events("resync after SIGCONT", |ev| {
        ev[lost_at..].iter().any(|e| {
            matches!(
                e,
                ClusterEvent::Resynced {
                    conn: ConnId::Data(0),
                    channels: 100,
                    ..
                }
            )
        })
    })
    .await;
    let p = eventually("publishing works again", || async {
        st.publish("s2", "back").await.ok()
    })
    .await;
    node.wait_events("the message after resume", |ev| {
        ev[lost_at..]
            .iter()
            .any(|e| matches!(e, ClusterEvent::Message { cname, seq, .. } if &**cname == "s2" && *seq == p.seq))
    })
    .await;
    let c = node.cluster.subscriptions().counters();
    let (_, data) = c
        .iter()
        .find(|(id, _)| *id == ConnId::Data(0))
        .expect("data connection");
    assert!(data.hung >= 1 && data.probes >= 1, "{data:?}");
    assert_eq!(data.live, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_pubsub_clients_resubscribe_by_themselves() {
    let redis = RedisServer::start();
    let node = Node::start(&config(&redis, "n"), PARAMS);
    node.wait_resyncs(2).await;
    for i in 0..300 {
        node.cluster.subscriptions().join(format!("p{i}"));
    }
    node.wait_confirmations(300).await;
    let mark = node.events().len();
    let killed: i64 = redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert_eq!(killed, 2, "the data and the control connection");
    node.wait_events("both connections resynced", |ev| {
        let r: Vec<_> = ev[mark..]
            .iter()
            .filter_map(|e| match e {
                ClusterEvent::Resynced { conn, channels, .. } => Some((*conn, *channels)),
                _ => None,
            })
            .collect();
        r.contains(&(ConnId::Data(0), 300)) && r.iter().any(|(c, _)| *c == ConnId::Control)
    })
    .await;
    let ev = node.events();
    assert_eq!(confirmed_after(&ev, mark).len(), 300);
    let lost: Vec<_> = ev[mark..]
        .iter()
        .filter(|e| matches!(e, ClusterEvent::Lost { .. }))
        .collect();
    assert_eq!(lost.len(), 2, "one Lost per connection: {lost:?}");
    // Presence flows again on the control connection.
    node.cluster.store().sign("fresh", 0).await.expect("sign");
    node.wait_events("presence after reconnect", |ev| {
        ev[mark..]
            .iter()
            .any(|e| matches!(e, ClusterEvent::Presence { online: true, cname } if cname == "fresh"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_while_redis_is_down_connects_when_it_appears() {
    let mut redis = RedisServer::start();
    redis.kill();
    let mut cfg = config(&redis, "n");
    cfg.reconnect_max_ms = 300;
    let node = Node::start(&cfg, PARAMS);
    node.cluster.subscriptions().join("early");
    let e = node.cluster.store().publish("early", "x").await.expect_err("down");
    assert!(e.is_unavailable());
    redis.restart(false);
    node.wait_events("confirmation", |ev| {
        ev.iter()
            .any(|e| matches!(e, ClusterEvent::Confirmed { cname } if &**cname == "early"))
    })
    .await;
    let ev = node.events();
    assert!(
        !ev.iter().any(|e| matches!(e, ClusterEvent::Lost { .. })),
        "never up, never lost"
    );
}
