//! A version's manifest: how to rebuild the file (or the directory), and
//! what it contains.
//!
//! The manifest is the whole truth about a version. It is stored as JSON
//! twice: in the index (`manifests` tree) and as a blob in the blob store,
//! so the index can be rebuilt from blobs alone.
//!
//! A **file version** lists the file's pieces at the top level
//! (`skeleton`, `pieces`, `tensors`). A **directory version** (`format:
//! "directory"`) has a [`Tree`]: every file of the directory with its own
//! skeleton blob and pieces, and the directory's logical tensors with
//! their chunks; its top-level `skeleton` is the blob of the tree
//! listing whose blake3 is the version's `blake3` (see
//! [`Tree::listing`]), and its top-level `pieces` and `tensors` are empty.
//! Code that rebuilds bytes walks [`Manifest::files`], which gives the one
//! file of a file version or each file of a directory the same way.

use crate::ids::{FileHash, ModelName, SourceName, TreePath};
use reg_ckpt::meta::CheckpointMeta;
use reg_ckpt::safety::GlobalVerdict;
use reg_ckpt::tensors::Role;
use reg_ckpt::{DType, Format};
use reg_store::BlobId;
use reg_tree::{FileFormat, Layout};
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
    /// The storage key in the file (empty for a meta tensor).
    pub storage_key: String,
    /// The blob holding the storage's bytes; `None` for a tensor without
    /// a storage (a meta tensor), and then not written, so the entries of
    /// every other tensor read and write as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobId>,
    /// Weight, optimizer or other.
    pub role: Role,
    /// `requires_grad` as saved.
    pub requires_grad: bool,
    /// Saved as an `nn.Parameter`.
    pub parameter: bool,
    /// On torch's `meta` device: dtype, shape and stride only, no storage
    /// (`blob` is absent, `storage_key` empty, the file holds no bytes of
    /// it). Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub meta: bool,
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
    /// File format (`directory` for a directory version).
    pub format: VersionFormat,
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
    /// The files and logical tensors of a directory version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<Tree>,
}

/// What a version holds: one file of a format, or a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionFormat {
    /// A `torch.save` zip.
    TorchZip,
    /// A legacy `torch.save` file.
    TorchLegacy,
    /// A safetensors file.
    Safetensors,
    /// A directory (see [`Tree`]).
    Directory,
}

impl VersionFormat {
    /// The name used in JSON output and docs.
    pub fn name(self) -> &'static str {
        match self {
            VersionFormat::TorchZip => "torch-zip",
            VersionFormat::TorchLegacy => "torch-legacy",
            VersionFormat::Safetensors => "safetensors",
            VersionFormat::Directory => "directory",
        }
    }
}

impl From<Format> for VersionFormat {
    fn from(f: Format) -> VersionFormat {
        match f {
            Format::TorchZip => VersionFormat::TorchZip,
            Format::TorchLegacy => VersionFormat::TorchLegacy,
            Format::Safetensors => VersionFormat::Safetensors,
        }
    }
}

/// The files and logical tensors of a directory version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// What kind of checkpoint the directory is.
    pub layout: Layout,
    /// Every file, sorted by path.
    pub files: Vec<TreeFileEntry>,
    /// The logical tensors (state-dict keys, or `FILE:PATH`), sorted by name.
    pub tensors: Vec<LogicalTensorEntry>,
    /// The exact epoch where the layout records a fractional one (the
    /// Trainer's); `meta.epoch` holds it rounded down.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "reg_ckpt::exact_json::opt_f64_exact"
    )]
    pub epoch: Option<f64>,
    /// `config.json` of the checkpoint's folder (a model configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_config: Option<serde_json::Value>,
}

impl Tree {
    /// The tree listing: one line per file, sorted by path,
    /// `<blake3 hex> <x|-> <size> <path>\n` (`x`: executable). Its blake3
    /// is a directory version's whole-version hash: two directories with
    /// the same files, bytes and executable bits have the same listing.
    pub fn listing(&self) -> Vec<u8> {
        listing_of(
            self.files
                .iter()
                .map(|f| (f.path.as_str(), f.blake3, f.executable, f.size)),
        )
    }
}

/// The tree listing of `(path, blake3, executable, size)` rows (see
/// [`Tree::listing`]); rows are sorted here.
pub fn listing_of<'a>(rows: impl Iterator<Item = (&'a str, FileHash, bool, u64)>) -> Vec<u8> {
    let mut rows: Vec<_> = rows.collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (path, hash, exe, size) in rows {
        out.extend_from_slice(format!("{hash} {} {size} {path}\n", if exe { 'x' } else { '-' }).as_bytes());
    }
    out
}

