//! A plain value tree and its protocol-2 pickle, as `torch.save` writes it.
//!
//! [`super::to_pickle`] (in `pickler`) names only globals that `torch.load(weights_only=True)`
//! accepts: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` /
//! `_v3` / `_rebuild_meta_tensor_no_storage`, torch's typed storage
//! classes, `torch.storage.UntypedStorage`, torch dtypes, and for bytes and
//! complex numbers `_codecs.encode` and `__builtin__.complex` (as CPython
//! names them at protocol 2). Opcodes and integer encodings follow CPython's pickler at
//! protocol 2; globals and strings are memoized by value (`BINPUT` once,
//! `BINGET` after), which CPython does per object, so the bytes are close to
//! but not identical with what torch writes. Emission uses an explicit work
//! stack, so a deep tree cannot overflow the call stack.
//!
//! Tensors are pickled as torch 2.x does: `_rebuild_tensor_v2(storage,
//! offset, size, stride, requires_grad, OrderedDict())` with the storage as
//! persistent id `('storage', torch.<X>Storage, key, 'cpu', numel)`. Dtypes
//! without a typed storage class (uint16/32/64, float8 variants, complex32)
//! take torch's newer form (`torch._tensor._reduce_ex_internal` for
//! `torch.storage._new_dtypes()`): `_rebuild_tensor_v3` with the dtype as
//! seventh argument (`GLOBAL torch <dtype>`) and the storage class
//! `torch.storage.UntypedStorage` (that is the class's `__module__`, and the
//! name the weights-only allowlist uses), whose numel counts bytes. A meta
//! tensor is `_rebuild_meta_tensor_no_storage(dtype, size, stride,
//! requires_grad)`, as torch's `Tensor.__reduce_ex__` writes it: no storage.

use super::WriteError;
use reg_ckpt::dtype::DType;

/// A value to pickle.
#[derive(Clone, Debug, PartialEq)]
pub enum Emit {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An int.
    Int(i64),
    /// An int beyond `i64`: little-endian two's-complement bytes (as
    /// `LONG1` carries them). Empty means zero.
    BigInt(Vec<u8>),
    /// A float (NaN and infinities included).
    Float(f64),
    /// A str.
    Str(String),
    /// A list.
    List(Vec<Emit>),
    /// A tuple.
    Tuple(Vec<Emit>),
    /// A plain dict, in insertion order.
    Dict(Vec<(Emit, Emit)>),
    /// A `collections.OrderedDict`, in order.
    OrderedDict(Vec<(Emit, Emit)>),
    /// A tensor viewing a storage record.
    Tensor(TensorRef),
    /// A tensor on torch's `meta` device: no storage.
    MetaTensor(MetaRef),
    /// A bytes object (pickled as `_codecs.encode(latin-1 text, 'latin1')`,
    /// as CPython does at protocol 2).
    Bytes(Vec<u8>),
    /// A complex number `(real, imag)` (pickled as
    /// `__builtin__.complex(real, imag)`).
    Complex(f64, f64),
    /// A value followed by `BUILD` with a state: an `OrderedDict` with its
    /// `__dict__` (the state dict's `_metadata`), which the weights-only
    /// loader restores.
    Built {
        /// The value built upon.
        value: Box<Emit>,
        /// Its state (a dict of attributes).
        state: Box<Emit>,
    },
}

/// A tensor as torch pickles it: a view of a storage record `data/<key>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage record key.
    pub storage_key: String,
    /// Element type (of the tensor and of its storage).
    pub dtype: DType,
    /// Elements of `dtype` in the storage (its bytes are this times the
    /// element size).
    pub storage_numel: u64,
    /// First element's index in the storage.
    pub offset: u64,
    /// Size per dimension.
    pub shape: Vec<u64>,
    /// Stride per dimension, in elements.
    pub stride: Vec<u64>,
    /// `requires_grad`.
    pub requires_grad: bool,
}

/// A meta tensor as torch pickles it: dtype, size and stride, no storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaRef {
    /// Element type.
    pub dtype: DType,
    /// Size per dimension.
    pub shape: Vec<u64>,
    /// Stride per dimension, in elements.
    pub stride: Vec<u64>,
    /// `requires_grad`.
    pub requires_grad: bool,
}

