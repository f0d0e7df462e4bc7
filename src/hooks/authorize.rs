//! The authorize hook: asks the application whether a subscription may
//! start, with a bounded number of requests in flight, a bounded wait
//! queue, a timeout, a fail-open or fail-closed policy, and a cache of
//! answers per (cname, token).
//!
//! Its requests run as tasks on the runtime handed to
//! [`Authorizer::new`], so [`Authorizer::check`] may be awaited from any
//! runtime (a worker's) without that runtime owning a connection to the
//! application. It knows nothing of sockets to subscribers or of channels;
//! what a refusal looks like on the wire is the caller's business.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::client::{HookClient, PostError};
use super::config::{parse_url, HooksConfig, OnError};
use crate::config::ConfigError;
use crate::ttl_cache::{KeyHasher, TtlCache};

/// What comet asks the application; POSTed as exactly this JSON object:
/// `{"cname":"room1","token":"...","ip":"203.0.113.7","transport":"sse"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizeRequest {
    /// The channel the client wants.
    pub cname: String,
    /// The `token` parameter as the client sent it (percent-decoded; empty
    /// when it sent none).
    pub token: String,
    /// The client's address.
    pub ip: IpAddr,
    /// The transport's name as `/stats` shows it (`poll`, `stream`, `sse`,
    /// `iframe`, ...).
    pub transport: &'static str,
}

/// The answer of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The subscription may start.
    Allow,
    /// It may not (the caller answers with icomet's 401 frame).
    Refuse,
}

impl Verdict {
    /// Whether this is [`Verdict::Allow`].
    pub fn is_allowed(self) -> bool {
        self == Verdict::Allow
    }
}

impl From<OnError> for Verdict {
    fn from(policy: OnError) -> Verdict {
        match policy {
            OnError::Allow => Verdict::Allow,
            OnError::Refuse => Verdict::Refuse,
        }
    }
}

/// A copy of the authorize counters, for `/metrics`. Every check returns
/// one verdict, so `allowed + refused` counts the checks; `cache_hits`,
/// the three error kinds and `queue_full` say where verdicts came from
/// besides a fresh answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthorizeStats {
    /// POSTs sent to the application.
    pub requests: u64,
    /// Checks that returned [`Verdict::Allow`].
    pub allowed: u64,
    /// Checks that returned [`Verdict::Refuse`].
    pub refused: u64,
    /// Checks answered from the cache.
    pub cache_hits: u64,
    /// Checks decided by the policy because the answer took too long
    /// (waiting for a request slot included).
    pub timeouts: u64,
    /// Checks decided by the policy because no connection could be made.
    pub connect_errors: u64,
    /// Checks decided by the policy because the connection broke or the
    /// answer was not HTTP.
    pub http_errors: u64,
    /// Checks decided by the policy at once because the wait queue was full.
    pub queue_full: u64,
    /// Checks waiting or in flight now.
    pub pending: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    allowed: AtomicU64,
    refused: AtomicU64,
    cache_hits: AtomicU64,
    timeouts: AtomicU64,
    connect_errors: AtomicU64,
    http_errors: AtomicU64,
    queue_full: AtomicU64,
}

/// Asks the application before a subscription starts. Cheap to clone.
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

struct Inner {
    client: HookClient,
    runtime: Handle,
    timeout: Duration,
    on_error: Verdict,
    /// One permit per request that may be in flight.
    slots: Semaphore,
    /// Checks that passed admission and have not finished.
    pending: AtomicUsize,
    /// `authorize_concurrency + authorize_queue_max`.
    pending_max: usize,
    cache: Option<Mutex<TtlCache<Verdict>>>,
    /// Hashes (cname, token) into cache keys.
    keys: KeyHasher,
    counters: Counters,
}

impl Authorizer {
    /// Builds the hook from `config.authorize_url` (which must not be
    /// empty) and the other `authorize_*` keys. Requests run on `runtime`.
    pub fn new(config: &HooksConfig, runtime: &Handle) -> Result<Authorizer, ConfigError> {
        config.validate()?;
        if config.authorize_url.is_empty() {
            return Err(ConfigError::Invalid {
                key: "hooks.authorize_url".to_string(),
                rule: "must be set to build the authorize hook".to_string(),
            });
        }
        let uri = parse_url(&config.authorize_url, "authorize_url")?;
        let cache = (config.authorize_cache_secs > 0).then(|| {
            Mutex::new(TtlCache::new(
                config.authorize_cache_max,
                Duration::from_secs(u64::from(config.authorize_cache_secs)),
            ))
        });
        Ok(Authorizer {
            inner: Arc::new(Inner {
                client: HookClient::new(uri, config.authorize_concurrency),
                runtime: runtime.clone(),
                timeout: Duration::from_millis(config.authorize_timeout_ms),
                on_error: config.authorize_on_error.into(),
                slots: Semaphore::new(config.authorize_concurrency),
                pending: AtomicUsize::new(0),
                pending_max: config.authorize_concurrency + config.authorize_queue_max,
                cache,
                keys: KeyHasher::new(),
                counters: Counters::default(),
            }),
        })
    }

