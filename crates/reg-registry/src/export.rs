//! New files made from a version: weights-only torch checkpoints and
//! safetensors exports. Unlike pull, these are written by reg's own writers
//! (`reg_write`), streaming tensor bytes out of the blob store.

use crate::error::{ReadError, RegistryError};
use crate::output::OutputFile;
use crate::registry::Registry;
use crate::resolve::Resolved;
use crate::select::ExportScope;
use reg_format::manifest::Manifest;
use reg_format::manifest::VersionFormat;
use reg_pickle::PickleGraph;
use reg_store::BlobId;
use reg_write::{Emit, ExportTensor, TensorRef, WeightsOnly};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What to make of a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// A torch zip keeping what Lightning's `save_weights_only=True` keeps
    /// (for a plain state dict: the state dict), loadable with
    /// `torch.load(weights_only=True)`.
    WeightsOnly,
    /// The state dict (or flat tensor dict) as safetensors, with epoch,
    /// global step and hyperparameters in `__metadata__`.
    Safetensors,
    /// [`ExportFormat::Safetensors`] with only model weights (for a
    /// directory version: tensors whose role is a weight; a file's state
    /// dict is that already).
    SafetensorsWeights,
}

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct ExportReport {
    /// The file written.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Tensors in it.
    pub tensors: usize,
}

/// The part of a safetensors file a scope asks for.
pub(crate) fn part_of(scope: ExportScope<'_>) -> reg_write::SafetensorsPart {
    if scope.header_only {
        reg_write::SafetensorsPart::Header
    } else {
        reg_write::SafetensorsPart::Whole
    }
}

/// Told where a storage's bytes begin and end in an export as it is
/// written: retention streams a weights-only export into the store and
/// takes those bytes as the blobs they came from.
pub(crate) trait StorageMarks {
    /// The bytes written next are storage `id`'s.
    fn begin(&self, id: BlobId);
    /// The storage begun last is written whole (or its copy failed).
    fn end(&self);
}

/// The export's writer refused `label`'s version for `e`.
pub(crate) fn export_err(label: &str, e: impl std::fmt::Display) -> RegistryError {
    ReadError::Export {
        version: label.to_string(),
        reason: e.to_string(),
    }
    .into()
}

/// The default file name for an export of `m`.
pub fn default_name(m: &Manifest, format: ExportFormat) -> String {
    let stem = Path::new(&m.source)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| m.name.to_string());
    match format {
        ExportFormat::WeightsOnly => format!("{stem}.weights.ckpt"),
        ExportFormat::Safetensors | ExportFormat::SafetensorsWeights => format!("{stem}.safetensors"),
    }
}

impl Registry {
    /// The version's object pickle, re-read from its skeleton.
    fn object_graph(&self, m: &Manifest, label: &str) -> Result<PickleGraph, RegistryError> {
        let (start, end) = m
            .pickle
            .and_then(|(s, e)| m.skeleton_range(s, e))
            .ok_or_else(|| export_err(label, "the manifest does not locate its pickle"))?;
        let skeleton = self.store.read(m.skeleton).map_err(|source| RegistryError::Damaged {
            version: label.to_string(),
            source,
        })?;
        let bytes = skeleton
            .get(start as usize..end as usize)
            .ok_or_else(|| export_err(label, "pickle outside the skeleton"))?;
        reg_pickle::parse(bytes, &reg_pickle::Limits::default()).map_err(|e| export_err(label, e))
    }

    /// Write a new file from version `v` in `format` to `out` (appearing
    /// whole or not at all).
    pub fn export(
        &self,
        v: &Resolved,
        format: ExportFormat,
        out: &Path,
        force: bool,
    ) -> Result<ExportReport, RegistryError> {
        self.export_scoped(v, format, ExportScope::default(), out, force)
    }

    /// [`Registry::export`] of part of the version (some tensors, or the
    /// safetensors header only: [`ExportScope`]).
    pub fn export_scoped(
        &self,
        v: &Resolved,
        format: ExportFormat,
        scope: ExportScope<'_>,
        out: &Path,
        force: bool,
    ) -> Result<ExportReport, RegistryError> {
        let mut output = OutputFile::create(out, force, false)?;
        let tensors = {
            let mut w = BufWriter::with_capacity(1 << 20, output.file());
            let tensors = self.export_to_scoped(v, format, scope, &mut w)?;
            w.flush().map_err(RegistryError::io("writing", out))?;
            tensors
        };
        let bytes = output.file().metadata().map(|md| md.len()).unwrap_or(0);
        let path = output.commit()?;
        Ok(ExportReport { path, bytes, tensors })
    }

