//! Reading opcode arguments and building errors that carry the opcode offset.

use super::super::graph::{Node, NodeId};
use super::super::ops;
use super::super::text;
use super::{kind, Machine, PickleError};

impl<'a> Machine<'a> {
    // ----- Errors ---------------------------------------------------------

    pub(super) fn truncated(&self) -> PickleError {
        PickleError::Truncated { offset: self.at }
    }

    pub(super) fn underflow(&self) -> PickleError {
        PickleError::StackUnderflow {
            opcode: ops::name(self.op),
            offset: self.at,
        }
    }

    pub(super) fn invalid(&self, reason: impl Into<String>) -> PickleError {
        PickleError::Invalid {
            offset: self.at,
            reason: reason.into(),
        }
    }

    pub(super) fn limit(&self, what: &'static str, limit: usize) -> PickleError {
        PickleError::LimitExceeded {
            what,
            limit,
            offset: self.at,
        }
    }

    pub(super) fn mismatch(&self, expected: &'static str, found: NodeId) -> PickleError {
        PickleError::TypeMismatch {
            opcode: ops::name(self.op),
            expected,
            found: kind(self.nodes.get(found.index())),
            offset: self.at,
        }
    }

    // ----- Reading the input ------------------------------------------------

    /// The next `n` bytes; the length is checked before anything is copied.
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let input: &'a [u8] = self.input;
        let end = self.pos.checked_add(n).ok_or_else(|| self.truncated())?;
        let bytes = input.get(self.pos..end).ok_or_else(|| self.truncated())?;
        self.pos = end;
        Ok(bytes)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| self.truncated())
    }

    pub(super) fn byte(&mut self) -> Result<u8, PickleError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    pub(super) fn len_i32(&mut self) -> Result<usize, PickleError> {
        let len = i32::from_le_bytes(self.array()?);
        usize::try_from(len).map_err(|_| self.invalid(format!("negative byte count {len}")))
    }

    pub(super) fn len_u32(&mut self) -> Result<usize, PickleError> {
        let len = u32::from_le_bytes(self.array()?);
        usize::try_from(len).map_err(|_| self.truncated())
    }

    pub(super) fn len_u64(&mut self) -> Result<usize, PickleError> {
        let len = u64::from_le_bytes(self.array()?);
        usize::try_from(len).map_err(|_| self.truncated())
    }

    /// One protocol-0 argument line, without its `\n`.
    pub(super) fn readline(&mut self) -> Result<&'a [u8], PickleError> {
        let input: &'a [u8] = self.input;
        let rest = input.get(self.pos..).unwrap_or(&[]);
        let len = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.truncated())?;
        let line = rest.get(..len).unwrap_or(&[]);
        self.pos += len + 1;
        Ok(line)
    }

    /// `GLOBAL` / `INST`: a module line and a name line.
    pub(super) fn global_lines(&mut self) -> Result<Node, PickleError> {
        let module = text::latin1_or_utf8(self.readline()?);
        let name = text::latin1_or_utf8(self.readline()?);
        Ok(Node::Global { module, name })
    }
}
