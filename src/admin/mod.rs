//! The admin listener: a hyper http1 service for publishers and operators.
//!
//! [`serve`] accepts connections until shutdown and serves each with hyper
//! (keep-alive, pipelining); [`route`] applies the IP filter, libevent's
//! method and path rules, and hands each endpoint to its handler: `publish`
//! (`/pub`, `/push`, `/broadcast`, `/sign`), `batch` (`/pub_batch`), `query`
//! (`/close`, `/clear`, `/info`, `/check`), `psub`, `health` (`/health`,
//! `/ready`), and `web` (the embedded demo pages under `/demo/`). The
//! filter, the key and the limits are read from the configuration in force
//! for every request, so a reload reaches open keep-alive connections too.
//! Failures become HTTP only in
//! `response::AdminError::into_response`. Commands reach the channels only
//! through `crate::intake`, queries through `crate::channels`; the admin
//! side never touches a front connection.

mod access;
mod batch;
mod body;
mod filter;
mod health;
mod psub;
mod publish;
mod query;
mod request;
mod response;
pub(crate) mod target;
mod web;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

pub use filter::IpFilter;
pub use health::{cluster_reachable, readiness, NotReady};

use crate::metrics::Snapshot;
use crate::params::decode_path;
use crate::shared::Shared;
use publish::Content;
use response::{AdminError, AdminResponse, JSON, PROMETHEUS};

/// Pause after a failed accept (EMFILE and friends), so a persistent error is
/// not a hot loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Least time between two logged accept errors.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// Least time a connection gets to finish its current reply once the admin
/// listener stops, even when the shutdown's grace is used up.
const MIN_REPLY_GRACE: Duration = Duration::from_secs(1);

/// What every connection task shares.
struct Ctx {
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    /// The front listener's port, for the demo pages (`web`).
    front_port: u16,
}

/// Serves the admin listener until `shutdown` becomes true (or its sender is
/// dropped), then lets open connections finish their current reply (until
/// the shutdown's deadline, at least one second; `/psub` streams
/// end at once) and returns. The server stops it only once the front
/// connections are gone, so that `/ready` says `draining` (and `/health`
/// stays 200) for as long as a graceful shutdown lasts.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let front_port = shared.config().front.listen.port();
    let ctx = Arc::new(Ctx {
        shared,
        shutdown: shutdown.clone(),
        front_port,
    });
    // Every connection task holds a clone of `done`; `recv` returns None once
    // all of them have ended.
    let (done, mut all_done) = mpsc::channel::<()>(1);
    let mut last_log: Option<Instant> = None;
    let mut suppressed = 0u64;
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let ctx = ctx.clone();
                    let done = done.clone();
                    tokio::spawn(async move {
                        connection(stream, peer, ctx).await;
                        drop(done);
                    });
                }
                Err(_) if *shutdown.borrow() => {
                    // Another admin thread saw the stop first and shut the
                    // shared socket down: this accept fails because of it.
                    break;
                }
                Err(e) => {
                    if last_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_INTERVAL) {
                        log::error!("admin listener: accept failed: {e} ({suppressed} more since the last report)");
                        last_log = Some(Instant::now());
                        suppressed = 0;
                    } else {
                        suppressed += 1;
                    }
                    tokio::select! {
                        () = stopped(&mut shutdown) => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            },
        }
    }
    // Worker threads hold copies of the listening descriptor in their
    // private tables: stop the socket itself, or connections would queue.
    crate::worker::sys::stop_listening(std::os::fd::AsFd::as_fd(&listener));
    drop(listener);
    drop(done);
    let _ = all_done.recv().await;
}

