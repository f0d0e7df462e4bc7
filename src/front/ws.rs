//! WebSocket connections: the upgrade, the client's frames (pings, closes,
//! `sub` and `unsub` commands), and closing with a code.
//!
//! After the `101`, a `/ws` connection is a streaming subscriber like
//! `/stream` (its frames are built in `transport`), that also reads: its
//! input is decoded in place from the worker's read buffer by
//! [`crate::ws::WsState`], and only the few bytes of a frame cut by a read
//! (and the state of a fragmented message) are kept, in the connection's
//! optional buffers. An idle WebSocket subscriber holds no buffer.
//!
//! Close codes: 1000 after icomet's `close` object when its last channel is
//! closed; 1001 on shutdown; 1002, 1007 and 1009 for bad client frames;
//! 1003 for binary messages on `/ws`; 1008 for a client sending more than
//! `front.ws_max_frames_per_sec`; 1013 for a slow consumer; 4401 and 4429
//! for icomet's 401 and 429 refusals of the URL channel. After its close
//! frame the server half-closes and releases the socket when the client's
//! close or end of stream arrives, or after [`CLOSE_WAIT_TICKS`] at most.

use std::sync::atomic::Ordering;

use serde::Deserialize;

use super::conn::{Flags, State};
use super::request::Request;
use super::subs::NIL;
use super::transport::Frame;
use super::{Front, Sock, Transport};
use crate::encode;
use crate::hooks::LeaveReason;
use crate::params;
use crate::ws::frame::{self, Opcode};
use crate::ws::{close, AcceptKey, CloseCode, Decoded, Event, Refusal, WsState};

/// Ticks a closing WebSocket may take to answer before its socket is released.
pub(super) const CLOSE_WAIT_TICKS: u32 = 2;

/// Largest message `/ws_echo` takes (what Autobahn's cases send; the
/// endpoint exists for conformance runs only).
const ECHO_MAX_MESSAGE: usize = 16 << 20;

/// A client command on `/ws`: one JSON object per text message.
#[derive(Debug, Deserialize)]
struct Command {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    cname: Option<String>,
    #[serde(default)]
    seq: Option<i32>,
    #[serde(default)]
    token: Option<String>,
}

impl<S: Sock> Front<S> {
    /// The accept key of a `/ws` or `/ws_echo` request, or the HTTP
    /// refusal to send before any upgrade (400, 403, 405, 426).
    pub(super) fn check_upgrade(&self, req: &Request) -> Result<AcceptKey, Refusal> {
        let accept = req.upgrade.unwrap_or(Err(Refusal::NoUpgradeToken))?;
        if !self.settings.origins.allows(req.origin.as_deref()) {
            return Err(Refusal::OriginNotAllowed);
        }
        Ok(accept)
    }

    /// Answers a refused upgrade with its plain HTTP error and closes.
    pub(super) fn refuse_upgrade(&mut self, idx: u32, refusal: &Refusal) {
        self.shared.stats.ws_refused_upgrades.fetch_add(1, Ordering::Relaxed);
        let c = &mut self.conns[idx as usize];
        c.flags.set(Flags::KEEP_ALIVE, false);
        if let Some(e) = c.extra.as_mut() {
            e.inbuf = Vec::new();
        }
        let response = refusal.response();
        self.send(idx, &[&response]);
        self.end_response(idx);
    }

    /// `/ws_echo`: a WebSocket that echoes every message (conformance
    /// testing; only with `front.ws_echo`).
    pub(super) fn ws_echo(&mut self, idx: u32, req: Request) {
        match self.check_upgrade(&req) {
            Err(refusal) => self.refuse_upgrade(idx, &refusal),
            Ok(accept) => {
                self.enter_waiting(idx, Transport::Ws, 0, None);
                self.conns[idx as usize].flags.set(Flags::WS_ECHO, true);
                let now = self.now;
                if self.send(idx, &[&accept.response()]) {
                    self.arm(idx, now + self.settings.polling_timeout + 1);
                }
            }
        }
    }

