//! Admission of a subscription, before the channel table is asked: the
//! JWT check (`front.auth: jwt`) and the authorize hook
//! (`hooks.authorize_url`), and the subscribes that wait for the hook.
//!
//! A token is verified on the worker with no lock held, and a cached
//! authorize answer is used on the spot, so a subscribe that needs nothing
//! new from the application never leaves the worker. Otherwise the request
//! is parked: the connection goes to [`State::Authorizing`] and holds
//! nothing more; what it asked for (its request head, or a WebSocket `sub`
//! command) waits in this worker's table of pending checks under a ticket
//! unique in the process; the hook runs on the hooks runtime and its
//! verdict comes back through the worker's mailbox
//! (`Command::Authorized`), with the connection's [`Token`] so that a
//! closed or reused connection is recognised. The subscribe then continues
//! exactly as it would have. A check that gets no verdict in time (the
//! hooks runtime stopped) is decided by `hooks.authorize_on_error`.
//!
//! A refused token is answered like token mode's refusal (icomet's 401
//! frame, "Token error"); a refusal by the application is a 401 frame too,
//! with "Not authorized". This file never writes to a socket itself.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use super::conn::{Flags, State};
use super::request::Request;
use super::{Front, Sock, Token, Transport};
use crate::channel::SubscribeError;
use crate::hooks::{AuthorizeRequest, Verdict};
use crate::mailbox::Command;

/// Ticks a pending check may take beyond `hooks.authorize_timeout_ms`
/// before the worker decides it by the policy (the hook always answers
/// within its timeout unless its runtime stopped).
const PENDING_GRACE_TICKS: u32 = 2;

/// Tickets of pending checks: unique in the process, so that a verdict
/// never matches another request, even in a worker's successor.
static NEXT_TICKET: AtomicU64 = AtomicU64::new(1);

/// What the checks found out about a subscriber that passed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Admitted {
    /// The JWT `sub` claim (JWT mode, when the token has one).
    pub sub: Option<Box<str>>,
    /// The client's address when a hook needs it, else unspecified.
    pub ip: IpAddr,
}

