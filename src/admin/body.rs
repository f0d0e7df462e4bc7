//! The response body type of the admin listener.
//!
//! Most admin replies are one complete buffer with a known length (hyper
//! writes `Content-Length`); `/psub` is a stream of presence lines that lasts
//! until presence drops the listener or the server shuts down, written as one
//! HTTP chunk per line. This module only moves bytes: it never touches the
//! presence module, and the presence stream ends itself on shutdown so that a graceful
//! connection shutdown does not wait for it forever.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::{mpsc, watch};

/// A future that completes when the server shuts down.
type Stopped = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The body of an admin response.
pub enum AdminBody {
    /// A complete body; `None` once it has been handed to hyper.
    Full(Option<Bytes>),
    /// `/psub`: presence lines as they arrive.
    Presence(Box<PresenceStream>),
}

/// The state of one `/psub` response.
pub struct PresenceStream {
    events: mpsc::Receiver<Bytes>,
    stopped: Stopped,
}

impl AdminBody {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> AdminBody {
        let bytes = bytes.into();
        AdminBody::Full((!bytes.is_empty()).then_some(bytes))
    }

    /// An empty body (`Content-Length: 0`).
    pub fn empty() -> AdminBody {
        AdminBody::Full(None)
    }

    /// A stream of presence lines that ends when `events` ends or when
    /// `shutdown` becomes true (or its sender goes away).
    pub fn presence(events: mpsc::Receiver<Bytes>, mut shutdown: watch::Receiver<bool>) -> AdminBody {
        let stopped: Stopped = Box::pin(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        });
        AdminBody::Presence(Box::new(PresenceStream { events, stopped }))
    }
}

impl std::fmt::Debug for AdminBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminBody::Full(b) => f.debug_tuple("Full").field(b).finish(),
            AdminBody::Presence(_) => f.write_str("Presence"),
        }
    }
}

impl Body for AdminBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            AdminBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            AdminBody::Presence(p) => {
                if p.stopped.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                p.events.poll_recv(cx).map(|line| line.map(|l| Ok(Frame::data(l))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, AdminBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AdminBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            AdminBody::Presence(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_body_knows_its_length() {
        assert_eq!(AdminBody::full("ok\n").size_hint().exact(), Some(3));
        assert_eq!(AdminBody::empty().size_hint().exact(), Some(0));
        assert!(AdminBody::full("").is_end_stream());
        assert!(!AdminBody::full("x").is_end_stream());
    }
}
