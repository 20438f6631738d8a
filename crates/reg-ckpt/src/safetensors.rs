//! Hugging Face safetensors: an 8-byte little-endian header length `N`, `N`
//! bytes of JSON, then the tensor bytes.
//!
//! Validation follows the reference implementation: the header is at most
//! 100 MB of UTF-8 JSON starting with `{` (trailing spaces allowed), every
//! dtype is known, every tensor's byte length equals its element count times
//! the element size, and the tensors tile the byte buffer exactly, from its
//! first byte to the end of the file, with no holes and no overlaps (the
//! format forbids holes so a file cannot smuggle unindexed bytes).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::dtype::DType;
use crate::segment::{cover, Segment};

/// Largest JSON header accepted, as in the reference implementation.
pub const MAX_HEADER: u64 = 100_000_000;

/// Why a file is not a valid safetensors file.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// Shorter than the 8-byte length prefix.
    #[error("not safetensors: file of {0} bytes is shorter than the 8-byte header length")]
    TooShort(u64),
    /// The header length is absurd or runs past the end of the file.
    #[error("safetensors header length {len} is invalid (file has {file_len} bytes, limit {MAX_HEADER})")]
    HeaderLength {
        /// The header length read from the file.
        len: u64,
        /// The file length.
        file_len: u64,
    },
    /// The header is not UTF-8.
    #[error("safetensors header is not valid utf-8 (at byte {0} of the header)")]
    Utf8(usize),
    /// The header does not start with `{`.
    #[error("safetensors header does not start with '{{'")]
    HeaderStart,
    /// The header is not the expected JSON.
    #[error("safetensors header is not valid json: {0}")]
    Json(String),
    /// A name appears twice in the header.
    #[error("safetensors header: tensor {} appears more than once", .0.escape_debug())]
    Duplicate(String),
    /// `__metadata__` is not a map of strings.
    #[error("safetensors __metadata__ is not a map of strings to strings: {0}")]
    Metadata(String),
    /// A tensor entry is malformed.
    #[error("safetensors tensor {}: {reason}", .name.escape_debug())]
    Tensor {
        /// The tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A dtype the header names is unknown.
    #[error("safetensors tensor {}: unknown dtype {dtype:?}", .name.escape_debug())]
    UnknownDtype {
        /// The tensor name.
        name: String,
        /// The dtype string.
        dtype: String,
    },
    /// A tensor's bytes run past the end of the buffer.
    #[error("safetensors tensor {}: data_offsets [{begin}, {end}] run past the end of the {buffer_len}-byte buffer", .name.escape_debug())]
    OutOfBounds {
        /// The tensor name.
        name: String,
        /// Start offset.
        begin: u64,
        /// End offset.
        end: u64,
        /// Buffer length.
        buffer_len: u64,
    },
    /// Two tensors share bytes.
    #[error("safetensors tensors {} and {} overlap", .first.escape_debug(), .second.escape_debug())]
    Overlap {
        /// The earlier tensor.
        first: String,
        /// The tensor starting inside it.
        second: String,
    },
    /// Bytes of the buffer that no tensor covers.
    #[error("safetensors buffer bytes {begin}..{end} belong to no tensor")]
    Hole {
        /// Start of the hole (buffer offset).
        begin: u64,
        /// End of the hole.
        end: u64,
    },
}

/// One tensor of a safetensors file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafeTensor {
    /// The tensor name (the header key).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dimensions, as torch has them (an `F4` tensor's last dimension is
    /// half the header's: see [`DType::torch_shape_of_safetensors`]).
    pub shape: Vec<u64>,
    /// The tensor bytes, as a range of the whole file.
    pub data: Range<u64>,
}

/// A located safetensors file.
#[derive(Clone, Debug)]
pub struct SafetensorsFile {
    /// The JSON header bytes (after the 8-byte length, padding included).
    pub header: Range<u64>,
    /// The `__metadata__` map, when present.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Tensors in file data order.
    pub tensors: Vec<SafeTensor>,
}

/// Cheap sniff: at least 10 bytes, a plausible header length, and a header
/// that starts with `{`.
pub fn looks_like(file: &[u8]) -> bool {
    file.len() >= 10 && header_len(file).is_ok() && file.get(8) == Some(&b'{')
}

