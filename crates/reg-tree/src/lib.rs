//! Directory checkpoints: every file of a tree cut by its own format, and
//! the tree understood as one checkpoint.
//!
//! [`inspect_tree`] takes every file of a directory as bytes (the caller
//! memory-maps them; nothing here touches the file system) and returns a
//! [`TreeCheckpoint`]:
//! - `layout`: what kind of checkpoint the tree is ([`Layout`], see
//!   [`layout`] for the detection rules);
//! - `files`: each file cut into skeleton and payload segments like a single
//!   checkpoint file; DCP data files are cut into the items `.metadata`
//!   locates; JSON, text and unknown files are one skeleton segment;
//! - `tensors`: the logical tensors: a DCP tensor or a Hugging Face weight
//!   is one entry named by its state-dict key with its global shape and its
//!   chunks (file, global offsets, sizes, where its bytes lie); tensors of
//!   other files are `FILE:PATH`;
//! - `meta`: epoch, step, hyperparameters, optimizer and scheduler
//!   summaries, scores, where the layout records them;
//! - `globals`: every global any pickle of the tree names, with a verdict.
//!
//! No pickle is ever run: `.metadata`, `meta.pt`, `training_args.bin` and
//! every torch file are read with the pickle machine (`reg-pickle`).
//!
//! This crate owns the directory layouts (one module each: [`layout`]
//! detects them; `dcp`, `hf`, `trainer`, `deepspeed`, `lightning_sharded`
//! read them) and how sharded tensors tile ([`Chunk`], [`runs`]). Each
//! file is cut by `reg-ckpt`; this crate never reads a file system, never
//! stores anything and never writes a file.
//!
//! ```no_run
//! use reg_tree::{inspect_tree, TreeFile};
//! let metadata = std::fs::read("ckpt/.metadata").unwrap_or_default();
//! let rank0 = std::fs::read("ckpt/__0_0.distcp").unwrap_or_default();
//! let files = [
//!     TreeFile { path: ".metadata", bytes: &metadata },
//!     TreeFile { path: "__0_0.distcp", bytes: &rank0 },
//! ];
//! match inspect_tree(&files) {
//!     Ok(tree) => println!("{} with {} tensors", tree.layout, tree.tensors.len()),
//!     Err(e) => eprintln!("{e}"),
//! }
//! ```
#![deny(missing_docs)]

mod chunks;
mod dcp;
mod dcp_data;
mod dcp_metadata;
mod deepspeed;
mod error;
mod files;
mod hf;
pub mod layout;
mod lightning_sharded;
mod paths;
mod read;
mod trainer;

use std::collections::BTreeSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use chunks::{check_tiling, runs, Chunk, ChunkBox, Run, Runs, RunsError, TilingError};
pub use error::TreeError;
pub use layout::Layout;
pub use trainer::TrainerState;

use reg_ckpt::meta::CheckpointMeta;
use reg_ckpt::safety::GlobalVerdict;
use reg_ckpt::segment::{Format, Segment};
use reg_ckpt::tensors::{Role, TensorInfo};
use reg_ckpt::DType;

/// One file of a checkpoint directory: its path relative to the directory
/// root, `/`-separated, and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct TreeFile<'a> {
    /// Relative path (`__0_0.distcp`, `unet/config.json`).
    pub path: &'a str,
    /// The whole file.
    pub bytes: &'a [u8],
}

/// Everything `reg` learns from a directory checkpoint.
#[derive(Clone, Debug)]
pub struct TreeCheckpoint {
    /// What kind of checkpoint the directory is.
    pub layout: Layout,
    /// Each file, in the order given to [`inspect_tree`].
    pub files: Vec<FileCheckpoint>,
    /// The logical tensors, sorted by name.
    pub tensors: Vec<LogicalTensor>,
    /// Training metadata where the layout records it (epoch and step,
    /// hyperparameters, optimizers, schedulers, ModelCheckpoint state or
    /// the Trainer's best metric, scores). A Trainer's fractional epoch is
    /// rounded down here; [`TreeCheckpoint::epoch`] keeps it exact.
    pub meta: CheckpointMeta,
    /// Every global any pickle in the tree names, once each, with its
    /// verdict, in first-seen file order.
    pub globals: Vec<GlobalVerdict>,
    /// The epoch exactly as the layout records it (the Trainer's is a
    /// float: `0.5` is halfway through the first epoch).
    pub epoch: Option<f64>,
    /// `config.json` of the checkpoint's folder (a Hugging Face model
    /// configuration), when it is a JSON object.
    pub model_config: Option<Value>,
    /// What a Trainer checkpoint's `trainer_state.json` and
    /// `training_args.bin` record.
    pub trainer: Option<TrainerState>,
    /// Things worth telling the user that are not errors (a DCP data file
    /// no `.metadata` names, an item a storage extension rewrote).
    pub notes: Vec<String>,
}

impl TreeCheckpoint {
    /// The logical tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&LogicalTensor> {
        self.tensors
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.tensors[i])
    }
}

/// How one file of a tree is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// A `torch.save` zip.
    TorchZip,
    /// A legacy `torch.save` file.
    TorchLegacy,
    /// A safetensors file.
    Safetensors,
    /// A DCP data file: items at the offsets `.metadata` gives.
    DcpData,
    /// Anything else (JSON, text, `.metadata`, unknown binaries): stored
    /// whole.
    Other,
}

