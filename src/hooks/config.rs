//! `hooks`: where and how comet calls the application, the defaults and the
//! validation of those keys, and the one-time parsing of the two URLs.
//!
//! This file only describes the configuration: it opens no connection.

use hyper::Uri;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The dotted name of this section in the main configuration.
pub const SECTION: &str = "hooks";

/// What an authorize call that got no answer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The subscriber is refused (fail closed; the default).
    Refuse,
    /// The subscriber is let in (fail open).
    Allow,
}

/// Calls from comet to the application: the authorize hook and the event
/// hook. Both are off while their URL is empty.
///
/// Only `http://` URLs are accepted: comet speaks plain HTTP, so put the
/// application (or a TLS-terminating proxy in front of it) on the same
/// host or a private network. Each URL is parsed once, at start.
///
/// Defaults (also the documented values): `authorize_url: ""`,
/// `authorize_timeout_ms: 1000`, `authorize_concurrency: 32`,
/// `authorize_queue_max: 1024`, `authorize_cache_secs: 60`,
/// `authorize_cache_max: 100000`, `authorize_on_error: refuse`,
/// `events_url: ""`, `events_batch_max: 100`, `events_batch_ms: 200`,
/// `events_queue_max: 100000`, `events_timeout_ms: 5000`,
/// `events_publish: false`, `retry_initial_ms: 100`, `retry_max_ms: 10000`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// `http://host[:port]/path` POSTed `{cname, token, ip, transport}`
    /// before a subscription starts; empty turns the hook off.
    pub authorize_url: String,
    /// Milliseconds a subscriber waits for the verdict, queueing for a free
    /// request slot included; past it `authorize_on_error` applies.
    pub authorize_timeout_ms: u64,
    /// Most authorize requests in flight at once.
    pub authorize_concurrency: usize,
    /// Most authorize checks waiting for a free request slot; one more is
    /// decided at once by `authorize_on_error` (and counted as `queue_full`).
    pub authorize_queue_max: usize,
    /// Seconds an application answer is reused for the same (cname, token);
    /// 0 turns the cache off. 5xx answers are never cached.
    pub authorize_cache_secs: u32,
    /// Most cached answers; the oldest goes first.
    pub authorize_cache_max: usize,
    /// `refuse` or `allow`: the verdict when the application does not answer
    /// (timeout, connection error, full queue).
    pub authorize_on_error: OnError,
    /// `http://host[:port]/path` POSTed batches of events (a JSON array);
    /// empty turns the hook off.
    pub events_url: String,
    /// Most events in one POST.
    pub events_batch_max: usize,
    /// Milliseconds a batch waits, from its first event, for more events
    /// (unless it is full sooner).
    pub events_batch_ms: u64,
    /// Most events waiting to be sent; past it the oldest are dropped.
    pub events_queue_max: usize,
    /// Milliseconds one events POST may take before it counts as failed.
    pub events_timeout_ms: u64,
    /// Also send a `publish` event for every published message.
    pub events_publish: bool,
    /// Milliseconds before the first retry of a failed events POST; doubles
    /// at each failure up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    /// Longest wait between two attempts, in milliseconds.
    pub retry_max_ms: u64,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            authorize_url: String::new(),
            authorize_timeout_ms: 1000,
            authorize_concurrency: 32,
            authorize_queue_max: 1024,
            authorize_cache_secs: 60,
            authorize_cache_max: 100_000,
            authorize_on_error: OnError::Refuse,
            events_url: String::new(),
            events_batch_max: 100,
            events_batch_ms: 200,
            events_queue_max: 100_000,
            events_timeout_ms: 5000,
            events_publish: false,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
        }
    }
}

/// Upper bound of every millisecond key (ten minutes).
pub const MAX_MS: u64 = 600_000;
/// Most accepted `hooks.authorize_concurrency`.
pub const MAX_CONCURRENCY: usize = 4096;
/// Most accepted `hooks.events_batch_max`.
pub const MAX_BATCH: usize = 100_000;

