//! The blob file: a 16-byte header, then the encoded body.
//!
//! ```text
//! offset size  field
//! 0      4     magic "REGB"
//! 4      1     file format version (1)
//! 5      1     codec tag (0 raw, 1 zstd)
//! 6      2     reserved, zero
//! 8      8     raw length, u64 little-endian
//! 16     ...   body (raw bytes, or one zstd frame)
//! ```

use crate::frames;
use crate::source::RawSource;
use crate::{BlobId, Codec, StoreError};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

/// Header length in bytes.
pub const HEADER_LEN: u64 = 16;
const MAGIC: &[u8; 4] = b"REGB";
const VERSION: u8 = 1;
/// Float bodies smaller than this are not split into planes.
const MIN_PLANES: u64 = 4096;
/// Bodies smaller than this are never compressed.
const MIN_COMPRESS: u64 = 64;
const CHUNK: usize = 1 << 20;

/// A parsed blob file header.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// Body encoding.
    pub codec: Codec,
    /// Decoded length.
    pub raw_len: u64,
}

fn header_bytes(codec: Codec, raw_len: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(MAGIC);
    h[4] = VERSION;
    h[5] = codec.tag();
    h[8..].copy_from_slice(&raw_len.to_le_bytes());
    h
}

/// Write the source's bytes encoded into `file` (positioned at 0, empty).
/// zstd is kept only when it saves at least 1/64 of the bytes; otherwise
/// the source is read again and stored raw. Returns the codec and the file
/// length.
pub fn write(file: &mut File, raw: &dyn RawSource, level: i32, width: Option<u8>) -> io::Result<(Codec, u64)> {
    let raw_len = raw.len();
    if let (Some(w), true) = (width, raw_len >= MIN_PLANES) {
        file.write_all(&header_bytes(Codec::Planes, raw_len))?;
        let body = {
            let mut out = io::BufWriter::with_capacity(1 << 20, &mut *file);
            let n = frames::write(&mut out, raw, w, level)?;
            out.flush()?;
            n
        };
        if body + raw_len / 64 < raw_len {
            return Ok((Codec::Planes, HEADER_LEN + body));
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
    } else if raw_len >= MIN_COMPRESS && level != i32::MIN {
        file.write_all(&header_bytes(Codec::Zstd, raw_len))?;
        let mut enc = zstd::stream::write::Encoder::new(&mut *file, level)?;
        enc.include_checksum(false)?;
        enc.set_pledged_src_size(Some(raw_len))?;
        copy_exact(&mut raw.reader()?, &mut enc, raw_len)?;
        enc.finish()?;
        let len = file.stream_position()?;
        if len - HEADER_LEN + raw_len / 64 < raw_len {
            return Ok((Codec::Zstd, len));
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
    }
    file.write_all(&header_bytes(Codec::Raw, raw_len))?;
    copy_exact(&mut raw.reader()?, file, raw_len)?;
    Ok((Codec::Raw, HEADER_LEN + raw_len))
}

/// Copy exactly `len` bytes, in large chunks.
fn copy_exact(from: &mut dyn Read, to: &mut dyn Write, len: u64) -> io::Result<()> {
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

/// Read and check the header of a blob file.
pub fn read_header(file: &mut File, id: BlobId) -> Result<Header, StoreError> {
    let mut h = [0u8; 16];
    file.read_exact(&mut h)
        .map_err(|_| corrupt(id, "file shorter than its header"))?;
    if &h[..4] != MAGIC || h[4] != VERSION {
        return Err(corrupt(id, "bad header"));
    }
    let codec = Codec::from_tag(h[5]).ok_or_else(|| corrupt(id, "unknown codec"))?;
    let mut len = [0u8; 8];
    len.copy_from_slice(&h[8..]);
    Ok(Header {
        codec,
        raw_len: u64::from_le_bytes(len),
    })
}

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

/// Decode the body of `file` (just past its header) into `out`, checking
/// length and hash at the end. On error, what was written is garbage.
pub fn decode_to(file: File, header: Header, id: BlobId, out: &mut dyn Write) -> Result<u64, StoreError> {
    let mut sink = Hashing {
        inner: out,
        hasher: blake3::Hasher::new(),
        len: 0,
        out_error: None,
    };
    let mut body = BufReader::with_capacity(CHUNK, file).take(match header.codec {
        Codec::Raw => header.raw_len,
        Codec::Zstd | Codec::Planes => u64::MAX,
    });
    let copied = match header.codec {
        Codec::Raw => io::copy(&mut body, &mut sink),
        Codec::Planes => io::copy(&mut frames::FrameDecoder::new(body, header.raw_len), &mut sink),
        Codec::Zstd => match zstd::stream::read::Decoder::with_buffer(body) {
            Ok(dec) => io::copy(&mut dec.take(header.raw_len.saturating_add(1)), &mut sink),
            Err(e) => Err(e),
        },
    };
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