impl FileFormat {
    /// The name used in JSON and docs (`torch-zip`, `dcp-data`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::TorchZip => "torch-zip",
            FileFormat::TorchLegacy => "torch-legacy",
            FileFormat::Safetensors => "safetensors",
            FileFormat::DcpData => "dcp-data",
            FileFormat::Other => "other",
        }
    }
}

impl From<Format> for FileFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::TorchZip => FileFormat::TorchZip,
            Format::TorchLegacy => FileFormat::TorchLegacy,
            Format::Safetensors => FileFormat::Safetensors,
        }
    }
}

/// One file of a tree, cut like a single checkpoint file.
#[derive(Clone, Debug)]
pub struct FileCheckpoint {
    /// The file's path in the tree.
    pub path: String,
    /// Its length in bytes.
    pub size: u64,
    /// How it is read.
    pub format: FileFormat,
    /// Skeleton and payload segments covering the file exactly, in file
    /// order (see [`reg_ckpt::cover`]); payload storage keys are unique within
    /// the file (`<item offset>/<key>` for DCP items).
    pub segments: Vec<Segment>,
    /// The file's tensors as `reg show` names tensors of a single file (for
    /// a DCP data file, each item's tensor by its fqn; tensors inside a
    /// bytes item as `fqn/PATH`).
    pub tensors: Vec<TensorInfo>,
    /// Payload CRC-32s left for the caller to check as it reads the
    /// payloads (see [`reg_ckpt::inspect_deferred`]).
    pub deferred_crcs: Vec<(Range<u64>, u32)>,
    /// Where the object pickle lies (torch files), inside skeleton bytes.
    pub pickle: Option<Range<u64>>,
    /// The globals its pickles name, with verdicts.
    pub globals: Vec<GlobalVerdict>,
}

/// A tensor of the directory, whole, with the chunks holding its elements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogicalTensor {
    /// The state-dict key (DCP fqn, Hugging Face tensor name), qualified by
    /// its folder when the checkpoint holding it is below the root
    /// (`unet:conv_in.weight`); `FILE:PATH` for tensors of other files
    /// (`optimizer.pt:state/0/exp_avg`).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Global shape.
    pub shape: Vec<u64>,
    /// Weight, optimizer state or other.
    pub role: Role,
    /// The saved pieces, sorted by offsets; together they tile the shape
    /// (none for a meta tensor).
    pub chunks: Vec<Chunk>,
    /// On torch's `meta` device: no storage, so no chunks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub meta: bool,
}

impl LogicalTensor {
    /// A tensor of one file (file `file` of the tree) as a logical tensor
    /// of one chunk, or of none for a meta tensor.
    pub fn of_file(name: String, file: usize, t: &TensorInfo, role: Role) -> LogicalTensor {
        let chunks = if t.meta {
            Vec::new()
        } else {
            vec![Chunk {
                file,
                offsets: vec![0; t.shape.len()],
                sizes: t.shape.clone(),
                storage_key: t.storage_key.clone(),
                storage_offset: t.storage_offset,
                stride: t.stride.clone(),
            }]
        };
        LogicalTensor {
            name,
            dtype: t.dtype,
            shape: t.shape.clone(),
            role,
            chunks,
            meta: t.meta,
        }
    }

    /// Number of elements (saturating at `u64::MAX`).
    pub fn numel(&self) -> u64 {
        self.shape.iter().fold(1u64, |acc, &d| acc.saturating_mul(d))
    }

    /// Check every element is held by exactly one chunk (see
    /// [`check_tiling`]); a meta tensor has none to check.
    pub fn check_tiling(&self) -> Result<(), TilingError> {
        if self.meta && self.chunks.is_empty() {
            return Ok(());
        }
        check_tiling(&self.name, &self.shape, &self.chunks)
    }
}

/// Read every file of a directory checkpoint (payload CRCs deferred as in
/// [`reg_ckpt::inspect_deferred`]): cut each file, find the layout, and list
/// the logical tensors and training metadata.
pub fn inspect_tree(files: &[TreeFile<'_>]) -> Result<TreeCheckpoint, TreeError> {
    if files.is_empty() {
        return Err(TreeError::Empty);
    }
    let mut reading = read::Reading::new(files)?;
    // DCP checkpoints first: their data files are cut by what `.metadata` says.
    reading.read_dcps()?;
    reading.read_other_files()?;
    let hf = hf::read(&reading.path_of, &reading.bytes_of, &reading.reads, &reading.index)?;
    let units = layout::find_units(&layout::Tree {
        paths: &reading.path_of,
        index: &reading.index,
        bytes: &reading.bytes_of,
        reads: &reading.reads,
        dcp: &reading.dcp_dirs,
        hf_dirs: &hf.dirs,
    });
    let (layout, unit) = layout::choose(&units);
    let tensors = reading.logical_tensors(&hf, &units)?;
    let training = reading.training(layout, unit)?;
    let notes = std::mem::take(&mut reading.notes);
    let files = reading.into_files();
    let mut globals: Vec<GlobalVerdict> = Vec::new();
    let mut seen = BTreeSet::new();
    for g in files.iter().flat_map(|f| &f.globals) {
        if seen.insert(g.global.clone()) {
            globals.push(g.clone());
        }
    }
    Ok(TreeCheckpoint {
        layout,
        files,
        tensors,
        epoch: match &training.trainer {
            Some(t) => t.epoch,
            None => training.meta.epoch.map(|e| e as f64),
        },
        meta: training.meta,
        globals,
        model_config: training.model_config,
        trainer: training.trainer,
        notes,
    })
}
