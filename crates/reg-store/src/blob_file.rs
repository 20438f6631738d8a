//! The blob file: a header, then the encoded body.
//!
//! ```text
//! offset size  field
//! 0      4     magic "REGB"
//! 4      1     file format version (1)
//! 5      1     codec tag (0 raw, 1 zstd, 2 planes, 3 delta)
//! 6      2     reserved, zero
//! 8      8     raw length, u64 little-endian
//! 16     32    parent blob id (delta only)
//! 16|48  ...   body (raw bytes, one zstd frame, or frames)
//! ```
//!
//! The parent of a delta blob is in its header so that whoever moves or
//! deletes blobs (gc, sync) can follow chains without decoding anything.

use crate::backend::TempFile;
use crate::frames::{self, FramesWritten};
use crate::source::RawSource;
use crate::{BlobId, Codec, StoreError};
use std::io::{self, Read, SeekFrom, Write};

/// Length of the fixed header in bytes.
pub const HEADER_LEN: u64 = 16;
/// Length of a delta blob's header (fixed header and parent id).
pub const DELTA_HEADER_LEN: u64 = HEADER_LEN + 32;
const MAGIC: &[u8; 4] = b"REGB";
const VERSION: u8 = 1;
/// Float bodies smaller than this are not split into planes.
const MIN_PLANES: u64 = 4096;
/// Bodies smaller than this are never compressed.
const MIN_COMPRESS: u64 = 64;
const CHUNK: usize = 1 << 20;

/// A parsed blob file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobHeader {
    /// Body encoding.
    pub codec: Codec,
    /// Decoded length.
    pub raw_len: u64,
    /// The blob a delta's frames are XORed against.
    pub parent: Option<BlobId>,
}

impl BlobHeader {
    /// Where the body starts.
    pub fn body_start(&self) -> u64 {
        if self.parent.is_some() {
            DELTA_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(DELTA_HEADER_LEN as usize);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&[VERSION, self.codec.tag(), 0, 0]);
        h.extend_from_slice(&self.raw_len.to_le_bytes());
        if let Some(p) = self.parent {
            h.extend_from_slice(&p.0);
        }
        h
    }
}

/// What a write produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The header written.
    pub header: BlobHeader,
    /// File length.
    pub stored_len: u64,
}

fn plain(codec: Codec, raw_len: u64) -> BlobHeader {
    BlobHeader {
        codec,
        raw_len,
        parent: None,
    }
}

/// Write the source's bytes encoded into `file` (positioned at 0, empty):
/// as byte planes of `width`-byte elements when `width` is given, else
/// as one zstd frame, at zstd `level` (`None`: the raw bytes as they are).
/// A compressed body is kept only when it saves at least 1/64 of the
/// bytes; otherwise the source is read again and stored raw.
pub fn write<W: TempFile + ?Sized>(
    file: &mut W,
    raw: &dyn RawSource,
    level: Option<i32>,
    width: Option<u8>,
) -> io::Result<Written> {
    let raw_len = raw.len();
    if let (Some(w), Some(level), true) = (width, level, raw_len >= MIN_PLANES) {
        let header = plain(Codec::Planes, raw_len);
        file.write_all(&header.bytes())?;
        let body = encode_frames(file, raw, w, level, None)?;
        if pays(body.bytes, raw_len) {
            return Ok(Written {
                header,
                stored_len: HEADER_LEN + body.bytes,
            });
        }
        rewind(file)?;
    } else if let (Some(level), true) = (level, raw_len >= MIN_COMPRESS) {
        let header = plain(Codec::Zstd, raw_len);
        file.write_all(&header.bytes())?;
        let mut enc = zstd::stream::write::Encoder::new(&mut *file, level)?;
        enc.include_checksum(false)?;
        enc.set_pledged_src_size(Some(raw_len))?;
        copy_exact(&mut raw.reader()?, &mut enc, raw_len)?;
        enc.finish()?;
        let len = file.stream_position()?;
        if pays(len - HEADER_LEN, raw_len) {
            return Ok(Written {
                header,
                stored_len: len,
            });
        }
        rewind(file)?;
    }
    file.write_all(&plain(Codec::Raw, raw_len).bytes())?;
    copy_exact(&mut raw.reader()?, file, raw_len)?;
    Ok(Written {
        header: plain(Codec::Raw, raw_len),
        stored_len: HEADER_LEN + raw_len,
    })
}

/// Write exactly `raw_len` bytes read from `body` into `file`
/// (positioned at 0, empty) as a raw blob: for a stream read once.
pub fn write_raw_from<W: TempFile + ?Sized>(file: &mut W, body: &mut dyn Read, raw_len: u64) -> io::Result<Written> {
    let header = plain(Codec::Raw, raw_len);
    file.write_all(&header.bytes())?;
    copy_exact(body, file, raw_len)?;
    Ok(Written {
        header,
        stored_len: HEADER_LEN + raw_len,
    })
}

