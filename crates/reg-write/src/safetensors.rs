//! Writing safetensors files from tensors that view storages.
//!
//! Laid out as the official writer (`safetensors::serialize`) does: tensors
//! in data order sorted by dtype, widest alignment first (the order of the
//! official `Dtype` enum, descending), then by name; the JSON header lists
//! `__metadata__` first (when there is any) and then the tensors in data
//! order, each `{"dtype","shape","data_offsets"}`; the header is padded with
//! spaces to a multiple of 8 bytes. Each tensor's bytes are its view
//! gathered from its storage (row-major, so non-contiguous views are
//! materialised and tensors sharing a storage are written once each, as the
//! format requires). Storages are read one at a time; consecutive tensors
//! on one storage reuse the last one read.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use serde_json::{Map, Value};

use super::WriteError;
use reg_ckpt::dtype::DType;
use reg_ckpt::tensors::TensorInfo;

/// A tensor to export: a named view of a storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportTensor {
    /// The safetensors name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Size per dimension.
    pub shape: Vec<u64>,
    /// Stride per dimension, in elements.
    pub stride: Vec<u64>,
    /// First element's index in the storage.
    pub offset: u64,
    /// The storage it views.
    pub storage_key: String,
    /// A meta tensor (no storage, no data): safetensors cannot hold it, so
    /// the writer refuses it by name.
    pub meta: bool,
}

impl From<&TensorInfo> for ExportTensor {
    /// Named by its path in the object tree.
    fn from(t: &TensorInfo) -> Self {
        ExportTensor {
            name: t.path.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            stride: t.stride.clone(),
            offset: t.storage_offset,
            storage_key: t.storage_key.clone(),
            meta: t.meta,
        }
    }
}

/// Position of a dtype in the official `safetensors::Dtype` enum (which
/// derives its ordering from declaration order).
fn official_rank(dtype: DType) -> u8 {
    match dtype {
        DType::Bool => 0,
        DType::Float4E2m1fnX2 => 1,
        DType::Uint8 => 4,
        DType::Int8 => 5,
        DType::Float8E5m2 => 6,
        DType::Float8E4m3fn => 7,
        DType::Int16 => 9,
        DType::Uint16 => 10,
        DType::Float16 => 11,
        DType::Bfloat16 => 12,
        DType::Int32 => 13,
        DType::Uint32 => 14,
        DType::Float32 => 15,
        DType::Float64 => 16,
        DType::Int64 => 17,
        DType::Uint64 => 18,
        DType::Float8E4m3fnuz | DType::Float8E5m2fnuz => 8,
        DType::Complex64 => 19,
        _ => 0,
    }
}

/// Most bytes gathered before they are handed to the output.
const CHUNK: usize = 1 << 20;

/// Write `tensors` as a safetensors file. `read_storage(key)` returns the
/// bytes of a storage. Fails, naming the tensor, for dtypes safetensors
/// cannot hold (complex other than complex64, quantized, `bits*`), meta
/// tensors (no data) and 0-d float4 ones, duplicate or reserved names, and
/// views that reach past their storage. float4_e2m1fn_x2 is written as
/// `F4`, its last dimension doubled (safetensors counts 4-bit elements).
pub fn write_safetensors<W: Write>(
    out: W,
    tensors: &[ExportTensor],
    metadata: &BTreeMap<String, String>,
    read_storage: &mut dyn FnMut(&str) -> std::io::Result<Vec<u8>>,
) -> Result<W, WriteError> {
    write_safetensors_part(out, tensors, metadata, read_storage, SafetensorsPart::Whole)
}

/// How much of a safetensors file [`write_safetensors_part`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SafetensorsPart {
    /// The whole file.
    Whole,
    /// Only its start: the 8-byte header length and the JSON header (with
    /// the data offsets the whole file has); no storage is read.
    Header,
}

