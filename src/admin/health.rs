//! `/health` and `/ready`, for load balancers and orchestrators.
//!
//! `/health` (liveness) answers `200 ok` whenever the admin listener can
//! answer at all: it reads nothing shared. `/ready` (readiness) answers
//! `200 ok` only while the server should get new subscribers, else `503`
//! with the first reason that holds as a one-line body: a graceful
//! shutdown under way (the front listener is stopped when it begins), a
//! dead worker, every worker's accepts failing, or, in cluster mode, Redis
//! out of reach ([`cluster_reachable`]). Each check reads an atomic or a
//! small lock; none touches the channel table. Whether they need
//! `admin.key` is `route`'s decision (`admin.open_health`).

use super::response::{ok, AdminError, AdminResponse, TEXT_UTF8};
use crate::shared::Shared;

/// Why the server is not ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// A graceful shutdown began: the front listener no longer accepts.
    #[error("draining")]
    Draining,
    /// Front worker threads died (the server is stopping).
    #[error("{0} worker(s) died")]
    WorkersDied(usize),
    /// Every worker's accepts fail (descriptors or kernel memory exhausted).
    #[error("not accepting: every worker's accept fails (descriptors exhausted)")]
    NotAccepting,
    /// Cluster mode cannot reach Redis.
    #[error("cluster: {0}")]
    Cluster(String),
}

/// `GET /health`.
pub(super) fn health() -> AdminResponse {
    ok(TEXT_UTF8, "ok\n")
}

/// `GET /ready`.
pub(super) fn ready(shared: &Shared) -> Result<AdminResponse, AdminError> {
    match readiness(shared) {
        Ok(()) => Ok(ok(TEXT_UTF8, "ok\n")),
        Err(why) => Err(AdminError::NotReady(why.to_string())),
    }
}

/// Whether the server is ready for new subscribers, and if not, why.
pub fn readiness(shared: &Shared) -> Result<(), NotReady> {
    let life = &shared.lifecycle;
    if life.is_draining() {
        return Err(NotReady::Draining);
    }
    match life.dead_workers() {
        0 => {}
        n => return Err(NotReady::WorkersDied(n)),
    }
    let workers = shared.channels.mailboxes().len();
    if workers > 0 && life.accept_failing() >= workers {
        return Err(NotReady::NotAccepting);
    }
    cluster_reachable(shared).map_err(NotReady::Cluster)
}

/// Cluster mode's part of readiness: `Err(why)` while a Redis PUB/SUB
/// connection is down or not yet resubscribed (`link::RemoteStats`, kept
/// by the connections' events: no round trip per probe). A single node has
/// no Redis and is always `Ok`.
pub fn cluster_reachable(shared: &Shared) -> Result<(), String> {
    match shared.channels.cluster() {
        Some(_) => shared.channels.remote.reachable(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::Config;

    #[test]
    fn readiness_names_the_first_reason() {
        let shared = Shared::new(Config::default(), 2).expect("eventfds");
        assert_eq!(readiness(&shared), Ok(()));
        shared.lifecycle.set_accept_failing(true);
        assert_eq!(readiness(&shared), Ok(()), "one of two workers still accepts");
        shared.lifecycle.set_accept_failing(true);
        assert_eq!(readiness(&shared), Err(NotReady::NotAccepting));
        shared.lifecycle.set_accept_failing(false);
        assert_eq!(readiness(&shared), Ok(()));
        shared.lifecycle.worker_died();
        assert_eq!(readiness(&shared), Err(NotReady::WorkersDied(1)));
        assert_eq!(NotReady::WorkersDied(1).to_string(), "1 worker(s) died");
        shared.lifecycle.set_draining(Instant::now());
        assert_eq!(readiness(&shared), Err(NotReady::Draining));
        assert_eq!(NotReady::Draining.to_string(), "draining");
    }
}
