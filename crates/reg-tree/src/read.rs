//! The steps of [`inspect_tree`](super::inspect_tree): DCP checkpoints,
//! then every other file, then the logical tensors and the training
//! metadata of the checkpoint the layout comes from.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::dcp::{self, Dcp};
use super::files::{self, Read, TorchObject};
use super::hf::{self, HfModels};
use super::layout::{Layout, Unit, UnitKind};
use super::{
    dcp_metadata, deepspeed, lightning_sharded, paths, trainer, FileCheckpoint, LogicalTensor, TrainerState, TreeError,
    TreeFile,
};
use reg_ckpt::meta::CheckpointMeta;
use reg_ckpt::safety::GlobalVerdict;
use reg_ckpt::tensors::{Role, TensorInfo};
use reg_ckpt::InspectError;

/// A tree being read: its files and what each step found.
pub(super) struct Reading<'a> {
    /// Every path, in input order.
    pub path_of: Vec<&'a str>,
    /// Every file's bytes.
    pub bytes_of: Vec<&'a [u8]>,
    /// Position of each path.
    pub index: HashMap<&'a str, usize>,
    /// The DCP checkpoints.
    pub dcps: Vec<Dcp>,
    /// DCP `.metadata` files by folder.
    pub dcp_dirs: BTreeMap<String, usize>,
    /// Globals of each `.metadata`, by tree index.
    metadata_globals: HashMap<usize, Vec<GlobalVerdict>>,
    /// DCP data files, cut, by tree index.
    claimed: HashMap<usize, FileCheckpoint>,
    /// Every other file read by its own format (`None` for DCP files).
    pub reads: Vec<Option<Read>>,
    /// Notes for [`super::TreeCheckpoint::notes`].
    pub notes: Vec<String>,
}

/// The training metadata of the tree.
pub(super) struct Training {
    /// What [`super::TreeCheckpoint::meta`] holds.
    pub meta: CheckpointMeta,
    /// A Trainer checkpoint's state.
    pub trainer: Option<TrainerState>,
    /// `config.json` of the checkpoint's folder.
    pub model_config: Option<Value>,
}