impl Default for Admitted {
    fn default() -> Admitted {
        Admitted {
            sub: None,
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// The outcome of the checks.
#[derive(Debug)]
pub(super) enum Admit {
    /// The subscription may start.
    Pass(Admitted),
    /// Refused: answer with this refusal's frame.
    Refuse(SubscribeError),
    /// Waiting for the authorize hook: park the request under this ticket.
    Parked(u64, Admitted),
}

/// What waits for a verdict.
#[derive(Debug)]
enum Waiting {
    /// A subscribe request and its transport.
    Request(Request, Transport),
    /// A WebSocket `sub` command.
    Sub { cname: Box<str>, seq: i32, token: Box<str> },
}

/// One check waiting for its verdict.
#[derive(Debug)]
struct Pending {
    conn: Token,
    /// The tick past which the policy decides.
    until: u32,
    admitted: Admitted,
    waiting: Waiting,
}

/// A worker's checks waiting for the authorize hook, by ticket (empty, and
/// unallocated, while the hook is off).
#[derive(Debug, Default)]
pub(super) struct PendingChecks(HashMap<u64, Pending>);

impl<S: Sock> Front<S> {
    /// Runs the admission checks for a subscription of connection `idx`
    /// to `cname` with `token` (as sent) over `t`: the JWT, then (when the
    /// authorize hook is on) token mode's own check and the hook's cached
    /// answer, else a request to the application.
    pub(super) fn admit(&self, idx: u32, cname: &str, token: &str, t: Transport) -> Admit {
        let backend = &self.shared.backend;
        let mut admitted = Admitted::default();
        if backend.jwt_on() {
            match backend.verify_jwt(token, cname) {
                Ok(sub) => admitted.sub = sub,
                Err(e) => {
                    log::debug!("worker {}: subscribe token refused: {e}", self.worker);
                    return Admit::Refuse(SubscribeError::TokenError);
                }
            }
        }
        if backend.wants_peer() {
            let c = &self.conns[idx as usize];
            if let Some(ip) = c.sock.as_ref().and_then(Sock::peer_ip) {
                admitted.ip = ip;
            }
        }
        let Some(authorizer) = backend.authorizer() else {
            return Admit::Pass(admitted);
        };
        if backend.token_mode() {
            // The application hears only of subscribes the table would take.
            if let Err(e) = self.shared.channels.check_token(cname, token) {
                return Admit::Refuse(e);
            }
        }
        if let Some(verdict) = authorizer.cached(cname, token) {
            return decided(verdict, admitted);
        }
        let ticket = NEXT_TICKET.fetch_add(1, Ordering::Relaxed);
        let conn = Token::new(idx, self.conns[idx as usize].gen);
        let (channels, worker) = (self.shared.channels.clone(), self.worker);
        let req = AuthorizeRequest {
            cname: cname.to_string(),
            token: token.to_string(),
            ip: admitted.ip,
            transport: t.name(),
        };
        let asked = authorizer.ask_then(req, move |verdict| {
            channels
                .mailboxes()
                .push(worker, Command::Authorized(conn, ticket, verdict));
        });
        match asked {
            Some(verdict) => decided(verdict, admitted),
            None => Admit::Parked(ticket, admitted),
        }
    }

    /// Parks subscribe request `req` of connection `idx` until the verdict
    /// of `ticket` comes.
    pub(super) fn park_request(&mut self, idx: u32, ticket: u64, admitted: Admitted, req: Request, t: Transport) {
        let until = self.pending_until();
        let c = &mut self.conns[idx as usize];
        c.state = State::Authorizing;
        c.tick = 0;
        let conn = Token::new(idx, c.gen);
        let pending = Pending {
            conn,
            until,
            admitted,
            waiting: Waiting::Request(req, t),
        };
        self.checks.0.insert(ticket, pending);
    }

    /// Parks a WebSocket `sub` command of connection `idx` until the
    /// verdict of `ticket` comes; the connection goes on meanwhile.
    pub(super) fn park_sub(&mut self, idx: u32, ticket: u64, admitted: Admitted, cname: &str, seq: i32, token: &str) {
        let until = self.pending_until();
        let conn = Token::new(idx, self.conns[idx as usize].gen);
        let waiting = Waiting::Sub {
            cname: cname.into(),
            seq,
            token: token.into(),
        };
        let pending = Pending {
            conn,
            until,
            admitted,
            waiting,
        };
        self.checks.0.insert(ticket, pending);
    }

    /// The authorize hook's verdict on `ticket`, for connection `conn`.
    pub(super) fn authorized(&mut self, conn: Token, ticket: u64, verdict: Verdict) {
        match self.checks.0.remove(&ticket) {
            Some(p) if p.conn == conn => self.resume(p, verdict),
            // A verdict for another connection's ticket cannot happen;
            // dropping it is the safe answer.
            Some(_) | None => {}
        }
        self.shrink_pending();
    }

    /// Decides the checks that got no verdict in time, by the policy.
    /// Runs once a tick.
    pub(super) fn expire_pending_checks(&mut self) {
        if self.checks.0.is_empty() {
            return;
        }
        let now = self.now;
        let overdue: Vec<u64> = self
            .checks
            .0
            .iter()
            .filter(|(_, p)| p.until <= now)
            .map(|(&ticket, _)| ticket)
            .collect();
        let Some(policy) = self.shared.backend.authorizer().map(|a| a.on_error()) else {
            return;
        };
        for ticket in overdue {
            if let Some(p) = self.checks.0.remove(&ticket) {
                log::debug!(
                    "worker {}: no authorize verdict in time; {policy:?} by policy",
                    self.worker
                );
                self.resume(p, policy);
            }
        }
        self.shrink_pending();
    }

    /// Whether connection `idx` has a `sub` of `cname` waiting for its verdict.
    pub(super) fn pending_sub(&self, idx: u32, cname: &str) -> bool {
        self.pending_subs_of(idx).any(|(_, name, _)| name == cname)
    }

    /// The `sub` commands of connection `idx` waiting for their verdicts.
    pub(super) fn pending_subs(&self, idx: u32) -> usize {
        self.pending_subs_of(idx).count()
    }

    /// Cancels connection `idx`'s `sub` of `cname` that waits for its
    /// verdict (an `unsub` came first); the seq it asked for, or `None`
    /// when there is no such `sub`.
    pub(super) fn cancel_pending_sub(&mut self, idx: u32, cname: &str) -> Option<i32> {
        let (ticket, _, seq) = self.pending_subs_of(idx).find(|(_, name, _)| *name == cname)?;
        self.checks.0.remove(&ticket);
        self.shrink_pending();
        Some(seq)
    }

    /// (ticket, cname, seq) of each `sub` of connection `idx` that waits.
    fn pending_subs_of(&self, idx: u32) -> impl Iterator<Item = (u64, &str, i32)> {
        let conn = Token::new(idx, self.conns[idx as usize].gen);
        self.checks.0.iter().filter_map(move |(&ticket, p)| match &p.waiting {
            Waiting::Sub { cname, seq, .. } if p.conn == conn => Some((ticket, &**cname, *seq)),
            _ => None,
        })
    }

    /// Continues a parked subscribe with `verdict`, if its connection is
    /// still the one that asked and still waits.
    fn resume(&mut self, p: Pending, verdict: Verdict) {
        if !self.is_open(p.conn) {
            return;
        }
        let idx = p.conn.idx();
        let admitted = match verdict {
            Verdict::Allow => Ok(p.admitted),
            Verdict::Refuse => Err(SubscribeError::NotAuthorized),
        };
        match p.waiting {
            Waiting::Request(req, t) => {
                if self.conns[idx as usize].state != State::Authorizing {
                    return;
                }
                self.conns[idx as usize].state = State::Idle;
                self.subscribe_with(idx, req, t, Some(admitted));
                let c = &self.conns[idx as usize];
                let queued = c.extra.as_ref().is_some_and(|e| !e.inbuf.is_empty());
                if c.sock.is_some() && c.is_websocket() && queued {
                    // Frames that came while it waited: the client did not
                    // wait for the 101.
                    self.ws_input(idx, &mut []);
                }
            }
            Waiting::Sub { cname, seq, token } => {
                let c = &self.conns[idx as usize];
                if !c.is_websocket() || c.flags.has(Flags::WS_CLOSING) {
                    return;
                }
                self.join_admitted(idx, &cname, seq, &token, admitted);
            }
        }
    }

    /// The tick past which a check parked now is decided by the policy.
    fn pending_until(&self) -> u32 {
        let ms = self.shared.backend.authorizer().map_or(0, |a| a.timeout().as_millis());
        let secs = u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX);
        self.now.saturating_add(secs).saturating_add(PENDING_GRACE_TICKS)
    }

    /// Gives back the table's memory once a burst of checks is over.
    fn shrink_pending(&mut self) {
        if self.checks.0.is_empty() && self.checks.0.capacity() > 64 {
            self.checks.0 = HashMap::new();
        }
    }
}

/// The outcome of a verdict known at once.
fn decided(verdict: Verdict, admitted: Admitted) -> Admit {
    match verdict {
        Verdict::Allow => Admit::Pass(admitted),
        Verdict::Refuse => Admit::Refuse(SubscribeError::NotAuthorized),
    }
}
