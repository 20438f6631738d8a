//! Numbers for a changed tensor: how far apart two versions of it are.
//!
//! Elements are read from the stored blobs in a stream (contiguous views),
//! or gathered from one storage in memory (strided views), in row-major
//! order, and compared pair by pair.

use reg_ckpt::DType;
use reg_format::manifest::TensorEntry;
use reg_store::{BlobId, BlobStore, StoreError};
use serde::Serialize;
use std::io::{self, Read};

/// How two same-shape, same-dtype tensors differ.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TensorStats {
    /// Largest `|b - a|` over elements where both are finite.
    pub max_abs_diff: f64,
    /// `||b - a|| / ||a||` (L2 over finite pairs); null when `||a|| = 0`
    /// and the tensors differ.
    pub rel_l2: Option<f64>,
    /// Fraction of elements whose stored bytes differ.
    pub changed_fraction: f64,
}

/// Dtypes `--stats` covers: floats and integers (bool counts as 0/1).
pub fn supported(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::Float64
            | DType::Float32
            | DType::Float16
            | DType::Bfloat16
            | DType::Int64
            | DType::Int32
            | DType::Int16
            | DType::Int8
            | DType::Uint8
            | DType::Bool
    )
}

/// Elements of one tensor, in row-major order, as raw little-endian bytes.
enum Elements {
    /// A contiguous view: read straight from the blob.
    Stream { reader: Box<dyn Read>, left: u64 },
    /// A strided view: the whole storage in memory, gathered by index.
    Gather { storage: Vec<u8>, index: ViewIndex },
}

/// Walks the storage element indices of a strided view in row-major order.
struct ViewIndex {
    shape: Vec<u64>,
    stride: Vec<u64>,
    counter: Vec<u64>,
    offset: u64,
    left: u64,
}

impl Iterator for ViewIndex {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let at = self.offset + self.counter.iter().zip(&self.stride).map(|(c, s)| c * s).sum::<u64>();
        for d in (0..self.shape.len()).rev() {
            self.counter[d] += 1;
            if self.counter[d] < self.shape[d] {
                break;
            }
            self.counter[d] = 0;
        }
        Some(at)
    }
}

const CHUNK_ELEMS: usize = 1 << 16;

impl Elements {
    fn open(store: &BlobStore, t: &TensorEntry, blob: BlobId) -> Result<Elements, StoreError> {
        let size = t.dtype.size() as u64;
        let numel: u64 = t.shape.iter().product();
        if is_contiguous(t) {
            let mut reader = store.reader(blob)?;
            let skip = t.storage_offset * size;
            io::copy(&mut (&mut reader).take(skip), &mut io::sink()).map_err(|e| io_corrupt(blob, e))?;
            // Drain the rest later so the hash is still checked.
            return Ok(Elements::Stream {
                reader: Box::new(reader),
                left: numel * size,
            });
        }
        let storage = store.read(blob)?;
        Ok(Elements::Gather {
            storage,
            index: ViewIndex {
                shape: t.shape.clone(),
                stride: t.stride.clone(),
                counter: vec![0; t.shape.len()],
                offset: t.storage_offset,
                left: numel,
            },
        })
    }

    /// Fill `out` with up to CHUNK_ELEMS elements' bytes; returns false at the end.
    fn next_chunk(&mut self, size: usize, out: &mut Vec<u8>) -> io::Result<bool> {
        out.clear();
        match self {
            Elements::Stream { reader, left } => {
                let want = (*left).min((CHUNK_ELEMS * size) as u64);
                if want == 0 {
                    // Read to the end so the blob's hash is verified.
                    io::copy(reader, &mut io::sink())?;
                    return Ok(false);
                }
                out.resize(want as usize, 0);
                reader.read_exact(out)?;
                *left -= want;
                Ok(true)
            }
            Elements::Gather { storage, index } => {
                for at in index.by_ref().take(CHUNK_ELEMS) {
                    let start = (at as usize).saturating_mul(size);
                    let bytes = storage
                        .get(start..start + size)
                        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "view outside its storage"))?;
                    out.extend_from_slice(bytes);
                }
                Ok(!out.is_empty())
            }
        }
    }
}

