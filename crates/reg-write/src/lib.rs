//! Writing new checkpoint files: weights-only torch zips and safetensors.
//!
//! This crate owns the files `reg` makes that no one gave it. Byte-exact
//! pull needs no writer (it concatenates stored segments); these writers
//! produce *new* files:
//! - [`emit`]: a plain value tree ([`Emit`]) to a protocol-2 pickle that
//!   names only globals `torch.load(weights_only=True)` accepts;
//! - [`torchzip`]: a streaming torch zip writer laid out like torch 2.x
//!   (stored records, 64-byte aligned data, data descriptors, zip64 end
//!   records), fed by [`StorageSource`]s so storage bytes can be streamed
//!   from elsewhere;
//! - [`mod@weights_only`]: what Lightning's `save_weights_only=True` keeps of a
//!   checkpoint's object tree, as an [`Emit`] tree;
//! - [`safetensors`]: a safetensors writer that gathers each tensor's view
//!   out of its storage;
//! - [`synth`]: generated training runs (weights, Adam moments, a
//!   schedule) for benchmarks and tests.
//!
//! It never reads a stored version or opens the registry (`reg-registry` feeds
//! it storage bytes through [`StorageSource`] and [`ExportTensor`]), never
//! rewrites an input, and writes nothing a weights-only `torch.load` or a
//! safetensors reader would refuse.
//!
//! ```
//! use reg_write::{to_pickle, Emit};
//! let tree = Emit::Dict(vec![(Emit::Str("epoch".into()), Emit::Int(3))]);
//! let pickle = to_pickle(&tree).expect("plain values always pickle");
//! assert_eq!(pickle.first(), Some(&0x80)); // PROTO
//! assert_eq!(pickle.last(), Some(&b'.')); // STOP
//! ```
#![deny(missing_docs)]

pub mod emit;
mod pickler;
pub mod safetensors;
pub mod synth;
pub mod torchzip;
pub mod weights_only;

#[cfg(test)]
mod tests;

pub use emit::{Emit, MetaRef, TensorRef};
pub use pickler::to_pickle;
pub use safetensors::{write_safetensors, write_safetensors_part, ExportTensor, SafetensorsPart};
pub use torchzip::{write_checkpoint, Fill, StorageSource, TorchZipWriter};
pub use weights_only::{weights_only, WeightsOnly};

use reg_ckpt::dtype::DType;

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The output (or a storage source) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being written or read.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A storage source wrote more or fewer bytes than it announced.
    #[error("zip record {}: source wrote {actual} bytes, {expected} were announced", .name.escape_debug())]
    StreamLength {
        /// The record name.
        name: String,
        /// Bytes announced.
        expected: u64,
        /// Bytes written (counted up to the first byte too many).
        actual: u64,
    },
    /// A zip record name is used twice.
    #[error("zip record {}: written twice", .0.escape_debug())]
    DuplicateRecord(String),
    /// A name or string is longer than its format field allows.
    #[error("{what} is {len} bytes long, the format allows at most {max}")]
    TooLong {
        /// What is too long.
        what: String,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// One storage key used with different dtypes or sizes (torch refuses
    /// to save that as well).
    #[error("storage {}: used as {first} and as {second}", .key.escape_debug())]
    StorageConflict {
        /// The storage key.
        key: String,
        /// The first use (`dtype x numel`).
        first: String,
        /// The conflicting use.
        second: String,
    },
    /// A tensor whose dtype the target format cannot hold.
    #[error("tensor {}: dtype {dtype} cannot be written to {format}", .tensor.escape_debug())]
    UnsupportedDtype {
        /// The tensor (path or name).
        tensor: String,
        /// Its dtype.
        dtype: DType,
        /// The target format.
        format: &'static str,
    },
    /// A tensor description that makes no sense (shape and stride lengths
    /// differ, the view reaches past its storage, sizes overflow).
    #[error("tensor {}: {reason}", .tensor.escape_debug())]
    BadTensor {
        /// The tensor (path, name or storage key).
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// Two safetensors entries with one name, or a reserved name.
    #[error("safetensors: tensor name {} {reason}", .name.escape_debug())]
    BadName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The object tree nests deeper than the writer follows.
    #[error("object tree at {} nests deeper than {limit} levels", if .path.is_empty() { "the root" } else { .path.as_str() })]
    TooDeep {
        /// Where the limit was hit.
        path: String,
        /// The depth limit.
        limit: usize,
    },
    /// The object tree expands to more values than the writer produces
    /// (shared sub-trees are copied once per reference).
    #[error("object tree expands to more than {0} values")]
    TooManyValues(usize),
    /// A tensor record in the source pickle is malformed.
    #[error(transparent)]
    Tensor(#[from] reg_ckpt::tensors::TensorError),
}

impl WriteError {
    /// An I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        WriteError::Io {
            context: context.into(),
            source,
        }
    }
}
