//! Reading a blob's raw bytes through its chain of delta parents.
//!
//! A delta blob's frame `i` needs frame `i` of its parent, which may be a
//! delta itself. [`ChainReader`] opens every blob of the chain (leaf,
//! parent, ..., a self-contained root) and produces the leaf's bytes one
//! frame at a time: it decodes frame `i` of the root, then of each level
//! above it against the frame below, swapping two frame buffers, so its
//! memory is two frames and one encoded frame whatever the chain's length.
//! A blob with no parent is read with no extra copy.
//!
//! The reader does not hash: callers that must verify (every read path of
//! the store does) hash the leaf's bytes. Parents need no hash of their
//! own: a wrong parent frame is caught by the checksum each delta frame
//! keeps of its parent's bytes, and any wrong output by the leaf's hash.

use crate::backend::{Backend, BlobFile};
use crate::blob_file::{corrupt, read_header, BlobHeader};
use crate::frames::{self, FRAME_RAW};
use crate::{BlobId, Codec, StoreError};
use std::io::{self, BufReader, Read};

/// A blob file as the chain reads it.
type Opened = Box<dyn BlobFile>;

/// Longest chain followed (links from a blob to its root); longer ones,
/// and cycles, are reported as damage. Chains reg writes are bounded by
/// the registry's `max_delta_chain`, far below this.
pub const MAX_CHAIN: usize = 64;

const BUF: usize = 1 << 20;

/// The body of one blob of a chain, positioned at its first byte.
enum Body {
    Raw(BufReader<Opened>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<Opened>>>),
    Frames(BufReader<Opened>),
}

struct Level {
    id: BlobId,
    body: Body,
}

impl Level {
    fn open(id: BlobId, file: Opened, header: BlobHeader) -> Result<Level, StoreError> {
        let buffered = BufReader::with_capacity(BUF, file);
        let body = match header.codec {
            Codec::Raw => Body::Raw(buffered),
            Codec::Planes | Codec::Delta => Body::Frames(buffered),
            Codec::Zstd => Body::Zstd(Box::new(
                zstd::stream::read::Decoder::with_buffer(buffered)
                    .map_err(|e| corrupt(id, format!("cannot decode: {e}")))?,
            )),
        };
        Ok(Level { id, body })
    }

    /// Decode this blob's next `out.len()` raw bytes (one frame) into
    /// `out`; `parent` is the parent's bytes of the same range.
    fn fill(
        &mut self,
        ws: &mut crate::codecs::Workspace,
        parent: Option<&[u8]>,
        out: &mut [u8],
        encoded: &mut Vec<u8>,
    ) -> io::Result<()> {
        match &mut self.body {
            Body::Raw(r) => r.read_exact(out),
            Body::Zstd(z) => z.read_exact(out),
            Body::Frames(r) => {
                frames::read_encoded(r, encoded)?;
                frames::decode_frame(ws, encoded, parent, out)
            }
        }
    }
}

/// Reads the raw bytes of a blob, decoding through its delta chain.
pub struct ChainReader {
    /// Root first, the blob being read last.
    levels: Vec<Level>,
    cur: Vec<u8>,
    other: Vec<u8>,
    encoded: Vec<u8>,
    ws: crate::codecs::Workspace,
    at: usize,
    filled: usize,
    /// Raw bytes not yet produced (or decoded into `cur`).
    left: u64,
    raw_len: u64,
}

impl ChainReader {
    /// Open the chain of the blob `id`, whose file is `file` (just past its
    /// header `header`); `open` opens another blob's file and header.
    pub(crate) fn open(
        id: BlobId,
        file: Opened,
        header: BlobHeader,
        open: &dyn Fn(BlobId) -> Result<(Opened, BlobHeader), StoreError>,
    ) -> Result<ChainReader, StoreError> {
        let mut levels = vec![Level::open(id, file, header)?];
        let mut seen = vec![id];
        let mut next = header.parent;
        while let Some(parent) = next {
            if seen.contains(&parent) || seen.len() > MAX_CHAIN {
                return Err(corrupt(
                    id,
                    format!("its delta chain is cyclic or longer than {MAX_CHAIN} links"),
                ));
            }
            let child = seen[seen.len() - 1];
            let (f, h) = open(parent).map_err(|e| match e {
                StoreError::Missing(_) => StoreError::MissingParent { id: child, parent },
                e => e,
            })?;
            if h.raw_len != header.raw_len {
                return Err(corrupt(
                    child,
                    format!(
                        "its delta parent {parent} holds {} bytes, not {}",
                        h.raw_len, header.raw_len
                    ),
                ));
            }
            levels.push(Level::open(parent, f, h)?);
            seen.push(parent);
            next = h.parent;
        }
        levels.reverse();
        Ok(ChainReader {
            levels,
            cur: Vec::new(),
            other: Vec::new(),
            encoded: Vec::new(),
            ws: crate::codecs::Workspace::new(),
            at: 0,
            filled: 0,
            left: header.raw_len,
            raw_len: header.raw_len,
        })
    }

