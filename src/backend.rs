//! Backend integration as the server runs it: the JWT verifier
//! (`front.auth: jwt`), the authorize hook (`hooks.authorize_url`) and the
//! event hook (`hooks.events_url`), built once at start with the admin
//! runtime for their HTTP, their counters for `/metrics`, and the order in
//! which the event hook ends at shutdown.
//!
//! This module holds the three together and counts JWT verifications; it
//! never touches a socket or a channel slot. The front decides when to
//! verify, ask and report (`crate::front`, files `admit.rs` and
//! `hook_events.rs`), and what a refusal looks like on the wire.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::auth::{JwtError, JwtSetupError, JwtVerifier};
use crate::config::{Auth, Config, ConfigError};
use crate::hooks::{AuthorizeStats, Authorizer, EventSink, EventStats, Events};

/// Why the backend integration could not start; every message names the key.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// `front.jwt`: the key file is missing or not a usable key, or the
    /// section breaks a rule.
    #[error(transparent)]
    Jwt(#[from] JwtSetupError),
    /// `hooks`: a URL or a limit is not valid.
    #[error(transparent)]
    Hooks(#[from] ConfigError),
}

/// JWT counters: every token checked, and the refusals by reason.
#[derive(Debug, Default)]
struct JwtCounters {
    verifications: AtomicU64,
    /// Indexed like [`JwtError::REASONS`].
    refusals: [AtomicU64; JwtError::REASONS.len()],
}

/// The JWT verifier and the two hooks of a running server, each `None` when
/// it is off.
pub struct Backend {
    jwt: Option<JwtVerifier>,
    jwt_counters: JwtCounters,
    authorizer: Option<Authorizer>,
    events: Option<Arc<Events>>,
    /// `front.auth: token` (checked before the authorize hook).
    token_mode: bool,
    /// Set once the workers have stopped, to the deadline of the event
    /// hook's last flush.
    workers_stopped: watch::Sender<Option<Instant>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("jwt", &self.jwt)
            .field("authorize", &self.authorizer.is_some())
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Default for Backend {
    fn default() -> Backend {
        Backend::none()
    }
}

impl Backend {
    /// Everything off (`auth` other than `jwt`, no hook URL).
    pub fn none() -> Backend {
        Backend {
            jwt: None,
            jwt_counters: JwtCounters::default(),
            authorizer: None,
            events: None,
            token_mode: false,
            workers_stopped: watch::channel(None).0,
        }
    }

    /// Builds what `config` turns on: the JWT verifier (reading its key file
    /// now, once), the authorize hook and the event hook with their HTTP on
    /// `runtime` (the event hook's sender and its lineage expiry start
    /// there as tasks, and run once the runtime does).
    pub fn start(config: &Config, runtime: &Handle) -> Result<Backend, BackendError> {
        let mut backend = Backend::none();
        backend.token_mode = config.front.auth == Auth::Token;
        if config.front.auth == Auth::Jwt {
            backend.jwt = Some(JwtVerifier::new(&config.front.jwt)?);
        }
        let hooks = &config.hooks;
        if !hooks.authorize_url.is_empty() {
            backend.authorizer = Some(Authorizer::new(hooks, runtime)?);
        }
        if !hooks.events_url.is_empty() {
            let sink = EventSink::new(hooks, runtime)?;
            let events = Arc::new(Events::new(sink, config.front.polling_timeout));
            runtime.spawn(events.clone().expire_every_second());
            backend.events = Some(events);
        }
        Ok(backend)
    }

    /// Whether subscribers need a JWT.
    pub fn jwt_on(&self) -> bool {
        self.jwt.is_some()
    }

    /// Verifies a subscribe token for `cname` (counted): the token's `sub`
    /// claim when it grants the channel. Call only when [`Backend::jwt_on`];
    /// with JWT off every token is refused as malformed.
    pub fn verify_jwt(&self, token: &str, cname: &str) -> Result<Option<Box<str>>, JwtError> {
        let c = &self.jwt_counters;
        c.verifications.fetch_add(1, Ordering::Relaxed);
        let verdict = match &self.jwt {
            Some(jwt) => jwt.verify(token, cname).map(|grant| grant.sub),
            None => Err(JwtError::Malformed("front.auth is not jwt")),
        };
        if let Err(e) = &verdict {
            if let Some(i) = JwtError::REASONS.iter().position(|r| *r == e.reason()) {
                c.refusals[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        verdict
    }

    /// Whether subscribers need the channel's token (`front.auth: token`,
    /// as the server started).
    pub fn token_mode(&self) -> bool {
        self.token_mode
    }

    /// The authorize hook, when on.
    pub fn authorizer(&self) -> Option<&Authorizer> {
        self.authorizer.as_ref()
    }

    /// The event hook, when on.
    pub fn events(&self) -> Option<&Arc<Events>> {
        self.events.as_ref()
    }

    /// Whether a hook needs the subscriber's address (the authorize
    /// request's `ip`, the events' `ip`).
    pub fn wants_peer(&self) -> bool {
        self.authorizer.is_some() || self.events.is_some()
    }

    /// The server's workers have stopped (their subscribers' leaves are
    /// queued): the event hook may flush, until `deadline`.
    pub fn workers_stopped(&self, deadline: Instant) {
        self.workers_stopped.send_replace(Some(deadline));
    }

    /// Runs on the hooks runtime once the admin listener has stopped: waits
    /// for [`Backend::workers_stopped`], then ends the long-poll lineages and
    /// flushes the event hook until the deadline. Returns at once when the
    /// event hook is off.
    pub async fn finish(&self) {
        let Some(events) = &self.events else { return };
        let mut stopped = self.workers_stopped.subscribe();
        let deadline = match stopped.wait_for(Option::is_some).await {
            Ok(d) => *d,
            Err(_) => None,
        };
        events.finish(deadline.unwrap_or_else(Instant::now)).await;
    }

    /// The counters now, for `/metrics`.
    pub fn snapshot(&self) -> BackendSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.jwt_counters;
        BackendSnapshot {
            jwt_verifications: get(&c.verifications),
            jwt_refusals: std::array::from_fn(|i| get(&c.refusals[i])),
            jwt_cache_hits: self.jwt.as_ref().map_or(0, JwtVerifier::cache_hits),
            authorize: self.authorizer.as_ref().map(Authorizer::stats).unwrap_or_default(),
            events: self.events.as_ref().map(|e| e.sink().stats()).unwrap_or_default(),
            poll_lineages: self.events.as_ref().map_or(0, |e| e.poll_lineages() as u64),
        }
    }
}

/// The backend integration's figures at one moment (zeros for what is off).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendSnapshot {
    /// Subscribe tokens verified (accepted or refused).
    pub jwt_verifications: u64,
    /// Tokens refused, by reason ([`JwtError::REASONS`] order).
    pub jwt_refusals: [u64; JwtError::REASONS.len()],
    /// Verifications answered from the JWT cache.
    pub jwt_cache_hits: u64,
    /// The authorize hook's counters.
    pub authorize: AuthorizeStats,
    /// The event hook's counters.
    pub events: EventStats,
    /// Live long-poll lineages (long-poll subscribers the application knows of).
    pub poll_lineages: u64,
}

impl BackendSnapshot {
    /// Appends the metric families (Prometheus text format 0.0.4).
    pub fn write_prometheus(&self, out: &mut String) {
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        family(
            "comet_jwt_verifications_total",
            "counter",
            "JWT subscribe tokens verified, accepted or refused.",
            &[("", self.jwt_verifications)],
        );
        let reasons: Vec<String> = JwtError::REASONS
            .iter()
            .map(|r| format!(r#"{{reason="{r}"}}"#))
            .collect();
        let refusals: Vec<(&str, u64)> = reasons
            .iter()
            .zip(self.jwt_refusals)
            .map(|(l, v)| (l.as_str(), v))
            .collect();
        family(
            "comet_jwt_refusals_total",
            "counter",
            "JWT subscribe tokens refused, by reason.",
            &refusals,
        );
        family(
            "comet_jwt_cache_hits_total",
            "counter",
            "JWT verifications answered from the cache (signature not checked again).",
            &[("", self.jwt_cache_hits)],
        );
        let a = &self.authorize;
        family(
            "comet_authorize_requests_total",
            "counter",
            "Authorize hook requests sent to the application.",
            &[("", a.requests)],
        );
        family(
            "comet_authorize_checks_total",
            "counter",
            "Subscriptions checked with the authorize hook, by verdict.",
            &[
                (r#"{verdict="allow"}"#, a.allowed),
                (r#"{verdict="refuse"}"#, a.refused),
            ],
        );
        family(
            "comet_authorize_cache_hits_total",
            "counter",
            "Authorize checks answered from the cache.",
            &[("", a.cache_hits)],
        );
        family(
            "comet_authorize_errors_total",
            "counter",
            "Authorize checks decided by hooks.authorize_on_error, by cause.",
            &[
                (r#"{cause="timeout"}"#, a.timeouts),
                (r#"{cause="connect"}"#, a.connect_errors),
                (r#"{cause="http"}"#, a.http_errors),
                (r#"{cause="queue_full"}"#, a.queue_full),
            ],
        );
        family(
            "comet_authorize_pending",
            "gauge",
            "Authorize checks waiting for a request slot or an answer.",
            &[("", a.pending)],
        );
        let e = &self.events;
        family(
            "comet_hook_events_sent_total",
            "counter",
            "Events the application accepted.",
            &[("", e.sent)],
        );
        family(
            "comet_hook_event_batches_total",
            "counter",
            "Event batches (POSTs) the application accepted.",
            &[("", e.batches)],
        );
        family(
            "comet_hook_events_dropped_total",
            "counter",
            "Events dropped: queue overflow (oldest first), batch rejected with a 4xx, unsent at shutdown.",
            &[
                (r#"{reason="overflow"}"#, e.dropped_overflow),
                (r#"{reason="rejected"}"#, e.dropped_rejected),
                (r#"{reason="shutdown"}"#, e.dropped_shutdown),
            ],
        );
        family(
            "comet_hook_event_failures_total",
            "counter",
            "Event POSTs that failed (timeout, connection error, non-2xx).",
            &[("", e.failures)],
        );
        family(
            "comet_hook_event_retries_total",
            "counter",
            "Event POSTs that retried a failed batch.",
            &[("", e.retries)],
        );
        family(
            "comet_hook_events_queued",
            "gauge",
            "Events waiting to be sent.",
            &[("", e.queued)],
        );
        family(
            "comet_hook_poll_lineages",
            "gauge",
            "Long-poll subscribers as the event hook reports them (lineages of re-polls).",
            &[("", self.poll_lineages)],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_written_with_its_labels() {
        let mut s = BackendSnapshot {
            jwt_verifications: 9,
            jwt_cache_hits: 4,
            poll_lineages: 2,
            ..BackendSnapshot::default()
        };
        s.jwt_refusals[3] = 5;
        s.authorize.timeouts = 7;
        s.events.dropped_rejected = 6;
        let mut out = String::new();
        s.write_prometheus(&mut out);
        for line in [
            "comet_jwt_verifications_total 9\n",
            "comet_jwt_refusals_total{reason=\"expired\"} 5\n",
            "comet_jwt_refusals_total{reason=\"channel_not_allowed\"} 0\n",
            "comet_jwt_cache_hits_total 4\n",
            "comet_authorize_errors_total{cause=\"timeout\"} 7\n",
            "comet_hook_events_dropped_total{reason=\"rejected\"} 6\n",
            "comet_hook_poll_lineages 2\n",
        ] {
            assert!(out.contains(line), "{line:?} missing from\n{out}");
        }
        let families = out.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(families, 15);
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let b = Backend::none();
        assert!(!b.jwt_on());
        assert_eq!(
            b.verify_jwt("x", "c"),
            Err(JwtError::Malformed("front.auth is not jwt"))
        );
        let s = b.snapshot();
        assert_eq!(s.jwt_verifications, 1);
        assert_eq!(s.jwt_refusals[0], 1, "malformed is the first reason");
    }
}