fn header_len(file: &[u8]) -> Result<u64, SafetensorsError> {
    header_len_in(file, file.len() as u64)
}

/// The header length of a file of `file_len` bytes whose first bytes are
/// `file` (at least the 8-byte length).
fn header_len_in(file: &[u8], file_len: u64) -> Result<u64, SafetensorsError> {
    let prefix = file.get(..8).ok_or(SafetensorsError::TooShort(file_len))?;
    let mut b = [0u8; 8];
    b.copy_from_slice(prefix);
    let len = u64::from_le_bytes(b);
    if len > MAX_HEADER || len.checked_add(8).is_none_or(|end| end > file_len) {
        return Err(SafetensorsError::HeaderLength { len, file_len });
    }
    Ok(len)
}

/// The header's top-level map with keys in file order and duplicates kept.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a json object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(pair);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// Read and validate a safetensors file.
pub fn read(file: &[u8]) -> Result<SafetensorsFile, SafetensorsError> {
    read_sized(file, file.len() as u64)
}

/// The largest header [`read_header`] accepts: what a stream must hold in
/// memory before its first tensor.
pub const MAX_STREAM_HEADER: u64 = MAX_HEADER;

/// The length prefix of a safetensors stream: how many header bytes follow
/// the 8 bytes `prefix` (checked against the header limit).
pub fn header_len_of(prefix: &[u8; 8]) -> Result<u64, SafetensorsError> {
    header_len_in(prefix, u64::MAX)
}