/// [`write_safetensors`], or only its header ([`SafetensorsPart::Header`]).
pub fn write_safetensors_part<W: Write>(
    mut out: W,
    tensors: &[ExportTensor],
    metadata: &BTreeMap<String, String>,
    read_storage: &mut dyn FnMut(&str) -> std::io::Result<Vec<u8>>,
    part: SafetensorsPart,
) -> Result<W, WriteError> {
    let mut names = HashSet::with_capacity(tensors.len());
    let mut sized = Vec::with_capacity(tensors.len());
    for t in tensors {
        if t.name == "__metadata__" {
            return Err(WriteError::BadName {
                name: t.name.clone(),
                reason: "is reserved for the metadata map",
            });
        }
        if !names.insert(t.name.as_str()) {
            return Err(WriteError::BadName {
                name: t.name.clone(),
                reason: "appears more than once",
            });
        }
        if t.meta {
            return Err(bad(
                t,
                "is a meta tensor (shape and dtype only, no data), which safetensors cannot hold".into(),
            ));
        }
        let st_name = t.dtype.safetensors_name().ok_or(WriteError::UnsupportedDtype {
            tensor: t.name.clone(),
            dtype: t.dtype,
            format: "safetensors",
        })?;
        let st_shape = t.dtype.safetensors_shape(&t.shape).ok_or_else(|| {
            bad(
                t,
                format!(
                    "a {}-d {} tensor has no safetensors shape ({st_name} counts 4-bit elements along the last dimension)",
                    t.shape.len(),
                    t.dtype
                ),
            )
        })?;
        if t.shape.len() != t.stride.len() {
            return Err(bad(
                t,
                format!("shape {:?} and stride {:?} differ in length", t.shape, t.stride),
            ));
        }
        let nbytes = t
            .shape
            .iter()
            .try_fold(t.dtype.size() as u64, |acc, d| acc.checked_mul(*d))
            .ok_or_else(|| bad(t, format!("shape {:?} overflows", t.shape)))?;
        sized.push((t, st_name, st_shape, nbytes));
    }
    sized.sort_by(|a, b| {
        official_rank(b.0.dtype)
            .cmp(&official_rank(a.0.dtype))
            .then_with(|| a.0.name.cmp(&b.0.name))
    });

    let mut header = Map::new();
    if !metadata.is_empty() {
        let m: Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        header.insert("__metadata__".into(), Value::Object(m));
    }
    let mut at = 0u64;
    for (t, st_name, st_shape, nbytes) in &sized {
        let end = at
            .checked_add(*nbytes)
            .ok_or_else(|| bad(t, "data offsets overflow".into()))?;
        let mut info = Map::new();
        info.insert("dtype".into(), Value::from(*st_name));
        info.insert("shape".into(), Value::from(st_shape.clone()));
        info.insert("data_offsets".into(), Value::from(vec![at, end]));
        header.insert(t.name.clone(), Value::Object(info));
        at = end;
    }
    let mut json = Value::Object(header).to_string().into_bytes();
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let io = |e| WriteError::io("writing safetensors header", e);
    out.write_all(&(json.len() as u64).to_le_bytes()).map_err(io)?;
    out.write_all(&json).map_err(io)?;
    if part == SafetensorsPart::Header {
        out.flush()
            .map_err(|e| WriteError::io("flushing the safetensors output", e))?;
        return Ok(out);
    }

    let mut current: Option<(&str, Vec<u8>)> = None;
    for (t, _, _, nbytes) in &sized {
        if *nbytes == 0 {
            continue;
        }
        if current.as_ref().is_none_or(|(k, _)| *k != t.storage_key) {
            let bytes = read_storage(&t.storage_key)
                .map_err(|e| WriteError::io(format!("reading storage {} for tensor {}", t.storage_key, t.name), e))?;
            current = Some((&t.storage_key, bytes));
        }
        let storage = current.as_ref().map(|(_, b)| b.as_slice()).unwrap_or(&[]);
        gather(t, storage, &mut out)?;
    }
    out.flush()
        .map_err(|e| WriteError::io("flushing the safetensors output", e))?;
    Ok(out)
}

fn bad(t: &ExportTensor, reason: String) -> WriteError {
    WriteError::BadTensor {
        tensor: t.name.clone(),
        reason,
    }
}

