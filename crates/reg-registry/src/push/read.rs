//! Reading the file being pushed: a memory map for headers and pickles,
//! positioned reads for payloads, and sources that hash what is read.

use crate::error::{PushError, RegistryError};
use crate::progress::Progress;
use reg_store::{BlobId, FileRange, RangeReader, RawSource};
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

/// A memory map of an input file, or nothing for an empty file.
pub(crate) struct Input {
    pub(crate) file: File,
    map: Option<memmap2::Mmap>,
    /// The owner's executable bit is set (kept, as git keeps it).
    pub(crate) executable: bool,
}

impl Input {
    /// Open a file given on the command line (a symlink to it is fine).
    /// It is opened non-blocking, so a FIFO is refused at once instead of
    /// waiting for a writer.
    pub(crate) fn open(path: &Path) -> Result<Input, RegistryError> {
        let file = open_nonblocking(path, false).map_err(RegistryError::io("opening", path))?;
        Input::from_file(path, file)
    }

    /// Open a file of a directory listing: not through a symlink in its
    /// last component, and only if it is still the file that was listed
    /// (see [`super::walk`]).
    pub(crate) fn open_listed(w: &super::walk::WalkedFile) -> Result<Input, RegistryError> {
        let changed = || RegistryError::from(PushError::ChangedSinceListed { path: w.abs.clone() });
        let file = open_nonblocking(&w.abs, true).map_err(|e| match e.raw_os_error() {
            Some(code) if code == libc_eloop() => changed(),
            _ => RegistryError::io("opening", &w.abs)(e),
        })?;
        let meta = file.metadata().map_err(RegistryError::io("reading", &w.abs))?;
        if super::walk::FileIdentity::of(&meta) != w.identity {
            return Err(changed());
        }
        Input::from_file(&w.abs, file)
    }

    fn from_file(path: &Path, file: File) -> Result<Input, RegistryError> {
        let meta = file.metadata().map_err(RegistryError::io("reading", path))?;
        let len = meta.len();
        let executable = is_executable(&meta);
        if !meta.is_file() {
            return Err(PushError::NotRegularFile {
                path: path.to_path_buf(),
            }
            .into());
        }
        if len == 0 {
            return Ok(Input {
                file,
                map: None,
                executable,
            });
        }
        // SAFETY: the map is read-only and only headers, directories and
        // pickles are read through it (payloads are read with pread, which
        // fails cleanly if the file shrinks); reg documents that a file
        // must not be truncated while it is being pushed, and the hashes
        // taken as payloads are read catch a file that changed.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(RegistryError::io("mapping", path))?;
        Ok(Input {
            file,
            map: Some(map),
            executable,
        })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// Open for reading without blocking on a FIFO (`O_NONBLOCK`; regular
/// files read the same) and, with `no_follow`, without following a
/// symlink in the last component (`O_NOFOLLOW`: the open fails with ELOOP).
fn open_nonblocking(path: &Path, no_follow: bool) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
        if no_follow {
            flags |= libc::O_NOFOLLOW;
        }
        options.custom_flags(flags);
    }
    #[cfg(not(unix))]
    let _ = no_follow;
    options.open(path)
}

/// The errno of opening a symlink with `O_NOFOLLOW`.
fn libc_eloop() -> i32 {
    #[cfg(unix)]
    {
        libc::ELOOP
    }
    #[cfg(not(unix))]
    {
        -1
    }
}

/// True when the owner may execute the file (the bit git keeps).
pub(crate) fn is_executable(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o100 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// How a file range is hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hashing {
    /// On this thread, in 4 MiB reads, with its CRC-32 when `crc`
    /// (payloads: many ranges hash in parallel).
    Alone { crc: bool },
    /// With every core, in 16 MiB reads (the whole file).
    Wide,
}

/// Hash a file range with blake3 (and CRC-32 when asked), reporting progress.
pub(crate) fn hash_range(
    file: &File,
    range: &Range<u64>,
    how: Hashing,
    progress: &dyn Progress,
) -> io::Result<(BlobId, Option<u32>)> {
    let chunk: usize = match how {
        Hashing::Alone { .. } => 4 << 20,
        Hashing::Wide => 16 << 20,
    };
    let mut reader = RangeReader::new(file, range.start, range.end);
    let mut hasher = blake3::Hasher::new();
    let mut crc = matches!(how, Hashing::Alone { crc: true }).then(crc32fast::Hasher::new);
    let mut left = range.end - range.start;
    let mut buf = vec![0u8; chunk.min(usize::try_from(left).unwrap_or(chunk)).max(1)];
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        reader.read_exact(&mut buf[..n])?;
        if how == Hashing::Wide {
            hasher.update_rayon(&buf[..n]);
        } else {
            hasher.update(&buf[..n]);
        }
        if let Some(c) = crc.as_mut() {
            c.update(&buf[..n]);
        }
        left -= n as u64;
        progress.advance(n as u64);
    }
    Ok((BlobId::from(hasher.finalize()), crc.map(|c| c.finalize())))
}

