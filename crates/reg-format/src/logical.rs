//! A version's tensors as whole, named tensors, whatever holds them: the
//! tensors of a file version (one part each: its view of one storage) or
//! the logical tensors of a directory version (one part per saved chunk,
//! at its global offsets). Diff and exports work on this view, so a
//! directory can be compared with another directory or with a file, by
//! tensor name, whichever file or rank holds the bytes.
//!
//! [`assemble`] gathers one tensor's elements in row-major order from its
//! parts: each part's blob is read through its storage offset and strides
//! (`reg_tree::runs` plans the copies), gaps and overlaps having
//! been refused when the version was pushed.

use crate::manifest::Manifest;
use reg_ckpt::tensors::Role;
use reg_ckpt::DType;
use reg_store::{BlobId, BlobStore, StoreError};
use reg_tree::{runs, Chunk};

/// A tensor of a version, whole.
#[derive(Clone, Debug, PartialEq)]
pub struct LogicalTensor {
    /// Its name: a file's tensor path, a directory's state-dict key (or
    /// `FILE:PATH`).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Global shape.
    pub shape: Vec<u64>,
    /// Weight, optimizer state or other.
    pub role: Role,
    /// Where its elements are (none for a meta tensor).
    pub parts: Vec<Part>,
    /// On torch's `meta` device: dtype and shape only, no elements.
    pub meta: bool,
}

/// A piece of a [`LogicalTensor`] in one storage blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Global offsets of its first element.
    pub offsets: Vec<u64>,
    /// Its sizes.
    pub sizes: Vec<u64>,
    /// The storage blob.
    pub blob: BlobId,
    /// Index (elements) of its first element in the storage.
    pub storage_offset: u64,
    /// Strides (elements) in the storage.
    pub stride: Vec<u64>,
}

impl LogicalTensor {
    /// Number of elements (saturating).
    pub fn numel(&self) -> u64 {
        self.shape.iter().fold(1u64, |a, d| a.saturating_mul(*d))
    }

    /// True when `other` holds the same elements in the same bytes:
    /// same dtype, shape and parts (blobs, views, offsets), wherever the
    /// parts are stored (two meta tensors of one dtype and shape are the
    /// same).
    pub fn same_bytes(&self, other: &LogicalTensor) -> bool {
        self.dtype == other.dtype && self.shape == other.shape && self.meta == other.meta && self.parts == other.parts
    }
}

/// The tensors of `m` as whole tensors, in manifest order.
pub fn tensors_of(m: &Manifest) -> Vec<LogicalTensor> {
    match &m.tree {
        None => m
            .tensors
            .iter()
            .map(|t| LogicalTensor {
                name: t.path.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                role: t.role,
                parts: t
                    .blob
                    .map(|blob| Part {
                        offsets: vec![0; t.shape.len()],
                        sizes: t.shape.clone(),
                        blob,
                        storage_offset: t.storage_offset,
                        stride: t.stride.clone(),
                    })
                    .into_iter()
                    .collect(),
                meta: t.meta,
            })
            .collect(),
        Some(tree) => tree
            .tensors
            .iter()
            .map(|t| LogicalTensor {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                role: t.role,
                parts: t
                    .chunks
                    .iter()
                    .map(|c| Part {
                        offsets: c.offsets.clone(),
                        sizes: c.sizes.clone(),
                        blob: c.blob,
                        storage_offset: c.storage_offset,
                        stride: c.stride.clone(),
                    })
                    .collect(),
                meta: t.meta,
            })
            .collect(),
    }
}

/// Tensors larger than this are not assembled in memory (diff `--stats`
/// of two differently sharded tensors leaves their numbers out).
pub const MAX_ASSEMBLED: u64 = 4 << 30;

/// The elements of `t` in row-major order, gathered from its parts. A meta
/// tensor has none: callers check [`LogicalTensor::meta`] first (this
/// refuses one rather than make up zeros).
pub fn assemble(store: &BlobStore, t: &LogicalTensor) -> Result<Vec<u8>, StoreError> {
    let size = t.dtype.size() as u64;
    let total = t.numel().saturating_mul(size);
    let corrupt = |blob: BlobId, reason: String| StoreError::Corrupt { id: blob, reason };
    if t.meta {
        return Err(corrupt(
            BlobId([0; 32]),
            format!("tensor {} is a meta tensor: it has no elements", t.name),
        ));
    }
    if total > MAX_ASSEMBLED {
        let blob = t.parts.first().map(|p| p.blob).unwrap_or(BlobId([0; 32]));
        return Err(corrupt(
            blob,
            format!("tensor {} is too large to assemble in memory", t.name),
        ));
    }
    let mut out = vec![0u8; usize::try_from(total).map_err(|_| corrupt(BlobId([0; 32]), "too large".into()))?];
    for p in &t.parts {
        let storage = store.read(p.blob)?;
        let chunk = Chunk {
            file: 0,
            offsets: p.offsets.clone(),
            sizes: p.sizes.clone(),
            storage_key: String::new(),
            storage_offset: p.storage_offset,
            stride: p.stride.clone(),
        };
        let plan = runs(&t.shape, &chunk).map_err(|e| corrupt(p.blob, format!("tensor {}: {e}", t.name)))?;
        for run in plan {
            let (src, dst, len) = (run.src_elem * size, run.dst_elem * size, run.len * size);
            let from = storage
                .get(src as usize..(src + len) as usize)
                .ok_or_else(|| corrupt(p.blob, format!("tensor {}: a chunk reaches past its storage", t.name)))?;
            let to = out
                .get_mut(dst as usize..(dst + len) as usize)
                .ok_or_else(|| corrupt(p.blob, format!("tensor {}: a chunk reaches past the tensor", t.name)))?;
            to.copy_from_slice(from);
        }
    }
    Ok(out)
}
