//! Graceful shutdown of one worker: stop accepting, end every response in a
//! way clients recover from, then leave once the connections are gone.
//!
//! A waiting long poll is answered with a noop (icomet clients poll again at
//! once, with the same seq, and reach another node or the restarted server);
//! a stream ends with its last chunk (an EventSource reconnects with its
//! `Last-Event-ID`); an idle keep-alive connection is closed. Replies that
//! are still being written get until the deadline to finish.

use std::time::Instant;

use super::Worker;
use crate::front::conn::State;
use crate::front::frame::LAST_CHUNK;

impl Worker {
    /// Starts draining; the loop stops when `open` reaches 0 or at `deadline`.
    pub(crate) fn begin_drain(&mut self, deadline: Instant) {
        if self.drain_deadline.is_some() {
            return;
        }
        self.drain_deadline = Some(deadline);
        self.pause_accept();
        self.expire_refused(true);
        for idx in 0..self.conns.len() as u32 {
            let c = &mut self.conns[idx as usize];
            if c.fd < 0 {
                continue;
            }
            c.keep_alive = false;
            match c.state {
                State::Waiting => self.end_subscription(idx),
                State::Idle | State::Dead => self.close_conn(idx),
                State::Closing => {}
            }
        }
    }

    /// Ends a waiting subscriber's response for shutdown.
    fn end_subscription(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        let Some(sub) = c.sub.as_ref() else { return };
        if !sub.transport.is_streaming() {
            // The noop answers the poll and ends its response.
            self.send_noop(idx);
            return;
        }
        let chunked = !c.http10;
        let sub = c.sub.take().expect("checked above");
        self.unregister(&sub);
        if chunked {
            self.send(idx, &[LAST_CHUNK]);
        }
        self.end_response(idx);
    }
}