impl<'a> Reading<'a> {
    /// Check the paths and start.
    pub fn new(files: &[TreeFile<'a>]) -> Result<Self, TreeError> {
        Ok(Reading {
            index: paths::index(files.iter().map(|f| f.path))?,
            path_of: files.iter().map(|f| f.path).collect(),
            bytes_of: files.iter().map(|f| f.bytes).collect(),
            dcps: Vec::new(),
            dcp_dirs: BTreeMap::new(),
            metadata_globals: HashMap::new(),
            claimed: HashMap::new(),
            reads: Vec::new(),
            notes: Vec::new(),
        })
    }

    /// Read every DCP `.metadata` (one must be DCP's when `.distcp` files
    /// sit beside it) and cut the data files it names.
    pub fn read_dcps(&mut self) -> Result<(), TreeError> {
        let sources: Vec<(&str, &[u8])> = self
            .path_of
            .iter()
            .copied()
            .zip(self.bytes_of.iter().copied())
            .collect();
        let distcp_dirs: BTreeSet<&str> = self
            .path_of
            .iter()
            .filter(|p| p.ends_with(".distcp"))
            .map(|p| paths::parent(p))
            .collect();
        for (i, path) in self.path_of.iter().enumerate() {
            let dir = paths::parent(path);
            let bytes = self.bytes_of[i];
            if paths::file_name(path) != ".metadata" || !(distcp_dirs.contains(dir) || dcp_metadata::looks_like(bytes))
            {
                continue;
            }
            let md = dcp_metadata::read(bytes).map_err(|reason| TreeError::NotDcpMetadata {
                path: (*path).to_owned(),
                reason,
            })?;
            self.metadata_globals.insert(i, md.globals.clone());
            self.dcp_dirs.insert(dir.to_owned(), i);
            let mut d = dcp::read(path, md, &self.index, &sources)?;
            for (at, file) in std::mem::take(&mut d.data.files) {
                if self.claimed.insert(at, file).is_some() {
                    return Err(TreeError::DcpShared {
                        file: self.path_of[at].to_owned(),
                    });
                }
            }
            self.dcps.push(d);
        }
        Ok(())
    }

    /// Read every file the DCPs did not claim by its own format. A
    /// `trainer_state.json` that is not JSON is an error: the Trainer
    /// checkpoint is broken.
    pub fn read_other_files(&mut self) -> Result<(), TreeError> {
        for (i, path) in self.path_of.iter().enumerate() {
            let bytes = self.bytes_of[i];
            if self.claimed.contains_key(&i) || self.metadata_globals.contains_key(&i) {
                self.reads.push(None);
            } else if path.ends_with(".distcp") {
                self.notes
                    .push(format!("{path}: no DCP .metadata names this data file; stored whole"));
                self.reads.push(Some(files::whole(path, bytes)));
            } else {
                if paths::file_name(path) == "trainer_state.json" {
                    if let Err(e) = reg_ckpt::exact_json::parse(bytes) {
                        return Err(TreeError::Json {
                            path: (*path).to_owned(),
                            reason: e.to_string(),
                        });
                    }
                }
                self.reads.push(Some(files::read(path, bytes)?));
            }
        }
        Ok(())
    }

    /// Every logical tensor, sorted by name, each checked to tile its shape.
    pub fn logical_tensors(&mut self, hf: &HfModels, units: &[Unit]) -> Result<Vec<LogicalTensor>, TreeError> {
        let mut tensors = Vec::new();
        for d in &self.dcps {
            let (found, unlisted) = d.logical_tensors();
            tensors.extend(found);
            self.notes.extend(unlisted);
            for (_, at, t) in &d.data.inner_tensors {
                tensors.push(whole_tensor(paths::in_unit(&d.dir, &t.path), *at, t, Role::Other));
            }
        }
        tensors.extend(hf.tensors.iter().cloned());
        // Lightning's meta.pt is the checkpoint's metadata: its tensors are
        // callback metric values, read into the metadata.
        let metadata_files: BTreeSet<usize> = units
            .iter()
            .filter_map(|u| match u.kind {
                UnitKind::LightningSharded { meta_pt, .. } => Some(meta_pt),
                _ => None,
            })
            .collect();
        for (i, read) in self.reads.iter().enumerate() {
            let Some(ckpt) = read.as_ref().and_then(|r| r.ckpt.as_ref()) else {
                continue;
            };
            if hf.weight_files.contains(&i) || metadata_files.contains(&i) {
                continue;
            }
            let keys = top_keys(read);
            let optimizer_file = deepspeed::is_optim_states(paths::file_name(self.path_of[i]), keys)
                || (keys.iter().any(|k| k == "state") && keys.iter().any(|k| k == "param_groups"));
            for t in &ckpt.tensors {
                let role = if optimizer_file { Role::Optimizer } else { t.role };
                tensors.push(whole_tensor(format!("{}:{}", self.path_of[i], t.path), i, t, role));
            }
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in tensors.windows(2) {
            if let [a, b] = pair {
                if a.name == b.name {
                    return Err(TreeError::DuplicateTensor {
                        name: a.name.clone(),
                        first: chunk_files(a, &self.path_of),
                        second: chunk_files(b, &self.path_of),
                    });
                }
            }
        }
        for t in &tensors {
            t.check_tiling().map_err(|source| TreeError::Tiling {
                files: chunk_files(t, &self.path_of),
                source: Box::new(source),
            })?;
        }
        Ok(tensors)
    }

    /// The torch object of file `i`, parsed again (`None` for files that are
    /// not torch files).
    fn open(&self, i: usize) -> Result<Option<TorchObject<'a>>, TreeError> {
        let Some(ckpt) = self.reads[i].as_ref().and_then(|r| r.ckpt.as_ref()) else {
            return Ok(None);
        };
        TorchObject::open(self.bytes_of[i], ckpt).map_err(|e| TreeError::File {
            path: self.path_of[i].to_owned(),
            source: InspectError::Pickle(e),
        })
    }

    /// The file `name` in folder `dir`.
    fn in_dir(&self, dir: &str, name: &str) -> Option<usize> {
        paths::join(dir, name).and_then(|p| self.index.get(p.as_str()).copied())
    }

    /// The training metadata of the checkpoint the layout comes from.
    pub fn training(&self, layout: Layout, unit: Option<&Unit>) -> Result<Training, TreeError> {
        let mut out = Training {
            meta: CheckpointMeta::default(),
            trainer: None,
            model_config: None,
        };
        if let Some(unit) = unit {
            out.model_config = self
                .in_dir(&unit.dir, "config.json")
                .and_then(|i| hf::config(self.bytes_of[i]));
            let dcp_of = |dir: &str| self.dcps.iter().find(|d| d.dir == dir);
            match &unit.kind {
                UnitKind::Dcp { .. } => {
                    if let Some(d) = dcp_of(&unit.dir) {
                        out.meta = d.meta();
                    }
                }
                UnitKind::LightningSharded { meta_pt, .. } => {
                    let optimizers = dcp_of(&unit.dir).map(|d| d.meta().optimizers).unwrap_or_default();
                    if let Some(ckpt) = self.reads[*meta_pt].as_ref().and_then(|r| r.ckpt.as_ref()) {
                        out.meta = lightning_sharded::meta(&ckpt.meta, optimizers);
                    }
                }
                UnitKind::HfTrainer { state } => {
                    let object = |name: &str| -> Result<Option<TorchObject<'a>>, TreeError> {
                        Ok(self
                            .in_dir(&unit.dir, name)
                            .map(|i| self.open(i))
                            .transpose()?
                            .flatten())
                    };
                    let (args, optimizer, scheduler) = (
                        object("training_args.bin")?,
                        object("optimizer.pt")?,
                        object("scheduler.pt")?,
                    );
                    let files = trainer::TrainerFiles {
                        training_args: args.as_ref(),
                        optimizer: optimizer.as_ref(),
                        scheduler: scheduler.as_ref(),
                    };
                    let (state, meta) = trainer::read(self.path_of[*state], self.bytes_of[*state], &files)?;
                    out.meta = meta;
                    out.trainer = Some(state);
                }
                UnitKind::Deepspeed { tag_dir } => out.meta = self.deepspeed_meta(tag_dir)?,
                UnitKind::HfModel => {}
            }
        }
        if matches!(layout, Layout::HfModel | Layout::Files) {
            // A model or plain folder: the metadata of its one training
            // checkpoint file, if it has exactly one.
            let mut with_counters = self
                .reads
                .iter()
                .filter_map(|r| r.as_ref()?.ckpt.as_ref())
                .filter(|c| c.meta.epoch.is_some() || c.meta.global_step.is_some());
            if let (Some(only), None) = (with_counters.next(), with_counters.next()) {
                out.meta = only.meta.clone();
            }
        }
        Ok(out)
    }

