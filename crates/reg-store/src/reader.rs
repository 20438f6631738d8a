//! A pull-style reader over a blob's raw bytes, verified at the end.

use crate::chain::ChainReader;
use crate::{BlobId, StoreError};
use std::io::{self, Read};

/// Reads a blob's decoded bytes (through its delta chain). When the last
/// byte has been read, the length and blake3 hash are checked; a mismatch
/// is an `InvalidData` I/O error whose message names the blob.
pub struct BlobReader {
    id: BlobId,
    inner: ChainReader,
    hasher: blake3::Hasher,
    remaining: u64,
    verified: bool,
}

impl BlobReader {
    pub(crate) fn new(inner: ChainReader, raw_len: u64, id: BlobId) -> Result<BlobReader, StoreError> {
        Ok(BlobReader {
            id,
            inner,
            hasher: blake3::Hasher::new(),
            remaining: raw_len,
            verified: raw_len == 0 && BlobId::of(b"") == id,
        })
    }

    /// The blob being read.
    pub fn id(&self) -> BlobId {
        self.id
    }

    /// Raw bytes not yet read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    fn check_end(&mut self) -> io::Result<()> {
        if self.verified {
            return Ok(());
        }
        if BlobId::from(self.hasher.finalize()) != self.id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {} is corrupt: content does not match its hash", self.id),
            ));
        }
        self.verified = true;
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            self.check_end()?;
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self
            .inner
            .read(&mut buf[..want])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("blob {} is corrupt: {e}", self.id)))?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {} is corrupt: {} bytes short", self.id, self.remaining),
            ));
        }
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        if self.remaining == 0 {
            self.check_end()?;
        }
        Ok(n)
    }
}
