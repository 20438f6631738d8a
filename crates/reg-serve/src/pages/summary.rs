//! What the index and model pages show, gathered with the registry open:
//! per version its record, monitored scores and storage numbers, per
//! model totals and the best score.

use reg_ckpt::meta::Score;
use reg_registry::ranking::{self, ScoredVersion};
use reg_registry::report::StoredView;
use reg_registry::{Manifest, Registry, RegistryError};
use reg_store::{BlobId, StoreError};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One version, as the model page lists it.
pub struct VersionFacts {
    /// Version number.
    pub number: u32,
    /// Version id (hex).
    pub id: String,
    /// Push time.
    pub created: u64,
    /// File size.
    pub size: u64,
    /// `epoch`.
    pub epoch: Option<i64>,
    /// `global_step`.
    pub step: Option<i64>,
    /// Tags.
    pub tags: Vec<String>,
    /// Message.
    pub message: Option<String>,
    /// The metric its ModelCheckpoint monitors.
    pub monitor: Option<String>,
    /// Scores it carries, by metric.
    pub scores: BTreeMap<String, Score>,
    /// `reg show`'s storage numbers (shared blobs counted in full).
    pub stored: StoredView,
    /// Stored bytes of the blobs no earlier version of the model has:
    /// what this version added to the registry.
    pub added_bytes: u64,
    /// Optimizer state dropped by retention.
    pub weights_only: bool,
}

impl VersionFacts {
    /// Its score of `metric`, NaN included (shown as `nan`).
    pub fn raw_score(&self, metric: &str) -> Option<f64> {
        self.scores.get(metric).map(|s| s.value)
    }

    /// Its score of `metric` when it is a number to plot (not NaN).
    pub fn score(&self, metric: &str) -> Option<f64> {
        self.raw_score(metric).filter(|v| !v.is_nan())
    }

    fn ranked(&self) -> ScoredVersion<'_> {
        ScoredVersion {
            number: self.number,
            monitor: self.monitor.as_deref(),
            scores: &self.scores,
        }
    }
}

/// The best score of a model: metric, value, version number.
pub struct Best {
    /// The monitored metric.
    pub metric: String,
    /// `min` or `max`.
    pub mode: String,
    /// The best value.
    pub value: f64,
    /// The version that has it (`@best`: the newest of equals).
    pub number: u32,
}

/// The metric a model's versions are ranked by ([`reg_registry::ranking`]).
pub fn monitored_metric(versions: &[VersionFacts]) -> Option<String> {
    let scored: Vec<ScoredVersion> = versions.iter().map(VersionFacts::ranked).collect();
    ranking::monitored_metric(&scored)
}

/// The version `NAME@best` names, with its score ([`reg_registry::ranking`]).
pub fn best(versions: &[VersionFacts]) -> Option<Best> {
    let scored: Vec<ScoredVersion> = versions.iter().map(VersionFacts::ranked).collect();
    let ranking = ranking::rank(&scored, None, None)?;
    let (number, value) = ranking.best()?;
    Some(Best {
        metric: ranking.metric,
        mode: ranking.mode.name().to_string(),
        value,
        number,
    })
}

/// The versions of `name` with their manifests, in one short index
/// session (an unknown name is the CLI's error).
fn versions_with_manifests(
    reg: &Registry,
    name: &str,
) -> Result<Vec<(reg_format::index::VersionRecord, Manifest)>, RegistryError> {
    reg.with_index(&format!("reg serve reading {name}"), |idx| {
        let records = match reg_format::ModelName::new(name) {
            Ok(model) => idx.versions(&model)?,
            // Not a name at all: no versions, and the message below.
            Err(_) => Vec::new(),
        };
        if records.is_empty() {
            // The CLI's message, with the names it suggests.
            return Err(RegistryError::NoSuchName {
                name: name.to_string(),
                hint: String::new(),
            });
        }
        records
            .into_iter()
            .map(|record| {
                let m = idx.manifest(record.id)?.ok_or_else(|| RegistryError::Damaged {
                    version: reg_registry::VersionLabel::new(name, record.number).to_string(),
                    source: StoreError::Missing(BlobId(record.id.0)),
                })?;
                Ok((record, m))
            })
            .collect()
    })
}

