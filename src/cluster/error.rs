//! The errors of the Redis layer, typed so the admin side can branch: every
//! variant but [`ClusterError::BadInput`] means "Redis unavailable or
//! misbehaving" and becomes a 503; `BadInput` is the caller's mistake (400).

use std::time::Duration;

/// Why a cluster call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No answer within the call's bound (Redis hung, overloaded, or the
    /// connection is being re-established). The command may still run later.
    #[error("Redis did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The connection is down or could not be made.
    #[error("Redis is unreachable: {0}")]
    Unavailable(#[source] redis::RedisError),
    /// Redis answered with an error (out of memory, script error, ...).
    #[error("Redis refused the command: {0}")]
    Refused(#[source] redis::RedisError),
    /// Redis answered something the script contract does not allow.
    #[error("unexpected reply from Redis: {0}")]
    Reply(String),
    /// The caller's input cannot be published (content that is not a JSON
    /// string body, an empty batch item list, ...).
    #[error("{0}")]
    BadInput(String),
    /// A multi-call operation stopped part way: the first `done` units
    /// (messages of a batch, channels of a broadcast) are applied; the rest
    /// may or may not be.
    #[error("stopped after {done} applied: {source}")]
    Interrupted {
        /// Units known to be applied.
        done: u64,
        /// What stopped it.
        #[source]
        source: Box<ClusterError>,
    },
}

impl ClusterError {
    /// Whether the admin side should answer 503 Service Unavailable (Redis is
    /// down, slow or failing) rather than 400.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, ClusterError::BadInput(_))
    }

    /// Classifies an error of the redis crate.
    pub(crate) fn from_redis(e: redis::RedisError) -> ClusterError {
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
            ClusterError::Unavailable(e)
        } else {
            ClusterError::Refused(e)
        }
    }
}

/// Result of a cluster call.
pub type ClusterResult<T> = Result<T, ClusterError>;
