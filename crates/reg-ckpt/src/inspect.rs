//! One entry point: read a checkpoint file and say what is in it.

use crate::meta::{self, CheckpointMeta, Readers};
use crate::safety::{self, GlobalVerdict};
use crate::segment::{Format, Segment};
use crate::tensors::{self, Role, TensorInfo};
use crate::{legacy, safetensors, torchzip, DType};
use reg_pickle::{NodeId, PickleGraph};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ops::Range;

/// Everything `reg` learns from a checkpoint file.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The container format.
    pub format: Format,
    /// The file cut into skeleton and payload segments, in file order,
    /// covering every byte exactly once.
    pub segments: Vec<Segment>,
    /// Every tensor, in object-tree order.
    pub tensors: Vec<TensorInfo>,
    /// Training metadata.
    pub meta: CheckpointMeta,
    /// Every global the pickle names, with its verdict (empty for
    /// safetensors).
    pub globals: Vec<GlobalVerdict>,
    /// Payload CRC-32s [`inspect_deferred`] left for the caller to check
    /// while it reads the payloads: `(payload range, expected crc)`.
    pub deferred_crcs: Vec<(Range<u64>, u32)>,
    /// Where the object pickle lies in the file (zip `data.pkl`, the legacy
    /// object pickle); `None` for safetensors. Always inside skeleton bytes.
    pub pickle: Option<Range<u64>>,
}