/// Every version of `name`, oldest first, with `reg show`'s storage numbers.
pub fn model_versions(reg: &Registry, name: &str) -> Result<Vec<VersionFacts>, RegistryError> {
    let log = reg.log_view(name)?;
    let tags: HashMap<u32, Vec<String>> = log.into_iter().map(|e| (e.version, e.tags)).collect();
    let mut seen: HashSet<BlobId> = HashSet::new();
    let versions = versions_with_manifests(reg, name)?;
    let mut out = Vec::with_capacity(versions.len());
    for (record, manifest) in versions {
        let mut added_bytes = 0;
        for id in manifest.blobs() {
            if seen.insert(id) {
                added_bytes += reg.store().stored_len(id).unwrap_or(0);
            }
        }
        let stored = reg.stored_view(&manifest);
        let m = manifest;
        out.push(VersionFacts {
            number: record.number.get(),
            id: record.id.to_hex(),
            created: record.created,
            size: record.size,
            epoch: record.epoch,
            step: record.global_step,
            tags: tags.get(&record.number.get()).cloned().unwrap_or_default(),
            message: record.message.clone(),
            monitor: m.meta.model_checkpoint.as_ref().and_then(|c| c.monitor.clone()),
            scores: m.meta.scores,
            stored,
            added_bytes,
            weights_only: record.optimizer_dropped,
        });
    }
    Ok(out)
}

/// One model on the index page.
pub struct ModelRow {
    /// Name.
    pub name: String,
    /// Number of versions.
    pub versions: u32,
    /// Newest version number.
    pub latest: u32,
    /// Its epoch and step.
    pub latest_epoch: Option<i64>,
    /// Its global step.
    pub latest_step: Option<i64>,
    /// When it was pushed.
    pub latest_created: u64,
    /// The best monitored score.
    pub best: Option<Best>,
    /// Sum of the versions' file sizes.
    pub logical: u64,
    /// Stored bytes of the distinct blobs its versions need.
    pub stored: u64,
}

/// Every model with its totals (stored sizes from the index's blob records).
pub fn models(reg: &Registry) -> Result<Vec<ModelRow>, RegistryError> {
    let stored_len: HashMap<BlobId, u64> = reg
        .with_index("reg serve reading blob sizes", |idx| Ok(idx.blob_records()?))?
        .into_iter()
        .map(|(id, r)| (id, r.stored_len))
        .collect();
    let mut out = Vec::new();
    for entry in reg.ls_view()? {
        let versions = versions_with_manifests(reg, &entry.name)?;
        let records: Vec<&reg_format::index::VersionRecord> = versions.iter().map(|(r, _)| r).collect();
        let mut blobs: HashSet<BlobId> = HashSet::new();
        let mut facts = Vec::with_capacity(records.len());
        let mut logical = 0;
        for (record, m) in &versions {
            let m = m.clone();
            logical += record.size;
            blobs.extend(m.blobs());
            facts.push(VersionFacts {
                number: record.number.get(),
                id: record.id.to_hex(),
                created: record.created,
                size: record.size,
                epoch: record.epoch,
                step: record.global_step,
                tags: Vec::new(),
                message: None,
                monitor: m.meta.model_checkpoint.as_ref().and_then(|c| c.monitor.clone()),
                scores: m.meta.scores,
                stored: StoredView::default(),
                added_bytes: 0,
                weights_only: record.optimizer_dropped,
            });
        }
        let best = best(&facts);
        let last = records.last();
        out.push(ModelRow {
            name: entry.name.to_string(),
            versions: entry.versions,
            latest: entry.latest,
            latest_epoch: last.and_then(|r| r.epoch),
            latest_step: last.and_then(|r| r.global_step),
            latest_created: last.map(|r| r.created).unwrap_or(0),
            best,
            logical,
            stored: blobs.iter().filter_map(|id| stored_len.get(id)).sum(),
        });
    }
    Ok(out)
}
