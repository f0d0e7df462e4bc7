//! Admin commands through Redis (`comet::cluster::intake::apply`) against a
//! real redis-server: each `ChannelCmd` answers what the local table would,
//! tokens are the cluster's, a missing channel is `NoSuchChannel`, and a
//! Redis that is gone is `Unavailable`.

use std::sync::Arc;

use comet::cluster::intake::apply;
use comet::cluster::ClusterEvent;
use comet::intake::{ChannelCmd, CmdReply, IntakeError};

use crate::support::cluster::{config, Node, PARAMS};
use crate::support::redis::RedisServer;

fn publish(cname: &str, content: &str) -> ChannelCmd {
    ChannelCmd::Publish {
        cname: cname.into(),
        content: Arc::from(content),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_command_answers_like_the_local_table() {
    let mut redis = RedisServer::start();
    let node = Node::start(&config(&redis, "n"), PARAMS);
    node.wait_resyncs(2).await;
    node.cluster.subscriptions().join("a");
    node.wait_confirmations(1).await;
    let c = &node.cluster;
    assert_eq!(apply(c, publish("a", "one")).await, Ok(CmdReply::Published(1)));
    let batch = ChannelCmd::PublishBatch(vec![
        ("a".into(), Arc::from("two")),
        ("b".into(), Arc::from("x")),
        ("a".into(), Arc::from("three")),
    ]);
    assert_eq!(apply(c, batch).await, Ok(CmdReply::PublishedBatch(vec![2, 1, 3])));
    let Ok(CmdReply::Signed(s)) = apply(
        c,
        ChannelCmd::Sign {
            cname: "a".into(),
            expires: 0,
        },
    )
    .await
    else {
        panic!("sign");
    };
    assert_eq!((s.seq, s.expires), (1, 30));
    assert_eq!(s.token, c.token("a"));
    assert!(c.verify_token("a", &s.token));
    let broadcast = ChannelCmd::Broadcast {
        content: Arc::from("all"),
    };
    assert_eq!(apply(c, broadcast).await, Ok(CmdReply::Broadcast(2)));
    assert_eq!(
        apply(c, ChannelCmd::Clear { cname: "b".into() }).await,
        Ok(CmdReply::Cleared(3))
    );
    assert_eq!(
        apply(c, ChannelCmd::Close { cname: "a".into() }).await,
        Ok(CmdReply::Closed(5))
    );
    assert_eq!(
        apply(c, ChannelCmd::Close { cname: "a".into() }).await,
        Err(IntakeError::NoSuchChannel("a".into()))
    );
    assert_eq!(
        apply(c, ChannelCmd::Clear { cname: "zz".into() }).await,
        Err(IntakeError::NoSuchChannel("zz".into()))
    );
    // Deliveries come back from Redis, this node included: a's 1..4 then close.
    node.wait_events("a's close", |ev| {
        ev.iter().any(|e| matches!(e, ClusterEvent::Control { .. }))
    })
    .await;
    assert_eq!(
        node.messages("a"),
        vec![
            (1, "one".to_string()),
            (2, "two".to_string()),
            (3, "three".to_string()),
            (4, "all".to_string())
        ]
    );
    redis.kill();
    match apply(c, publish("a", "gone")).await {
        Err(IntakeError::Unavailable(why)) => assert!(why.starts_with("cluster: "), "{why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
