//! Tensor element types, with torch's and safetensors' names for them.

use serde::{Deserialize, Serialize};

/// A tensor element type.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    Float64,
    Float32,
    Float16,
    Bfloat16,
    Float8E4m3fn,
    Float8E5m2,
    Float8E4m3fnuz,
    Float8E5m2fnuz,
    Complex128,
    Complex64,
    Complex32,
    Bcomplex32,
    Int64,
    Int32,
    Int16,
    Int8,
    Uint64,
    Uint32,
    Uint16,
    Uint8,
    Bool,
    Qint8,
    Quint8,
    Qint32,
    Quint4x2,
    Quint2x4,
    Float8E8m0fnu,
    Float4E2m1fnX2,
    Bits8,
    Bits16,
    Bits1x8,
    Bits2x4,
    Bits4x2,
}

const TABLE: &[(DType, &str, &str, usize, Option<&str>)] = &[
    // (dtype, torch name, legacy storage class, element size, safetensors name)
    (DType::Float64, "float64", "DoubleStorage", 8, Some("F64")),
    (DType::Float32, "float32", "FloatStorage", 4, Some("F32")),
    (DType::Float16, "float16", "HalfStorage", 2, Some("F16")),
    (DType::Bfloat16, "bfloat16", "BFloat16Storage", 2, Some("BF16")),
    (DType::Float8E4m3fn, "float8_e4m3fn", "", 1, Some("F8_E4M3")),
    (DType::Float8E5m2, "float8_e5m2", "", 1, Some("F8_E5M2")),
    (DType::Float8E4m3fnuz, "float8_e4m3fnuz", "", 1, Some("F8_E4M3FNUZ")),
    (DType::Float8E5m2fnuz, "float8_e5m2fnuz", "", 1, Some("F8_E5M2FNUZ")),
    (DType::Complex128, "complex128", "ComplexDoubleStorage", 16, None),
    (DType::Complex64, "complex64", "ComplexFloatStorage", 8, Some("C64")),
    (DType::Complex32, "complex32", "", 4, None),
    // Complex with bfloat16 real and imaginary parts.
    (DType::Bcomplex32, "bcomplex32", "", 4, None),
    (DType::Int64, "int64", "LongStorage", 8, Some("I64")),
    (DType::Int32, "int32", "IntStorage", 4, Some("I32")),
    (DType::Int16, "int16", "ShortStorage", 2, Some("I16")),
    (DType::Int8, "int8", "CharStorage", 1, Some("I8")),
    (DType::Uint64, "uint64", "", 8, Some("U64")),
    (DType::Uint32, "uint32", "", 4, Some("U32")),
    (DType::Uint16, "uint16", "", 2, Some("U16")),
    (DType::Uint8, "uint8", "ByteStorage", 1, Some("U8")),
    (DType::Bool, "bool", "BoolStorage", 1, Some("BOOL")),
    (DType::Qint8, "qint8", "QInt8Storage", 1, None),
    (DType::Quint8, "quint8", "QUInt8Storage", 1, None),
    (DType::Qint32, "qint32", "QInt32Storage", 4, None),
    (DType::Quint4x2, "quint4x2", "QUInt4x2Storage", 1, None),
    (DType::Quint2x4, "quint2x4", "QUInt2x4Storage", 1, None),
    (DType::Float8E8m0fnu, "float8_e8m0fnu", "", 1, Some("F8_E8M0")),
    // safetensors `F4` counts 4-bit elements: its last dimension is twice
    // torch's (see `DType::safetensors_shape`).
    (DType::Float4E2m1fnX2, "float4_e2m1fn_x2", "", 1, Some("F4")),
    (DType::Bits8, "bits8", "", 1, None),
    (DType::Bits16, "bits16", "", 2, None),
    (DType::Bits1x8, "bits1x8", "", 1, None),
    (DType::Bits2x4, "bits2x4", "", 1, None),
    (DType::Bits4x2, "bits4x2", "", 1, None),
];

/// Aliases torch accepts for the same dtypes (`torch.float` is float32 ...).
const ALIASES: &[(&str, DType)] = &[
    ("float", DType::Float32),
    ("double", DType::Float64),
    ("half", DType::Float16),
    ("cfloat", DType::Complex64),
    ("cdouble", DType::Complex128),
    ("chalf", DType::Complex32),
    ("long", DType::Int64),
    ("int", DType::Int32),
    ("short", DType::Int16),
];

impl DType {
    fn row(self) -> &'static (DType, &'static str, &'static str, usize, Option<&'static str>) {
        // Every variant has a row; the fallback keeps this total.
        TABLE.iter().find(|r| r.0 == self).unwrap_or(&TABLE[1])
    }

    /// torch's name without `torch.` (`float32`, `bfloat16`, `bool`).
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        self.row().3
    }

    /// The safetensors header name (`F32`, `BF16`), if safetensors has one.
    pub fn safetensors_name(self) -> Option<&'static str> {
        self.row().4
    }

    /// The shape safetensors records for a tensor of this dtype and torch
    /// `shape`: the same, except `F4` (float4_e2m1fn_x2), which counts
    /// 4-bit elements, so its last dimension is twice torch's (`None` for a
    /// 0-d one, which safetensors cannot hold, or one that overflows).
    pub fn safetensors_shape(self, shape: &[u64]) -> Option<Vec<u64>> {
        let mut out = shape.to_vec();
        if self == DType::Float4E2m1fnX2 {
            let last = out.last_mut()?;
            *last = last.checked_mul(2)?;
        }
        Some(out)
    }

    /// torch's shape for a safetensors tensor of this dtype and header
    /// `shape` (the inverse of [`DType::safetensors_shape`]); `None` for an
    /// `F4` tensor whose last dimension is odd or missing (torch packs two
    /// 4-bit elements per byte).
    pub fn torch_shape_of_safetensors(self, shape: &[u64]) -> Option<Vec<u64>> {
        let mut out = shape.to_vec();
        if self == DType::Float4E2m1fnX2 {
            let last = out.last_mut()?;
            if *last % 2 != 0 {
                return None;
            }
            *last /= 2;
        }
        Some(out)
    }

    /// True for quantized types that pack several elements into one byte
    /// (their element count is not their byte count; torch's other packed
    /// types such as `float4_e2m1fn_x2` count bytes).
    pub fn is_packed(self) -> bool {
        matches!(self, DType::Quint4x2 | DType::Quint2x4)
    }

    /// True for floating-point types (not complex).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::Float64
                | DType::Float32
                | DType::Float16
                | DType::Bfloat16
                | DType::Float8E4m3fn
                | DType::Float8E5m2
                | DType::Float8E4m3fnuz
                | DType::Float8E5m2fnuz
        )
    }

    /// The dtype torch names `torch.<name>` (aliases included).
    pub fn from_torch_name(name: &str) -> Option<DType> {
        TABLE
            .iter()
            .find(|r| r.1 == name)
            .map(|r| r.0)
            .or_else(|| ALIASES.iter().find(|a| a.0 == name).map(|a| a.1))
    }

    /// The dtype of a typed storage class (`FloatStorage` -> float32).
    pub fn from_storage_class(name: &str) -> Option<DType> {
        TABLE.iter().find(|r| !r.2.is_empty() && r.2 == name).map(|r| r.0)
    }

    /// The dtype a safetensors header names (`F32`, `BF16`).
    pub fn from_safetensors_name(name: &str) -> Option<DType> {
        TABLE.iter().find(|r| r.4 == Some(name)).map(|r| r.0)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
