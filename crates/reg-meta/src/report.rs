//! The JSON shapes `reg` prints (`show`, `log`, `ls`, `stats`), as types.
//! These are a contract for scripts (docs/cli.md); add fields, never rename.

use crate::error::RegistryError;
use crate::ids::{FileHash, ModelName, SourceName, VersionId};
use crate::index::VersionRecord;
use crate::registry::Registry;
use crate::resolve::Resolved;
use reg_ckpt::meta::{ModelCheckpointState, OptimizerSummary, SchedulerSummary};
use reg_ckpt::safety::GlobalVerdict;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;

/// A tensor in `reg show --json`.
#[derive(Clone, Debug, Serialize)]
pub struct TensorView {
    /// Place in the object tree.
    pub path: String,
    /// torch dtype name.
    pub dtype: String,
    /// Sizes.
    pub shape: Vec<u64>,
    /// Strides in elements.
    pub stride: Vec<u64>,
    /// Offset in elements.
    pub storage_offset: u64,
    /// Storage key.
    pub storage_key: String,
    /// Blob id of the storage bytes.
    pub blob: String,
    /// weight / optimizer / other.
    pub role: reg_ckpt::tensors::Role,
    /// requires_grad as saved.
    pub requires_grad: bool,
    /// Saved as nn.Parameter.
    pub parameter: bool,
}

/// `reg show --json`.
#[derive(Clone, Debug, Serialize)]
pub struct ShowView {
    /// Model name.
    pub name: ModelName,
    /// Version number.
    pub version: u32,
    /// Version id.
    pub id: String,
    /// Tags pointing here.
    pub tags: Vec<String>,
    /// Push time (Unix seconds).
    pub created: u64,
    /// Source file name.
    pub source: SourceName,
    /// Message.
    pub message: Option<String>,
    /// File format.
    pub format: &'static str,
    /// File size.
    pub size: u64,
    /// Whole-file blake3.
    pub blake3: FileHash,
    /// `epoch`.
    pub epoch: Option<i64>,
    /// `global_step`.
    pub global_step: Option<i64>,
    /// Lightning version.
    pub lightning_version: Option<String>,
    /// `hparams_name`.
    pub hparams_name: Option<String>,
    /// `hyper_parameters` as JSON.
    pub hyper_parameters: Option<Value>,
    /// Datamodule hyperparameters.
    pub datamodule_hyper_parameters: Option<Value>,
    /// Optimizers.
    pub optimizers: Vec<OptimizerSummary>,
    /// LR schedulers.
    pub schedulers: Vec<SchedulerSummary>,
    /// ModelCheckpoint state.
    pub model_checkpoint: Option<ModelCheckpointState>,
    /// safetensors `__metadata__`.
    pub safetensors_metadata: Option<Value>,
    /// Top-level keys.
    pub top_keys: Vec<String>,
    /// Globals named by the pickle, with verdicts.
    pub globals: Vec<GlobalVerdict>,
    /// Set when retention dropped optimizer state: the version pulls as a
    /// weights-only file; this says what the original was.
    pub optimizer_dropped: Option<crate::manifest::DroppedFrom>,
    /// Distinct storages.
    pub storages: usize,
    /// How the version's blobs are stored.
    pub stored: StoredView,
    /// Every tensor.
    pub tensors: Vec<TensorView>,
}

/// How a version's blobs are stored (part of [`ShowView`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct StoredView {
    /// Blobs the version needs (skeleton and payloads).
    pub blobs: usize,
    /// Bytes of their files (shared blobs counted in full).
    pub stored_bytes: u64,
    /// Of them, blobs stored as deltas against another blob.
    pub deltas: usize,
    /// The longest chain of parents one of its blobs decodes through.
    pub longest_chain: usize,
}

/// One line of `reg log --json`.
#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    /// Version number.
    pub version: u32,
    /// Version id (hex).
    #[serde(with = "crate::ids::hex_version_id")]
    pub id: VersionId,
    /// Tags.
    pub tags: Vec<String>,
    /// Push time.
    pub created: u64,
    /// File size.
    pub size: u64,
    /// Source file.
    pub source: SourceName,
    /// Epoch.
    pub epoch: Option<i64>,
    /// Global step.
    pub global_step: Option<i64>,
    /// Message.
    pub message: Option<String>,
    /// Number of tensors.
    pub tensors: u64,
    /// Optimizer state dropped by retention (pulls as weights only).
    pub optimizer_dropped: bool,
}

/// One line of `reg ls --json`.
#[derive(Clone, Debug, Serialize)]
pub struct NameEntry {
    /// Model name.
    pub name: ModelName,
    /// Number of versions.
    pub versions: u32,
    /// Newest version number.
    pub latest: u32,
}

/// `reg stats --json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StatsView {
    /// Model names.
    pub names: usize,
    /// Versions.
    pub versions: usize,
    /// Blobs the index lists.
    pub blobs: usize,
    /// Sum of pushed file sizes.
    pub logical_bytes: u64,
    /// Raw bytes of all distinct blobs.
    pub unique_bytes: u64,
    /// Bytes of blob files on disk.
    pub stored_bytes: u64,
    /// Blob counts and stored bytes per codec.
    pub codecs: std::collections::BTreeMap<String, (u64, u64)>,
}

