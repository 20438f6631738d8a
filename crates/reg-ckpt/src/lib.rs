//! Checkpoint formats for `reg`: what is in a file or a checkpoint
//! directory, and where; and writers for the new files `reg` exports.
//!
//! Readers take bytes (the caller memory-maps files) and never touch the
//! file system. Above all nothing here imports or calls anything a pickle
//! names: the pickle reader is a stack machine that records globals and
//! calls as data, and files are never run. The only bytes this crate
//! produces are new files ([`mod@write`]: weights-only torch zips and
//! safetensors exports; [`synth`]: generated training runs for benchmarks
//! and tests); it never stores anything or rewrites an input.
//!
//! [`inspect`] takes a whole file, detects its format by content (torch
//! zip, torch legacy, safetensors) and returns a [`Checkpoint`]:
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
//! [`tree::inspect_tree`] does the same for every file of a directory
//! (torch DCP / FSDP shards, Lightning sharded checkpoints, Hugging Face
//! model and Trainer folders, DeepSpeed checkpoints) and understands the
//! tree as one checkpoint: its layout, its logical tensors (a sharded
//! tensor is one entry with its global shape and its chunks) and its
//! training metadata ([`tree::TreeCheckpoint`]).
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
//! tree; `safety` judges globals; `tree` reads directories; `write` and
//! `synth` make new files.
#![deny(missing_docs)]

pub mod dtype;
pub mod exact_json;
pub mod float;
mod inspect;
pub mod interpolate;
pub mod legacy;
pub mod meta;
pub mod pickle;
pub mod safetensors;
pub mod safety;
pub mod segment;
pub mod stream_in;
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