/// What one complete read of a [`Digesting`] source saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Digest {
    pub(crate) id: BlobId,
    pub(crate) crc: Option<u32>,
}

/// A file range as a blob source that hashes (and CRCs) every complete
/// read of it, so the bytes a blob was encoded from are the bytes its id
/// names, however often the encoder reads them.
pub(crate) struct Digesting<'f> {
    range: FileRange<'f>,
    want_crc: bool,
    want_id: bool,
    reads: Mutex<Vec<Digest>>,
}

impl<'f> Digesting<'f> {
    /// A source over `range` that computes its blake3 (`want_id`; else
    /// the digest's id is left zero) and CRC-32 (`want_crc`).
    pub(crate) fn new(range: FileRange<'f>, want_id: bool, want_crc: bool) -> Digesting<'f> {
        Digesting {
            range,
            want_crc,
            want_id,
            reads: Mutex::new(Vec::new()),
        }
    }

    /// The digest of the bytes read, `None` when no read was complete or
    /// two reads saw different bytes (the file changed).
    pub(crate) fn digest(&self) -> Option<Digest> {
        if self.range.len == 0 {
            return Some(Digest {
                id: BlobId::of(b""),
                crc: self.want_crc.then_some(0),
            });
        }
        let reads = self.reads.lock().ok()?;
        let first = *reads.first()?;
        reads.iter().all(|d| *d == first).then_some(first)
    }
}

impl RawSource for Digesting<'_> {
    fn len(&self) -> u64 {
        self.range.len
    }

    fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(DigestReader {
            inner: self.range.reader()?,
            hasher: self.want_id.then(blake3::Hasher::new),
            crc: self.want_crc.then(crc32fast::Hasher::new),
            left: self.range.len,
            sink: &self.reads,
        }))
    }
}

struct DigestReader<'a> {
    inner: Box<dyn Read + 'a>,
    hasher: Option<blake3::Hasher>,
    crc: Option<crc32fast::Hasher>,
    left: u64,
    sink: &'a Mutex<Vec<Digest>>,
}

impl Read for DigestReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        if let Some(c) = self.crc.as_mut() {
            c.update(&buf[..n]);
        }
        let was = self.left;
        self.left = self.left.saturating_sub(n as u64);
        if was > 0 && self.left == 0 {
            let digest = Digest {
                id: self
                    .hasher
                    .as_ref()
                    .map(|h| BlobId::from(h.finalize()))
                    .unwrap_or(BlobId([0; 32])),
                crc: self.crc.as_ref().map(|c| c.clone().finalize()),
            };
            if let Ok(mut reads) = self.sink.lock() {
                reads.push(digest);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    #[cfg(unix)]
    fn digesting_sees_a_file_that_changes_between_reads() -> Result<(), Box<dyn std::error::Error>> {
        let mut f = tempfile::tempfile()?;
        f.write_all(b"0123456789abcdef")?;
        let range = FileRange {
            file: &f,
            start: 4,
            len: 8,
        };
        let d = Digesting::new(range, true, true);
        assert_eq!(d.digest(), None, "nothing read yet");
        let mut buf = Vec::new();
        d.reader()?.read_to_end(&mut buf)?;
        assert_eq!(buf, b"456789ab");
        let first = d.digest().ok_or("no digest")?;
        assert_eq!(first.id, BlobId::of(b"456789ab"));
        assert_eq!(first.crc, Some(crc32fast::hash(b"456789ab")));
        // The same bytes again: still one digest.
        d.reader()?.read_to_end(&mut Vec::new())?;
        assert_eq!(d.digest(), Some(first));
        // The file changes under the range: the reads disagree.
        std::os::unix::fs::FileExt::write_all_at(&f, b"X", 6)?;
        d.reader()?.read_to_end(&mut Vec::new())?;
        assert_eq!(d.digest(), None);
        Ok(())
    }
}
