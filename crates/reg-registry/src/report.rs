//! The JSON shapes `reg` prints (`show`, `log`, `ls`, `stats`), as types.
//! These are a contract for scripts (docs/cli.md); add fields, never rename.

use crate::error::RegistryError;
use crate::registry::{model_name, versions_of, Registry};
use crate::resolve::Resolved;
use reg_ckpt::meta::CheckpointMeta;
use reg_ckpt::safety::GlobalVerdict;
use reg_format::ids::{FileHash, ModelName, SourceName, VersionId};
use reg_format::index::VersionRecord;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;

/// A tensor in `reg show --json`: the manifest's own entry (one
/// definition: what is stored is what is shown).
pub type TensorView = reg_format::manifest::TensorEntry;

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
    /// `epoch` (an integer; a directory version whose layout records a
    /// fractional epoch, as the Trainer does, shows it exactly).
    pub epoch: Option<serde_json::Number>,
    /// What the checkpoint says (step, hyperparameters, optimizers,
    /// schedulers, ModelCheckpoint state, scores, top-level keys), as the
    /// manifest records it; written without its `epoch`, which
    /// [`ShowView::epoch`] writes.
    #[serde(flatten, serialize_with = "meta_without_epoch")]
    pub meta: CheckpointMeta,
    /// Globals named by the pickle, with verdicts.
    pub globals: Vec<GlobalVerdict>,
    /// Set when retention dropped optimizer state: the version pulls as a
    /// weights-only file; this says what the original was.
    pub optimizer_dropped: Option<reg_format::manifest::DroppedFrom>,
    /// Distinct storages.
    pub storages: usize,
    /// How the version's blobs are stored.
    pub stored: StoredView,
    /// Every tensor (for a directory version: every logical tensor).
    pub tensors: TensorsView,
    /// `"directory"` for a directory version (absent for a file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// What kind of checkpoint directory it is (`dcp`, `hf-trainer` ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<reg_tree::Layout>,
    /// A directory version's files, sorted by path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileView>>,
    /// The model configuration (`config.json`) of a Hugging Face directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_config: Option<Value>,
}

/// The tensors of [`ShowView`]: a file's tensors, or a directory's
/// logical tensors.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum TensorsView {
    /// Tensors of a file version.
    File(Vec<TensorView>),
    /// Logical tensors of a directory version.
    Directory(Vec<LogicalTensorView>),
}

