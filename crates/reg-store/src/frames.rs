//! The body of a `planes` or `delta` blob: the raw bytes cut into frames
//! of at most [`FRAME_RAW`] bytes, each encoded on its own by
//! [`crate::codecs::choose`] (byte planes with a per-plane zstd choice;
//! in a delta blob, for the planes where it pays, the XOR with the same
//! bytes of the parent blob), so that a blob of any size is encoded and
//! decoded in a stream with bounded memory.
//!
//! ```text
//! frame := encoded length (u32 LE) | encoded bytes (self-describing)
//! ```
//! Frame `i` holds raw bytes `i*FRAME_RAW ..`; the last may be shorter.
//! In a delta blob, frame `i` is XORed (where it is) with the parent's raw
//! bytes of the same range, so decoding frame `i` needs only frame `i` of
//! the parent.

use crate::codecs;
use crate::BlobId;
use std::io::{self, Read, Write};

/// Raw bytes per frame.
pub const FRAME_RAW: usize = 8 << 20;

/// Largest encoded frame accepted on read (raw plus generous overhead).
pub const MAX_FRAME: usize = FRAME_RAW + FRAME_RAW / 8 + 4096;

fn other(e: codecs::CodecError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// What [`write()`] produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FramesWritten {
    /// Body bytes written.
    pub bytes: u64,
    /// Frames that are XORed with the parent.
    pub xor_frames: usize,
}

/// Encode `len` bytes of `raw` as frames of `width`-byte elements into
/// `out`. With a parent (its id and a reader of its raw bytes, as long as
/// `raw`), every frame may be a delta against the parent's same range
/// where [`codecs::choose`] finds that it pays; when the first frame gains
/// nothing from the parent, encoding stops there with no XOR frame
/// (`xor_frames == 0`), and what was written is not a complete body.
pub fn write(
    out: &mut dyn Write,
    raw: &mut dyn Read,
    len: u64,
    width: u8,
    level: i32,
    mut parent: Option<(BlobId, &mut dyn Read)>,
) -> io::Result<FramesWritten> {
    let mut left = len;
    let first = FRAME_RAW.min(usize::try_from(left).unwrap_or(FRAME_RAW));
    let mut buf = vec![0u8; first];
    let mut parent_buf = vec![0u8; if parent.is_some() { first } else { 0 }];
    let mut written = FramesWritten::default();
    let mut ws = codecs::Workspace::new();
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        raw.read_exact(&mut buf[..n])?;
        let with = match parent.as_mut() {
            Some((id, reader)) => {
                reader.read_exact(&mut parent_buf[..n])?;
                Some(codecs::Parent {
                    id: *id,
                    bytes: &parent_buf[..n],
                })
            }
            None => None,
        };
        let enc = codecs::choose_in(&mut ws, &buf[..n], width, with, level).map_err(other)?;
        if enc.transform.parent().is_some() {
            written.xor_frames += 1;
        } else if parent.is_some() && written.xor_frames == 0 {
            // The parent does not help the first frame: a delta is not
            // worth the rest of the work (the caller encodes it plainly).
            return Ok(written);
        }
        let elen = u32::try_from(enc.bytes.len()).map_err(|_| io::Error::other("frame too large"))?;
        out.write_all(&elen.to_le_bytes())?;
        out.write_all(&enc.bytes)?;
        written.bytes += 4 + enc.bytes.len() as u64;
        left -= n as u64;
    }
    Ok(written)
}

/// Read the next frame's encoded bytes into `encoded`.
pub fn read_encoded(inner: &mut dyn Read, encoded: &mut Vec<u8>) -> io::Result<()> {
    let mut len = [0u8; 4];
    inner.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame length out of range"));
    }
    encoded.resize(len, 0);
    inner.read_exact(encoded)
}

/// Decode one encoded frame into `out` (its raw length), XORing with
/// `parent` (the parent's bytes of the same range) where the frame says so.
pub fn decode_frame(
    ws: &mut codecs::Workspace,
    encoded: &[u8],
    parent: Option<&[u8]>,
    out: &mut [u8],
) -> io::Result<()> {
    codecs::decode_into_in(ws, encoded, parent, out).map_err(other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 4 == 3 {
                    0x3c
                } else {
                    x as u8
                }
            })
            .collect()
    }

    fn decode_all(body: &[u8], raw_len: usize, parent: Option<&[u8]>) -> io::Result<Vec<u8>> {
        let mut r = body;
        let mut out = vec![0u8; raw_len];
        let mut encoded = Vec::new();
        let mut ws = codecs::Workspace::new();
        for (i, chunk) in out.chunks_mut(FRAME_RAW).enumerate() {
            read_encoded(&mut r, &mut encoded)?;
            let p = parent.map(|p| &p[i * FRAME_RAW..i * FRAME_RAW + chunk.len()]);
            decode_frame(&mut ws, &encoded, p, chunk)?;
        }
        Ok(out)
    }

    #[test]
    fn frames_round_trip_across_boundaries() {
        let raw = noisy(FRAME_RAW * 2 + 12_345, 0x1234_5678);
        let mut body = Vec::new();
        let n = write(&mut body, &mut raw.as_slice(), raw.len() as u64, 4, 3, None).unwrap();
        assert_eq!(n.bytes, body.len() as u64);
        assert_eq!(n.xor_frames, 0);
        assert_eq!(decode_all(&body, raw.len(), None).unwrap(), raw);
        // Damage is an error, never a panic.
        body[10] ^= 0xff;
        let _ = decode_all(&body, raw.len(), None);
        assert!(decode_all(&body[..100], raw.len(), None).is_err());
    }

    #[test]
    fn delta_frames_need_their_parent() {
        let parent = noisy(FRAME_RAW + 4096, 7);
        let mut raw = parent.clone();
        for i in (0..raw.len()).step_by(97) {
            raw[i] ^= 1;
        }
        let pid = BlobId::of(&parent);
        let mut body = Vec::new();
        let n = write(
            &mut body,
            &mut raw.as_slice(),
            raw.len() as u64,
            4,
            3,
            Some((pid, &mut parent.as_slice())),
        )
        .unwrap();
        assert_eq!(n.xor_frames, 2);
        assert_eq!(decode_all(&body, raw.len(), Some(&parent)).unwrap(), raw);
        assert!(decode_all(&body, raw.len(), None).is_err());
        let wrong = noisy(parent.len(), 8);
        assert!(decode_all(&body, raw.len(), Some(&wrong)).is_err());
    }
}
