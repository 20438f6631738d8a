//! Cutting DCP data files (`__R_N.distcp`) into the items `.metadata`
//! locates.
//!
//! A data file has no header: it is the items one after another at the
//! offsets `.metadata` gives. A tensor item is a complete `torch.save` zip of
//! one chunk (its own `archive/` records, 64-byte alignment counted from the
//! item's start), so it is read with the torch zip reader on its own bytes.
//! DCP saves the chunk tensor as it is when its storage holds exactly its
//! bytes, else a clone with minimal storage (preserving its memory format):
//! either way the chunk is the item's one tensor, with its storage offset
//! and strides. A bytes item (`BytesStorageMetadata`: optimizer param
//! groups, counters, any non-tensor state) is a `torch.save` of that object;
//! its value is read for the metadata and its storages, if any, are payload
//! too. Payload keys are `<item offset>/<storage key>`, unique in the file.
//!
//! A data file saved with `SerializationFormat.SAFETENSORS` is instead one
//! safetensors file holding each chunk under its fqn (`.metadata` gives all
//! its items the same offset); it is cut as safetensors.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::dcp_metadata::{DcpMetadata, StorageItem};
use super::files::{payload_ranges, slice, TorchObject};
use super::{paths, Chunk, FileCheckpoint, FileFormat, TreeError};
use reg_ckpt::segment::cover;
use reg_ckpt::tensors::TensorInfo;
use reg_ckpt::{decode_scalar, inspect_deferred, safetensors, torchzip, Checkpoint};

/// One file of the tree: its path and bytes.
pub(super) type Source<'a> = (&'a str, &'a [u8]);

/// What the data files of one DCP say.
#[derive(Default)]
pub(super) struct DcpData {
    /// The data files read, by tree index.
    pub files: Vec<(usize, FileCheckpoint)>,
    /// Chunks of each tensor fqn.
    pub chunks: BTreeMap<String, Vec<Chunk>>,
    /// The value of each bytes item, by fqn.
    pub values: BTreeMap<String, Value>,
    /// The value of each one-element tensor, by fqn.
    pub scalars: BTreeMap<String, f64>,
    /// Tensors pickled inside bytes items: `(fqn, file index, tensor)`.
    pub inner_tensors: Vec<(String, usize, TensorInfo)>,
    /// Tensors whose items could not be read as chunks (rewritten by a
    /// storage extension), with why.
    pub unreadable: BTreeMap<String, String>,
}