    /// Write a new file from version `v` in `format` into `w` (a pipe, a
    /// socket), streaming; returns the number of tensors written. On an
    /// error what was written is incomplete and must be discarded.
    pub fn export_to(&self, v: &Resolved, format: ExportFormat, w: &mut dyn Write) -> Result<usize, RegistryError> {
        self.export_to_scoped(v, format, ExportScope::default(), w)
    }

    /// [`Registry::export_to`] of part of the version ([`ExportScope`]):
    /// only the chosen tensors' blobs are read, none for a header.
    pub fn export_to_scoped(
        &self,
        v: &Resolved,
        format: ExportFormat,
        scope: ExportScope<'_>,
        w: &mut dyn Write,
    ) -> Result<usize, RegistryError> {
        self.export_to_marked(v, format, scope, w, None)
    }

    /// [`Registry::export_to_scoped`], telling `marks` where each
    /// storage's bytes begin and end in what it writes to `w` (a
    /// weights-only export of a file version; `w` must not buffer).
    pub(crate) fn export_to_marked(
        &self,
        v: &Resolved,
        format: ExportFormat,
        scope: ExportScope<'_>,
        w: &mut dyn Write,
        marks: Option<&dyn StorageMarks>,
    ) -> Result<usize, RegistryError> {
        let m = &v.manifest;
        let label = m.label().to_string();
        if format == ExportFormat::WeightsOnly && (scope.tensors.is_some() || scope.header_only) {
            return Err(crate::select::SelectionError::NotSafetensors { version: label }.into());
        }
        if m.is_directory() {
            return self.export_tree_to(m, &label, format, scope, w);
        }
        let blobs: HashMap<&str, BlobId> = m
            .tensors
            .iter()
            .filter_map(|t| Some((t.storage_key.as_str(), t.blob?)))
            .collect();
        let damaged = |source| RegistryError::Damaged {
            version: label.clone(),
            source,
        };
        let blob_of = |key: &str| {
            blobs
                .get(key)
                .copied()
                .ok_or_else(|| std::io::Error::other(format!("no blob for storage {key}")))
        };
        // Store errors inside the writers' I/O callbacks are kept here so
        // damage is reported as damage, not as a write error.
        let mut store_error = None;
        let tensors = match format {
            ExportFormat::WeightsOnly => {
                let tree = match m.format {
                    VersionFormat::Safetensors => flat_tree(m),
                    _ => reg_write::weights_only(&self.object_graph(m, &label)?).map_err(|e| export_err(&label, e))?,
                };
                let mut fill = |key: &str, w: &mut dyn Write| -> std::io::Result<()> {
                    let id = blob_of(key)?;
                    if let Some(marks) = marks {
                        marks.begin(id);
                    }
                    let copied = self.store.copy_to(id, w).map(|_| ()).map_err(|e| {
                        let msg = e.to_string();
                        store_error = Some(e);
                        std::io::Error::other(msg)
                    });
                    if let Some(marks) = marks {
                        marks.end();
                    }
                    copied
                };
                let written = tree.write_torch(w, "archive", &mut fill);
                if let Some(e) = store_error.take() {
                    return Err(damaged(e));
                }
                written.map_err(|e| export_err(&label, e))?;
                tree.storages.len()
            }
            ExportFormat::Safetensors | ExportFormat::SafetensorsWeights => {
                let mut tensors = state_dict_tensors(m);
                if m.format != VersionFormat::Safetensors {
                    self.refuse_composites(m, &label, &tensors)?;
                }
                if let Some(chosen) = scope.tensors {
                    tensors = chosen.keep(&label, tensors, |t| t.name.as_str())?;
                }
                let metadata = safetensors_metadata(m);
                let mut read = |key: &str| -> std::io::Result<Vec<u8>> {
                    let id = blob_of(key)?;
                    self.store.read(id).map_err(|e| {
                        let msg = e.to_string();
                        store_error = Some(e);
                        std::io::Error::other(msg)
                    })
                };
                let written = reg_write::write_safetensors_part(w, &tensors, &metadata, &mut read, part_of(scope));
                if let Some(e) = store_error.take() {
                    return Err(damaged(e));
                }
                written.map_err(|e| export_err(&label, e))?;
                tensors.len()
            }
        };
        Ok(tensors)
    }
}