impl HooksConfig {
    /// Checks every rule, naming the offending key; the URLs are parsed here
    /// and again (the same way) by the hooks at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.authorize_url.is_empty() {
            parse_url(&self.authorize_url, "authorize_url")?;
        }
        if !self.events_url.is_empty() {
            parse_url(&self.events_url, "events_url")?;
        }
        for (key, value) in [
            ("authorize_timeout_ms", self.authorize_timeout_ms),
            ("events_timeout_ms", self.events_timeout_ms),
            ("retry_initial_ms", self.retry_initial_ms),
            ("retry_max_ms", self.retry_max_ms),
        ] {
            if !(1..=MAX_MS).contains(&value) {
                return Err(invalid(key, format!("must be between 1 and {MAX_MS} (got {value})")));
            }
        }
        if self.events_batch_ms > MAX_MS {
            return Err(invalid(
                "events_batch_ms",
                format!("must be at most {MAX_MS} (got {})", self.events_batch_ms),
            ));
        }
        if self.retry_initial_ms > self.retry_max_ms {
            return Err(invalid(
                "retry_initial_ms",
                format!(
                    "must not exceed {SECTION}.retry_max_ms ({} > {})",
                    self.retry_initial_ms, self.retry_max_ms
                ),
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.authorize_concurrency) {
            return Err(invalid(
                "authorize_concurrency",
                format!(
                    "must be between 1 and {MAX_CONCURRENCY} (got {})",
                    self.authorize_concurrency
                ),
            ));
        }
        if self.authorize_cache_secs > 0 && self.authorize_cache_max == 0 {
            return Err(invalid(
                "authorize_cache_max",
                format!("must be > 0 when {SECTION}.authorize_cache_secs is set"),
            ));
        }
        if !(1..=MAX_BATCH).contains(&self.events_batch_max) {
            return Err(invalid(
                "events_batch_max",
                format!("must be between 1 and {MAX_BATCH} (got {})", self.events_batch_max),
            ));
        }
        if self.events_queue_max < self.events_batch_max {
            return Err(invalid(
                "events_queue_max",
                format!(
                    "must be at least {SECTION}.events_batch_max ({} < {})",
                    self.events_queue_max, self.events_batch_max
                ),
            ));
        }
        Ok(())
    }
}

/// `hooks.<key> <rule>`.
fn invalid(key: &str, rule: String) -> ConfigError {
    ConfigError::Invalid {
        key: format!("{SECTION}.{key}"),
        rule,
    }
}