    /// DeepSpeed metadata from the first model and optimizer states files
    /// (by path) of the tag folder.
    fn deepspeed_meta(&self, tag_dir: &str) -> Result<CheckpointMeta, TreeError> {
        let first = |pred: &dyn Fn(&str, &[String]) -> bool| {
            (0..self.path_of.len())
                .filter(|&i| paths::parent(self.path_of[i]) == tag_dir)
                .filter(|&i| pred(paths::file_name(self.path_of[i]), top_keys(&self.reads[i])))
                .min_by_key(|&i| self.path_of[i])
        };
        let Some(model) = first(&deepspeed::is_model_states) else {
            return Ok(CheckpointMeta::default());
        };
        let optim = first(&deepspeed::is_optim_states)
            .map(|i| self.open(i))
            .transpose()?
            .flatten();
        let model_meta = self.reads[model]
            .as_ref()
            .and_then(|r| r.ckpt.as_ref())
            .map(|c| &c.meta);
        Ok(match (self.open(model)?, model_meta) {
            (Some(object), Some(model_meta)) => deepspeed::meta(&object, model_meta, optim.as_ref()),
            _ => CheckpointMeta::default(),
        })
    }

    /// Every file's reading, in input order.
    pub fn into_files(mut self) -> Vec<FileCheckpoint> {
        let mut out = Vec::with_capacity(self.path_of.len());
        for (i, read) in std::mem::take(&mut self.reads).into_iter().enumerate() {
            let file = match (self.claimed.remove(&i), read) {
                (Some(file), _) => file,
                (None, Some(read)) => read.file,
                (None, None) => {
                    let mut file = FileCheckpoint::whole(self.path_of[i], self.bytes_of[i].len() as u64);
                    file.globals = self.metadata_globals.remove(&i).unwrap_or_default();
                    file
                }
            };
            out.push(file);
        }
        out
    }
}

/// The top-level keys of a torch file's object (empty for others).
fn top_keys(read: &Option<Read>) -> &[String] {
    read.as_ref()
        .and_then(|r| r.ckpt.as_ref())
        .map(|c| c.meta.top_keys.as_slice())
        .unwrap_or(&[])
}

/// A tensor of one file as a logical tensor of one chunk (none for a
/// meta tensor).
fn whole_tensor(name: String, file: usize, t: &TensorInfo, role: Role) -> LogicalTensor {
    LogicalTensor::of_file(name, file, t, role)
}

/// The files holding a tensor's chunks, for messages.
fn chunk_files(t: &LogicalTensor, path_of: &[&str]) -> String {
    let names: BTreeSet<&str> = t.chunks.iter().filter_map(|c| path_of.get(c.file).copied()).collect();
    names.into_iter().collect::<Vec<_>>().join(", ")
}