/// Write the source's bytes into `file` (positioned at 0, empty) as a
/// delta against `parent`, whose raw bytes (as long as the source's)
/// `parent_raw` yields. Returns `None`, with `file` holding garbage, when
/// no frame gained from the parent or the body would not save 1/64 over
/// the raw bytes: the caller then stores the blob some other way (or
/// keeps what it had).
pub fn write_delta<W: TempFile + ?Sized>(
    file: &mut W,
    raw: &dyn RawSource,
    width: u8,
    level: i32,
    parent: BlobId,
    parent_raw: &mut dyn Read,
) -> io::Result<Option<Written>> {
    let raw_len = raw.len();
    let header = BlobHeader {
        codec: Codec::Delta,
        raw_len,
        parent: Some(parent),
    };
    file.write_all(&header.bytes())?;
    let body = encode_frames(file, raw, width, level, Some((parent, parent_raw)))?;
    if body.xor_frames == 0 || !pays(body.bytes, raw_len) {
        return Ok(None);
    }
    Ok(Some(Written {
        header,
        stored_len: DELTA_HEADER_LEN + body.bytes,
    }))
}

fn encode_frames<W: Write + ?Sized>(
    file: &mut W,
    raw: &dyn RawSource,
    width: u8,
    level: i32,
    parent: Option<(BlobId, &mut dyn Read)>,
) -> io::Result<FramesWritten> {
    let mut out = io::BufWriter::with_capacity(1 << 20, &mut *file);
    let n = frames::write(&mut out, &mut *raw.reader()?, raw.len(), width, level, parent)?;
    out.flush()?;
    Ok(n)
}

fn pays(body: u64, raw_len: u64) -> bool {
    body + raw_len / 64 < raw_len
}

fn rewind<W: TempFile + ?Sized>(file: &mut W) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0)).map(|_| ())
}

/// Copy exactly `len` bytes, in large chunks.
fn copy_exact<W: Write + ?Sized>(from: &mut dyn Read, to: &mut W, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK)).max(1)];
    let mut left = len;
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        from.read_exact(&mut buf[..n])?;
        to.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// A short header is damage; any other read error (EIO, EISDIR ...) is
/// an I/O error, never "not there" or "corrupt".
fn header_read_error(id: BlobId, e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        corrupt(id, "file shorter than its header")
    } else {
        StoreError::Io {
            action: "reading the header of blob",
            path: std::path::PathBuf::from(id.to_hex()),
            source: e,
        }
    }
}

/// Read and check the header of a blob file, leaving the file at the
/// start of the body.
pub fn read_header<R: Read + ?Sized>(file: &mut R, id: BlobId) -> Result<BlobHeader, StoreError> {
    let mut h = [0u8; HEADER_LEN as usize];
    file.read_exact(&mut h).map_err(|e| header_read_error(id, e))?;
    if &h[..4] != MAGIC || h[4] != VERSION || h[6..8] != [0, 0] {
        return Err(corrupt(id, "bad header"));
    }
    let codec = Codec::from_tag(h[5]).ok_or_else(|| corrupt(id, "unknown codec"))?;
    let mut len = [0u8; 8];
    len.copy_from_slice(&h[8..]);
    let parent = match codec {
        Codec::Delta => {
            let mut p = [0u8; 32];
            file.read_exact(&mut p).map_err(|e| header_read_error(id, e))?;
            let p = BlobId(p);
            if p == id {
                return Err(corrupt(id, "a delta against itself"));
            }
            Some(p)
        }
        _ => None,
    };
    Ok(BlobHeader {
        codec,
        raw_len: u64::from_le_bytes(len),
        parent,
    })
}

/// A [`StoreError::Corrupt`] for `id`.
pub fn corrupt(id: BlobId, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        id,
        reason: reason.into(),
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<'w> {
    inner: &'w mut dyn Write,
    hasher: blake3::Hasher,
    len: u64,
    /// Set when the output (not the blob) failed.
    out_error: Option<io::ErrorKind>,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf).inspect_err(|e| self.out_error = Some(e.kind()))?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copy the decoded bytes `body` yields into `out`, checking length and
/// hash at the end. On error, what was written is garbage.
pub fn decode_to(body: &mut dyn Read, header: BlobHeader, id: BlobId, out: &mut dyn Write) -> Result<u64, StoreError> {
    let mut sink = Hashing {
        inner: out,
        hasher: blake3::Hasher::new(),
        len: 0,
        out_error: None,
    };
    let copied = io::copy(&mut body.take(header.raw_len.saturating_add(1)), &mut sink);
    if let (Err(e), Some(_)) = (&copied, sink.out_error) {
        return Err(StoreError::Io {
            action: "writing blob data",
            path: "output".into(),
            source: io::Error::new(e.kind(), e.to_string()),
        });
    }
    match copied {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(corrupt(id, "truncated")),
        Err(e) => return Err(corrupt(id, format!("cannot decode: {e}"))),
    }
    if sink.len != header.raw_len {
        return Err(corrupt(
            id,
            format!("decodes to {} bytes, header says {}", sink.len, header.raw_len),
        ));
    }
    if BlobId::from(sink.hasher.finalize()) != id {
        return Err(corrupt(id, "content does not match its hash"));
    }
    Ok(sink.len)
}