/// One file of a directory version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TreeFileEntry {
    /// Its path in the directory (relative, `/`-separated, validated).
    pub path: TreePath,
    /// Size in bytes.
    pub size: u64,
    /// blake3 of the file.
    pub blake3: FileHash,
    /// The owner executable bit was set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub executable: bool,
    /// How it was read.
    pub format: FileFormat,
    /// Its skeleton blob (every non-payload byte, concatenated).
    pub skeleton: BlobId,
    /// The file as pieces, in order.
    pub pieces: Vec<Piece>,
    /// Its tensors as a file of its own would list them.
    pub tensors: Vec<TensorEntry>,
    /// Byte range of its object pickle, in skeleton bytes (torch files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickle: Option<(u64, u64)>,
}

impl TreeFileEntry {
    /// True when the file holds training state only (optimizer, scheduler
    /// or RNG state: a Trainer's `optimizer.pt`, `scheduler.pt`,
    /// `rng_state*.pth`, DeepSpeed's `*_optim_states.pt`, or a file whose
    /// every tensor is optimizer state), which retention may drop.
    pub fn holds_training_state_only(&self) -> bool {
        let name = self.path.as_str().rsplit('/').next().unwrap_or("");
        let by_name = matches!(name, "optimizer.pt" | "optimizer.bin" | "scheduler.pt" | "scaler.pt")
            || name.starts_with("rng_state")
            || name.ends_with("_optim_states.pt");
        let by_tensors = !self.tensors.is_empty()
            && self
                .tensors
                .iter()
                .all(|t| t.role == reg_ckpt::tensors::Role::Optimizer);
        by_name || by_tensors
    }
}

impl Manifest {
    /// True when this directory version has training-state files retention
    /// can drop, and files left after dropping them.
    pub fn has_droppable_training_files(&self) -> bool {
        self.tree.as_ref().is_some_and(|t| {
            t.files.iter().any(TreeFileEntry::holds_training_state_only)
                && t.files.iter().any(|f| !f.holds_training_state_only())
        })
    }
}

/// A logical tensor of a directory version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogicalTensorEntry {
    /// Its name (state-dict key, or `FILE:PATH`).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Global shape.
    pub shape: Vec<u64>,
    /// Weight, optimizer state or other.
    pub role: Role,
    /// The saved pieces; together they tile the shape (none for a meta
    /// tensor).
    pub chunks: Vec<ChunkEntry>,
    /// On torch's `meta` device: no storage, so no chunks. Written only
    /// when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub meta: bool,
}

/// A saved piece of a logical tensor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// The file holding it: an index into [`Tree::files`].
    pub file: u32,
    /// Global offsets of its first element.
    pub offsets: Vec<u64>,
    /// Its sizes.
    pub sizes: Vec<u64>,
    /// The blob holding the storage its elements are in.
    pub blob: BlobId,
    /// Index (elements) of its first element in that storage.
    pub storage_offset: u64,
    /// Strides (elements) in that storage.
    pub stride: Vec<u64>,
}

/// One file's bytes as a manifest rebuilds them (see [`Manifest::files`]).
#[derive(Clone, Copy, Debug)]
pub struct FileLayout<'m> {
    /// Its path in a directory version; `None` for a file version.
    pub path: Option<&'m TreePath>,
    /// Its skeleton blob.
    pub skeleton: BlobId,
    /// Its pieces, in order.
    pub pieces: &'m [Piece],
    /// Its size.
    pub size: u64,
    /// Its blake3.
    pub blake3: FileHash,
    /// The owner executable bit.
    pub executable: bool,
}

