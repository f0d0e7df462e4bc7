//! The `cluster` section of the configuration: which Redis, how this node
//! names itself there, the `/sign` secret, and every timeout of the Redis layer.
//!
//! This module only describes and validates settings; it opens no connection.
//! It is nested as `cluster` in the main `Config`, so every key is reported
//! as `cluster.<key>`; comet.yaml documents the section (a config test keeps
//! it equal to the defaults).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Most channels one SUBSCRIBE or UNSUBSCRIBE may carry. Redis answers a
/// SUBSCRIBE with one confirmation per channel, all queued in the subscriber's
/// output buffer while the command runs: one SUBSCRIBE of ~700k channels
/// overflows Redis's default pubsub limit and the connection is killed
/// (scaleout-research §4). Centrifugo uses the same bound.
pub const MAX_SUBSCRIBE_BATCH: usize = 512;

/// Longest accepted `cluster.prefix`.
pub const MAX_PREFIX_BYTES: usize = 64;

/// Longest accepted `cluster.node_id`.
pub const MAX_NODE_ID_BYTES: usize = 64;

/// Shortest accepted `cluster.hmac_secret`, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// Cluster mode: N comet nodes sharing one Redis.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port/db`; empty (the default) means a
    /// single node with no Redis at all.
    pub redis: String,
    /// Prefix of every Redis key and PUB/SUB channel comet uses (default
    /// `comet`). Nodes sharing a prefix share one channel space.
    pub prefix: String,
    /// This node's name in Redis (`[A-Za-z0-9_.-]`); empty (the default) means
    /// 16 random hex characters chosen at start.
    pub node_id: String,
    /// The shared key of stateless `/sign` tokens; every node must have the same.
    pub hmac_secret: String,
    /// The previous key during a rotation: tokens made with it are still
    /// accepted; empty means none.
    pub hmac_secret_previous: String,
    /// Bound of every Redis command (publish, history, sign, ...); past it the
    /// call fails with a timeout and the admin side answers 503. Default 500.
    pub call_timeout_ms: u64,
    /// Bound of one connection attempt (TCP connect plus handshake). Default 1000.
    pub connect_timeout_ms: u64,
    /// First delay before reconnecting a lost PUB/SUB connection; doubled per
    /// failed attempt, with up to 50% random jitter. Default 100.
    pub reconnect_min_ms: u64,
    /// Cap of that delay. Default 5000.
    pub reconnect_max_ms: u64,
    /// Channels per SUBSCRIBE/UNSUBSCRIBE, at most 512. Default 512.
    pub subscribe_batch: usize,
    /// SUBSCRIBE batches in flight at once on one connection. Default 16.
    pub subscribe_concurrency: usize,
    /// Most time a channel waits in the subscribe queue for its batch to fill. Default 1.
    pub subscribe_linger_ms: u64,
    /// Dedicated PUB/SUB connections for channel messages; a channel always
    /// uses the same one (hash of its name). Default 1.
    pub data_connections: usize,
    /// A PUB/SUB connection that received nothing for this long gets a probe
    /// published to its own service channel. Default 5000.
    pub probe_interval_ms: u64,
    /// If nothing at all arrives within this long after a probe, the
    /// connection is declared hung and replaced. Default 3000.
    pub probe_timeout_ms: u64,
    /// How often a node writes its subscriber and channel counts to the node
    /// registry (`<prefix>:nodes`). Default 2000.
    pub node_report_interval_ms: u64,
    /// A registry entry older than this no longer counts in cluster-wide
    /// totals and surveys. Default 6000.
    pub node_stale_ms: u64,
    /// How often the elected reaper expires idle channels. Default 1000.
    pub reaper_interval_ms: u64,
    /// How often a node raises the index expiry of the channels it holds to
    /// now + their local idle time + twice this interval. Default 10000.
    pub index_refresh_interval_ms: u64,
    /// How long `/info?cname=` waits for the other nodes' answers. Default 300.
    pub survey_timeout_ms: u64,
    /// Most messages in one publish script call; a batch is split into calls of
    /// at most this many messages, channels kept whole. Default 1000.
    pub publish_batch_messages: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis: String::new(),
            prefix: "comet".to_string(),
            node_id: String::new(),
            hmac_secret: String::new(),
            hmac_secret_previous: String::new(),
            call_timeout_ms: 500,
            connect_timeout_ms: 1000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5000,
            subscribe_batch: MAX_SUBSCRIBE_BATCH,
            subscribe_concurrency: 16,
            subscribe_linger_ms: 1,
            data_connections: 1,
            probe_interval_ms: 5000,
            probe_timeout_ms: 3000,
            node_report_interval_ms: 2000,
            node_stale_ms: 6000,
            reaper_interval_ms: 1000,
            index_refresh_interval_ms: 10_000,
            survey_timeout_ms: 300,
            publish_batch_messages: 1000,
        }
    }
}

