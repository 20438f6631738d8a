//! Checkpoint formats for `reg`: what is in a file, and where.
//!
//! This crate reads bytes and never writes, stores or runs anything. Above
//! all it never imports or calls anything a pickle names: the pickle reader
//! is a stack machine that records globals and calls as data.
//!
//! [`inspect`] takes a whole file (usually memory-mapped), detects its
//! format by content (torch zip, torch legacy, safetensors) and returns a
//! [`Checkpoint`]:
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
//! ```no_run
//! let bytes = std::fs::read("epoch=3.ckpt").unwrap_or_default();
//! match reg_ckpt::inspect(&bytes) {
//!     Ok(ckpt) => println!("{} tensors, epoch {:?}", ckpt.tensors.len(), ckpt.meta.epoch),
//!     Err(e) => eprintln!("not a checkpoint: {e}"),
//! }
//! ```
//!
//! Modules: `zip`, `torchzip`, `legacy`, `safetensors` read containers;
//! `pickle` reads pickles; `tensors`, `meta` and `view` interpret the object
//! tree; `safety` judges globals.
#![deny(missing_docs)]

pub mod dtype;
pub mod float;
mod inspect;
pub mod legacy;
pub mod meta;
pub mod pickle;
pub mod safetensors;
pub mod safety;
pub mod segment;
pub mod synth;
pub mod tensors;
pub mod torchzip;
pub mod tree;
pub mod view;
pub mod write;
pub mod zip;

pub use dtype::DType;
pub use inspect::{decode_scalar, inspect, inspect_deferred, Checkpoint, InspectError};
pub use segment::{cover, Format, Segment, SegmentKind};
