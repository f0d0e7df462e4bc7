//! The WebSocket protocol (RFC 6455), server side, with no I/O at all.
//!
//! This module owns the opening handshake (checking a request's headers and
//! writing the `101` answer or saying which HTTP refusal to send), the frame
//! decoder for client→server frames (parsed and unmasked in place in the
//! caller's buffer), the writers for server→client frames, and the close
//! codes. It must not touch sockets, the worker loop, the channel table or
//! any configuration: callers hand it bytes and header values and get bytes,
//! events and typed errors back.
//!
//! Memory is the design constraint: an idle WebSocket connection holds one
//! [`WsState`] of 8 bytes; a buffer exists only while a frame is partly
//! received or a fragmented message is being reassembled.
//!
//! - [`handshake`]: request facts, refusals, the accept key and the `101` answer.
//! - [`codec`]: [`WsState::decode`], the events it yields and the errors it reports.
//! - [`frame`]: opcodes and the writers of unmasked server frames.
//! - [`close`]: [`CloseCode`] with every code comet uses, close frames and the close reply.
//! - [`mask`]: unmasking, a word at a time.

pub mod close;
pub mod codec;
mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
mod origin;

#[cfg(test)]
mod bench;

pub use close::CloseCode;
pub use codec::{Close, Decoded, Event, WsError, WsState, MAX_KEPT};
pub use handshake::{AcceptKey, Refusal, UpgradeRequest};
pub use origin::{AllowedOrigins, BadOrigin};
