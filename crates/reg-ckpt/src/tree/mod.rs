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
//! every torch file are read with the pickle machine.
//!
//! ```no_run
//! use reg_ckpt::tree::{inspect_tree, TreeFile};
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
mod trainer;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use chunks::{check_tiling, runs, Chunk, ChunkBox, Run, Runs, RunsError, TilingError};
pub use error::TreeError;
pub use layout::Layout;
pub use trainer::TrainerState;

use crate::meta::CheckpointMeta;
use crate::safety::GlobalVerdict;
use crate::segment::{Format, Segment};
use crate::tensors::{Role, TensorInfo};
use crate::DType;
use files::{Read, TorchObject};
use layout::UnitKind;

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
    /// order (see [`crate::cover`]); payload storage keys are unique within
    /// the file (`<item offset>/<key>` for DCP items).
    pub segments: Vec<Segment>,
    /// The file's tensors as `reg show` names tensors of a single file (for
    /// a DCP data file, each item's tensor by its fqn; tensors inside a
    /// bytes item as `fqn/PATH`).
    pub tensors: Vec<TensorInfo>,
    /// Payload CRC-32s left for the caller to check as it reads the
    /// payloads (see [`crate::inspect_deferred`]).
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
    /// The saved pieces, sorted by offsets; together they tile the shape.
    pub chunks: Vec<Chunk>,
}

impl LogicalTensor {
    /// Number of elements (saturating at `u64::MAX`).
    pub fn numel(&self) -> u64 {
        self.shape.iter().fold(1u64, |acc, &d| acc.saturating_mul(d))
    }

    /// Check every element is held by exactly one chunk (see
    /// [`check_tiling`]).
    pub fn check_tiling(&self) -> Result<(), TilingError> {
        check_tiling(&self.name, &self.shape, &self.chunks)
    }
}