/// Completes when shutdown is requested or the sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Serves one connection; ends are normal and logged at debug level only.
async fn connection(stream: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>) {
    let _ = stream.set_nodelay(true);
    let mut shutdown = ctx.shutdown.clone();
    let shared = ctx.shared.clone();
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move {
            let arrived = Instant::now();
            let stats = &ctx.shared.stats;
            Ok::<_, Infallible>(access::logged(peer, req, arrived, stats, |req| handle(req, &ctx, peer, arrived)).await)
        }
    });
    let mut conn = pin!(http1::Builder::new()
        .keep_alive(true)
        .title_case_headers(true)
        .pipeline_flush(true)
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(target::Lenient::new(stream)), service));
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let grace = shared
                .lifecycle
                .drain_deadline()
                .map_or(MIN_REPLY_GRACE, |d| d.saturating_duration_since(Instant::now()))
                .max(MIN_REPLY_GRACE);
            match tokio::time::timeout(grace, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => {
                    log::debug!("admin connection {peer}: dropped at shutdown");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        log::debug!("admin connection {peer}: {e}");
    }
}

/// Answers one request that arrived at `arrived`; every reply gets the
/// common headers.
async fn handle(req: Request<Incoming>, ctx: &Ctx, peer: SocketAddr, arrived: Instant) -> AdminResponse {
    let mut resp = route(req, ctx, peer, arrived)
        .await
        .unwrap_or_else(AdminError::into_response);
    response::finish(&mut resp);
    resp
}

/// The admin endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `/pub`: publish pre-encoded content.
    Pub,
    /// `/push`: publish raw content.
    Push,
    /// `/pub_batch`: many pre-encoded messages in one POST body.
    PubBatch,
    /// `/broadcast`: one message to every channel.
    Broadcast,
    /// `/sign`: a channel's token.
    Sign,
    /// `/close`: close and free a channel.
    Close,
    /// `/clear`: empty a channel's history.
    Clear,
    /// `/info`: totals or one channel's subscribers.
    Info,
    /// `/check`: which channels exist.
    Check,
    /// `/psub`: presence events.
    Psub,
    /// `/stats`: server figures as JSON (the operator page's feed).
    Stats,
    /// `/metrics`: server figures in the Prometheus text format.
    Metrics,
    /// `/health`: liveness.
    Health,
    /// `/ready`: readiness.
    Ready,
}

/// The `endpoint` label values of `comet_admin_request_duration_seconds`:
/// every endpoint's path without the slash, then `demo` (the pages under
/// `/demo/`) and `other` (any other path).
pub const ENDPOINT_LABELS: [&str; 16] = [
    "pub",
    "push",
    "pub_batch",
    "broadcast",
    "sign",
    "close",
    "clear",
    "info",
    "check",
    "psub",
    "stats",
    "metrics",
    "health",
    "ready",
    "demo",
    "other",
];

/// The index in [`ENDPOINT_LABELS`] of a request for `path` (as it came,
/// percent-encoded or not).
pub(crate) fn endpoint_label(path: &str) -> usize {
    let path = decode_path(path.as_bytes());
    let other = ENDPOINT_LABELS.len() - 1;
    if web::is_demo(&path) {
        return other - 1;
    }
    Endpoint::from_path(&path).map_or(other, |e| e as usize)
}

impl Endpoint {
    /// Exact, case-sensitive match of the percent-decoded path.
    fn from_path(path: &[u8]) -> Option<Endpoint> {
        Some(match path {
            b"/pub" => Endpoint::Pub,
            b"/push" => Endpoint::Push,
            b"/pub_batch" => Endpoint::PubBatch,
            b"/broadcast" => Endpoint::Broadcast,
            b"/sign" => Endpoint::Sign,
            b"/close" => Endpoint::Close,
            b"/clear" => Endpoint::Clear,
            b"/info" => Endpoint::Info,
            b"/check" => Endpoint::Check,
            b"/psub" => Endpoint::Psub,
            b"/stats" => Endpoint::Stats,
            b"/metrics" => Endpoint::Metrics,
            b"/health" => Endpoint::Health,
            b"/ready" => Endpoint::Ready,
            _ => return None,
        })
    }