/// A manifest whose JSON would not read back as itself. Returned by
/// [`Manifest::encode`] and [`Manifest::check_decodes`].
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// It cannot be written as JSON.
    #[error("cannot be written as JSON: {0}")]
    Encode(String),
    /// Its JSON does not decode.
    #[error("its JSON does not read back: {0}")]
    Decode(String),
    /// Its JSON decodes to something else.
    #[error("its JSON reads back as another manifest (from byte {at})")]
    Differs {
        /// The first byte that differs.
        at: usize,
    },
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
    /// This version's number under its name.
    pub fn version_number(&self) -> crate::ids::VersionNumber {
        crate::ids::VersionNumber(self.number)
    }

    /// `NAME@vN` of this version.
    pub fn label(&self) -> crate::ids::VersionLabel {
        crate::ids::VersionLabel::new(&self.name, self.number)
    }

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

    /// True for a directory version.
    pub fn is_directory(&self) -> bool {
        self.tree.is_some()
    }

    /// The files whose bytes the version rebuilds: its one file, or every
    /// file of its directory (sorted by path).
    pub fn files(&self) -> Vec<FileLayout<'_>> {
        match &self.tree {
            None => vec![FileLayout {
                path: None,
                skeleton: self.skeleton,
                pieces: &self.pieces,
                size: self.size,
                blake3: self.blake3,
                executable: self.executable,
            }],
            Some(tree) => tree
                .files
                .iter()
                .map(|f| FileLayout {
                    path: Some(&f.path),
                    skeleton: f.skeleton,
                    pieces: &f.pieces,
                    size: f.size,
                    blake3: f.blake3,
                    executable: f.executable,
                })
                .collect(),
        }
    }

    /// Every distinct blob the version needs (its skeleton or tree
    /// listing first, then each file's skeleton and payloads).
    pub fn blobs(&self) -> Vec<BlobId> {
        let mut seen = std::collections::HashSet::new();
        let mut out = vec![self.skeleton];
        seen.insert(self.skeleton);
        for file in self.files() {
            if seen.insert(file.skeleton) {
                out.push(file.skeleton);
            }
            for p in file.pieces {
                if let Piece::Payload { blob, .. } = p {
                    if seen.insert(*blob) {
                        out.push(*blob);
                    }
                }
            }
        }
        out
    }

    /// The raw length of each payload blob, by blob.
    pub fn payload_lens(&self) -> std::collections::HashMap<BlobId, u64> {
        self.files()
            .iter()
            .flat_map(|f| f.pieces.iter())
            .filter_map(|p| match p {
                Piece::Payload { blob, len } => Some((*blob, *len)),
                Piece::Skeleton { .. } => None,
            })
            .collect()
    }

    /// The least length each skeleton blob (or tree listing) must have:
    /// the end of the furthest skeleton piece naming it.
    pub fn skeleton_lens(&self) -> std::collections::HashMap<BlobId, u64> {
        let mut out: std::collections::HashMap<BlobId, u64> = std::collections::HashMap::new();
        for f in self.files() {
            let e = out.entry(f.skeleton).or_default();
            for p in f.pieces {
                if let Piece::Skeleton { offset, len } = p {
                    *e = (*e).max(offset.saturating_add(*len));
                }
            }
        }
        out
    }

    /// Check that the manifest is consistent with itself: each file's
    /// pieces add up to its size; for a directory, the sizes add up to the
    /// version's, the tree listing hashes to the version's `blake3`, and
    /// every chunk names a file of the tree. Says what is wrong.
    pub fn check_shape(&self) -> Result<(), String> {
        for f in self.files() {
            let total = f.pieces.iter().fold(0u64, |a, p| a.saturating_add(p.len()));
            if total != f.size {
                let what = f.path.map(|p| p.to_string()).unwrap_or_else(|| "the file".into());
                return Err(format!("pieces of {what} add up to {total} bytes, it has {}", f.size));
            }
        }
        if let Some(tree) = &self.tree {
            let total = tree.files.iter().fold(0u64, |a, f| a.saturating_add(f.size));
            if total != self.size {
                return Err(format!(
                    "the files add up to {total} bytes, the version has {}",
                    self.size
                ));
            }
            if FileHash::from(BlobId::of(&tree.listing())) != self.blake3 {
                return Err("the tree listing does not hash to the version's blake3".into());
            }
            if tree.files.windows(2).any(|w| w[0].path >= w[1].path) {
                return Err("the files are not sorted by path, or one is listed twice".into());
            }
            let n = tree.files.len();
            if let Some(t) = tree
                .tensors
                .iter()
                .find(|t| t.chunks.iter().any(|c| c.file as usize >= n))
            {
                return Err(format!(
                    "tensor {} has a chunk in a file the tree does not list",
                    t.name
                ));
            }
        }
        Ok(())
    }

    /// Serialize to the JSON stored in the index and blob store.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// The JSON to store, checked to read back: decoded again, it must
    /// give the same manifest (re-encoded, the same bytes; byte equality,
    /// as `==` on floats would call two NaNs different). What a push or
    /// import stores, so no version is ever committed unreadable.
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        let json = self.to_json().map_err(|e| ManifestError::Encode(e.to_string()))?;
        Manifest::check_decodes(&json)?;
        Ok(json)
    }

    /// Check that stored manifest bytes decode, to a manifest that
    /// encodes to the same bytes.
    pub fn check_decodes(json: &[u8]) -> Result<Manifest, ManifestError> {
        let back = Manifest::from_json(json).map_err(|e| ManifestError::Decode(e.to_string()))?;
        let again = back.to_json().map_err(|e| ManifestError::Encode(e.to_string()))?;
        if again != json {
            let at = again.iter().zip(json).take_while(|(a, b)| a == b).count();
            return Err(ManifestError::Differs { at });
        }
        Ok(back)
    }

    /// Parse stored JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