/// Parses a hook URL: `http://host[:port][/path][?query]`, nothing else (no
/// `https`, no user info, no fragment). `key` names it in the error.
pub fn parse_url(url: &str, key: &str) -> Result<Uri, ConfigError> {
    let bad = |why: &str| invalid(key, format!("{why} (got {url:?})"));
    if url.contains('#') {
        return Err(bad("must not have a fragment"));
    }
    let uri: Uri = url.parse().map_err(|e| bad(&format!("must be an http:// URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad(
            "must start with http:// (comet speaks plain HTTP: terminate TLS next to the application)",
        ));
    }
    let authority = uri.authority().ok_or_else(|| bad("must name a host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("must not carry user info"));
    }
    if authority.host().is_empty() {
        return Err(bad("must name a host"));
    }
    if authority.port_u16() == Some(0) {
        return Err(bad("must not use port 0"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(c: HooksConfig) -> String {
        c.validate().expect_err("refused").to_string()
    }

    #[test]
    fn defaults_validate_and_parse_from_yaml() {
        assert_eq!(HooksConfig::default().validate().map_err(|e| e.to_string()), Ok(()));
        let c: HooksConfig = serde_norway::from_str(
            "authorize_url: http://127.0.0.1:9000/auth\nauthorize_on_error: allow\nevents_publish: true\n",
        )
        .expect("yaml");
        assert_eq!(c.authorize_on_error, OnError::Allow);
        assert!(c.events_publish);
        assert_eq!(c.events_batch_max, 100);
        assert_eq!(c.validate().map_err(|e| e.to_string()), Ok(()));
        let e = serde_norway::from_str::<HooksConfig>("authorize_urls: x\n").expect_err("unknown key");
        assert!(e.to_string().contains("unknown field `authorize_urls`"), "{e}");
        let e = serde_norway::from_str::<HooksConfig>("authorize_on_error: maybe\n").expect_err("bad policy");
        assert!(e.to_string().contains("unknown variant `maybe`"), "{e}");
    }

    #[test]
    fn urls_are_plain_http_with_a_host() {
        let uri = parse_url("http://app.internal:8080/hooks/auth?x=1", "authorize_url").expect("valid");
        assert_eq!(
            (uri.host(), uri.port_u16(), uri.path()),
            (Some("app.internal"), Some(8080), "/hooks/auth")
        );
        assert!(parse_url("http://[::1]/", "events_url").is_ok());
        assert!(parse_url("http://127.0.0.1", "events_url").is_ok());
        let cases = [
            ("https://app/x", "hooks.authorize_url must start with http:// (comet speaks plain HTTP: terminate TLS next to the application) (got \"https://app/x\")"),
            ("app/x", "hooks.authorize_url must be an http:// URL: invalid format (got \"app/x\")"),
            ("/x", "hooks.authorize_url must start with http:// (comet speaks plain HTTP: terminate TLS next to the application) (got \"/x\")"),
            ("http://u:p@app/x", "hooks.authorize_url must not carry user info (got \"http://u:p@app/x\")"),
            ("http://app/x#f", "hooks.authorize_url must not have a fragment (got \"http://app/x#f\")"),
            ("http://app:0/x", "hooks.authorize_url must not use port 0 (got \"http://app:0/x\")"),
        ];
        for (url, want) in cases {
            let c = HooksConfig {
                authorize_url: url.to_string(),
                ..HooksConfig::default()
            };
            assert_eq!(err(c), want);
        }
        let c = HooksConfig {
            events_url: "http://a b/".to_string(),
            ..HooksConfig::default()
        };
        assert!(err(c).starts_with("hooks.events_url must be an http:// URL: "));
    }

    #[test]
    fn rules_name_their_keys() {
        let d = HooksConfig::default;
        let cases = [
            (
                HooksConfig {
                    authorize_timeout_ms: 0,
                    ..d()
                },
                "hooks.authorize_timeout_ms must be between 1 and 600000 (got 0)",
            ),
            (
                HooksConfig {
                    retry_initial_ms: 5000,
                    retry_max_ms: 1000,
                    ..d()
                },
                "hooks.retry_initial_ms must not exceed hooks.retry_max_ms (5000 > 1000)",
            ),
            (
                HooksConfig {
                    authorize_concurrency: 0,
                    ..d()
                },
                "hooks.authorize_concurrency must be between 1 and 4096 (got 0)",
            ),
            (
                HooksConfig {
                    authorize_cache_max: 0,
                    ..d()
                },
                "hooks.authorize_cache_max must be > 0 when hooks.authorize_cache_secs is set",
            ),
            (
                HooksConfig {
                    events_batch_max: 0,
                    ..d()
                },
                "hooks.events_batch_max must be between 1 and 100000 (got 0)",
            ),
            (
                HooksConfig {
                    events_queue_max: 50,
                    ..d()
                },
                "hooks.events_queue_max must be at least hooks.events_batch_max (50 < 100)",
            ),
            (
                HooksConfig {
                    events_batch_ms: 600_001,
                    ..d()
                },
                "hooks.events_batch_ms must be at most 600000 (got 600001)",
            ),
        ];
        for (c, want) in cases {
            assert_eq!(err(c), want);
        }
        let no_cache = HooksConfig {
            authorize_cache_secs: 0,
            authorize_cache_max: 0,
            ..d()
        };
        assert!(no_cache.validate().is_ok());
    }
}
