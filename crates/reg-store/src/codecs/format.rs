//! The encoded layout: a header, the tail bytes, then blocks of planes.
//!
//! ```text
//! offset size  field
//! 0      1     format version (1)
//! 1      1     transform: 0 none, 1 planes, 2 xor-planes
//! 2      1     element width: 1, 2, 4 or 8 (1 for none)
//! 3      1     log2 of the raw bytes per block (12..=26)
//! 4      1     xor mask: bit p set when plane p is XORed with the parent's
//! 5      3     reserved, zero
//! 8      8     raw length, u64 little-endian
//! 16     8     checksum of the raw bytes
//! 24     8     checksum of the parent's bytes     (xor-planes only)
//! 32     32    parent blob id                      (xor-planes only)
//! ..     t     tail: the last raw_len % width raw bytes, as they are
//! ..           blocks, each:
//!              1 byte mode: 0 dense, 1 sparse (width > 1 only)
//!              sparse: a section with the bitmap of the elements kept
//!                      (bit i % 8 of byte i / 8 for element i)
//!              one section per plane p in 0..width
//! ```
//!
//! A section is 1 byte codec (0 stored, 1 zstd frame, 2 Huffman: see
//! `huffman.rs`), 4 bytes length (u32 little-endian), then the bytes.
//!
//! Block `b` holds elements `[b * E, min((b + 1) * E, n))`, with
//! `E = block bytes / width` and `n = raw_len / width`. In a dense block
//! each plane decodes to as many bytes as the block has elements; in a
//! sparse block the bitmap decodes to `ceil(E_b / 8)` bytes and each plane
//! to one byte per bit set, the other elements being all zero bytes (after
//! the transform: with the XOR, elements equal to the parent's).

use super::CodecError;
use crate::BlobId;

pub(super) const VERSION: u8 = 1;
pub(super) const BASE_LEN: usize = 24;
pub(super) const XOR_LEN: usize = 64;
pub(super) const SECTION_HEAD: usize = 5;
pub(super) const MIN_BLOCK_LOG: u8 = 12;
pub(super) const MAX_BLOCK_LOG: u8 = 26;

pub(super) const KIND_NONE: u8 = 0;
pub(super) const KIND_PLANES: u8 = 1;
pub(super) const KIND_XOR: u8 = 2;

pub(super) const BLOCK_DENSE: u8 = 0;
pub(super) const BLOCK_SPARSE: u8 = 1;

pub(super) const SECTION_STORED: u8 = 0;
pub(super) const SECTION_ZSTD: u8 = 1;
pub(super) const SECTION_HUFFMAN: u8 = 2;

/// The parsed fixed part of an encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FrameHeader {
    pub kind: u8,
    pub width: u8,
    pub block_log: u8,
    pub xor_mask: u8,
    pub raw_len: u64,
    pub raw_sum: u64,
    pub parent_sum: u64,
    pub parent: Option<BlobId>,
}

impl FrameHeader {
    pub(super) fn len(&self) -> usize {
        if self.kind == KIND_XOR {
            XOR_LEN
        } else {
            BASE_LEN
        }
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[VERSION, self.kind, self.width, self.block_log, self.xor_mask, 0, 0, 0]);
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.raw_sum.to_le_bytes());
        if let Some(parent) = self.parent {
            out.extend_from_slice(&self.parent_sum.to_le_bytes());
            out.extend_from_slice(&parent.0);
        }
    }

    pub(super) fn parse(bytes: &[u8]) -> Result<FrameHeader, CodecError> {
        let base = bytes
            .get(..BASE_LEN)
            .ok_or(CodecError::Corrupt("shorter than its header"))?;
        if base[0] != VERSION {
            return Err(CodecError::Corrupt("unknown format version"));
        }
        let (kind, width, block_log, xor_mask) = (base[1], base[2], base[3], base[4]);
        if base[5..8] != [0, 0, 0] {
            return Err(CodecError::Corrupt("reserved header bytes are set"));
        }
        let valid_width = match kind {
            KIND_NONE => width == 1,
            KIND_PLANES | KIND_XOR => matches!(width, 1 | 2 | 4 | 8),
            _ => return Err(CodecError::Corrupt("unknown transform")),
        };
        if !valid_width {
            return Err(CodecError::Corrupt("bad element width"));
        }
        if !(MIN_BLOCK_LOG..=MAX_BLOCK_LOG).contains(&block_log) {
            return Err(CodecError::Corrupt("bad block size"));
        }
        let all_planes = ((1u16 << width) - 1) as u8;
        let mask_ok = match kind {
            KIND_XOR => xor_mask != 0 && xor_mask & !all_planes == 0,
            _ => xor_mask == 0,
        };
        if !mask_ok {
            return Err(CodecError::Corrupt("bad xor mask"));
        }
        let mut header = FrameHeader {
            kind,
            width,
            block_log,
            xor_mask,
            raw_len: u64_at(base, 8),
            raw_sum: u64_at(base, 16),
            parent_sum: 0,
            parent: None,
        };
        if kind == KIND_XOR {
            let ext = bytes
                .get(BASE_LEN..XOR_LEN)
                .ok_or(CodecError::Corrupt("shorter than its header"))?;
            header.parent_sum = u64_at(ext, 0);
            let mut id = [0u8; 32];
            id.copy_from_slice(&ext[8..40]);
            header.parent = Some(BlobId(id));
        }
        Ok(header)
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Reads sections off the encoded bytes, never past their end.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8], pos: usize) -> Cursor<'a> {
        Cursor { bytes, pos }
    }

    pub(super) fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(len).ok_or(CodecError::Corrupt("truncated"))?;
        let s = self.bytes.get(self.pos..end).ok_or(CodecError::Corrupt("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    /// The next section: its codec byte and its body.
    pub(super) fn section(&mut self) -> Result<(u8, &'a [u8]), CodecError> {
        let head = self.take(SECTION_HEAD)?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        Ok((head[0], self.take(len)?))
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }
}