    /// Whether the endpoint takes `method` (else `405 Invalid Method`).
    fn allows(self, method: &Method) -> bool {
        match self {
            Endpoint::Pub | Endpoint::Push => method == Method::GET || method == Method::POST,
            Endpoint::Broadcast => method == Method::GET,
            Endpoint::PubBatch => method == Method::POST,
            Endpoint::Stats | Endpoint::Metrics | Endpoint::Health | Endpoint::Ready => {
                method == Method::GET || method == Method::HEAD
            }
            _ => true,
        }
    }

    /// Whether a POST body contributes parameters (`/pub_batch`'s body is
    /// its messages, not parameters).
    fn reads_body(self) -> bool {
        !matches!(
            self,
            Endpoint::Broadcast
                | Endpoint::PubBatch
                | Endpoint::Psub
                | Endpoint::Stats
                | Endpoint::Metrics
                | Endpoint::Health
                | Endpoint::Ready
        )
    }
}

/// Filter, method and path checks, then the endpoint's handler.
async fn route(
    req: Request<Incoming>,
    ctx: &Ctx,
    peer: SocketAddr,
    arrived: Instant,
) -> Result<AdminResponse, AdminError> {
    let shared = &*ctx.shared;
    let config = shared.config();
    if !IpFilter::from_config(&config.admin).allows(peer.ip()) {
        return Err(AdminError::Forbidden);
    }
    let method = req.method().clone();
    if ![Method::GET, Method::POST, Method::HEAD, Method::PUT, Method::DELETE].contains(&method) {
        return Err(AdminError::NotImplemented);
    }
    let path = decode_path(req.uri().path().as_bytes());
    if web::is_demo(&path) {
        return web::serve(&method, &path, &req.uri().to_string(), ctx.front_port);
    }
    let endpoint = Endpoint::from_path(&path).ok_or_else(|| AdminError::NotFound(req.uri().to_string()))?;
    if !endpoint.allows(&method) {
        return Err(AdminError::InvalidMethod);
    }
    // With admin.open_health, /health and /ready need no key.
    let open = config.admin.open_health && matches!(endpoint, Endpoint::Health | Endpoint::Ready);
    let key = if open { &b""[..] } else { config.admin.key.as_bytes() };
    // A key in the header is checked before any body is read.
    let bearer = match req.headers().get(AUTHORIZATION) {
        Some(v) if !key.is_empty() => Some(key_matches(bearer_token(v.as_bytes()), key)),
        _ => None,
    };
    if bearer == Some(false) {
        return Err(AdminError::KeyWrong);
    }
    let max_body = config.admin.max_body_bytes;
    if endpoint == Endpoint::PubBatch {
        check_key_param(&request::query(&req), key, bearer)?;
        let body = request::body(req, max_body).await?;
        return batch::publish(shared, &body, arrived).await;
    }
    let params = if endpoint.reads_body() {
        request::query_and_body(req, max_body).await?
    } else {
        request::query(&req)
    };
    check_key_param(&params, key, bearer)?;
    match endpoint {
        Endpoint::Pub => publish::publish(shared, &params, Content::PreEncoded, arrived).await,
        Endpoint::Push => publish::publish(shared, &params, Content::Raw, arrived).await,
        Endpoint::PubBatch => unreachable!("answered before the parameters are read"),
        Endpoint::Broadcast => publish::broadcast(shared, &params, arrived).await,
        Endpoint::Sign => publish::sign(shared, &params).await,
        Endpoint::Close => query::close(shared, &params).await,
        Endpoint::Clear => query::clear(shared, &params).await,
        Endpoint::Info => query::info(shared, &params).await,
        Endpoint::Check => query::check(shared, &params).await,
        Endpoint::Psub => Ok(psub::subscribe(shared, method == Method::HEAD, &ctx.shutdown)),
        Endpoint::Stats => Ok(response::ok(JSON, Snapshot::take(shared).to_json() + "\n")),
        Endpoint::Metrics => Ok(response::ok(PROMETHEUS, Snapshot::take(shared).to_prometheus())),
        Endpoint::Health => Ok(health::health()),
        Endpoint::Ready => health::ready(shared),
    }
}

