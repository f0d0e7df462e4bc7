//! The ways a client's frames can break RFC 6455, each with the close code
//! the server answers it with.
//!
//! Only [`super::codec`] creates these; the caller sends
//! [`WsError::close_frame`], half-closes and stops reading frames.

use thiserror::Error;

use super::close::{close_frame, CloseCode};

/// A client frame or message the server must fail the connection for.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum WsError {
    /// A client frame without the mask bit (RFC 6455 §5.1).
    #[error("client frame is not masked")]
    Unmasked,
    /// An RSV1-3 bit set, with no extension negotiated.
    #[error("reserved bits set with no extension negotiated")]
    ReservedBits,
    /// Opcode 3-7 or 11-15.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A close, ping or pong with more than 125 bytes of payload.
    #[error("control frame longer than 125 bytes")]
    ControlTooLong,
    /// A close, ping or pong without the FIN bit.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A continuation frame with no fragmented message in progress.
    #[error("continuation frame with no message in progress")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress.
    #[error("new data frame inside a fragmented message")]
    ExpectedContinuation,
    /// A 64-bit payload length with the most significant bit set.
    #[error("64-bit payload length with the top bit set")]
    LengthTopBit,
    /// A text message that is not UTF-8, found at the first byte that cannot
    /// continue a valid sequence.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A close reason that is not UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// A data message longer than the caller's maximum, refused as soon as a
    /// frame header announces it.
    #[error("message longer than {limit} bytes")]
    MessageTooBig {
        /// The maximum the caller gave.
        limit: usize,
    },
    /// A close frame with a payload of one byte (a code needs two).
    #[error("close frame with a 1-byte payload")]
    CloseOneByte,
    /// A close code that may not be sent (see [`CloseCode::new`]).
    #[error("close code {0} may not be sent")]
    BadCloseCode(u16),
}

impl WsError {
    /// The close code the server answers with: 1007 for bad UTF-8, 1009 for
    /// a message over the maximum, 1002 for every framing error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            WsError::InvalidUtf8 | WsError::InvalidCloseReason => CloseCode::INVALID_PAYLOAD,
            WsError::MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            WsError::Unmasked
            | WsError::ReservedBits
            | WsError::ReservedOpcode(_)
            | WsError::ControlTooLong
            | WsError::FragmentedControl
            | WsError::UnexpectedContinuation
            | WsError::ExpectedContinuation
            | WsError::LengthTopBit
            | WsError::CloseOneByte
            | WsError::BadCloseCode(_) => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// The close frame to send: [`WsError::close_code`] with this error's
    /// message as the reason.
    pub fn close_frame(&self) -> Vec<u8> {
        close_frame(self.close_code(), &self.to_string())
    }
}
