//! `/ready` in cluster mode follows the node's Redis PUB/SUB connections:
//! 503 with the reason while Redis is gone, 200 again once every connection
//! resubscribed. `/health` stays 200 throughout.

use crate::support::binary::Binary;
use crate::support::redis::RedisServer;
use crate::support::{eventually, get};

fn node_yaml(redis: &RedisServer) -> String {
    format!(
        "log_level: info\nworkers: 1\nfront:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n  allow: []\n  deny: []\n\
         cluster:\n  redis: {}\n  hmac_secret: 0123456789abcdef0123456789abcdef\n  \
         reconnect_min_ms: 50\n  reconnect_max_ms: 200\n",
        redis.url()
    )
}

fn probe(bin: &Binary, path: &str) -> (String, String) {
    let (status, _, body) = get(bin.admin(), path);
    (status, body)
}

#[test]
fn ready_follows_the_redis_connections() {
    let mut redis = RedisServer::start();
    let bin = Binary::start(&node_yaml(&redis));
    eventually("ready once subscribed", || probe(&bin, "/ready").0 == "HTTP/1.1 200 OK");

    redis.kill();
    eventually("not ready without Redis", || {
        probe(&bin, "/ready").0 == "HTTP/1.1 503 Service Unavailable"
    });
    let (_, why) = probe(&bin, "/ready");
    assert!(
        why.starts_with("cluster: ") && why.contains("Redis PUB/SUB connections down"),
        "{why:?}"
    );
    assert_eq!(probe(&bin, "/health"), ("HTTP/1.1 200 OK".into(), "ok\n".into()));

    redis.restart(false);
    eventually("ready again", || probe(&bin, "/ready").0 == "HTTP/1.1 200 OK");
}
