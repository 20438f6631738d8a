//! Where the raw bytes of a new blob come from: memory, or a range of a
//! file read with positioned reads (so pushing a large file never maps or
//! buffers it whole).

use std::fs::File;
use std::io::{self, Read};

/// Raw bytes that can be read (more than once: the store may read them a
/// second time when compression does not pay).
pub trait RawSource: Sync {
    /// Number of bytes.
    fn len(&self) -> u64;
    /// True when there are no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A reader from the first byte.
    fn reader(&self) -> io::Result<Box<dyn Read + '_>>;
}

impl RawSource for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(*self))
    }
}

/// `len` bytes of `file` from `start`, read with positioned reads.
#[derive(Clone, Copy, Debug)]
pub struct FileRange<'f> {
    /// The file.
    pub file: &'f File,
    /// First byte.
    pub start: u64,
    /// Length.
    pub len: u64,
}

impl RawSource for FileRange<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(RangeReader {
            file: self.file,
            pos: self.start,
            end: self.start + self.len,
        }))
    }
}

/// Reads a file range with `pread`, leaving the file position alone, so
/// several threads can read one file at once.
pub struct RangeReader<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl<'f> RangeReader<'f> {
    /// A reader over `start..end` of `file`.
    pub fn new(file: &'f File, start: u64, end: u64) -> RangeReader<'f> {
        RangeReader { file, pos: start, end }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = read_at(self.file, &mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being read",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A stored blob as a [`RawSource`] (to re-encode it, or to encode another
/// blob against it): each reader decodes it (through its delta chain) and
/// checks its hash at the end, failing the last read when it does not
/// match. Made by [`crate::BlobStore::source`].
pub struct StoredBlob<'s> {
    store: &'s crate::BlobStore,
    id: crate::BlobId,
    len: u64,
}

impl<'s> StoredBlob<'s> {
    pub(crate) fn new(store: &'s crate::BlobStore, id: crate::BlobId, len: u64) -> StoredBlob<'s> {
        StoredBlob { store, id, len }
    }
}

impl RawSource for StoredBlob<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        let r = self
            .store
            .reader(self.id)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(Box::new(r))
    }
}

/// Hashes what is read through it, to check afterwards that the bytes
/// were those of `expected`.
pub(crate) struct Verifying<R: Read> {
    inner: R,
    hasher: blake3::Hasher,
    expected: crate::BlobId,
}

impl<R: Read> Verifying<R> {
    pub(crate) fn new(inner: R, expected: crate::BlobId) -> Verifying<R> {
        Verifying {
            inner,
            hasher: blake3::Hasher::new(),
            expected,
        }
    }

    /// True when everything read so far hashes to the expected id.
    pub(crate) fn matched(&self) -> bool {
        crate::BlobId::from(self.hasher.finalize()) == self.expected
    }
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