    /// Decides whether `req` may subscribe: from the cache when a fresh
    /// answer for its (cname, token) is there; else by POSTing it to the
    /// application (2xx allows, any other status refuses); else, when the
    /// application does not answer within `authorize_timeout_ms` or cannot
    /// be reached, or when `authorize_queue_max` checks already wait, by
    /// `authorize_on_error`. Never fails and never panics.
    ///
    /// Dropping the returned future does not cancel the request: its answer
    /// still fills the cache for the next attempt.
    pub async fn check(&self, req: AuthorizeRequest) -> Verdict {
        if let Some(verdict) = self.cached(&req.cname, &req.token) {
            return verdict;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(verdict) = self.ask_then(req, move |verdict| {
            let _ = tx.send(verdict);
        }) {
            return verdict;
        }
        match rx.await {
            Ok(verdict) => verdict,
            Err(_) => {
                // The hooks runtime is shutting down: the task was dropped.
                let inner = &self.inner;
                inner.counters.http_errors.fetch_add(1, Ordering::Relaxed);
                inner.count(inner.on_error)
            }
        }
    }

    /// The cached answer for (`cname`, `token`), counted as a check answered
    /// from the cache; `None` when the cache is off or holds no fresh answer
    /// (nothing is counted then). Synchronous and cheap (one lock, one
    /// lookup), so a caller outside the hooks runtime decides a cached
    /// subscribe on the spot and asks [`Authorizer::ask_then`] only on a miss.
    pub fn cached(&self, cname: &str, token: &str) -> Option<Verdict> {
        let inner = &self.inner;
        let cache = inner.cache.as_ref()?;
        let verdict = lock(cache).get(inner.keys.key(cname, token), std::time::Instant::now())?;
        inner.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(inner.count(verdict))
    }

    /// Asks the application about `req` without looking in the cache
    /// (callers look first with [`Authorizer::cached`]), on the hooks
    /// runtime: `done` is called there with the verdict, counted, once it
    /// is known (the answer, or `authorize_on_error` after a timeout or a
    /// connection error). When `authorize_queue_max` checks already wait,
    /// the policy's verdict is returned at once instead (counted as
    /// `queue_full`) and `done` is dropped uncalled. Never blocks: callable
    /// from any thread.
    ///
    /// If the runtime shuts down before the answer, `done` is dropped
    /// uncalled; callers keep a deadline of their own.
    pub fn ask_then(&self, req: AuthorizeRequest, done: impl FnOnce(Verdict) + Send + 'static) -> Option<Verdict> {
        let inner = &self.inner;
        let key = inner.cache.as_ref().map(|_| inner.keys.key(&req.cname, &req.token));
        if inner.pending.fetch_add(1, Ordering::AcqRel) >= inner.pending_max {
            inner.pending.fetch_sub(1, Ordering::AcqRel);
            inner.counters.queue_full.fetch_add(1, Ordering::Relaxed);
            return Some(inner.count(inner.on_error));
        }
        let task_inner = self.inner.clone();
        inner.runtime.spawn(async move {
            let verdict = task_inner.ask(&req, key).await;
            task_inner.pending.fetch_sub(1, Ordering::AcqRel);
            done(task_inner.count(verdict));
        });
        None
    }

    /// `hooks.authorize_timeout_ms`: the longest a check waits.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The verdict of `hooks.authorize_on_error`.
    pub fn on_error(&self) -> Verdict {
        self.inner.on_error
    }

    /// The counters now.
    pub fn stats(&self) -> AuthorizeStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AuthorizeStats {
            requests: get(&c.requests),
            allowed: get(&c.allowed),
            refused: get(&c.refused),
            cache_hits: get(&c.cache_hits),
            timeouts: get(&c.timeouts),
            connect_errors: get(&c.connect_errors),
            http_errors: get(&c.http_errors),
            queue_full: get(&c.queue_full),
            pending: self.inner.pending.load(Ordering::Relaxed) as u64,
        }
    }
}

impl Inner {
    /// Counts a verdict as it is returned.
    fn count(&self, verdict: Verdict) -> Verdict {
        let counter = match verdict {
            Verdict::Allow => &self.counters.allowed,
            Verdict::Refuse => &self.counters.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        verdict
    }

    /// Waits for a request slot and asks the application, all within the
    /// timeout; caches definitive answers.
    async fn ask(&self, req: &AuthorizeRequest, key: Option<u128>) -> Verdict {
        let deadline = Instant::now() + self.timeout;
        let body = Bytes::from(serde_json::to_vec(req).expect("a struct of strings and an address serializes"));
        let answer = match tokio::time::timeout_at(deadline, self.slots.acquire()).await {
            Err(_) => Err(PostError::Timeout),
            Ok(permit) => {
                let _permit = permit.expect("the semaphore is never closed");
                self.counters.requests.fetch_add(1, Ordering::Relaxed);
                self.client
                    .post(body, deadline.saturating_duration_since(Instant::now()))
                    .await
            }
        };
        match answer {
            Ok(status) => {
                let verdict = if status.is_success() {
                    Verdict::Allow
                } else {
                    Verdict::Refuse
                };
                if let (Some(cache), Some(key)) = (&self.cache, key) {
                    // A 5xx is the application failing, not deciding.
                    if !status.is_server_error() {
                        lock(cache).insert(key, verdict, std::time::Instant::now());
                    }
                }
                verdict
            }
            Err(e) => {
                let counter = match e {
                    PostError::Timeout => &self.counters.timeouts,
                    PostError::Connect => &self.counters.connect_errors,
                    PostError::Http => &self.counters.http_errors,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                log::debug!(
                    "authorize hook: {e}; applying the on-error policy ({:?})",
                    self.on_error
                );
                self.on_error
            }
        }
    }
}

/// Locks the cache; a panic while it was held cannot leave it inconsistent
/// in a way that matters (the worst is a missing entry), so poisoning is ignored.
fn lock(cache: &Mutex<TtlCache<Verdict>>) -> std::sync::MutexGuard<'_, TtlCache<Verdict>> {
    cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
