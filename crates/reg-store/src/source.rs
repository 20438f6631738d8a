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
/// blob against it): each reader decodes it through its delta chain and,
/// when `checked`, checks its hash at the end, failing the last read when
/// it does not match. Unchecked, for a re-encoding (the new encoding
/// decodes to the same bytes, damaged or not) or a parent whose bytes the
/// caller checks. Made by [`crate::BlobStore::source`] and
/// [`crate::BlobStore::unchecked_source`].
pub struct BlobSource<'s> {
    store: &'s crate::BlobStore,
    id: crate::BlobId,
    len: u64,
    checked: bool,
}

impl<'s> BlobSource<'s> {
    pub(crate) fn new(store: &'s crate::BlobStore, id: crate::BlobId, len: u64, checked: bool) -> BlobSource<'s> {
        BlobSource {
            store,
            id,
            len,
            checked,
        }
    }
}

impl RawSource for BlobSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        let bad = |e: crate::StoreError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        Ok(if self.checked {
            Box::new(self.store.reader(self.id).map_err(bad)?)
        } else {
            Box::new(self.store.unchecked_reader(self.id).map_err(bad)?)
        })
    }
}

/// How [`crate::BlobStore::encode_as_delta`] checks the bytes it is given as the
/// parent's before it keeps a delta against them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParentCheck {
    /// Their blake3 must be the parent's id.
    Id,
    /// Their CRC-32 (IEEE) must be this: a cheaper check for bytes whose
    /// CRC the caller has from elsewhere (a zip records one per record).
    Crc32(u32),
}

/// Checks what is read through it as a [`ParentCheck`] says.
pub(crate) struct Checked<R: Read> {
    inner: R,
    blake3: Option<blake3::Hasher>,
    crc: Option<(crc32fast::Hasher, u32)>,
}

impl<R: Read> Checked<R> {
    pub(crate) fn new(inner: R, check: ParentCheck) -> Checked<R> {
        match check {
            ParentCheck::Id => Checked {
                inner,
                blake3: Some(blake3::Hasher::new()),
                crc: None,
            },
            ParentCheck::Crc32(want) => Checked {
                inner,
                blake3: None,
                crc: Some((crc32fast::Hasher::new(), want)),
            },
        }
    }

    /// True when everything read so far passes the check for `id`.
    pub(crate) fn matches(&self, id: crate::BlobId) -> bool {
        if let Some(h) = &self.blake3 {
            return crate::BlobId::from(h.finalize()) == id;
        }
        match &self.crc {
            Some((h, want)) => h.clone().finalize() == *want,
            None => false,
        }
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.blake3.as_mut() {
            h.update(&buf[..n]);
        }
        if let Some((h, _)) = self.crc.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}
