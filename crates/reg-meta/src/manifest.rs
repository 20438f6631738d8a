//! A version's manifest: how to rebuild the file, and what it contains.
//!
//! The manifest is the whole truth about a version. It is stored as JSON
//! twice: in the index (`manifests` tree) and as a blob in the blob store,
//! so the index can be rebuilt from blobs alone.

use crate::ids::{FileHash, ModelName, SourceName};
use reg_ckpt::meta::CheckpointMeta;
use reg_ckpt::safety::GlobalVerdict;
use reg_ckpt::tensors::Role;
use reg_ckpt::{DType, Format};
use reg_store::BlobId;
use serde::{Deserialize, Serialize};

/// Current manifest schema version.
pub const MANIFEST_SCHEMA: u32 = 1;

/// One run of bytes of the original file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Piece {
    /// Bytes `offset..offset+len` of the version's skeleton blob.
    Skeleton {
        /// Start in the skeleton blob.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// A whole payload blob.
    Payload {
        /// The blob.
        blob: BlobId,
        /// Its raw length.
        len: u64,
    },
}

impl Piece {
    /// Bytes this piece contributes to the file.
    pub fn len(&self) -> u64 {
        match self {
            Piece::Skeleton { len, .. } | Piece::Payload { len, .. } => *len,
        }
    }

    /// True for an empty piece.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor as the manifest records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// Place in the object tree (`state_dict/encoder.weight`).
    pub path: String,
    /// Element type.
    pub dtype: DType,
    /// Sizes.
    pub shape: Vec<u64>,
    /// Strides in elements.
    pub stride: Vec<u64>,
    /// Offset in its storage, in elements.
    pub storage_offset: u64,
    /// The storage key in the file.
    pub storage_key: String,
    /// The blob holding the storage's bytes.
    pub blob: BlobId,
    /// Weight, optimizer or other.
    pub role: Role,
    /// `requires_grad` as saved.
    pub requires_grad: bool,
    /// Saved as an `nn.Parameter`.
    pub parameter: bool,
}

/// Everything about one version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Schema version of this manifest.
    pub schema: u32,
    /// Model name.
    pub name: ModelName,
    /// Version number within the name (1, 2, ...).
    pub number: u32,
    /// Push time, seconds since the Unix epoch.
    pub created: u64,
    /// File name the version was pushed from (one plain component).
    pub source: SourceName,
    /// Commit-style message.
    pub message: Option<String>,
    /// File format.
    pub format: Format,
    /// File size in bytes.
    pub size: u64,
    /// blake3 of the whole file.
    pub blake3: FileHash,
    /// The skeleton blob.
    pub skeleton: BlobId,
    /// The file as pieces, in order.
    pub pieces: Vec<Piece>,
    /// Every tensor.
    pub tensors: Vec<TensorEntry>,
    /// Training metadata.
    pub meta: CheckpointMeta,
    /// Globals the pickle names, with verdicts.
    pub globals: Vec<GlobalVerdict>,
    /// File byte range `[start, end)` of the object pickle (zip `data.pkl`
    /// or the legacy object pickle), which lies in skeleton bytes.
    #[serde(default)]
    pub pickle: Option<(u64, u64)>,
    /// Set when retention dropped this version's optimizer and scheduler
    /// state: the file it pulls as is a weights-only file, and this records
    /// what the original was.
    #[serde(default)]
    pub optimizer_dropped: Option<DroppedFrom>,
    /// The file was executable (owner `x` bit) when pushed; pull sets the
    /// executable bits the umask allows. Written only when true, so the
    /// manifests of other files (and their version ids) are unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub executable: bool,
}

/// The original file of a version whose optimizer state was dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DroppedFrom {
    /// Original size.
    pub size: u64,
    /// Original whole-file blake3.
    pub blake3: FileHash,
    /// When the state was dropped (Unix seconds).
    pub when: u64,
}

impl Manifest {
    /// Map a file byte range that lies inside skeleton pieces to the same
    /// bytes' range in the skeleton blob.
    pub fn skeleton_range(&self, start: u64, end: u64) -> Option<(u64, u64)> {
        let mut at = 0u64;
        for p in &self.pieces {
            let len = p.len();
            if let Piece::Skeleton { offset, .. } = p {
                if start >= at && end <= at + len {
                    return Some((offset + (start - at), offset + (end - at)));
                }
            }
            at += len;
        }
        None
    }

    /// Every distinct blob the version needs (skeleton first).
    pub fn blobs(&self) -> Vec<BlobId> {
        let mut seen = std::collections::HashSet::new();
        let mut out = vec![self.skeleton];
        seen.insert(self.skeleton);
        for p in &self.pieces {
            if let Piece::Payload { blob, .. } = p {
                if seen.insert(*blob) {
                    out.push(*blob);
                }
            }
        }
        out
    }

    /// The raw length of each payload blob, by blob.
    pub fn payload_lens(&self) -> std::collections::HashMap<BlobId, u64> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Payload { blob, len } => Some((*blob, *len)),
                Piece::Skeleton { .. } => None,
            })
            .collect()
    }

    /// Serialize to the JSON stored in the index and blob store.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Parse stored JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