    /// Bytes from a WebSocket client (`bytes` is the worker's read buffer,
    /// unmasked in place): decodes every frame that is complete, keeps the
    /// few bytes of one cut by the read.
    pub(super) fn ws_input(&mut self, idx: u32, bytes: &mut [u8]) {
        let c = &mut self.conns[idx as usize];
        let echo = c.flags.has(Flags::WS_ECHO);
        let max = if echo {
            ECHO_MAX_MESSAGE
        } else {
            self.settings.ws_max_message
        };
        let (mut kept, mut state) = match c.extra.as_mut() {
            Some(e) => (std::mem::take(&mut e.inbuf), std::mem::take(&mut e.ws)),
            None => (Vec::new(), WsState::new()),
        };
        let buf: &mut [u8] = if kept.is_empty() {
            bytes
        } else {
            kept.extend_from_slice(bytes);
            &mut kept
        };
        let mut pos = 0;
        loop {
            let Decoded { consumed, event } = match state.decode(&mut buf[pos..], max) {
                Ok(d) => d,
                Err(e) => {
                    log::debug!("worker {}: websocket client error: {e}", self.worker);
                    self.shared.stats.ws_protocol_errors.fetch_add(1, Ordering::Relaxed);
                    self.ws_close(idx, e.close_code(), &e.to_string());
                    return;
                }
            };
            pos += consumed;
            let Some(event) = event else { break };
            if !self.ws_count_frame(idx) {
                return;
            }
            let c = &self.conns[idx as usize];
            if c.sock.is_none() {
                return;
            }
            if c.flags.has(Flags::WS_CLOSING) {
                // Our close went first: only the client's answer matters.
                if matches!(event, Event::Close(_)) {
                    self.close_conn(idx);
                    return;
                }
                continue;
            }
            match event {
                Event::Text(text) if echo => self.ws_send(idx, Opcode::Text, text.as_bytes()),
                Event::Binary(data) if echo => self.ws_send(idx, Opcode::Binary, &data),
                Event::Text(text) => self.ws_command(idx, &text),
                Event::Binary(_) => {
                    self.ws_close(idx, CloseCode::UNSUPPORTED_DATA, "commands are text");
                    return;
                }
                Event::Ping(payload) => {
                    let mut pong = Vec::with_capacity(2 + payload.len());
                    frame::push_pong(&mut pong, payload);
                    self.send(idx, &[&pong]);
                }
                Event::Pong(_) => {}
                Event::Close(c) => {
                    // Answer per RFC 6455 §5.5.1 (the code echoed), then
                    // half-close; the socket goes when the client ends.
                    let code = close::reply_code(c.code);
                    self.ws_close(idx, code, "");
                    return;
                }
            }
        }
        let c = &mut self.conns[idx as usize];
        if c.sock.is_none() {
            return;
        }
        let rest = &buf[pos..];
        if !rest.is_empty() || !state.is_idle() {
            let e = c.extra();
            e.inbuf = rest.to_vec();
            e.ws = state;
        }
        c.shrink();
    }

    /// Counts one client frame against `front.ws_max_frames_per_sec`; past
    /// it the connection is closed with 1008 and false is returned.
    fn ws_count_frame(&mut self, idx: u32) -> bool {
        let (now, limit) = (self.now, self.settings.ws_max_frames_per_sec);
        let e = self.conns[idx as usize].extra();
        if e.frames_tick != now {
            e.frames_tick = now;
            e.frames = 0;
        }
        e.frames += 1;
        if e.frames <= limit {
            return true;
        }
        self.shared.stats.ws_flood_closes.fetch_add(1, Ordering::Relaxed);
        log::debug!(
            "worker {}: websocket client sent more than {limit} frames in a second",
            self.worker
        );
        self.ws_close(idx, CloseCode::POLICY_VIOLATION, "too many frames");
        false
    }

    /// Sends one unfragmented data frame (the echo endpoint).
    fn ws_send(&mut self, idx: u32, opcode: Opcode, payload: &[u8]) {
        let mut out = Vec::with_capacity(payload.len() + frame::MAX_SERVER_HEADER);
        frame::push_frame(&mut out, opcode, true, payload);
        self.send(idx, &[&out]);
    }