/// Read the header of a safetensors stream, `head` being its first
/// `8 + header length` bytes, before any tensor bytes have arrived: the
/// tensors' ranges are checked against the data the header itself
/// declares (the end of its last tensor), not a file length.
pub fn read_header(head: &[u8]) -> Result<SafetensorsFile, SafetensorsError> {
    let len = header_len_in(head, u64::MAX)?;
    let json = head
        .get(8..8 + len as usize)
        .ok_or(SafetensorsError::TooShort(head.len() as u64))?;
    let text = std::str::from_utf8(json).map_err(|e| SafetensorsError::Utf8(e.valid_up_to()))?;
    let entries: Entries = serde_json::from_str(text).map_err(|e| SafetensorsError::Json(e.to_string()))?;
    // The data region the header declares: up to its last tensor's end.
    let data_len = entries
        .0
        .iter()
        .filter(|(k, _)| k != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    read_sized(head, (8 + len).saturating_add(data_len))
}

/// [`read`] of a file of `file_len` bytes whose first bytes (the header
/// at least) are `file`.
fn read_sized(file: &[u8], file_len: u64) -> Result<SafetensorsFile, SafetensorsError> {
    let len = header_len_in(file, file_len)?;
    // header_len checked 8 + len <= file length.
    let json_end = 8 + len as usize;
    let json = file.get(8..json_end).unwrap_or(&[]);
    let text = std::str::from_utf8(json).map_err(|e| SafetensorsError::Utf8(e.valid_up_to()))?;
    if !text.starts_with('{') {
        return Err(SafetensorsError::HeaderStart);
    }
    let entries: Entries = serde_json::from_str(text).map_err(|e| SafetensorsError::Json(e.to_string()))?;

    let buffer_start = 8 + len;
    let buffer_len = file_len - buffer_start;
    let mut names = HashSet::with_capacity(entries.0.len());
    let mut metadata = None;
    let mut tensors = Vec::with_capacity(entries.0.len());
    for (name, value) in entries.0 {
        if !names.insert(name.clone()) {
            return Err(SafetensorsError::Duplicate(name));
        }
        if name == "__metadata__" {
            let map: BTreeMap<String, String> =
                serde_json::from_value(value).map_err(|e| SafetensorsError::Metadata(e.to_string()))?;
            metadata = Some(map);
            continue;
        }
        let info: TensorInfo = serde_json::from_value(value).map_err(|e| SafetensorsError::Tensor {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        let Some(dtype) = DType::from_safetensors_name(&info.dtype) else {
            return Err(SafetensorsError::UnknownDtype {
                name,
                dtype: info.dtype,
            });
        };
        let Some(shape) = dtype.torch_shape_of_safetensors(&info.shape) else {
            return Err(SafetensorsError::Tensor {
                reason: format!(
                    "{} shape {:?} does not end in an even dimension (torch packs two 4-bit elements per byte)",
                    info.dtype, info.shape
                ),
                name,
            });
        };
        let (begin, end) = info.data_offsets;
        if end < begin || end > buffer_len {
            return Err(SafetensorsError::OutOfBounds {
                name,
                begin,
                end,
                buffer_len,
            });
        }
        let nbytes = shape.iter().try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d));
        if nbytes != Some(end - begin) {
            let want = nbytes.map_or("more than 2^64".to_owned(), |n| n.to_string());
            return Err(SafetensorsError::Tensor {
                reason: format!(
                    "shape {:?} of {dtype} needs {want} bytes but data_offsets [{begin}, {end}] hold {}",
                    info.shape,
                    end - begin
                ),
                name,
            });
        }
        tensors.push(SafeTensor {
            name,
            dtype,
            shape,
            data: buffer_start + begin..buffer_start + end,
        });
    }

    tensors.sort_by_key(|t| (t.data.start, t.data.end));
    let mut at = buffer_start;
    let mut prev: Option<&str> = None;
    for t in &tensors {
        if t.data.start > at {
            return Err(SafetensorsError::Hole {
                begin: at - buffer_start,
                end: t.data.start - buffer_start,
            });
        }
        if t.data.start < at {
            return Err(SafetensorsError::Overlap {
                first: prev.unwrap_or("").to_owned(),
                second: t.name.clone(),
            });
        }
        at = t.data.end;
        prev = Some(&t.name);
    }
    if at != file_len {
        return Err(SafetensorsError::Hole {
            begin: at - buffer_start,
            end: buffer_len,
        });
    }
    Ok(SafetensorsFile {
        header: 8..buffer_start,
        metadata,
        tensors,
    })
}

impl SafetensorsFile {
    /// Cut a file of `file_len` bytes into one payload segment per tensor
    /// (keyed by tensor name) and skeleton segments for the rest.
    pub fn segments(&self, file_len: u64) -> Vec<Segment> {
        cover(
            file_len,
            self.tensors.iter().map(|t| (t.data.clone(), t.name.clone())).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.extend_from_slice(data);
        f
    }

    fn err(header: &str, data: &[u8]) -> String {
        read(&file(header, data)).unwrap_err().to_string()
    }

    #[test]
    fn accepts_padding_empty_tensors_and_metadata() {
        let h = r#"{"__metadata__":{"a":"b"},"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}   "#;
        let f = read(&file(h, &[1, 2])).unwrap();
        assert_eq!(f.tensors.len(), 2);
        assert_eq!(f.tensors[1].data, (8 + h.len() as u64)..(8 + h.len() as u64 + 2));
        assert_eq!(f.metadata.unwrap()["a"], "b");
        assert!(read(&file("{}", &[])).unwrap().tensors.is_empty());
    }

    #[test]
    fn refuses_bad_headers() {
        let x = r#""x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}"#;
        assert!(err(&format!("{{{x},{x}}}"), &[0, 0]).contains("more than once"));
        assert!(err(r#"{"x":{"dtype":"Q9","shape":[],"data_offsets":[0,0]}}"#, &[]).contains("unknown dtype \"Q9\""));
        assert!(err(&format!("{{{x}}}"), &[0, 0, 0]).contains("belong to no tensor"));
        assert!(err(&format!("{{{x}}}"), &[0]).contains("run past the end"));
        let y = r#""y":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}"#;
        assert!(err(&format!("{{{x},{y}}}"), &[0, 0]).contains("overlap"));
        let big = r#"{"x":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#;
        assert!(err(big, &[]).contains("more than 2^64"));
        assert!(err(" {}", &[]).contains("start"));
        assert!(err(r#"{"__metadata__":{"a":1}}"#, &[]).contains("__metadata__"));
        assert!(err("[]", &[]).contains("start"));
        assert!(err("{\"x\":", &[]).contains("json"));
    }
}