    /// The blob's raw length.
    pub fn len(&self) -> u64 {
        self.raw_len
    }

    /// True for an empty blob.
    pub fn is_empty(&self) -> bool {
        self.raw_len == 0
    }

    fn next_frame(&mut self) -> io::Result<()> {
        let n = FRAME_RAW.min(usize::try_from(self.left).unwrap_or(FRAME_RAW));
        let ChainReader {
            levels,
            cur,
            other,
            encoded,
            ws,
            ..
        } = self;
        let leaf = levels.len() - 1;
        for (k, level) in levels.iter_mut().enumerate() {
            let result = if k == 0 {
                cur.resize(n, 0);
                level.fill(ws, None, &mut cur[..n], encoded)
            } else {
                other.resize(n, 0);
                let r = level.fill(ws, Some(&cur[..n]), &mut other[..n], encoded);
                std::mem::swap(cur, other);
                r
            };
            result.map_err(|e| {
                if k == leaf {
                    e
                } else {
                    io::Error::new(e.kind(), format!("delta parent {}: {e}", level.id))
                }
            })?;
        }
        self.left -= n as u64;
        self.at = 0;
        self.filled = n;
        Ok(())
    }

    /// The stream of a self-contained raw or zstd blob, read with no
    /// frame buffer in between; `None` for framed blobs and chains.
    fn direct(&mut self) -> Option<&mut dyn Read> {
        match self.levels.as_mut_slice() {
            [Level { body: Body::Raw(r), .. }] => Some(r),
            [Level {
                body: Body::Zstd(z), ..
            }] => Some(z.as_mut()),
            _ => None,
        }
    }

    /// The next decoded bytes, without copying them: the rest of the
    /// current frame (or the next frame), or of a self-contained raw or
    /// zstd blob up to `scratch.len()` bytes read into `scratch`. Empty at
    /// the end.
    pub fn next_chunk<'a>(&'a mut self, scratch: &'a mut [u8]) -> io::Result<&'a [u8]> {
        if self.direct().is_some() {
            let n = self.read(scratch)?;
            return Ok(&scratch[..n]);
        }
        if self.at == self.filled {
            if self.left == 0 {
                return Ok(&[]);
            }
            self.next_frame()?;
        }
        let chunk = &self.cur[self.at..self.filled];
        self.at = self.filled;
        Ok(chunk)
    }

    /// The reader's frame buffer, for the next reader's
    /// [`ChainReader::next_owned`] (so a pull allocates no new one per blob).
    pub fn into_spare(self) -> Vec<u8> {
        self.cur
    }

    /// The next decoded bytes (at most one frame, 8 MiB), moved out of
    /// the reader rather than borrowed: `spare` (a buffer given back from
    /// an earlier call, or empty) takes the place of the frame buffer, so
    /// the bytes can go to another thread (pull's writer) without a copy.
    /// Empty at the end.
    pub fn next_owned(&mut self, mut spare: Vec<u8>) -> io::Result<Vec<u8>> {
        if self.direct().is_some() {
            let n = FRAME_RAW.min(usize::try_from(self.left).unwrap_or(FRAME_RAW));
            spare.resize(n, 0);
            let mut done = 0;
            while done < n {
                done += self.read(&mut spare[done..])?;
            }
            return Ok(spare);
        }
        if self.at == self.filled {
            if self.left == 0 {
                spare.clear();
                return Ok(spare);
            }
            self.next_frame()?;
        }
        if self.at > 0 {
            // Part of this frame went out through `read`: copy the rest.
            spare.clear();
            spare.extend_from_slice(&self.cur[self.at..self.filled]);
        } else {
            // `next_frame` sizes the new frame buffer itself.
            std::mem::swap(&mut self.cur, &mut spare);
            spare.truncate(self.filled);
        }
        self.at = self.filled;
        Ok(spare)
    }
}

impl Read for ChainReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if let Some(r) = self.direct() {
            if max == 0 {
                return Ok(0);
            }
            let n = r.read(&mut buf[..max])?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated"));
            }
            self.left -= n as u64;
            return Ok(n);
        }
        if self.at == self.filled {
            if self.left == 0 {
                return Ok(0);
            }
            self.next_frame()?;
        }
        let n = buf.len().min(self.filled - self.at);
        buf[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Open blob `id`'s file on `backend` and read its header (for
/// [`ChainReader::open`]).
pub(crate) fn open_file(backend: &dyn Backend, id: BlobId) -> Result<(Opened, BlobHeader), StoreError> {
    let mut f = backend.open(id).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StoreError::Missing(id),
        _ => StoreError::Io {
            action: "opening",
            path: backend.path_of(id),
            source: e,
        },
    })?;
    // A folder (or a device) where a blob file should be is damage of
    // the store, not an I/O problem of the caller's.
    if !f.is_regular() {
        return Err(corrupt(id, "its blob file is not a regular file"));
    }
    let h = read_header(&mut f, id)?;
    Ok((f, h))
}
