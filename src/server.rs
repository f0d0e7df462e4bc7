//! Server assembly: binds both listeners, starts the front workers, the admin
//! runtime and the channel tick, and stops them again.
//!
//! (Being written: the signatures below are the contract main.rs and the
//! tests build against.)

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::hub::Hub;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({which}): {source}")]
    Bind {
        /// `front` or `admin`.
        which: &'static str,
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Anything else that failed while starting (threads, epoll, eventfd).
    #[error("cannot start: {0}")]
    Start(#[from] std::io::Error),
}

/// A running server.
pub struct Server {
    hub: Arc<Hub>,
    front: SocketAddr,
    admin: SocketAddr,
}

impl Server {
    /// Binds both listeners and starts serving in background threads.
    pub fn bind(config: Config) -> Result<Server, ServerError> {
        let _ = config;
        todo!("being written")
    }

    /// The front listener's bound address.
    pub fn front_addr(&self) -> SocketAddr {
        self.front
    }

    /// The admin listener's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The shared state.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Serves until SIGINT or SIGTERM, then stops.
    pub fn run_until_signal(self) -> Result<(), ServerError> {
        todo!("being written")
    }

    /// Stops every thread and closes the listeners.
    pub fn shutdown(self) {}
}