impl Registry {
    /// Tags of `name` by version number.
    fn tags_of(&self, name: &str, number: u32) -> Result<Vec<String>, RegistryError> {
        Ok(self
            .index
            .tags(name)?
            .into_iter()
            .filter(|(_, n)| *n == number)
            .map(|(t, _)| t)
            .collect())
    }

    /// The `show` view of a version.
    pub fn show_view(&self, v: &Resolved) -> Result<ShowView, RegistryError> {
        let m = &v.manifest;
        let storages: HashSet<&str> = m.tensors.iter().map(|t| t.storage_key.as_str()).collect();
        // Damage is verify's to report: a blob that cannot be described
        // is left out here.
        let mut stored = StoredView::default();
        for id in m.blobs() {
            let (Ok(info), Ok(len)) = (self.store.describe(id), self.store.stored_len(id)) else {
                continue;
            };
            stored.blobs += 1;
            stored.stored_bytes += len;
            if info.parent.is_some() {
                stored.deltas += 1;
                let links = self.store.chain(id).map(|c| c.len()).unwrap_or(0);
                stored.longest_chain = stored.longest_chain.max(links);
            }
        }
        Ok(ShowView {
            name: m.name.clone(),
            version: m.number,
            id: v.record.id.to_hex(),
            tags: self.tags_of(&m.name, m.number)?,
            created: m.created,
            source: m.source.clone(),
            message: m.message.clone(),
            format: m.format.name(),
            size: m.size,
            blake3: m.blake3,
            epoch: m.meta.epoch,
            global_step: m.meta.global_step,
            lightning_version: m.meta.lightning_version.clone(),
            hparams_name: m.meta.hparams_name.clone(),
            hyper_parameters: m.meta.hyper_parameters.clone(),
            datamodule_hyper_parameters: m.meta.datamodule_hyper_parameters.clone(),
            optimizers: m.meta.optimizers.clone(),
            schedulers: m.meta.schedulers.clone(),
            model_checkpoint: m.meta.model_checkpoint.clone(),
            safetensors_metadata: m.meta.safetensors_metadata.clone(),
            top_keys: m.meta.top_keys.clone(),
            globals: m.globals.clone(),
            optimizer_dropped: m.optimizer_dropped.clone(),
            storages: storages.len(),
            stored,
            tensors: m
                .tensors
                .iter()
                .map(|t| TensorView {
                    path: t.path.clone(),
                    dtype: t.dtype.name().to_string(),
                    shape: t.shape.clone(),
                    stride: t.stride.clone(),
                    storage_offset: t.storage_offset,
                    storage_key: t.storage_key.clone(),
                    blob: t.blob.to_hex(),
                    role: t.role,
                    requires_grad: t.requires_grad,
                    parameter: t.parameter,
                })
                .collect(),
        })
    }

    /// The `log` view of a name, oldest first.
    pub fn log_view(&self, name: &str) -> Result<Vec<LogEntry>, RegistryError> {
        let tags = self.index.tags(name)?;
        Ok(self
            .versions(name)?
            .into_iter()
            .map(|v: VersionRecord| LogEntry {
                version: v.number,
                id: v.id,
                tags: tags
                    .iter()
                    .filter(|(_, n)| *n == v.number)
                    .map(|(t, _)| t.clone())
                    .collect(),
                created: v.created,
                size: v.size,
                source: v.source,
                epoch: v.epoch,
                global_step: v.global_step,
                message: v.message,
                tensors: v.tensor_count,
                optimizer_dropped: v.optimizer_dropped,
            })
            .collect())
    }

    /// The `ls` view.
    pub fn ls_view(&self) -> Result<Vec<NameEntry>, RegistryError> {
        let mut out = Vec::new();
        for (name, count) in self.names()? {
            let latest = self.index.versions(&name)?.last().map(|v| v.number).unwrap_or(0);
            out.push(NameEntry {
                name,
                versions: count,
                latest,
            });
        }
        Ok(out)
    }

    /// Registry-wide numbers.
    pub fn stats(&self) -> Result<StatsView, RegistryError> {
        let names = self.names()?;
        let mut versions = 0usize;
        let mut logical = 0u64;
        for (name, _) in &names {
            for v in self.index.versions(name)? {
                versions += 1;
                logical += v.size;
            }
        }
        let blobs = self.index.blob_records()?;
        let mut codecs = std::collections::BTreeMap::new();
        for (_, r) in &blobs {
            let e: &mut (u64, u64) = codecs.entry(r.codec.clone()).or_default();
            e.0 += 1;
            e.1 += r.stored_len;
        }
        Ok(StatsView {
            names: names.len(),
            versions,
            blobs: blobs.len(),
            logical_bytes: logical,
            unique_bytes: blobs.iter().map(|(_, r)| r.raw_len).sum(),
            stored_bytes: blobs.iter().map(|(_, r)| r.stored_len).sum(),
            codecs,
        })
    }
}