fn io_corrupt(blob: BlobId, e: io::Error) -> StoreError {
    StoreError::Corrupt {
        id: blob,
        reason: e.to_string(),
    }
}

fn is_contiguous(t: &TensorEntry) -> bool {
    reg_ckpt::tensors::is_contiguous(&t.shape, &t.stride)
}

/// Running totals of an element-by-element comparison, so that a tensor
/// compared in parts (a sharded tensor chunk by chunk) gives the same
/// numbers as one compared whole.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sums {
    max_abs: f64,
    diff_sq: f64,
    a_sq: f64,
    changed: u64,
    total: u64,
}

impl Sums {
    /// Compare two runs of elements' bytes of `dtype` (same length).
    pub fn add_bytes(&mut self, dtype: DType, a: &[u8], b: &[u8]) {
        let size = dtype.size();
        for (xa, xb) in a.chunks_exact(size).zip(b.chunks_exact(size)) {
            self.total += 1;
            if xa == xb {
                if let Some(v) = reg_ckpt::decode_scalar(dtype, xa).filter(|v| v.is_finite()) {
                    self.a_sq += v * v;
                }
                continue;
            }
            self.changed += 1;
            let (Some(va), Some(vb)) = (reg_ckpt::decode_scalar(dtype, xa), reg_ckpt::decode_scalar(dtype, xb)) else {
                continue;
            };
            if va.is_finite() && vb.is_finite() {
                let d = vb - va;
                self.max_abs = self.max_abs.max(d.abs());
                self.diff_sq += d * d;
                self.a_sq += va * va;
            }
        }
    }

    /// Add another part's totals.
    pub fn merge(&mut self, other: Sums) {
        self.max_abs = self.max_abs.max(other.max_abs);
        self.diff_sq += other.diff_sq;
        self.a_sq += other.a_sq;
        self.changed += other.changed;
        self.total += other.total;
    }

    /// The numbers.
    pub fn finish(&self) -> TensorStats {
        let rel_l2 = if self.a_sq > 0.0 {
            Some(self.diff_sq.sqrt() / self.a_sq.sqrt())
        } else if self.diff_sq == 0.0 {
            Some(0.0)
        } else {
            None
        };
        TensorStats {
            max_abs_diff: self.max_abs,
            rel_l2,
            changed_fraction: if self.total == 0 {
                0.0
            } else {
                self.changed as f64 / self.total as f64
            },
        }
    }
}

/// Compare two tensors of the same dtype and shape element by element.
/// Returns `None` for dtypes [`supported`] does not cover and for tensors
/// without a storage (meta tensors).
pub fn compare(store: &BlobStore, a: &TensorEntry, b: &TensorEntry) -> Result<Option<TensorStats>, StoreError> {
    Ok(compare_sums(store, a, b)?.map(|s| s.finish()))
}

/// [`compare`], as running totals.
pub fn compare_sums(store: &BlobStore, a: &TensorEntry, b: &TensorEntry) -> Result<Option<Sums>, StoreError> {
    if a.dtype != b.dtype || a.shape != b.shape || !supported(a.dtype) {
        return Ok(None);
    }
    let (Some(blob_a), Some(blob_b)) = (a.blob, b.blob) else {
        return Ok(None);
    };
    let size = a.dtype.size();
    let mut ea = Elements::open(store, a, blob_a)?;
    let mut eb = Elements::open(store, b, blob_b)?;
    let (mut ca, mut cb) = (Vec::new(), Vec::new());
    let mut sums = Sums::default();
    loop {
        let more_a = ea.next_chunk(size, &mut ca).map_err(|e| io_corrupt(blob_a, e))?;
        let more_b = eb.next_chunk(size, &mut cb).map_err(|e| io_corrupt(blob_b, e))?;
        if !more_a || !more_b {
            break;
        }
        sums.add_bytes(a.dtype, &ca, &cb);
    }
    Ok(Some(sums))
}
