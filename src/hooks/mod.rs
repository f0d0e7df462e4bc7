//! Calls from comet to the application: the authorize hook
//! ([`Authorizer`], `hooks.authorize_url`) and the event hook
//! ([`EventSink`], `hooks.events_url`), their configuration
//! ([`HooksConfig`]), the events and their JSON ([`HookEvent`]), and the
//! long-poll presence rule ([`PollLineages`]).
//!
//! Both hooks run their HTTP on a tokio runtime handed to them (the admin
//! runtime suits: few connections, full HTTP); callers on other runtimes or
//! plain threads only await a task handle ([`Authorizer::check`]) or push
//! to a queue ([`EventSink::push`], which never waits and never allocates).
//! Nothing here runs per delivery: the authorize hook runs once per
//! subscribe request, events once per join, leave, channel online/offline
//! and (when asked) publish. This module never touches a socket of a
//! subscriber, a channel slot or a worker; the worker decides when to call.
//!
//! # When a subscriber joins and leaves (the contract for the worker)
//!
//! A `subscribe` event is pushed once a subscription is registered (after
//! JWT verification and the authorize hook, before the first frame); a
//! refused subscribe (401 or 429 frame) produces no event. Every
//! `subscribe` is followed by exactly one `unsubscribe` with the same `id`,
//! `cname`, `transport`, `ip` and `sub`, and a [`LeaveReason`]:
//!
//! - **`stream`, `sse`, `iframe`:** one connection is one subscriber. It
//!   leaves when its record is removed: the client closed or broke the
//!   connection (`closed`), its output queue overflowed (`slow_consumer`),
//!   `/close` or expiry ended the channel (`channel_closed`), or the server
//!   stops (`shutdown`).
//! - **WebSocket:** each channel of a connection (its URL channel, each
//!   accepted `sub`) is one subscriber, leaving as above, or with
//!   `unsubscribed` on an `unsub` command.
//! - **`poll` (long-poll, `/sub` and `/poll`):** each request is short and
//!   the client polls again after each answer, possibly on a new connection
//!   accepted by another worker. So a long-poll subscriber is a *lineage* of
//!   requests with the same (client ip, cname, token as sent, empty when
//!   none), kept in one [`PollLineages`] table shared by the workers and
//!   touched twice per request (start, end), never per delivery:
//!   - a request whose key has no live lineage starts one: `subscribe`;
//!   - a request whose key has a live lineage joins it: no event;
//!   - when the last open request of a lineage ends (answered with data, a
//!     noop or close, or the client went away), the lineage is idle;
//!   - a lineage idle for longer than `polling_timeout` +
//!     [`POLL_GRACE_SECS`] ends with `unsubscribe`, reason `timeout`. A
//!     client polls again within milliseconds of an answer (icomet.js waits
//!     at most a second after a noop), so only a client that is gone stays
//!     away that long; re-polls within the window are neither a leave nor
//!     a join.
//!   - `/close`, expiry and shutdown end the channel's lineages at once
//!     (`channel_closed`, `shutdown`), open requests or not.
//!
//!   The lineage cannot tell apart two tabs that poll the same channel from
//!   the same address with the same token (or none): they are one
//!   subscriber to the application. icomet's `noop` and `seq` parameters do
//!   not separate them either (tabs on one channel share both). Tokens that
//!   differ per page (a JWT with its own `jti` or `iat`) do.
//!
//! The `/psub` channel events map one to one: `1 <cname>` is `online`, `0
//! <cname>` is `offline`, at the same moments.
//!
//! [`Events`] (`node.rs`) is the event hook as a running server uses it:
//! the channel table's notices, the workers' joins and leaves and the
//! intake's publishes all go through it; `crate::backend` builds both
//! hooks at start.

mod authorize;
mod client;
pub mod config;
mod event;
mod lineage;
pub mod node;
mod sink;

pub use authorize::{AuthorizeRequest, AuthorizeStats, Authorizer, Verdict};
pub use client::PostError;
pub use config::{HooksConfig, OnError};
pub use event::{batch_json, next_id, now_ms, HookEvent, Leave, LeaveReason, Subscriber};
pub use lineage::{LineageKey, PollLineages, POLL_GRACE_SECS};
pub use node::Events;
pub use sink::{EventSink, EventStats};
