//! `/psub`: the presence subscription (reference §4.9, §6).
//!
//! The reply is a stream of `1 name\n` (online) and `0 name\n` (offline)
//! lines, one HTTP chunk each, with no snapshot of existing channels. `crate::presence`
//! owns the listener list and the bounded queue; this handler only registers
//! a listener and turns its receiver into a response body.

use hyper::StatusCode;
use tokio::sync::watch;

use super::body::AdminBody;
use super::response::{reply, AdminResponse};
use crate::shared::Shared;

/// Registers a presence listener and streams its events until presence drops
/// it or the server shuts down. A HEAD request gets the headers only and
/// registers nothing.
pub fn subscribe(shared: &Shared, head: bool, shutdown: &watch::Receiver<bool>) -> AdminResponse {
    if head {
        return reply(StatusCode::OK, None, AdminBody::empty());
    }
    let events = shared.channels.presence().subscribe();
    reply(StatusCode::OK, None, AdminBody::presence(events, shutdown.clone()))
}
