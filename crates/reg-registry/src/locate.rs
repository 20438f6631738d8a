//! `reg locate`: where the tensors of a version's safetensors export lie
//! as they are on disk, for a loader that maps them instead of reading
//! an export (`reg.load_state_dict`, `reg.open`).
//!
//! A tensor can be mapped when its storage's blob is stored raw (a fast
//! push's new blobs until the background job compresses them; with
//! `keep_newest_raw`, the newest version of each name) and the tensor is
//! contiguous in it: the answer gives its file and byte offset. Every
//! other tensor (an encoded blob, a strided view, a chunked tensor of a
//! directory version) is listed by name for the loader to export. Nothing
//! is held: the loader checks each file it opens (its length, its
//! header's codec byte) and exports what it cannot map.

use crate::error::RegistryError;
use crate::export::state_dict_tensors;
use crate::registry::Registry;
use crate::resolve::Resolved;
use crate::select::TensorSelection;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// One tensor that can be mapped from a blob file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MappedTensor {
    /// Its name in the safetensors export (the state-dict key).
    pub name: String,
    /// torch's name of its dtype (`float32`, `bfloat16`).
    pub dtype: &'static str,
    /// Its shape.
    pub shape: Vec<u64>,
    /// The raw blob file holding it.
    pub file: PathBuf,
    /// The blob file's length when located (a loader checks it).
    pub file_len: u64,
    /// Byte offset of its first element in the file.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// What `reg locate` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Located {
    /// Tensors that can be mapped.
    pub mapped: Vec<MappedTensor>,
    /// Tensors that must be read through an export, by name.
    pub exported: Vec<String>,
}

/// Whether `stride` is the row-major stride of `shape` (dimensions of
/// size 1 may have any stride).
fn contiguous(shape: &[u64], stride: &[u64]) -> bool {
    if shape.len() != stride.len() {
        return false;
    }
    let mut want = 1u64;
    for (&n, &s) in shape.iter().zip(stride).rev() {
        if n != 1 && s != want {
            return false;
        }
        want = want.saturating_mul(n);
    }
    true
}

impl Registry {
    /// Where the tensors of `v`'s safetensors export (those `tensors`
    /// chooses, when given) lie on disk (see the module docs).
    pub fn locate(&self, v: &Resolved, tensors: Option<&TensorSelection>) -> Result<Located, RegistryError> {
        let m = &v.manifest;
        let label = m.label().to_string();
        if m.is_directory() {
            let names = crate::export_tree::export_tensors(m, crate::ExportFormat::Safetensors)
                .into_iter()
                .map(|(name, _)| name)
                .collect::<Vec<_>>();
            let names = match tensors {
                Some(chosen) => chosen.keep(&label, names, |n| n.as_str())?,
                None => names,
            };
            return Ok(Located {
                mapped: Vec::new(),
                exported: names,
            });
        }
        let mut chosen = state_dict_tensors(m);
        if m.format != reg_format::manifest::VersionFormat::Safetensors {
            self.refuse_composites(m, &label, &chosen)?;
        }
        if let Some(sel) = tensors {
            chosen = sel.keep(&label, chosen, |t| t.name.as_str())?;
        }
        let blobs: HashMap<&str, reg_store::BlobId> = m
            .tensors
            .iter()
            .filter_map(|t| Some((t.storage_key.as_str(), t.blob?)))
            .collect();
        let mut extents: HashMap<reg_store::BlobId, Option<(PathBuf, u64, u64)>> = HashMap::new();
        let mut out = Located::default();
        for t in chosen {
            let size = t.dtype.size() as u64;
            let numel: u64 = t.shape.iter().product();
            let extent = match blobs.get(t.storage_key.as_str()) {
                Some(id) if !t.meta && !t.dtype.is_packed() && numel > 0 && contiguous(&t.shape, &t.stride) => {
                    match extents.get(id) {
                        Some(e) => e.clone(),
                        None => {
                            let e = self.store.raw_extent(*id)?;
                            extents.insert(*id, e.clone());
                            e
                        }
                    }
                }
                _ => None,
            };
            let len = numel.saturating_mul(size);
            let start = t.offset.saturating_mul(size);
            match extent {
                Some((file, body, file_len)) if body + start + len <= file_len => out.mapped.push(MappedTensor {
                    name: t.name,
                    dtype: t.dtype.name(),
                    shape: t.shape,
                    file,
                    file_len,
                    offset: body + start,
                    len,
                }),
                _ => out.exported.push(t.name),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::contiguous;

    #[test]
    fn row_major_strides_are_contiguous_and_others_are_not() {
        assert!(contiguous(&[2, 3], &[3, 1]));
        assert!(contiguous(&[1, 3], &[99, 1]));
        assert!(contiguous(&[], &[]));
        assert!(!contiguous(&[2, 3], &[1, 2]));
        assert!(!contiguous(&[2, 3], &[6, 1]));
        assert!(!contiguous(&[2], &[1, 1]));
    }
}
