//! Time: the 1-second tick, request-head deadlines, noop heartbeats
//! (reference §2.8), and ending every response for a graceful shutdown.
//!
//! The clock is whatever the caller says it is: the worker calls
//! [`Front::tick`] once a wall-clock second has passed, tests call it to
//! move time on. A connection has one timer entry at a time, for the
//! earliest of its head deadline and its next noop.

use std::sync::atomic::Ordering;

use super::conn::{Flags, State};
use super::subs::NIL;
use super::transport::Frame;
use super::{respond, Front, Sock};
use crate::encode;
use crate::ws::CloseCode;

impl<S: Sock> Front<S> {
    /// Makes sure the connection's timer fires no later than tick `at`.
    pub(super) fn arm(&mut self, idx: u32, at: u32) {
        let c = &mut self.conns[idx as usize];
        if c.timer_at == 0 || at < c.timer_at {
            c.timer_at = at;
            self.wheel.insert(at, idx);
        }
    }

    /// Advances the clock to tick `now` (one tick per second) and runs what
    /// came due.
    pub fn tick(&mut self, now: u32) {
        while self.now < now {
            self.now += 1;
            self.date = respond::date_line();
            let mut due = std::mem::take(&mut self.due);
            let tick = self.now;
            self.wheel.expire(tick, |idx, at| due.push((idx, at)));
            for &(idx, at) in &due {
                self.on_timer(idx, at);
            }
            self.expire_pending_checks();
            due.clear();
            if due.capacity() <= 4096 {
                self.due = due;
            }
        }
    }

    /// A timer entry came due at tick `at`.
    fn on_timer(&mut self, idx: u32, at: u32) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(idx as usize) else {
            return;
        };
        if c.sock.is_none() || c.timer_at != at {
            // Stale: closed, reused, or re-armed for another tick.
            return;
        }
        c.timer_at = 0;
        if c.state == State::Closing && c.tick != 0 {
            // Its last response, or its WebSocket close, had its time.
            if c.tick <= now {
                self.close_conn(idx);
            } else {
                let at = c.tick;
                self.arm(idx, at);
            }
            return;
        }
        if c.state == State::Idle && c.tick != 0 {
            if c.tick <= now {
                log::debug!("worker {}: request head timeout", self.worker);
                self.shared.stats.head_timeouts.fetch_add(1, Ordering::Relaxed);
                self.close_conn(idx);
            } else {
                let at = c.tick;
                self.arm(idx, at);
            }
            return;
        }
        if c.state == State::Waiting {
            let due = c.tick + self.settings.polling_timeout + 1;
            if due > now {
                self.arm(idx, due);
            } else {
                self.send_noop(idx);
            }
        }
    }

    /// Sends a noop heartbeat (its seq is the connection's noop counter);
    /// a long poll's response ends with it.
    fn send_noop(&mut self, idx: u32) {
        let now = self.now;
        let c = &mut self.conns[idx as usize];
        let name = match c.first_sub {
            NIL => "",
            i => self.subs.name(self.subs.get(i).chan).unwrap_or(""),
        };
        let json = encode::message("noop", name, c.noop, "");
        c.noop = c.noop.wrapping_add(1);
        c.tick = now;
        let (t, chunked) = (c.transport, !c.flags.has(Flags::HTTP10));
        let cb = c.extra.as_mut().and_then(|e| e.cb.take());
        let mut out = Vec::new();
        t.frame_jsonp(&mut out, Frame::control(&json), cb.as_deref(), chunked);
        if !t.is_streaming() {
            self.leave(idx);
            self.send(idx, &[&out]);
            self.end_response(idx);
        } else if self.send(idx, &[&out]) {
            self.arm(idx, now + self.settings.polling_timeout + 1);
        } else {
            self.close_conn(idx);
        }
    }

    /// Starts a graceful shutdown: every waiting long poll is answered with a
    /// noop (icomet clients poll again at once, with the same seq, and reach
    /// another node or the restarted server), every stream ends with its
    /// last chunk (an EventSource reconnects with its `Last-Event-ID`), idle
    /// keep-alive connections close, and replies still being written get
    /// until the worker's deadline to finish.
    pub fn drain(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        for idx in 0..self.conns.len() as u32 {
            let c = &mut self.conns[idx as usize];
            if c.sock.is_none() {
                continue;
            }
            c.flags.set(Flags::KEEP_ALIVE, false);
            match c.state {
                _ if c.is_websocket() => self.ws_close(idx, CloseCode::GOING_AWAY, "server shutting down"),
                State::Waiting if !c.transport.is_streaming() => self.send_noop(idx),
                State::Waiting => {
                    let (t, chunked) = (c.transport, !c.flags.has(Flags::HTTP10));
                    self.leave(idx);
                    let mut out = Vec::new();
                    t.end(&mut out, chunked);
                    self.send(idx, &[&out]);
                    self.end_response(idx);
                }
                // A subscribe still waiting for the authorize hook has sent
                // nothing: it closes like an idle connection.
                State::Idle | State::Dead | State::Authorizing => self.close_conn(idx),
                State::Closing => {}
            }
        }
    }

    /// Closes every connection at once (the end of a shutdown's grace).
    pub fn close_all(&mut self) {
        for idx in 0..self.conns.len() as u32 {
            self.close_conn(idx);
        }
    }
}
