//! Lossless transforms for tensor bytes: byte planes, XOR against a parent
//! blob, and a per-plane choice between storing, Huffman and zstd.
//!
//! Pure functions, bytes in and bytes out: this module knows element widths
//! (1, 2, 4 or 8 bytes) and an optional parent byte slice, never dtypes or
//! checkpoints.
//!
//! - [`encode()`] applies a given [`Transform`] (`encode.rs`).
//! - [`choose()`] tries what pays on a sample of the blob (zstd alone, byte
//!   planes, planes of the XOR with the parent) and encodes with the winner
//!   (`choose.rs`).
//! - [`decode()`] / [`decode_into`] invert either; [`inspect`] reads what an
//!   encoding needs (its transform, so its parent) without decoding it
//!   (`decode.rs`).
//! - [`Workspace`] keeps the buffers and zstd contexts of one thread from
//!   call to call (`workspace.rs`).
//!
//! An encoding is self-describing (`format.rs`; byte by byte in
//! docs/format.md): a header with the transform, the raw length, a
//! checksum of the raw bytes (`checksum.rs`; and of the parent's), then
//! blocks of 1 MiB of raw bytes, each holding one section per byte plane
//! (`planes.rs`), stored as is, as one zstd frame or Huffman-coded
//! (`huffman.rs`). A block where at least a quarter of the elements are
//! zero (after the XOR: equal to the parent's) is sparse: a bitmap of the
//! other elements, then their planes only. Decoding checks every length
//! before using it, allocates the output and about two blocks of scratch,
//! and verifies the checksums, so a wrong parent or corrupt bytes give an
//! error, never wrong bytes.
//!
//! Ratios and single-core speeds on synthetic tensors:
//! `cargo test --release -p reg-store codecs::bench -- --ignored --nocapture`.
//!
//! ```
//! use reg_store::codecs::{choose, decode, Parent};
//! use reg_store::BlobId;
//! # fn main() -> Result<(), reg_store::codecs::CodecError> {
//! let parent: Vec<u8> = (0..4096u32).flat_map(|i| (i as f32 * 0.01).to_le_bytes()).collect();
//! let mut raw = parent.clone();
//! raw[100] ^= 1;
//! let p = Parent { id: BlobId::of(&parent), bytes: &parent };
//! let enc = choose(&raw, 4, Some(p), 3)?;
//! assert_eq!(enc.transform.parent(), Some(p.id));
//! assert_eq!(decode(&enc.bytes, raw.len() as u64, Some(&parent))?, raw);
//! # Ok(()) }
//! ```

mod checksum;
mod choose;
mod decode;
mod encode;
mod format;
mod huffman;
mod planes;
mod workspace;

#[cfg(test)]
mod bench;
#[cfg(test)]
pub(crate) mod testdata;
#[cfg(test)]
mod tests;

pub use choose::{choose, choose_in};
pub use decode::{decode, decode_into, decode_into_in, inspect};
pub use encode::encode;
pub use workspace::Workspace;

use crate::BlobId;
use serde::{Deserialize, Serialize};

/// How a blob body is transformed before its planes are stored, Huffman
/// coded or compressed with zstd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Transform {
    /// The bytes as they are (zstd, or stored when zstd does not pay).
    None,
    /// Byte planes of `width`-byte elements: all first bytes, then all
    /// second bytes, ...; each plane stored or compressed on its own.
    Planes {
        /// Element width in bytes: 1, 2, 4 or 8.
        width: u8,
    },
    /// Byte planes of the XOR with `parent` (a blob of the same length),
    /// for the planes where that pays; the others as in [`Transform::Planes`].
    XorPlanes {
        /// Element width in bytes: 1, 2, 4 or 8.
        width: u8,
        /// The blob XORed against; decoding needs its bytes.
        parent: BlobId,
    },
}

impl Transform {
    /// The blob whose bytes decoding needs, if any.
    pub fn parent(&self) -> Option<BlobId> {
        match self {
            Transform::XorPlanes { parent, .. } => Some(*parent),
            _ => None,
        }
    }

    /// Element width in bytes (1 for [`Transform::None`]).
    pub fn width(&self) -> u8 {
        match self {
            Transform::None => 1,
            Transform::Planes { width } | Transform::XorPlanes { width, .. } => *width,
        }
    }

    /// Lowercase name for output: `none`, `planes` or `xor-planes`.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::None => "none",
            Transform::Planes { .. } => "planes",
            Transform::XorPlanes { .. } => "xor-planes",
        }
    }
}

/// A parent blob to encode against: its id (recorded) and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Parent<'a> {
    /// The parent's blob id.
    pub id: BlobId,
    /// The parent's raw bytes.
    pub bytes: &'a [u8],
}

/// An encoded blob body and the transform it uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The transform applied (also recorded inside `bytes`).
    pub transform: Transform,
    /// The self-describing encoding.
    pub bytes: Vec<u8>,
}

/// What [`inspect`] reads from an encoding's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// The transform applied.
    pub transform: Transform,
    /// Length of the decoded bytes.
    pub raw_len: u64,
}

/// Errors of [`encode()`], [`choose()`] and [`decode()`].
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The element width is not 1, 2, 4 or 8.
    #[error("element width {0} is not 1, 2, 4 or 8")]
    BadWidth(u8),
    /// The transform needs the parent's bytes and none were given.
    #[error("the encoding is a delta against blob {0}, whose bytes were not given")]
    ParentMissing(BlobId),
    /// The parent's length differs from the blob's.
    #[error("parent is {parent} bytes and the blob {raw}: XOR needs equal lengths")]
    ParentLength {
        /// The blob's raw length.
        raw: u64,
        /// The parent's length.
        parent: u64,
    },
    /// The given parent is not the one the blob was encoded against.
    #[error("the parent given is not blob {0}, which the encoding is a delta against")]
    WrongParent(BlobId),
    /// The caller's raw length differs from the encoding's.
    #[error("the encoding decodes to {header} bytes, {expected} expected")]
    LengthMismatch {
        /// Raw length in the encoding's header.
        header: u64,
        /// Raw length the caller expected.
        expected: u64,
    },
    /// The encoded bytes are damaged.
    #[error("corrupt encoding: {0}")]
    Corrupt(&'static str),
    /// zstd failed while compressing.
    #[error("zstd: {0}")]
    Zstd(#[from] std::io::Error),
}