/// Whether `s` may be a node id or prefix: ASCII letters, digits, `_`, `.`, `-`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn invalid(key: &str, rule: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: format!("cluster.{key}"),
        rule: rule.into(),
    }
}

impl ClusterConfig {
    /// Whether cluster mode is on (`redis` is set).
    pub fn enabled(&self) -> bool {
        !self.redis.is_empty()
    }

    /// Checks every rule; the error names the key (`cluster.call_timeout_ms`).
    /// Nothing is checked beyond the syntax of `redis` when cluster mode is off,
    /// except that the timeouts stay sane, so a config can be prepared before
    /// Redis exists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled() {
            if !self.redis.starts_with("redis://") {
                return Err(invalid(
                    "redis",
                    "must be a redis:// URL (redis://[user:password@]host:port/db), or empty for a single node",
                ));
            }
            if let Err(e) = redis::Client::open(self.redis.as_str()) {
                return Err(invalid("redis", format!("is not a valid Redis URL: {e}")));
            }
            if self.hmac_secret.len() < MIN_SECRET_BYTES {
                return Err(invalid(
                    "hmac_secret",
                    format!(
                        "must be at least {MIN_SECRET_BYTES} bytes when cluster.redis is set: every node signs /sign tokens with it"
                    ),
                ));
            }
        }
        if !is_name(&self.prefix) || self.prefix.len() > MAX_PREFIX_BYTES {
            return Err(invalid(
                "prefix",
                format!(
                    "must be 1 to {MAX_PREFIX_BYTES} of [A-Za-z0-9_.-] (got {:?})",
                    self.prefix
                ),
            ));
        }
        if !self.node_id.is_empty() && (!is_name(&self.node_id) || self.node_id.len() > MAX_NODE_ID_BYTES) {
            return Err(invalid(
                "node_id",
                format!(
                    "must be empty (random) or 1 to {MAX_NODE_ID_BYTES} of [A-Za-z0-9_.-] (got {:?})",
                    self.node_id
                ),
            ));
        }
        if !self.hmac_secret_previous.is_empty() && self.hmac_secret_previous.len() < MIN_SECRET_BYTES {
            return Err(invalid(
                "hmac_secret_previous",
                format!("must be empty or at least {MIN_SECRET_BYTES} bytes"),
            ));
        }
        for (key, value) in [
            ("call_timeout_ms", self.call_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("reconnect_min_ms", self.reconnect_min_ms),
            ("probe_interval_ms", self.probe_interval_ms),
            ("probe_timeout_ms", self.probe_timeout_ms),
            ("node_report_interval_ms", self.node_report_interval_ms),
            ("reaper_interval_ms", self.reaper_interval_ms),
            ("index_refresh_interval_ms", self.index_refresh_interval_ms),
            ("survey_timeout_ms", self.survey_timeout_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be > 0"));
            }
        }
        if self.reconnect_max_ms < self.reconnect_min_ms {
            return Err(invalid(
                "reconnect_max_ms",
                format!("must be >= cluster.reconnect_min_ms ({})", self.reconnect_min_ms),
            ));
        }
        if self.node_stale_ms <= self.node_report_interval_ms {
            return Err(invalid(
                "node_stale_ms",
                format!(
                    "must be > cluster.node_report_interval_ms ({}), or live nodes would look dead",
                    self.node_report_interval_ms
                ),
            ));
        }
        if !(1..=MAX_SUBSCRIBE_BATCH).contains(&self.subscribe_batch) {
            return Err(invalid(
                "subscribe_batch",
                format!(
                    "must be between 1 and {MAX_SUBSCRIBE_BATCH} (got {})",
                    self.subscribe_batch
                ),
            ));
        }
        if !(1..=256).contains(&self.subscribe_concurrency) {
            return Err(invalid(
                "subscribe_concurrency",
                format!("must be between 1 and 256 (got {})", self.subscribe_concurrency),
            ));
        }
        if !(1..=64).contains(&self.data_connections) {
            return Err(invalid(
                "data_connections",
                format!("must be between 1 and 64 (got {})", self.data_connections),
            ));
        }
        if !(1..=100_000).contains(&self.publish_batch_messages) {
            return Err(invalid(
                "publish_batch_messages",
                format!("must be between 1 and 100000 (got {})", self.publish_batch_messages),
            ));
        }
        Ok(())
    }

    /// `call_timeout_ms` as a duration.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(c: &ClusterConfig) -> String {
        match c.validate() {
            Err(ConfigError::Invalid { key, rule }) => format!("{key} {rule}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn enabled() -> ClusterConfig {
        ClusterConfig {
            redis: "redis://127.0.0.1:6379/0".into(),
            hmac_secret: "0123456789abcdef0123".into(),
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn the_default_is_a_single_node() {
        assert!(ClusterConfig::default().validate().is_ok());
        assert!(!ClusterConfig::default().enabled());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = serde_norway::from_str::<ClusterConfig>("redis_url: x\n").expect_err("unknown key");
        assert!(e.to_string().contains("unknown field `redis_url`"), "{e}");
    }

    #[test]
    fn enabled_config_with_password_and_db_is_valid() {
        let mut c = enabled();
        c.redis = "redis://:s3cret@127.0.0.1:6380/3".into();
        c.node_id = "node-a.1".into();
        assert!(c.validate().is_ok());
        assert!(c.enabled());
    }

    #[test]
    fn each_rule_names_its_key() {
        type Change = fn(&mut ClusterConfig);
        let cases: Vec<(Change, &str)> = vec![
            (
                (|c| c.redis = "http://x".into()),
                "cluster.redis must be a redis:// URL",
            ),
            (
                (|c| c.redis = "redis://h:notaport/0".into()),
                "cluster.redis is not a valid Redis URL",
            ),
            (
                (|c| c.hmac_secret = "short".into()),
                "cluster.hmac_secret must be at least 16 bytes",
            ),
            (
                (|c| c.hmac_secret_previous = "short".into()),
                "cluster.hmac_secret_previous must be empty",
            ),
            ((|c| c.prefix = "".into()), "cluster.prefix must be 1 to 64"),
            ((|c| c.prefix = "a b".into()), "cluster.prefix must be 1 to 64"),
            ((|c| c.prefix = "a{b}".into()), "cluster.prefix must be 1 to 64"),
            ((|c| c.node_id = "a:b".into()), "cluster.node_id must be empty (random)"),
            (
                (|c| c.node_id = "x".repeat(65)),
                "cluster.node_id must be empty (random)",
            ),
            ((|c| c.call_timeout_ms = 0), "cluster.call_timeout_ms must be > 0"),
            ((|c| c.probe_timeout_ms = 0), "cluster.probe_timeout_ms must be > 0"),
            (
                (|c| c.reconnect_max_ms = 10),
                "cluster.reconnect_max_ms must be >= cluster.reconnect_min_ms (100)",
            ),
            (
                (|c| c.node_stale_ms = 2000),
                "cluster.node_stale_ms must be > cluster.node_report_interval_ms (2000)",
            ),
            (
                (|c| c.subscribe_batch = 513),
                "cluster.subscribe_batch must be between 1 and 512 (got 513)",
            ),
            (
                (|c| c.subscribe_batch = 0),
                "cluster.subscribe_batch must be between 1 and 512 (got 0)",
            ),
            (
                (|c| c.subscribe_concurrency = 0),
                "cluster.subscribe_concurrency must be between 1 and 256",
            ),
            (
                (|c| c.data_connections = 0),
                "cluster.data_connections must be between 1 and 64",
            ),
            (
                (|c| c.publish_batch_messages = 0),
                "cluster.publish_batch_messages must be between 1",
            ),
        ];
        for (change, want) in cases {
            let mut c = enabled();
            change(&mut c);
            let got = rule_of(&c);
            assert!(got.starts_with(want), "got {got:?}, want prefix {want:?}");
        }
    }

    #[test]
    fn single_node_needs_no_secret() {
        let c = ClusterConfig::default();
        assert!(c.validate().is_ok());
    }
}