impl Registry {
    /// Refuse a safetensors export that would hold the parts of a sparse
    /// or nested tensor (`sp/indices`, `sp/values`) as if they were tensors
    /// of their own, as the official writer refuses them; the pickle says
    /// which tensors are such parts.
    pub(crate) fn refuse_composites(
        &self,
        m: &Manifest,
        label: &str,
        tensors: &[ExportTensor],
    ) -> Result<(), RegistryError> {
        let graph = self.object_graph(m, label)?;
        let composites = reg_ckpt::tensors::find_composites(&graph).map_err(|e| export_err(label, e))?;
        if composites.is_empty() {
            return Ok(());
        }
        let has_state_dict = m.meta.top_keys.iter().any(|k| k == "state_dict");
        for c in composites {
            let name = if has_state_dict {
                match c.path.strip_prefix("state_dict/") {
                    Some(n) => n.to_string(),
                    None => continue,
                }
            } else {
                c.path.clone()
            };
            let inside = |t: &ExportTensor| t.name.strip_prefix(name.as_str()).is_some_and(|r| r.starts_with('/'));
            if tensors.iter().any(inside) {
                return Err(export_err(
                    label,
                    format!(
                        "tensor {}: a {} tensor, which safetensors cannot hold (make it dense first)",
                        name.escape_debug(),
                        c.kind
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A safetensors file's tensors as a flat `OrderedDict` of tensors, each
/// viewing its own storage.
fn flat_tree(m: &Manifest) -> WeightsOnly {
    let mut items = Vec::new();
    let mut storages = Vec::new();
    for t in &m.tensors {
        let numel: u64 = t.shape.iter().product();
        items.push((
            Emit::Str(t.path.clone()),
            Emit::Tensor(TensorRef {
                storage_key: t.storage_key.clone(),
                dtype: t.dtype,
                storage_numel: numel,
                offset: 0,
                shape: t.shape.clone(),
                stride: t.stride.clone(),
                requires_grad: false,
            }),
        ));
        storages.push((t.storage_key.clone(), t.dtype, numel));
    }
    WeightsOnly {
        root: Emit::OrderedDict(items),
        storages,
    }
}

/// The tensors a safetensors export holds: the Lightning `state_dict`
/// (names without the `state_dict/` prefix) when there is one, else every
/// tensor, named by its path.
pub(crate) fn state_dict_tensors(m: &Manifest) -> Vec<ExportTensor> {
    let has_state_dict = m.meta.top_keys.iter().any(|k| k == "state_dict");
    m.tensors
        .iter()
        .filter_map(|t| {
            let name = if has_state_dict {
                t.path.strip_prefix("state_dict/")?.to_string()
            } else {
                t.path.clone()
            };
            Some(ExportTensor {
                name,
                dtype: t.dtype,
                shape: t.shape.clone(),
                stride: t.stride.clone(),
                offset: t.storage_offset,
                storage_key: t.storage_key.clone(),
                meta: t.meta,
            })
        })
        .collect()
}

/// `__metadata__` of a safetensors export: the source's own metadata (for
/// a safetensors source), `format: pt`, and epoch, global step and
/// hyperparameters (JSON) when the checkpoint has them; for a directory
/// version, its layout as `reg_layout`.
pub(crate) fn safetensors_metadata(m: &Manifest) -> BTreeMap<String, String> {
    let mut md = BTreeMap::new();
    if let Some(serde_json::Value::Object(src)) = &m.meta.safetensors_metadata {
        for (k, v) in src {
            md.insert(k.clone(), v.as_str().map(String::from).unwrap_or_else(|| v.to_string()));
        }
    }
    md.entry("format".into()).or_insert_with(|| "pt".into());
    if let Some(t) = &m.tree {
        md.insert("reg_layout".into(), t.layout.name().to_string());
    }
    if let Some(e) = m.meta.epoch {
        md.insert("epoch".into(), e.to_string());
    }
    if let Some(s) = m.meta.global_step {
        md.insert("global_step".into(), s.to_string());
    }
    if let Some(h) = &m.meta.hyper_parameters {
        // As Python's json.dumps writes it (NaN, Infinity): json.loads
        // gives the hyperparameters back, non-finite floats included.
        md.insert("hyper_parameters".into(), reg_ckpt::exact_json::to_python_json(h));
    }
    if let Some(v) = &m.meta.lightning_version {
        md.insert("pytorch-lightning_version".into(), v.clone());
    }
    md
}