/// Write a non-empty tensor's elements in row-major order.
fn gather<W: Write>(t: &ExportTensor, storage: &[u8], out: &mut W) -> Result<(), WriteError> {
    let size = t.dtype.size() as u64;
    // Dimensions of size 1 never move the index; drop them.
    let dims: Vec<(u64, u64)> = t
        .shape
        .iter()
        .zip(&t.stride)
        .filter(|(n, _)| **n != 1)
        .map(|(n, s)| (*n, *s))
        .collect();
    let last = dims
        .iter()
        .try_fold(t.offset, |acc, (n, s)| acc.checked_add((n - 1).checked_mul(*s)?))
        .and_then(|l| l.checked_add(1))
        .and_then(|e| e.checked_mul(size));
    if last.is_none_or(|end| end > storage.len() as u64) {
        return Err(bad(
            t,
            format!(
                "view (offset {}, shape {:?}, stride {:?}) reaches past the {} bytes of storage {}",
                t.offset,
                t.shape,
                t.stride,
                storage.len(),
                t.storage_key
            ),
        ));
    }
    // The innermost dimensions that are laid out row-major form one run.
    let mut run = 1u64;
    let mut outer = dims.len();
    while outer > 0 && dims[outer - 1].1 == run {
        run *= dims[outer - 1].0;
        outer -= 1;
    }
    let outer = &dims[..outer];
    // In bounds (checked above), so these fit in usize.
    let run_bytes = (run * size) as usize;
    let mut index = vec![0u64; outer.len()];
    let mut buf = Vec::with_capacity(run_bytes.min(CHUNK));
    let io = |e| WriteError::io(format!("writing safetensors tensor {}", t.name), e);
    loop {
        let base = t.offset + index.iter().zip(outer).map(|(i, (_, s))| i * s).sum::<u64>();
        let start = (base * size) as usize;
        buf.extend_from_slice(&storage[start..start + run_bytes]);
        if buf.len() >= CHUNK {
            out.write_all(&buf).map_err(io)?;
            buf.clear();
        }
        // Odometer over the outer dimensions, last fastest.
        let mut d = outer.len();
        loop {
            if d == 0 {
                out.write_all(&buf).map_err(io)?;
                return Ok(());
            }
            d -= 1;
            index[d] += 1;
            if index[d] < outer[d].0 {
                break;
            }
            index[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, dtype: DType, shape: &[u64], stride: &[u64], offset: u64, key: &str) -> ExportTensor {
        ExportTensor {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
            offset,
            storage_key: key.into(),
            meta: false,
        }
    }

    #[test]
    fn views_are_gathered_row_major() {
        let storage: Vec<u8> = (0..24).collect();
        let tensors = [
            t("transposed", DType::Uint8, &[4, 6], &[1, 4], 0, "s"),
            t("row", DType::Uint8, &[6], &[4], 1, "s"),
            t("scalar", DType::Uint8, &[], &[], 5, "s"),
            t("empty", DType::Uint8, &[0, 3], &[3, 1], 0, "s"),
            t("pairs", DType::Int16, &[2, 2], &[6, 1], 1, "s"),
        ];
        let mut reads = 0;
        let f = write_safetensors(Vec::new(), &tensors, &BTreeMap::new(), &mut |_| {
            reads += 1;
            Ok(storage.clone())
        })
        .unwrap();
        assert_eq!(reads, 1, "consecutive tensors on one storage share a read");
        assert_eq!(u64::from_le_bytes(f[..8].try_into().unwrap()) % 8, 0);
        let st = reg_ckpt::safetensors::read(&f).unwrap();
        let get = |n: &str| {
            let x = st.tensors.iter().find(|x| x.name == n).unwrap();
            f[x.data.start as usize..x.data.end as usize].to_vec()
        };
        let transposed: Vec<u8> = (0..4).flat_map(|i| (0..6).map(move |j| (i + 4 * j) as u8)).collect();
        assert_eq!(get("transposed"), transposed);
        assert_eq!(get("row"), vec![1, 5, 9, 13, 17, 21]);
        assert_eq!(get("scalar"), vec![5]);
        assert_eq!(get("empty"), Vec::<u8>::new());
        assert_eq!(get("pairs"), vec![2, 3, 4, 5, 14, 15, 16, 17]);
        assert_eq!(st.tensors[0].name, "pairs");
    }

    #[test]
    fn refusals_name_the_tensor() {
        let mut read = |_: &str| Ok(vec![0u8; 8]);
        let none = BTreeMap::new();
        let c = [t("z", DType::Complex128, &[1], &[1], 0, "s")];
        let e = write_safetensors(Vec::new(), &c, &none, &mut read).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tensor z: dtype complex128 cannot be written to safetensors"
        );
        let dup = [
            t("a", DType::Uint8, &[1], &[1], 0, "s"),
            t("a", DType::Uint8, &[1], &[1], 0, "s"),
        ];
        assert!(write_safetensors(Vec::new(), &dup, &none, &mut read).is_err());
        let past = [t("p", DType::Float32, &[3], &[1], 0, "s")];
        let e = write_safetensors(Vec::new(), &past, &none, &mut read).unwrap_err();
        assert!(e.to_string().contains("tensor p: view"), "{e}");
    }
}
