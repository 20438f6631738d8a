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
    /// Byte planes with a zstd choice per plane, in frames
    /// (see the `frames` module); for float tensors.
    Planes,
}

impl Codec {
    /// The byte that names the codec in a blob file header.
    pub fn tag(self) -> u8 {
        match self {
            Codec::Raw => 0,
            Codec::Zstd => 1,
            Codec::Planes => 2,
        }
    }

    /// The codec a header byte names.
    pub fn from_tag(tag: u8) -> Option<Codec> {
        match tag {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Planes),
            _ => None,
        }
    }

    /// Lowercase name for output.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Zstd => "zstd",
            Codec::Planes => "planes",
        }
    }
}