impl TensorsView {
    /// How many tensors.
    pub fn len(&self) -> usize {
        match self {
            TensorsView::File(t) => t.len(),
            TensorsView::Directory(t) => t.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file of a directory version in `reg show --json`.
#[derive(Clone, Debug, Serialize)]
pub struct FileView {
    /// Path in the directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// How it is read (`torch-zip`, `safetensors`, `dcp-data`, `other` ...).
    pub format: &'static str,
    /// Its blake3.
    pub blake3: FileHash,
    /// The owner executable bit.
    pub executable: bool,
    /// Tensors in it.
    pub tensors: usize,
}

/// A logical tensor of a directory version in `reg show --json`.
#[derive(Clone, Debug, Serialize)]
pub struct LogicalTensorView {
    /// Its name: the state-dict key, or `FILE:PATH`.
    pub path: String,
    /// torch dtype name.
    pub dtype: String,
    /// Global shape.
    pub shape: Vec<u64>,
    /// weight / optimizer / other.
    pub role: reg_ckpt::tensors::Role,
    /// The saved pieces (none for a meta tensor).
    pub chunks: Vec<ChunkView>,
    /// On torch's `meta` device: no storage, no chunks. Written only when
    /// true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub meta: bool,
}

/// A chunk of a [`LogicalTensorView`].
#[derive(Clone, Debug, Serialize)]
pub struct ChunkView {
    /// The file holding it.
    pub file: String,
    /// Global offsets of its first element.
    pub offsets: Vec<u64>,
    /// Its sizes.
    pub sizes: Vec<u64>,
    /// Blob id of the storage holding it.
    pub blob: String,
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
    #[serde(with = "reg_format::ids::hex_version_id")]
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

/// `reg stats --json`. Each number can be checked against the others:
/// `content_bytes <= logical_bytes`, `content_stored_bytes +
/// metadata_stored_bytes + unreferenced_stored_bytes = stored_bytes`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StatsView {
    /// Model names.
    pub names: usize,
    /// Versions.
    pub versions: usize,
    /// Blobs the index lists.
    pub blobs: usize,
    /// Logical: the bytes of every version as files (what pulling them
    /// all would write).
    pub logical_bytes: u64,
    /// Raw bytes of every blob the index lists, manifests and blobs gc has
    /// not freed yet included (kept for scripts that read it; the text's
    /// "unique" is [`StatsView::content_bytes`]).
    pub unique_bytes: u64,
    /// Stored: bytes of every blob file (content, manifests and tree
    /// listings, and blobs no version needs until gc frees them).
    pub stored_bytes: u64,
    /// Blob counts and stored bytes per codec.
    pub codecs: std::collections::BTreeMap<String, (u64, u64)>,
    /// Unique: the distinct content of the versions after dedupe, before
    /// compression (each payload and skeleton blob a version needs, once);
    /// never more than `logical_bytes`.
    pub content_bytes: u64,
    /// Bytes of the blob files of that content, as compressed.
    pub content_stored_bytes: u64,
    /// Bytes of the manifest and tree-listing blob files.
    pub metadata_stored_bytes: u64,
    /// Blobs no version needs (freed by `gc`) and their stored bytes.
    pub unreferenced_blobs: usize,
    /// Stored bytes of those.
    pub unreferenced_stored_bytes: u64,
    /// What dedupe saves: `logical_bytes / content_bytes`.
    pub dedupe_ratio: f64,
    /// What compression saves: `content_bytes / content_stored_bytes`.
    pub compression_ratio: f64,
    /// Blobs fast pushes stored raw whose compression the background job
    /// has still to do (`reg deltas` runs it now); absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub deferred_blobs: usize,
}

impl Registry {
    /// Tags of `name` by version number.
    fn tags_of(&self, name: &ModelName, number: u32) -> Result<Vec<String>, RegistryError> {
        Ok(self
            .tags(name)?
            .into_iter()
            .filter(|(_, n)| *n == number)
            .map(|(t, _)| t.to_string())
            .collect())
    }

    /// How a version's blobs are stored (the `stored` part of `reg show`),
    /// from their headers. Damage is verify's to report: a blob that
    /// cannot be described is left out here.
    pub fn stored_view(&self, m: &crate::Manifest) -> StoredView {
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
        stored
    }

    /// The `show` view of a version.
    pub fn show_view(&self, v: &Resolved) -> Result<ShowView, RegistryError> {
        let m = &v.manifest;
        let storages = match &m.tree {
            None => m
                .tensors
                .iter()
                .filter(|t| !t.meta)
                .map(|t| t.storage_key.as_str())
                .collect::<HashSet<&str>>()
                .len(),
            Some(t) => t
                .tensors
                .iter()
                .flat_map(|t| t.chunks.iter().map(|c| c.blob))
                .collect::<HashSet<_>>()
                .len(),
        };
        let stored = self.stored_view(m);
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
            epoch: epoch_number(m),
            meta: m.meta.clone(),
            globals: m.globals.clone(),
            optimizer_dropped: m.optimizer_dropped.clone(),
            storages,
            stored,
            tensors: tensors_view(m),
            kind: m.tree.as_ref().map(|_| "directory"),
            layout: m.tree.as_ref().map(|t| t.layout),
            files: m.tree.as_ref().map(|t| {
                t.files
                    .iter()
                    .map(|f| FileView {
                        path: f.path.to_string(),
                        size: f.size,
                        format: f.format.name(),
                        blake3: f.blake3,
                        executable: f.executable,
                        tensors: f.tensors.len(),
                    })
                    .collect()
            }),
            model_config: m.tree.as_ref().and_then(|t| t.model_config.clone()),
        })
    }

    /// The `log` view of a name, oldest first.
    pub fn log_view(&self, name: &str) -> Result<Vec<LogEntry>, RegistryError> {
        let (versions, tags) = self.with_index(&format!("reg log of {name}"), |idx| {
            let name = model_name(idx, name)?;
            Ok((versions_of(idx, &name)?, idx.tags(&name)?))
        })?;
        Ok(versions
            .into_iter()
            .map(|v: VersionRecord| LogEntry {
                version: v.number.get(),
                id: v.id,
                tags: tags
                    .iter()
                    .filter(|(_, n)| *n == v.number)
                    .map(|(t, _)| t.to_string())
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
        self.with_index("reg ls", |idx| {
            let mut out: Vec<NameEntry> = Vec::new();
            for (name, rec) in idx.all_versions()? {
                match out.last_mut() {
                    Some(e) if e.name == name => {
                        e.versions += 1;
                        e.latest = e.latest.max(rec.number.get());
                    }
                    _ => out.push(NameEntry {
                        name,
                        versions: 1,
                        latest: rec.number.get(),
                    }),
                }
            }
            Ok(out)
        })
    }

    /// Registry-wide numbers.
    pub fn stats(&self) -> Result<StatsView, RegistryError> {
        let (all, blobs, content, metadata, deferred) = self.with_index("reg stats", |idx| {
            let all = idx.all_versions()?;
            // What each version's files are made of, and what describes them.
            let mut content: HashSet<reg_store::BlobId> = HashSet::new();
            let mut metadata: HashSet<reg_store::BlobId> = HashSet::new();
            for (name, rec) in &all {
                let m = idx.manifest(rec.id)?.ok_or_else(|| RegistryError::Damaged {
                    version: reg_format::ids::VersionLabel::new(name, rec.number).to_string(),
                    source: reg_store::StoreError::Missing(rec.id.blob()),
                })?;
                metadata.insert(rec.id.blob());
                if m.is_directory() {
                    metadata.insert(m.skeleton);
                }
                for f in m.files() {
                    content.insert(f.skeleton);
                    content.extend(f.pieces.iter().filter_map(|p| match p {
                        reg_format::manifest::Piece::Payload { blob, .. } => Some(*blob),
                        reg_format::manifest::Piece::Skeleton { .. } => None,
                    }));
                }
            }
            Ok((all, idx.blob_records()?, content, metadata, idx.deferred()?.len()))
        })?;
        let names: std::collections::BTreeSet<&ModelName> = all.iter().map(|(n, _)| n).collect();
        let logical: u64 = all.iter().map(|(_, v)| v.size).sum();
        let mut codecs = std::collections::BTreeMap::new();
        let (mut content_bytes, mut content_stored, mut metadata_stored) = (0u64, 0u64, 0u64);
        let (mut unreferenced, mut unreferenced_stored) = (0usize, 0u64);
        for (id, r) in &blobs {
            let e: &mut (u64, u64) = codecs.entry(r.codec.clone()).or_default();
            e.0 += 1;
            e.1 += r.stored_len;
            if content.contains(id) {
                content_bytes += r.raw_len;
                content_stored += r.stored_len;
            } else if metadata.contains(id) {
                metadata_stored += r.stored_len;
            } else {
                unreferenced += 1;
                unreferenced_stored += r.stored_len;
            }
        }
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Ok(StatsView {
            names: names.len(),
            versions: all.len(),
            blobs: blobs.len(),
            logical_bytes: logical,
            unique_bytes: blobs.iter().map(|(_, r)| r.raw_len).sum(),
            stored_bytes: blobs.iter().map(|(_, r)| r.stored_len).sum(),
            codecs,
            content_bytes,
            content_stored_bytes: content_stored,
            metadata_stored_bytes: metadata_stored,
            unreferenced_blobs: unreferenced,
            unreferenced_stored_bytes: unreferenced_stored,
            dedupe_ratio: ratio(logical, content_bytes),
            compression_ratio: ratio(content_bytes, content_stored),
            deferred_blobs: deferred,
        })
    }
}

/// `reg push --json`, for one file (a list of these for several files).
#[derive(Clone, Debug, Serialize)]
pub struct PushView {
    /// Model name.
    pub name: String,
    /// The version number (new, or the identical existing one).
    pub version: u32,
    /// Version id (hex).
    #[serde(with = "reg_format::ids::hex_version_id")]
    pub id: VersionId,
    /// False when the file was identical to an existing version.
    pub created: bool,
    /// The path pushed, as given.
    pub file: std::path::PathBuf,
    /// Tensors in the file.
    pub tensors: usize,
    /// Storage payloads in the file.
    pub payloads: usize,
    /// Payloads whose blob was new.
    pub new_payloads: usize,
    /// File size.
    pub logical_bytes: u64,
    /// Bytes of payload data that were new (raw).
    pub new_raw_bytes: u64,
    /// Bytes written to blob files (compressed, headers included).
    pub written_bytes: u64,
    /// New blobs stored as deltas against the `--parent` version's.
    pub deltas: usize,
    /// The previous version's re-encoding as deltas against this one.
    pub rebased: RebasedView,
    /// Globals of unknown safety (stored with a warning).
    pub unknown_globals: Vec<String>,
    /// New blobs a fast push stored uncompressed, for the background job
    /// to compress (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub deferred: usize,
    /// A directory's files: path, size, format and new payload bytes each
    /// (absent for a file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<crate::push::PushedFile>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The `rebased` part of [`PushView`].
#[derive(Clone, Debug, Serialize)]
pub struct RebasedView {
    /// The version whose blobs are (or will be) re-encoded.
    pub version: Option<u32>,
    /// Blobs re-encoded (0 while it runs in the background).
    pub blobs: usize,
    /// Their stored bytes before.
    pub bytes_before: u64,
    /// Their stored bytes after.
    pub bytes_after: u64,
    /// Re-encodings that failed.
    pub warnings: Vec<String>,
    /// The re-encoding runs after the push returns, in `reg deltas`.
    pub in_background: bool,
}

impl PushView {
    /// The view of what pushing `file` did.
    pub fn new(report: &crate::PushReport, file: &std::path::Path) -> PushView {
        let r = &report.previous_deltas;
        PushView {
            name: report.name.clone(),
            version: report.number,
            id: report.id,
            created: report.created,
            file: file.to_path_buf(),
            tensors: report.tensors,
            payloads: report.payloads,
            new_payloads: report.new_payloads,
            logical_bytes: report.logical_bytes,
            new_raw_bytes: report.new_raw_bytes,
            written_bytes: report.written_bytes,
            deltas: report.deltas,
            rebased: RebasedView {
                version: r.version,
                blobs: r.blobs,
                bytes_before: r.bytes_before,
                bytes_after: r.bytes_after,
                warnings: r.warnings.clone(),
                in_background: r.pending,
            },
            unknown_globals: report.unknown_globals.clone(),
            deferred: report.deferred.len(),
            files: report.files.clone(),
        }
    }
}

/// `reg pull --json`.
#[derive(Clone, Debug, Serialize)]
pub struct PullView {
    /// Model name.
    pub name: ModelName,
    /// Version number.
    pub version: u32,
    /// The file (or directory) written.
    pub path: std::path::PathBuf,
    /// Bytes written.
    pub bytes: u64,
    /// Files written, for a directory version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<usize>,
}

/// One element of `reg deltas --json`.
#[derive(Clone, Debug, Serialize)]
pub struct DeltasView {
    /// Model name.
    pub name: String,
    /// What one round of re-encoding did.
    pub report: crate::deltas::DeltaReport,
}

/// The text every `--json` prints for a view (and `reg serve`'s JSON
/// twins return): pretty JSON and one newline.
pub fn to_json_text<T: Serialize>(v: &T) -> Result<String, serde_json::Error> {
    // What the manifest stores exactly (float tags) is shown as docs/cli.md
    // says: NaN and infinities as the strings `nan`, `inf`, `-inf`.
    let mut text = serde_json::to_string_pretty(&reg_ckpt::exact_json::present_value(v)?)?;
    text.push('\n');
    Ok(text)
}

/// The epoch `reg show` prints: the integer the checkpoint records, or a
/// directory's exact fractional one.
/// [`ShowView::meta`]'s fields but `epoch` (the view writes its own).
fn meta_without_epoch<S: serde::Serializer>(meta: &CheckpointMeta, s: S) -> Result<S::Ok, S::Error> {
    let mut fields = serde_json::to_value(meta).map_err(serde::ser::Error::custom)?;
    if let Value::Object(map) = &mut fields {
        map.shift_remove("epoch");
    }
    fields.serialize(s)
}

fn epoch_number(m: &crate::Manifest) -> Option<serde_json::Number> {
    match m.tree.as_ref().and_then(|t| t.epoch) {
        Some(exact) => serde_json::Number::from_f64(exact),
        None => m.meta.epoch.map(serde_json::Number::from),
    }
}

/// The tensors of a version for `reg show`.
fn tensors_view(m: &crate::Manifest) -> TensorsView {
    match &m.tree {
        None => TensorsView::File(m.tensors.clone()),
        Some(tree) => TensorsView::Directory(
            tree.tensors
                .iter()
                .map(|t| LogicalTensorView {
                    path: t.name.clone(),
                    dtype: t.dtype.name().to_string(),
                    shape: t.shape.clone(),
                    role: t.role,
                    chunks: t
                        .chunks
                        .iter()
                        .map(|c| ChunkView {
                            file: tree
                                .files
                                .get(c.file as usize)
                                .map(|f| f.path.to_string())
                                .unwrap_or_default(),
                            offsets: c.offsets.clone(),
                            sizes: c.sizes.clone(),
                            blob: c.blob.to_hex(),
                        })
                        .collect(),
                    meta: t.meta,
                })
                .collect(),
        ),
    }
}