/// With `admin.key` set and no key in the `Authorization` header (`bearer`
/// is `None`), the `key` parameter must carry it.
fn check_key_param(params: &crate::params::Params, key: &[u8], bearer: Option<bool>) -> Result<(), AdminError> {
    if key.is_empty() || bearer.is_some() {
        return Ok(());
    }
    match params.get("key") {
        None => Err(AdminError::KeyMissing),
        Some(k) if !key_matches(k.as_bytes(), key) => Err(AdminError::KeyWrong),
        Some(_) => Ok(()),
    }
}

/// The credentials of an `Authorization: Bearer ...` value (the whole value
/// for any other scheme, which then never matches a key).
pub(crate) fn bearer_token(value: &[u8]) -> &[u8] {
    match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii(),
        _ => value,
    }
}

/// Compares a presented key with the configured one in time that does not
/// depend on where they differ.
pub(crate) fn key_matches(given: &[u8], key: &[u8]) -> bool {
    if given.len() != key.len() {
        return false;
    }
    given.iter().zip(key).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_exactly() {
        assert_eq!(Endpoint::from_path(b"/pub"), Some(Endpoint::Pub));
        assert_eq!(Endpoint::from_path(b"/psub"), Some(Endpoint::Psub));
        assert_eq!(Endpoint::from_path(b"/health"), Some(Endpoint::Health));
        assert_eq!(Endpoint::from_path(b"/ready"), Some(Endpoint::Ready));
        for p in [&b"/pub/"[..], b"/PUB", b"/sub", b"/ping", b"/", b""] {
            assert_eq!(Endpoint::from_path(p), None);
        }
    }

    #[test]
    fn methods_per_endpoint() {
        assert!(Endpoint::Pub.allows(&Method::POST));
        assert!(!Endpoint::Pub.allows(&Method::PUT));
        assert!(!Endpoint::Push.allows(&Method::HEAD));
        assert!(!Endpoint::Broadcast.allows(&Method::POST));
        assert!(Endpoint::Sign.allows(&Method::DELETE));
        assert!(!Endpoint::Broadcast.reads_body());
        for e in [Endpoint::Health, Endpoint::Ready] {
            assert!(e.allows(&Method::GET) && e.allows(&Method::HEAD));
            assert!(!e.allows(&Method::POST));
            assert!(!e.reads_body());
        }
    }

    #[test]
    fn endpoint_labels_follow_the_enum() {
        let label = |p: &str| ENDPOINT_LABELS[endpoint_label(p)];
        assert_eq!(label("/pub"), "pub");
        assert_eq!(label("/%70ush"), "push");
        assert_eq!(label("/metrics"), "metrics");
        assert_eq!(label("/health"), "health");
        assert_eq!(label("/ready"), "ready");
        assert_eq!(label("/demo/ops.html"), "demo");
        assert_eq!(label("/nope"), "other");
        assert_eq!(label("/PUB"), "other");
        for (i, name) in ENDPOINT_LABELS.iter().enumerate().take(14) {
            let e = Endpoint::from_path(format!("/{name}").as_bytes()).expect("an endpoint");
            assert_eq!(e as usize, i, "{name}");
        }
    }

    #[test]
    fn keys_compare_whole() {
        assert!(key_matches(b"s3cret", b"s3cret"));
        assert!(!key_matches(b"s3cre", b"s3cret"));
        assert!(!key_matches(b"s3creT", b"s3cret"));
        assert!(!key_matches(b"", b"s3cret"));
        assert_eq!(bearer_token(b"Bearer abc"), b"abc");
        assert_eq!(bearer_token(b"bearer  abc "), b"abc");
        assert_eq!(bearer_token(b"Basic abc"), b"Basic abc");
    }
}