    /// One command from a `/ws` client: `sub` or `unsub` (one JSON object
    /// per text message). A bad command is answered with a 400 object; the
    /// connection stays.
    fn ws_command(&mut self, idx: u32, text: &str) {
        let cmd: Command = match serde_json::from_str(text) {
            Ok(cmd) => cmd,
            Err(e) => return self.ws_reply(idx, "400", "", 0, &format!("bad command: {e}")),
        };
        let cname = cmd.cname.as_deref().unwrap_or("");
        if let Err(e) = params::check_cname(cname, self.settings.max_cname) {
            return self.ws_reply(idx, "400", "", 0, &e.to_string());
        }
        let first = self.conns[idx as usize].first_sub;
        let held = self.subs.find_by_name(first, cname);
        match cmd.kind.as_str() {
            "sub" => {
                if held.is_some() || self.pending_sub(idx, cname) {
                    return self.ws_reply(idx, "400", cname, 0, "Already subscribed");
                }
                let holding = self.subs.of_conn(first).count() + self.pending_subs(idx);
                if holding >= self.settings.max_channels_per_connection as usize {
                    return self.ws_reply(idx, "429", cname, 0, "Too many channels on this connection");
                }
                let token = cmd.token.as_deref().unwrap_or("");
                self.join_channel(idx, cname, cmd.seq.unwrap_or(0), token);
            }
            "unsub" => {
                let Some(sub) = held else {
                    if let Some(seq) = self.cancel_pending_sub(idx, cname) {
                        // Still waiting for the authorize hook: it never starts.
                        return self.ws_reply(idx, "unsub", cname, seq, "");
                    }
                    return self.ws_reply(idx, "400", cname, 0, "Not subscribed");
                };
                self.hook_left(sub, LeaveReason::Unsubscribed);
                let next = self.subs.get(sub).next_seq;
                let c = &mut self.conns[idx as usize];
                let (chan, empty) = self.subs.remove_of_conn(&mut c.first_sub, sub);
                self.shared.channels.unsubscribe(chan, 1, self.worker, empty);
                self.ws_reply(idx, "unsub", cname, next, "");
            }
            other => {
                let reason = format!("unknown command type {:?} (sub, unsub)", other);
                self.ws_reply(idx, "400", cname, 0, &reason);
            }
        }
    }

    /// Sends one icomet-shaped object in a text frame.
    fn ws_reply(&mut self, idx: u32, kind: &str, cname: &str, seq: i32, content: &str) {
        let json = encode::message(kind, cname, seq, &encode::escape_json(content));
        let mut out = Vec::new();
        Transport::Ws.frame(&mut out, Frame::control(&json), true);
        self.send(idx, &[&out]);
    }

    /// Closes a WebSocket from the server's side: leaves every channel,
    /// sends the close frame (even past `front.max_queued_bytes`: a slow
    /// consumer gets 1013 this way), half-closes once it is written, and
    /// releases the socket when the client answers or after
    /// [`CLOSE_WAIT_TICKS`].
    pub(super) fn ws_close(&mut self, idx: u32, code: CloseCode, reason: &str) {
        let c = &mut self.conns[idx as usize];
        if c.sock.is_none() || c.flags.has(Flags::WS_CLOSING) {
            return;
        }
        self.leave(idx);
        let mut frame = Vec::with_capacity(2 + 2 + reason.len());
        close::push_close_frame(&mut frame, code, reason);
        let now = self.now;
        let c = &mut self.conns[idx as usize];
        c.flags.set(Flags::WS_CLOSING, true);
        c.state = State::Closing;
        c.tick = now + CLOSE_WAIT_TICKS;
        let pending = c.extra.as_ref().is_some_and(|e| e.out_pos < e.out.len());
        if c.flags.take(Flags::SLOW) || pending {
            // Behind what is queued; the half-close follows once it is out.
            c.extra().out.extend_from_slice(&frame);
        } else if !super::conn::send_to(c, &[&frame], usize::MAX, &self.shared) {
            self.close_conn(idx);
            return;
        } else if c.extra.as_ref().is_none_or(|e| e.out_pos >= e.out.len()) {
            if let Some(sock) = c.sock.as_ref() {
                sock.shutdown_write();
            }
        }
        self.arm(idx, now + CLOSE_WAIT_TICKS);
    }

    /// A WebSocket whose last channel was closed (`/close`): icomet's
    /// `close` object went out with the channel's frames; close with 1000.
    pub(super) fn ws_channel_closed(&mut self, idx: u32) {
        let c = &self.conns[idx as usize];
        if c.first_sub == NIL && !c.flags.has(Flags::WS_ECHO) {
            self.ws_close(idx, CloseCode::NORMAL, "channel closed");
        }
    }
}
