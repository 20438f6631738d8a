//! Why a pickle could not be read.

use thiserror::Error;

/// A pickle that [`parse`](super::parse) refused. Every variant carries the
/// byte offset of the opcode being executed when reading stopped (for
/// [`PickleError::Truncated`] without `STOP`, the end of the input).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PickleError {
    /// The input ended before `STOP`, or inside an opcode's argument.
    #[error("pickle truncated at byte {offset}")]
    Truncated {
        /// Offset of the opcode whose argument is cut short, or the input
        /// length when the input ends between opcodes.
        offset: usize,
    },
    /// A byte that is not an opcode of protocols 0-5.
    #[error("unknown pickle opcode 0x{opcode:02x} at byte {offset}")]
    UnknownOpcode {
        /// The offending byte.
        opcode: u8,
        /// Where it was found.
        offset: usize,
    },
    /// An opcode needed more values than the stack (above the top mark) held.
    #[error("pickle stack underflow in {opcode} at byte {offset}")]
    StackUnderflow {
        /// Name of the opcode, e.g. `APPEND`.
        opcode: &'static str,
        /// Offset of the opcode.
        offset: usize,
    },
    /// An opcode that collects items up to a `MARK` found no open mark.
    #[error("no MARK open for {opcode} at byte {offset}")]
    MarkMissing {
        /// Name of the opcode, e.g. `TUPLE`.
        opcode: &'static str,
        /// Offset of the opcode.
        offset: usize,
    },
    /// `GET` / `BINGET` / `LONG_BINGET` of a key never stored.
    #[error("pickle memo key {key} not found at byte {offset}")]
    MemoMissing {
        /// The memo key asked for.
        key: u64,
        /// Offset of the opcode.
        offset: usize,
    },
    /// One of the [`Limits`](super::Limits) was reached.
    #[error("pickle {what} limit of {limit} exceeded at byte {offset}")]
    LimitExceeded {
        /// Which limit: `nodes`, `stack` or `memo`.
        what: &'static str,
        /// The limit's value.
        limit: usize,
        /// Offset of the opcode that would have exceeded it.
        offset: usize,
    },
    /// An opcode applied to a value of the wrong kind, e.g. `APPEND` to a dict.
    #[error("pickle opcode {opcode} at byte {offset} expects {expected}, found {found}")]
    TypeMismatch {
        /// Name of the opcode.
        opcode: &'static str,
        /// What it accepts, e.g. `a list or object`.
        expected: &'static str,
        /// The kind it found, e.g. `dict`.
        found: &'static str,
        /// Offset of the opcode.
        offset: usize,
    },
    /// `PROTO` named a protocol newer than 5.
    #[error("unsupported pickle protocol {protocol} at byte {offset}")]
    UnsupportedProtocol {
        /// The protocol number found.
        protocol: u8,
        /// Offset of the `PROTO` opcode.
        offset: usize,
    },
    /// `NEXT_BUFFER` asked for an out-of-band buffer; none are ever supplied.
    #[error("pickle needs an out-of-band buffer (NEXT_BUFFER) at byte {offset}")]
    OutOfBandBuffer {
        /// Offset of the `NEXT_BUFFER` opcode.
        offset: usize,
    },
    /// A malformed argument: bad number text, unquoted `STRING`, odd item
    /// count for `DICT`, negative length, and the like.
    #[error("invalid pickle at byte {offset}: {reason}")]
    Invalid {
        /// Offset of the opcode.
        offset: usize,
        /// What was wrong, one line.
        reason: String,
    },
}

impl PickleError {
    /// The byte offset the error refers to.
    pub fn offset(&self) -> usize {
        match self {
            PickleError::Truncated { offset }
            | PickleError::UnknownOpcode { offset, .. }
            | PickleError::StackUnderflow { offset, .. }
            | PickleError::MarkMissing { offset, .. }
            | PickleError::MemoMissing { offset, .. }
            | PickleError::LimitExceeded { offset, .. }
            | PickleError::TypeMismatch { offset, .. }
            | PickleError::UnsupportedProtocol { offset, .. }
            | PickleError::OutOfBandBuffer { offset }
            | PickleError::Invalid { offset, .. } => *offset,
        }
    }
}