/// torch's typed storage class for a dtype; `None` for dtypes torch saves
/// through `UntypedStorage` and `_rebuild_tensor_v3`.
pub(crate) fn storage_class(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::Float64 => "DoubleStorage",
        DType::Float32 => "FloatStorage",
        DType::Float16 => "HalfStorage",
        DType::Bfloat16 => "BFloat16Storage",
        DType::Complex128 => "ComplexDoubleStorage",
        DType::Complex64 => "ComplexFloatStorage",
        DType::Int64 => "LongStorage",
        DType::Int32 => "IntStorage",
        DType::Int16 => "ShortStorage",
        DType::Int8 => "CharStorage",
        DType::Uint8 => "ByteStorage",
        DType::Bool => "BoolStorage",
        _ => return None,
    })
}

pub(super) fn is_quantized(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::Qint8 | DType::Quint8 | DType::Qint32 | DType::Quint4x2 | DType::Quint2x4
    )
}

/// Refuse tensor descriptions torch could not load.
pub(super) fn check_tensor(t: &TensorRef) -> Result<(), WriteError> {
    let bad = |reason: String| WriteError::BadTensor {
        tensor: format!("on storage {}", t.storage_key),
        reason,
    };
    if is_quantized(t.dtype) {
        return Err(WriteError::UnsupportedDtype {
            tensor: format!("on storage {}", t.storage_key),
            dtype: t.dtype,
            format: "a weights-only pickle (quantizer parameters are not kept)",
        });
    }
    if t.storage_key.is_empty() {
        return Err(bad("empty storage key".into()));
    }
    if t.shape.len() != t.stride.len() {
        return Err(bad(format!(
            "shape has {} dimensions, stride {}",
            t.shape.len(),
            t.stride.len()
        )));
    }
    if t.storage_numel.checked_mul(t.dtype.size() as u64).is_none() {
        return Err(bad(format!("storage of {} elements overflows", t.storage_numel)));
    }
    let extent = if t.shape.contains(&0) {
        Some(t.offset)
    } else {
        t.shape
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |acc, (n, s)| acc.checked_add((n - 1).checked_mul(*s)?))
            .and_then(|last| last.checked_add(1))
    };
    if extent.is_none_or(|e| e > t.storage_numel) {
        return Err(bad(format!(
            "view (offset {}, shape {:?}, stride {:?}) reaches past the {} elements of its storage",
            t.offset, t.shape, t.stride, t.storage_numel
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::to_pickle;
    use super::*;

    #[test]
    fn deep_trees_do_not_overflow() {
        let mut v = Emit::None;
        for _ in 0..200_000 {
            v = Emit::List(vec![v]);
        }
        assert!(to_pickle(&v).is_ok());
        // Dropping the nested value recursively would overflow; unwind it.
        let mut cur = v;
        while let Emit::List(mut items) = cur {
            cur = items.pop().unwrap_or(Emit::None);
        }
    }

    #[test]
    fn storage_classes_match_the_reader() {
        for d in [
            DType::Float64,
            DType::Float32,
            DType::Bool,
            DType::Complex64,
            DType::Uint8,
            DType::Int16,
        ] {
            assert_eq!(DType::from_storage_class(storage_class(d).unwrap()), Some(d));
        }
        assert_eq!(storage_class(DType::Uint16), None);
        assert_eq!(storage_class(DType::Float8E4m3fn), None);
    }

    #[test]
    fn refuses_bad_tensors() {
        let t = TensorRef {
            storage_key: "0".into(),
            dtype: DType::Float32,
            storage_numel: 6,
            offset: 0,
            shape: vec![2, 3],
            stride: vec![3, 1],
            requires_grad: false,
        };
        assert!(to_pickle(&Emit::Tensor(t.clone())).is_ok());
        let past = TensorRef { offset: 1, ..t.clone() };
        assert!(to_pickle(&Emit::Tensor(past))
            .unwrap_err()
            .to_string()
            .contains("reaches past"));
        let dims = TensorRef {
            stride: vec![1],
            ..t.clone()
        };
        assert!(to_pickle(&Emit::Tensor(dims)).is_err());
        let q = TensorRef {
            dtype: DType::Qint8,
            ..t.clone()
        };
        assert!(to_pickle(&Emit::Tensor(q)).is_err());
        let other = TensorRef {
            storage_numel: 7,
            ..t.clone()
        };
        let both = Emit::List(vec![Emit::Tensor(t), Emit::Tensor(other)]);
        assert!(to_pickle(&both)
            .unwrap_err()
            .to_string()
            .contains("storage 0: used as float32 x 6"));
    }
}
