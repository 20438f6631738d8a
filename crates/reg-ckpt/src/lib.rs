//! Checkpoint file formats for `reg`: what is in one checkpoint file, and
//! where.
//!
//! This crate owns reading a single file: detecting its format by content
//! (torch zip, legacy torch, safetensors), cutting it into skeleton and
//! storage segments, listing its tensors, reading its training metadata out
//! of the object tree, and judging the globals its pickle names. Readers
//! take bytes (the caller memory-maps files) and never touch the file
//! system. It never imports or calls anything a pickle names (the pickle
//! machine is `reg-pickle`, which records globals and calls as data), never
//! writes a file (`reg-write` does), never reads a directory as one
//! checkpoint (`reg-tree` does, on top of this crate) and never stores
//! anything (`reg-store`, `reg-registry`).
//!
//! [`inspect`] takes a whole file and returns a [`Checkpoint`]:
//! - `segments`: the file cut into skeleton bytes and tensor-storage
//!   payloads, covering every byte once, so the file can be rebuilt by
//!   concatenation;
//! - `tensors`: every tensor with path, dtype, shape, stride, offset and
//!   storage key ([`tensors::TensorInfo`]);
//! - `meta`: epoch, global step, hyperparameters as JSON, optimizer and
//!   scheduler summaries, ModelCheckpoint state ([`meta::CheckpointMeta`]);
//! - `globals`: every global the pickle names with a safety verdict
//!   ([`safety::Verdict`]).
//!
//! [`stream_in`] cuts the same formats as they arrive on a pipe.
//!
//! ```no_run
//! let bytes = std::fs::read("epoch=3.ckpt").unwrap_or_default();
//! match reg_ckpt::inspect(&bytes) {
//!     Ok(ckpt) => println!("{} tensors, epoch {:?}", ckpt.tensors.len(), ckpt.meta.epoch),
//!     Err(e) => eprintln!("not a checkpoint: {e}"),
//! }
//! ```
//!
//! Modules: `zip`, `torchzip`, `legacy`, `safetensors` read containers;
//! `tensors`, `meta` and `view` interpret the object tree; `safety` judges
//! globals; `stream_in` cuts streams; `dtype`, `float`, `exact_json` and
//! `interpolate` are the small vocabularies they share.
#![deny(missing_docs)]

pub mod dtype;
pub mod exact_json;
pub mod float;
mod inspect;
pub mod interpolate;
pub mod legacy;
pub mod meta;

pub mod safetensors;
pub mod safety;
pub mod segment;
pub mod stream_in;
pub mod tensors;
pub mod torchzip;
pub mod view;
pub mod zip;

pub use dtype::DType;
pub use inspect::{decode_scalar, describe_tensor, inspect, inspect_deferred, Checkpoint, InspectError};
pub use segment::{cover, Format, Segment, SegmentKind};