/// Returned by [`inspect`].
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The bytes are none of the formats `reg` reads.
    #[error("not a checkpoint: {0}; reg reads torch zip (.pt/.pth/.ckpt/.bin), torch legacy and safetensors files")]
    UnknownFormat(&'static str),
    /// A torch zip container problem.
    #[error(transparent)]
    Zip(#[from] torchzip::TorchZipError),
    /// A safetensors problem.
    #[error(transparent)]
    Safetensors(#[from] safetensors::SafetensorsError),
    /// A legacy torch file problem.
    #[error(transparent)]
    Legacy(#[from] legacy::LegacyError),
    /// data.pkl could not be read.
    #[error("data.pkl: {0}")]
    Pickle(#[from] reg_pickle::PickleError),
    /// A tensor record is malformed.
    #[error(transparent)]
    Tensor(#[from] tensors::TensorError),
    /// The pickle names a storage the file does not contain.
    #[error("storage {0} is referenced by the pickle but missing from the file")]
    MissingStorage(String),
    /// A storage record's size disagrees with what the pickle declares.
    #[error("storage {key}: file holds {actual} bytes, pickle declares {expected}")]
    StorageSize {
        /// Storage key.
        key: String,
        /// Bytes the pickle declares (numel x element size).
        expected: u64,
        /// Bytes in the file.
        actual: u64,
    },
    /// A tensor views bytes outside its storage.
    #[error("tensor {path} reaches outside its storage {key}")]
    OutOfBounds {
        /// Tensor path.
        path: String,
        /// Storage key.
        key: String,
    },
}

/// Detect the format from the content and read the file, checking every
/// checksum the format carries.
pub fn inspect(file: &[u8]) -> Result<Checkpoint, InspectError> {
    inspect_with(file, true)
}

/// Like [`inspect`], but tensor payload checksums (zip CRC-32) are not
/// computed: they are returned in [`Checkpoint::deferred_crcs`] for a caller
/// that streams the payloads anyway. Only headers, directories and pickles
/// are read, so a memory-mapped file is barely touched.
pub fn inspect_deferred(file: &[u8]) -> Result<Checkpoint, InspectError> {
    inspect_with(file, false)
}

fn inspect_with(file: &[u8], check_payloads: bool) -> Result<Checkpoint, InspectError> {
    if file.is_empty() {
        return Err(InspectError::UnknownFormat("the file is empty"));
    }
    if torchzip::is_zip(file) {
        return inspect_zip(file, check_payloads);
    }
    if safetensors::looks_like(file) {
        return inspect_safetensors(file);
    }
    if legacy::looks_like(file) {
        return inspect_legacy(file);
    }
    Err(InspectError::UnknownFormat("unrecognised content"))
}

fn inspect_zip(file: &[u8], check_payloads: bool) -> Result<Checkpoint, InspectError> {
    let zip = torchzip::read_with(file, check_payloads)?;
    let deferred_crcs = if check_payloads {
        Vec::new()
    } else {
        let storage_prefix = format!("{}data/", zip.prefix);
        zip.entries
            .iter()
            // CRC 0: torch wrote none (`compute_crc32` off).
            .filter(|e| e.name.starts_with(&storage_prefix) && e.crc32 != 0)
            .map(|e| (e.data.clone(), e.crc32))
            .collect()
    };
    let graph = reg_pickle::parse(slice(file, &zip.pickle), &reg_pickle::Limits::default())?;
    let records: BTreeMap<String, Range<u64>> = zip.storages.iter().cloned().collect();
    let (tensors, meta, globals) = understand(&graph, &records, file)?;
    Ok(Checkpoint {
        format: Format::TorchZip,
        segments: zip.segments(file.len() as u64),
        tensors,
        meta,
        globals,
        pickle: Some(zip.pickle.clone()),
        deferred_crcs,
    })
}

fn inspect_legacy(file: &[u8]) -> Result<Checkpoint, InspectError> {
    let legacy = legacy::read(file)?;
    let records: BTreeMap<String, Range<u64>> = legacy
        .storages
        .iter()
        .map(|s| (s.key.clone(), s.data.clone()))
        .collect();
    let (tensors, meta, globals) = understand(&legacy.object, &records, file)?;
    Ok(Checkpoint {
        format: Format::TorchLegacy,
        segments: legacy.segments(file.len() as u64),
        tensors,
        meta,
        globals,
        pickle: Some(legacy.object_pickle.clone()),
        deferred_crcs: Vec::new(),
    })
}

fn inspect_safetensors(file: &[u8]) -> Result<Checkpoint, InspectError> {
    let st = safetensors::read(file)?;
    let tensors = st
        .tensors
        .iter()
        .map(|t| TensorInfo {
            path: t.name.clone(),
            dtype: t.dtype,
            stride: tensors::contiguous_stride(&t.shape),
            shape: t.shape.clone(),
            storage_offset: 0,
            storage_key: t.name.clone(),
            requires_grad: false,
            parameter: false,
            role: Role::Weight,
            meta: false,
        })
        .collect();
    let metadata = st
        .metadata
        .as_ref()
        .map(|m| Value::Object(m.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()));
    let meta = CheckpointMeta {
        safetensors_metadata: metadata,
        ..CheckpointMeta::default()
    };
    Ok(Checkpoint {
        format: Format::Safetensors,
        segments: st.segments(file.len() as u64),
        tensors,
        meta,
        globals: Vec::new(),
        pickle: None,
        deferred_crcs: Vec::new(),
    })
}

fn slice<'f>(file: &'f [u8], range: &Range<u64>) -> &'f [u8] {
    let start = usize::try_from(range.start).unwrap_or(usize::MAX);
    let end = usize::try_from(range.end).unwrap_or(usize::MAX);
    file.get(start..end).unwrap_or(&[])
}

type Understood = (Vec<TensorInfo>, CheckpointMeta, Vec<GlobalVerdict>);

/// Tensors, metadata and global verdicts of a torch pickle whose storages
/// are the given byte ranges of `file`.
fn understand(
    graph: &PickleGraph,
    records: &BTreeMap<String, Range<u64>>,
    file: &[u8],
) -> Result<Understood, InspectError> {
    let globals = safety::judge(graph.globals());
    let storages = tensors::storages(graph)?;
    for (key, s) in &storages {
        let range = records
            .get(key)
            .ok_or_else(|| InspectError::MissingStorage(key.clone()))?;
        let expected = s.numel.saturating_mul(s.dtype.size() as u64);
        let actual = range.end - range.start;
        if expected != actual {
            return Err(InspectError::StorageSize {
                key: key.clone(),
                expected,
                actual,
            });
        }
    }
    let tensors = tensors::find_tensors(graph)?;
    // Meta tensors have no storage to stay inside.
    for t in tensors.iter().filter(|t| !t.dtype.is_packed() && !t.meta) {
        let storage_bytes = records.get(&t.storage_key).map(|r| r.end - r.start).unwrap_or(0);
        let extent_bytes = t.storage_extent().and_then(|e| e.checked_mul(t.dtype.size() as u64));
        if extent_bytes.is_none_or(|e| e > storage_bytes) {
            return Err(InspectError::OutOfBounds {
                path: t.path.clone(),
                key: t.storage_key.clone(),
            });
        }
    }
    let describe = |id: NodeId| describe_tensor(graph, id, records, file);
    let scalar = |id: NodeId| -> Option<f64> {
        let t = tensors::tensor_at(graph, id, "").ok().flatten()?;
        read_scalar(&t, records, file)
    };
    let meta = meta::extract(
        graph,
        &Readers {
            describe_tensor: &describe,
            scalar: &scalar,
        },
    );
    Ok((tensors, meta, globals))
}

/// How a tensor node reads in JSON: its value when it has one element, else
/// `<tensor DTYPE [SHAPE]>`; `None` for a node that is not a tensor.
pub fn describe_tensor(
    graph: &PickleGraph,
    id: NodeId,
    records: &BTreeMap<String, Range<u64>>,
    file: &[u8],
) -> Option<Value> {
    let t = tensors::tensor_at(graph, id, "").ok().flatten()?;
    if t.numel() == 1 {
        if let Some(v) = read_scalar(&t, records, file) {
            return Some(crate::exact_json::float(v));
        }
    }
    let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
    Some(Value::String(format!("<tensor {} [{}]>", t.dtype, shape.join(", "))))
}

/// The value of a one-element tensor, read from its storage bytes.
fn read_scalar(t: &TensorInfo, records: &BTreeMap<String, Range<u64>>, file: &[u8]) -> Option<f64> {
    if t.numel() != 1 {
        return None;
    }
    let range = records.get(&t.storage_key)?;
    let size = t.dtype.size() as u64;
    let start = range.start.checked_add(t.storage_offset.checked_mul(size)?)?;
    let bytes = slice(file, &(start..start.checked_add(size)?));
    decode_scalar(t.dtype, bytes)
}

/// Decode one little-endian element as f64 (float, int and bool dtypes).
pub fn decode_scalar(dtype: DType, b: &[u8]) -> Option<f64> {
    let arr = |n: usize| -> Option<[u8; 8]> {
        let mut out = [0u8; 8];
        out.get_mut(..n)?.copy_from_slice(b.get(..n)?);
        Some(out)
    };
    Some(match dtype {
        DType::Float64 => f64::from_le_bytes(arr(8)?),
        DType::Float32 => {
            let a = arr(4)?;
            f64::from(f32::from_le_bytes([a[0], a[1], a[2], a[3]]))
        }
        DType::Float16 => {
            let a = arr(2)?;
            crate::float::f16_to_f64(u16::from_le_bytes([a[0], a[1]]))
        }
        DType::Bfloat16 => {
            let a = arr(2)?;
            crate::float::bf16_to_f64(u16::from_le_bytes([a[0], a[1]]))
        }
        DType::Int64 => i64::from_le_bytes(arr(8)?) as f64,
        DType::Int32 => {
            let a = arr(4)?;
            f64::from(i32::from_le_bytes([a[0], a[1], a[2], a[3]]))
        }
        DType::Int16 => {
            let a = arr(2)?;
            f64::from(i16::from_le_bytes([a[0], a[1]]))
        }
        DType::Int8 => f64::from(*b.first()? as i8),
        DType::Uint8 | DType::Bool => f64::from(*b.first()?),
        _ => return None,
    })
}
