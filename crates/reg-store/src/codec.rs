//! How blob bytes are encoded on disk.

use serde::{Deserialize, Serialize};

/// The encoding of a blob file's body. The blob id is always the hash of
/// the decoded bytes, so codecs never affect deduplication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Codec {
    /// Bytes as they are.
    Raw,
    /// One zstd frame.
    Zstd,
    /// Byte planes, each stored, Huffman coded or zstd-compressed, in
    /// frames (see the `frames` module); for float tensors.
    Planes,
    /// Frames as in [`Codec::Planes`], some of which are the XOR with the
    /// same bytes of a parent blob (named in the header): decoding needs
    /// the parent's bytes.
    Delta,
}

impl Codec {
    /// The byte that names the codec in a blob file header.
    pub fn tag(self) -> u8 {
        match self {
            Codec::Raw => 0,
            Codec::Zstd => 1,
            Codec::Planes => 2,
            Codec::Delta => 3,
        }
    }

    /// The codec a header byte names.
    pub fn from_tag(tag: u8) -> Option<Codec> {
        match tag {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Planes),
            3 => Some(Codec::Delta),
            _ => None,
        }
    }

    /// Lowercase name for output.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Zstd => "zstd",
            Codec::Planes => "planes",
            Codec::Delta => "delta",
        }
    }

    /// True when the body is a sequence of frames (planes or delta).
    pub fn is_framed(self) -> bool {
        matches!(self, Codec::Planes | Codec::Delta)
    }
}
