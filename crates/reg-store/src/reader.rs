//! A pull-style reader over a blob's raw bytes, verified at the end.

use crate::blob_file::{self, Header};
use crate::{BlobId, Codec, StoreError};
use std::fs::File;
use std::io::{self, BufReader, Read};

/// Reads a blob's decoded bytes. When the last byte has been read, the
/// length and blake3 hash are checked; a mismatch is an `InvalidData` I/O
/// error whose message names the blob (use [`BlobReader::into_result`] to
/// get a [`StoreError`] instead).
pub struct BlobReader {
    id: BlobId,
    inner: Box<dyn Read + Send>,
    hasher: blake3::Hasher,
    remaining: u64,
    verified: bool,
}

impl BlobReader {
    pub(crate) fn new(file: File, header: Header, id: BlobId) -> Result<BlobReader, StoreError> {
        let body = BufReader::with_capacity(1 << 20, file);
        let inner: Box<dyn Read + Send> = match header.codec {
            Codec::Raw => Box::new(body.take(header.raw_len)),
            Codec::Planes => Box::new(crate::frames::FrameDecoder::new(body, header.raw_len)),
            Codec::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(body)
                    .map_err(|e| blob_file::corrupt(id, format!("cannot decode: {e}")))?
                    .take(header.raw_len),
            ),
        };
        Ok(BlobReader {
            id,
            inner,
            hasher: blake3::Hasher::new(),
            remaining: header.raw_len,
            verified: header.raw_len == 0 && BlobId::of(b"") == id,
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
        let n = self
            .inner
            .read(buf)
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
