//! The body of a `planes` blob: the raw bytes cut into frames of at most
//! [`FRAME_RAW`] bytes, each encoded on its own by [`crate::codecs::choose`]
//! (byte planes with a per-plane zstd choice), so that a blob of any size
//! is encoded and decoded in a stream with bounded memory.
//!
//! ```text
//! frame := encoded length (u32 LE) | encoded bytes (self-describing)
//! ```
//! Frame `i` holds raw bytes `i*FRAME_RAW ..`; the last may be shorter.

use crate::codecs;
use crate::source::RawSource;
use std::io::{self, Read, Write};

/// Raw bytes per frame.
pub const FRAME_RAW: usize = 8 << 20;

/// Largest encoded frame accepted on read (raw plus generous overhead).
const MAX_FRAME: usize = FRAME_RAW + FRAME_RAW / 8 + 4096;

fn other(e: codecs::CodecError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Encode the source as frames of `width`-byte elements into `out`.
/// Returns the number of body bytes written.
pub fn write(out: &mut dyn Write, raw: &dyn RawSource, width: u8, level: i32) -> io::Result<u64> {
    let mut reader = raw.reader()?;
    let mut left = raw.len();
    let mut buf = vec![0u8; FRAME_RAW.min(usize::try_from(left).unwrap_or(FRAME_RAW))];
    let mut written = 0u64;
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        reader.read_exact(&mut buf[..n])?;
        let enc = codecs::choose(&buf[..n], width, None, level).map_err(other)?;
        let len = u32::try_from(enc.bytes.len()).map_err(|_| io::Error::other("frame too large"))?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&enc.bytes)?;
        written += 4 + enc.bytes.len() as u64;
        left -= n as u64;
    }
    Ok(written)
}

/// Reads the raw bytes of a frames body.
pub struct FrameDecoder<R: Read> {
    inner: R,
    /// Raw bytes not yet decoded.
    left: u64,
    frame: Vec<u8>,
    at: usize,
    encoded: Vec<u8>,
}

impl<R: Read> FrameDecoder<R> {
    /// Decode `raw_len` bytes from `inner`.
    pub fn new(inner: R, raw_len: u64) -> FrameDecoder<R> {
        FrameDecoder {
            inner,
            left: raw_len,
            frame: Vec::new(),
            at: 0,
            encoded: Vec::new(),
        }
    }

    fn next_frame(&mut self) -> io::Result<()> {
        let mut len = [0u8; 4];
        self.inner.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "frame length out of range"));
        }
        self.encoded.resize(len, 0);
        self.inner.read_exact(&mut self.encoded)?;
        let raw = self.left.min(FRAME_RAW as u64);
        self.frame = codecs::decode(&self.encoded, raw, None).map_err(other)?;
        self.left -= raw;
        self.at = 0;
        Ok(())
    }
}

impl<R: Read> Read for FrameDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.frame.len() {
            if self.left == 0 {
                return Ok(0);
            }
            self.next_frame()?;
        }
        let n = buf.len().min(self.frame.len() - self.at);
        buf[..n].copy_from_slice(&self.frame[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_boundaries() {
        let mut x = 0x1234_5678u64;
        let raw: Vec<u8> = (0..FRAME_RAW * 2 + 12_345)
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
            .collect();
        let mut body = Vec::new();
        let n = write(&mut body, &raw.as_slice(), 4, 3).unwrap();
        assert_eq!(n, body.len() as u64);
        let mut back = Vec::new();
        FrameDecoder::new(body.as_slice(), raw.len() as u64)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, raw);
        // Damage is an error, never a panic.
        body[10] ^= 0xff;
        let mut out = Vec::new();
        let _ = FrameDecoder::new(body.as_slice(), raw.len() as u64).read_to_end(&mut out);
        let mut short = Vec::new();
        assert!(FrameDecoder::new(&body[..100], raw.len() as u64)
            .read_to_end(&mut short)
            .is_err());
    }
}