/// Cut the data files of the DCP whose `.metadata` is `metadata_path`.
/// `index` maps tree paths to positions in `sources`.
pub(super) fn read(
    metadata_path: &str,
    md: &DcpMetadata,
    index: &HashMap<&str, usize>,
    sources: &[Source<'_>],
) -> Result<DcpData, TreeError> {
    let dir = paths::parent(metadata_path);
    // Items grouped by the data file holding them.
    let mut by_file: BTreeMap<usize, Vec<&StorageItem>> = BTreeMap::new();
    for item in &md.items {
        let path = paths::join(dir, &item.relative_path).ok_or_else(|| TreeError::DcpEscapes {
            metadata: metadata_path.to_owned(),
            file: item.relative_path.clone(),
        })?;
        let &at = index.get(path.as_str()).ok_or_else(|| TreeError::DcpMissingFile {
            metadata: metadata_path.to_owned(),
            file: path.clone(),
            fqn: item.fqn.clone(),
        })?;
        let file_len = sources[at].1.len() as u64;
        if item.offset.checked_add(item.length).is_none_or(|end| end > file_len) {
            return Err(TreeError::DcpPastEnd {
                metadata: metadata_path.to_owned(),
                file: path,
                fqn: item.fqn.clone(),
                offset: item.offset,
                length: item.length,
                file_len,
            });
        }
        by_file.entry(at).or_default().push(item);
    }
    let mut out = DcpData::default();
    for (at, mut items) in by_file {
        items.sort_by_key(|i| (i.offset, i.length));
        let (path, bytes) = sources[at];
        if safetensors::looks_like(bytes) && items.iter().all(|i| i.chunk_offsets.is_some()) {
            // Saved with `SerializationFormat.SAFETENSORS`: the file is one
            // safetensors file of the chunks, keyed by fqn.
            let file = cut_safetensors(md, at, path, bytes, &items, &mut out)?;
            out.files.push((at, file));
            continue;
        }
        for pair in items.windows(2) {
            if let [a, b] = pair {
                if b.offset < a.offset + a.length {
                    return Err(TreeError::DcpItemsOverlap {
                        file: path.to_owned(),
                        first: a.fqn.clone(),
                        second: b.fqn.clone(),
                    });
                }
            }
        }
        let file = cut(md, at, path, bytes, &items, &mut out)?;
        out.files.push((at, file));
    }
    Ok(out)
}

/// Read every item of one data file into `out`; return the file's cut.
fn cut(
    md: &DcpMetadata,
    at: usize,
    path: &str,
    bytes: &[u8],
    items: &[&StorageItem],
    out: &mut DcpData,
) -> Result<FileCheckpoint, TreeError> {
    let mut payloads = Vec::new();
    let mut file = FileCheckpoint::whole(path, bytes.len() as u64);
    file.format = FileFormat::DcpData;
    for item in items {
        if !item.transforms.is_empty() {
            // Compressed or otherwise rewritten: kept as skeleton bytes.
            let why = format!("its item is rewritten by {}", item.transforms.join(", "));
            out.unreadable.insert(item.fqn.clone(), why);
            continue;
        }
        let range = item.offset..item.offset + item.length;
        let item_bytes = slice(bytes, &range);
        let item_err = |reason: String| TreeError::DcpItem {
            file: path.to_owned(),
            fqn: item.fqn.clone(),
            offset: item.offset,
            reason,
        };
        if !torchzip::is_zip(item_bytes) {
            return Err(item_err(format!(
                "is not a torch.save zip (its {} bytes do not start with a zip record)",
                item_bytes.len()
            )));
        }
        let ckpt = inspect_deferred(item_bytes).map_err(|e| item_err(e.to_string()))?;
        let key_of = |key: &str| format!("{}/{key}", item.offset);
        for (key, r) in payload_ranges(&ckpt.segments) {
            payloads.push((r.start + item.offset..r.end + item.offset, key_of(&key)));
        }
        file.deferred_crcs.extend(
            ckpt.deferred_crcs
                .iter()
                .map(|(r, crc)| (r.start + item.offset..r.end + item.offset, *crc)),
        );
        for g in &ckpt.globals {
            if !file.globals.contains(g) {
                file.globals.push(g.clone());
            }
        }
        match &item.chunk_offsets {
            Some(offsets) => {
                let (chunk, t) = tensor_item(md, at, item, offsets, &ckpt).map_err(item_err)?;
                if t.numel() == 1 {
                    if let Some(v) = scalar(&ckpt, t, item_bytes) {
                        out.scalars.insert(item.fqn.clone(), v);
                    }
                }
                file.tensors.push(TensorInfo {
                    path: item.fqn.clone(),
                    storage_key: key_of(&t.storage_key),
                    ..t.clone()
                });
                out.chunks.entry(item.fqn.clone()).or_default().push(chunk);
            }
            None => {
                if !md.bytes.contains(&item.fqn) {
                    return Err(item_err("a bytes item .metadata does not declare".into()));
                }
                let object = TorchObject::open(item_bytes, &ckpt).map_err(|e| item_err(e.to_string()))?;
                if let Some(root) = object.as_ref().and_then(|o| o.root().map(|r| (o, r))) {
                    out.values.insert(item.fqn.clone(), root.0.json(root.1));
                }
                for t in &ckpt.tensors {
                    let inner = TensorInfo {
                        path: format!("{}/{}", item.fqn, t.path),
                        storage_key: if t.meta { String::new() } else { key_of(&t.storage_key) },
                        ..t.clone()
                    };
                    out.inner_tensors.push((item.fqn.clone(), at, inner.clone()));
                    file.tensors.push(inner);
                }
            }
        }
    }
    file.segments = cover(bytes.len() as u64, payloads);
    Ok(file)
}

/// Read a data file DCP wrote as safetensors (one tensor per fqn, the
/// chunk it saved; `.metadata` gives every item the file's data start and
/// the tensor's byte length).
fn cut_safetensors(
    md: &DcpMetadata,
    at: usize,
    path: &str,
    bytes: &[u8],
    items: &[&StorageItem],
    out: &mut DcpData,
) -> Result<FileCheckpoint, TreeError> {
    let st = safetensors::read(bytes).map_err(|source| TreeError::File {
        path: path.to_owned(),
        source: source.into(),
    })?;
    let mut file = FileCheckpoint::whole(path, bytes.len() as u64);
    file.format = FileFormat::DcpData;
    file.segments = st.segments(bytes.len() as u64);
    for item in items {
        let item_err = |reason: String| TreeError::DcpItem {
            file: path.to_owned(),
            fqn: item.fqn.clone(),
            offset: item.offset,
            reason,
        };
        let entry = md
            .tensors
            .get(&item.fqn)
            .ok_or_else(|| item_err("a tensor item .metadata does not declare as a tensor".into()))?;
        let offsets = item.chunk_offsets.clone().unwrap_or_default();
        let (_, sizes) = entry
            .chunks
            .iter()
            .find(|(o, _)| *o == offsets)
            .ok_or_else(|| item_err(format!("no chunk at {offsets:?} in .metadata")))?;
        let t = st
            .tensors
            .iter()
            .find(|t| t.name == item.fqn)
            .ok_or_else(|| item_err("the safetensors file holds no tensor of that name".into()))?;
        if t.dtype != entry.dtype || &t.shape != sizes {
            return Err(item_err(format!(
                "holds {} {:?}, .metadata says {} {sizes:?}",
                t.dtype, t.shape, entry.dtype
            )));
        }
        let stride = reg_ckpt::tensors::contiguous_stride(&t.shape);
        file.tensors.push(TensorInfo {
            path: item.fqn.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            stride: stride.clone(),
            storage_offset: 0,
            storage_key: t.name.clone(),
            requires_grad: false,
            parameter: false,
            role: reg_ckpt::tensors::Role::Other,
            meta: false,
        });
        out.chunks.entry(item.fqn.clone()).or_default().push(Chunk {
            file: at,
            offsets,
            sizes: sizes.clone(),
            storage_key: t.name.clone(),
            storage_offset: 0,
            stride,
        });
    }
    Ok(file)
}

/// The chunk a tensor item holds, checked against `.metadata`, and the
/// item's tensor.
fn tensor_item<'c>(
    md: &DcpMetadata,
    at: usize,
    item: &StorageItem,
    offsets: &[u64],
    ckpt: &'c Checkpoint,
) -> Result<(Chunk, &'c TensorInfo), String> {
    let entry = md
        .tensors
        .get(&item.fqn)
        .ok_or("a tensor item .metadata does not declare as a tensor")?;
    let (_, sizes) = entry
        .chunks
        .iter()
        .find(|(o, _)| o.as_slice() == offsets)
        .ok_or_else(|| format!("no chunk at {offsets:?} in .metadata"))?;
    let [t] = ckpt.tensors.as_slice() else {
        return Err(format!("holds {} tensors, a chunk item holds one", ckpt.tensors.len()));
    };
    if !t.path.is_empty() {
        return Err(format!("holds a tensor at {:?}, not a bare tensor", t.path));
    }
    if t.dtype != entry.dtype {
        return Err(format!("holds {} elements, .metadata says {}", t.dtype, entry.dtype));
    }
    if &t.shape != sizes {
        return Err(format!(
            "holds a tensor of shape {:?}, .metadata says {sizes:?}",
            t.shape
        ));
    }
    let chunk = Chunk {
        file: at,
        offsets: offsets.to_vec(),
        sizes: sizes.clone(),
        storage_key: format!("{}/{}", item.offset, t.storage_key),
        storage_offset: t.storage_offset,
        stride: t.stride.clone(),
    };
    Ok((chunk, t))
}

/// The value of a one-element tensor of an item.
fn scalar(ckpt: &Checkpoint, t: &TensorInfo, item_bytes: &[u8]) -> Option<f64> {
    let range = payload_ranges(&ckpt.segments).remove(&t.storage_key)?;
    let size = t.dtype.size() as u64;
    let start = range.start.checked_add(t.storage_offset.checked_mul(size)?)?;
    decode_scalar(t.dtype, slice(item_bytes, &(start..start.checked_add(size)?)))
}