/// Read every file of a directory checkpoint (payload CRCs deferred as in
/// [`crate::inspect_deferred`]): cut each file, find the layout, and list
/// the logical tensors and training metadata.
pub fn inspect_tree(files: &[TreeFile<'_>]) -> Result<TreeCheckpoint, TreeError> {
    if files.is_empty() {
        return Err(TreeError::Empty);
    }
    let index = paths::index(files.iter().map(|f| f.path))?;
    let path_of: Vec<&str> = files.iter().map(|f| f.path).collect();
    let bytes_of: Vec<&[u8]> = files.iter().map(|f| f.bytes).collect();
    let sources: Vec<(&str, &[u8])> = files.iter().map(|f| (f.path, f.bytes)).collect();
    let mut notes = Vec::new();

    // DCP checkpoints first: their data files are cut by what `.metadata` says.
    let distcp_dirs: BTreeSet<&str> = path_of
        .iter()
        .filter(|p| p.ends_with(".distcp"))
        .map(|p| paths::parent(p))
        .collect();
    let mut dcps = Vec::new();
    let mut dcp_dirs: BTreeMap<String, usize> = BTreeMap::new();
    let mut metadata_globals: HashMap<usize, Vec<GlobalVerdict>> = HashMap::new();
    for (i, path) in path_of.iter().enumerate() {
        let dir = paths::parent(path);
        if paths::file_name(path) != ".metadata"
            || !(distcp_dirs.contains(dir) || dcp_metadata::looks_like(bytes_of[i]))
        {
            continue;
        }
        let md = dcp_metadata::read(bytes_of[i]).map_err(|reason| TreeError::NotDcpMetadata {
            path: (*path).to_owned(),
            reason,
        })?;
        metadata_globals.insert(i, md.globals.clone());
        dcp_dirs.insert(dir.to_owned(), i);
        dcps.push(dcp::read(path, md, &index, &sources)?);
    }
    let mut claimed: HashMap<usize, FileCheckpoint> = HashMap::new();
    for d in &mut dcps {
        for (at, file) in std::mem::take(&mut d.data.files) {
            if claimed.insert(at, file).is_some() {
                return Err(TreeError::DcpShared {
                    file: path_of[at].to_owned(),
                });
            }
        }
    }

    // Every other file by its own format.
    let mut reads: Vec<Option<Read>> = Vec::with_capacity(files.len());
    for (i, path) in path_of.iter().enumerate() {
        if claimed.contains_key(&i) || metadata_globals.contains_key(&i) {
            reads.push(None);
        } else if path.ends_with(".distcp") {
            notes.push(format!("{path}: no DCP .metadata names this data file; stored whole"));
            reads.push(Some(files::whole(path, bytes_of[i])));
        } else {
            reads.push(Some(files::read(path, bytes_of[i])?));
        }
    }

    // A Trainer state that does not read is a broken checkpoint, not a file
    // to keep whole.
    for (i, path) in path_of.iter().enumerate() {
        if paths::file_name(path) == "trainer_state.json" {
            if let Err(e) = serde_json::from_slice::<Value>(bytes_of[i]) {
                return Err(TreeError::Json {
                    path: (*path).to_owned(),
                    reason: e.to_string(),
                });
            }
        }
    }
    let hf = hf::read(&path_of, &bytes_of, &reads, &index)?;
    let units = layout::find_units(&layout::Tree {
        paths: &path_of,
        index: &index,
        bytes: &bytes_of,
        reads: &reads,
        dcp: &dcp_dirs,
        hf_dirs: &hf.dirs,
    });
    let (layout, unit) = layout::choose(&units);

    // Logical tensors.
    let mut tensors = Vec::new();
    for d in &dcps {
        let (found, unlisted) = d.logical_tensors();
        tensors.extend(found);
        notes.extend(unlisted);
        for (_, at, t) in &d.data.inner_tensors {
            tensors.push(whole_tensor(paths::in_unit(&d.dir, &t.path), *at, t, Role::Other));
        }
    }
    tensors.extend(hf.tensors.iter().cloned());
    let metadata_files: BTreeSet<usize> = units
        .iter()
        .filter_map(|u| match u.kind {
            UnitKind::LightningSharded { meta_pt, .. } => Some(meta_pt),
            _ => None,
        })
        .collect();
    let optim_files: BTreeSet<usize> = (0..files.len())
        .filter(|&i| {
            let keys = top_keys(&reads[i]);
            deepspeed::is_optim_states(paths::file_name(path_of[i]), keys)
                || (keys.iter().any(|k| k == "state") && keys.iter().any(|k| k == "param_groups"))
        })
        .collect();
    for (i, read) in reads.iter().enumerate() {
        let Some(ckpt) = read.as_ref().and_then(|r| r.ckpt.as_ref()) else {
            continue;
        };
        if hf.weight_files.contains(&i) || metadata_files.contains(&i) {
            continue;
        }
        for t in &ckpt.tensors {
            let role = if optim_files.contains(&i) {
                Role::Optimizer
            } else {
                t.role
            };
            tensors.push(whole_tensor(format!("{}:{}", path_of[i], t.path), i, t, role));
        }
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in tensors.windows(2) {
        if let [a, b] = pair {
            if a.name == b.name {
                return Err(TreeError::DuplicateTensor {
                    name: a.name.clone(),
                    first: chunk_files(a, &path_of),
                    second: chunk_files(b, &path_of),
                });
            }
        }
    }
    for t in &tensors {
        t.check_tiling().map_err(|source| TreeError::Tiling {
            files: chunk_files(t, &path_of),
            source: Box::new(source),
        })?;
    }

    // Training metadata from the checkpoint the layout comes from.
    let mut meta = CheckpointMeta::default();
    let mut trainer_state = None;
    let mut model_config = None;
    let open = |i: usize| -> Result<Option<TorchObject<'_>>, TreeError> {
        let Some(ckpt) = reads[i].as_ref().and_then(|r| r.ckpt.as_ref()) else {
            return Ok(None);
        };
        TorchObject::open(bytes_of[i], ckpt).map_err(|e| TreeError::File {
            path: path_of[i].to_owned(),
            source: crate::InspectError::Pickle(e),
        })
    };
    let in_dir = |dir: &str, name: &str| paths::join(dir, name).and_then(|p| index.get(p.as_str()).copied());
    if let Some(unit) = unit {
        model_config = in_dir(&unit.dir, "config.json").and_then(|i| hf::config(bytes_of[i]));
        let dcp_of = |dir: &str| dcps.iter().find(|d| d.dir == dir);
        match &unit.kind {
            UnitKind::Dcp { .. } => {
                if let Some(d) = dcp_of(&unit.dir) {
                    meta = d.meta();
                }
            }
            UnitKind::LightningSharded { meta_pt, .. } => {
                let optimizers = dcp_of(&unit.dir).map(|d| d.meta().optimizers).unwrap_or_default();
                if let Some(ckpt) = reads[*meta_pt].as_ref().and_then(|r| r.ckpt.as_ref()) {
                    meta = lightning_sharded::meta(&ckpt.meta, optimizers);
                }
            }
            UnitKind::HfTrainer { state } => {
                let object = |name: &str| in_dir(&unit.dir, name).map(open).transpose().map(Option::flatten);
                let (args, optimizer, scheduler) = (
                    object("training_args.bin")?,
                    object("optimizer.pt")?,
                    object("scheduler.pt")?,
                );
                let (state, m) = trainer::read(
                    path_of[*state],
                    bytes_of[*state],
                    &trainer::TrainerFiles {
                        training_args: args.as_ref(),
                        optimizer: optimizer.as_ref(),
                        scheduler: scheduler.as_ref(),
                    },
                )?;
                meta = m;
                trainer_state = Some(state);
            }
            UnitKind::Deepspeed { tag_dir } => {
                let in_tag = |pred: &dyn Fn(&str, &[String]) -> bool| {
                    (0..files.len())
                        .filter(|&i| paths::parent(path_of[i]) == tag_dir)
                        .filter(|&i| pred(paths::file_name(path_of[i]), top_keys(&reads[i])))
                        .min_by_key(|&i| path_of[i])
                };
                let model = in_tag(&deepspeed::is_model_states);
                let optim = in_tag(&deepspeed::is_optim_states);
                if let Some(m) = model {
                    let model_meta = reads[m].as_ref().and_then(|r| r.ckpt.as_ref()).map(|c| c.meta.clone());
                    let optim_object = optim.map(open).transpose()?.flatten();
                    if let (Some(object), Some(model_meta)) = (open(m)?, model_meta) {
                        meta = deepspeed::meta(&object, &model_meta, optim_object.as_ref());
                    }
                }
            }
            UnitKind::HfModel => {}
        }
    } else {
        // A plain folder: the metadata of its one training checkpoint file.
        let mut with_counters = reads
            .iter()
            .filter_map(|r| r.as_ref()?.ckpt.as_ref())
            .filter(|c| c.meta.epoch.is_some() || c.meta.global_step.is_some());
        if let (Some(only), None) = (with_counters.next(), with_counters.next()) {
            meta = only.meta.clone();
        }
    }
    let epoch = match &trainer_state {
        Some(t) => t.epoch,
        None => meta.epoch.map(|e| e as f64),
    };

    // Files in input order, and every global once.
    let mut out_files = Vec::with_capacity(files.len());
    for (i, read) in reads.into_iter().enumerate() {
        let file = match (claimed.remove(&i), read) {
            (Some(file), _) => file,
            (None, Some(read)) => read.file,
            (None, None) => {
                let mut file = FileCheckpoint::whole(path_of[i], bytes_of[i].len() as u64);
                file.globals = metadata_globals.remove(&i).unwrap_or_default();
                file
            }
        };
        out_files.push(file);
    }
    let mut globals: Vec<GlobalVerdict> = Vec::new();
    let mut seen = BTreeSet::new();
    for g in out_files.iter().flat_map(|f| &f.globals) {
        if seen.insert(g.global.clone()) {
            globals.push(g.clone());
        }
    }
    Ok(TreeCheckpoint {
        layout,
        files: out_files,
        tensors,
        meta,
        globals,
        epoch,
        model_config,
        trainer: trainer_state,
        notes,
    })
}

/// The top-level keys of a torch file's object (empty for others).
fn top_keys(read: &Option<Read>) -> &[String] {
    read.as_ref()
        .and_then(|r| r.ckpt.as_ref())
        .map(|c| c.meta.top_keys.as_slice())
        .unwrap_or(&[])
}

/// A tensor of one file as a logical tensor of one chunk.
fn whole_tensor(name: String, file: usize, t: &TensorInfo, role: Role) -> LogicalTensor {
    LogicalTensor {
        name,
        dtype: t.dtype,
        shape: t.shape.clone(),
        role,
        chunks: vec![Chunk {
            file,
            offsets: vec![0; t.shape.len()],
            sizes: t.shape.clone(),
            storage_key: t.storage_key.clone(),
            storage_offset: t.storage_offset,
            stride: t.stride.clone(),
        }],
    }
}

/// The files holding a tensor's chunks, for messages.
fn chunk_files(t: &LogicalTensor, path_of: &[&str]) -> String {
    let names: BTreeSet<&str> = t.chunks.iter().filter_map(|c| path_of.get(c.file).copied()).collect();
    names.into_iter().collect::<Vec<_>>().join(", ")
}
