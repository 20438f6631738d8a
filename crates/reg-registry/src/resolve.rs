//! Turning a [`VersionRef`] into one version.

use crate::error::RegistryError;
use crate::lock::ReadGuard;
use crate::ranking::{rank, scored_metrics, ScoredVersion};
use crate::registry::{versions_of, Registry};
use reg_format::ids::VersionLabel;
use reg_format::index::{Index, VersionRecord};
use reg_format::manifest::Manifest;
use reg_format::refs::{looks_like_id, RefSpec, ScoreMode, VersionRef};
use std::sync::Arc;

/// A resolved version. One made by [`Registry::resolve`] pins the blobs
/// of the state it was resolved in: while it (or a clone) lives, gc does
/// not delete them (it holds a reader guard, see [`crate::lock`]), so
/// pulling, exporting or diffing it never finds a blob gone.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Its index record.
    pub record: VersionRecord,
    /// Its manifest.
    pub manifest: Manifest,
    /// Something the user should know (other versions that also matched).
    pub note: Option<String>,
    /// The reader guard that pins its blobs (none for versions that
    /// maintenance code builds under `gc.lock`).
    pub(crate) _pin: Option<Arc<ReadGuard>>,
}

impl Resolved {
    /// A version that is not in this registry's index (read from a
    /// remote, `reg_remote::Remote::read_version`): nothing pins its
    /// blobs, so the caller holds the registry's writer guard while it
    /// reads them.
    pub fn detached(record: VersionRecord, manifest: Manifest) -> Resolved {
        Resolved::unpinned(record, manifest)
    }

    /// A version found under a lock that already keeps its blobs (gc,
    /// prune, push internals): no reader guard.
    pub(crate) fn unpinned(record: VersionRecord, manifest: Manifest) -> Resolved {
        Resolved {
            record,
            manifest,
            note: None,
            _pin: None,
        }
    }
}

fn list_numbers(versions: &[&VersionRecord]) -> String {
    versions
        .iter()
        .map(|v| format!("v{}", v.number))
        .collect::<Vec<_>>()
        .join(", ")
}

fn summarize<T: ToString>(values: impl Iterator<Item = T>) -> String {
    let mut v: Vec<String> = values.map(|x| x.to_string()).collect();
    v.dedup();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl Registry {
    /// Find the version a ref names (one short index session), pinning
    /// its blobs for as long as the result lives.
    pub fn resolve(&self, r: &VersionRef) -> Result<Resolved, RegistryError> {
        let pin = Arc::new(self.reader()?);
        let (record, manifest, note) = self.with_index(&format!("reg resolving {}@{}", r.name, r.spec), |idx| {
            resolve_in(idx, r)
        })?;
        Ok(Resolved {
            record,
            manifest,
            note,
            _pin: Some(pin),
        })
    }
}

/// What a ref names, in an open index: the record, its manifest, a note.
pub(crate) fn resolve_in(
    idx: &Index,
    r: &VersionRef,
) -> Result<(VersionRecord, Manifest, Option<String>), RegistryError> {
    {
        let versions = versions_of(idx, &r.name)?;
        let not_found = |available: String| RegistryError::NoSuchVersion {
            name: r.name.to_string(),
            spec: r.spec.to_string(),
            available,
        };
        let newest_of = |matching: Vec<&VersionRecord>, what: &str| -> Option<(VersionRecord, Option<String>)> {
            let last = (*matching.last()?).clone();
            let note = (matching.len() > 1).then(|| {
                let others: Vec<&VersionRecord> = matching[..matching.len() - 1].to_vec();
                format!(
                    "{what} also matches {}; using the newest, v{}",
                    list_numbers(&others),
                    last.number
                )
            });
            Some((last, note))
        };
        let (record, note) = match &r.spec {
            RefSpec::Latest => match versions.last() {
                Some(v) => (v.clone(), None),
                None => return Err(not_found("no versions".into())),
            },
            RefSpec::Number(n) => match versions.iter().find(|v| v.number == *n) {
                Some(v) => (v.clone(), None),
                None => {
                    return Err(not_found(format!(
                        "versions are v1..v{}{}",
                        versions.last().map(|v| v.number.get()).unwrap_or(0),
                        if versions.len() as u32 != versions.last().map(|v| v.number.get()).unwrap_or(0) {
                            format!(" (existing: {})", list_numbers(&versions.iter().collect::<Vec<_>>()))
                        } else {
                            String::new()
                        }
                    )))
                }
            },
            RefSpec::Epoch(e) => {
                let m: Vec<&VersionRecord> = versions.iter().filter(|v| v.epoch == Some(*e)).collect();
                newest_of(m, &format!("epoch={e}")).ok_or_else(|| {
                    not_found(format!(
                        "available epochs: {}",
                        summarize(versions.iter().filter_map(|v| v.epoch))
                    ))
                })?
            }
            RefSpec::Step(s) => {
                let m: Vec<&VersionRecord> = versions.iter().filter(|v| v.global_step == Some(*s)).collect();
                newest_of(m, &format!("step={s}")).ok_or_else(|| {
                    not_found(format!(
                        "available steps: {}",
                        summarize(versions.iter().filter_map(|v| v.global_step))
                    ))
                })?
            }
            RefSpec::Best { metric, mode } => match best(idx, &r.name, &versions, metric.as_deref(), *mode) {
                Ok(found) => found,
                Err(e) => {
                    // No scores: a tag named `best` (set by the Lightning plugin) decides.
                    let tagged = idx.tags(&r.name)?.into_iter().find(|(t, _)| t == "best");
                    match tagged.and_then(|(_, n)| versions.iter().find(|v| v.number == n)) {
                        Some(v) if metric.is_none() => (v.clone(), Some("best by tag".into())),
                        _ => return Err(e),
                    }
                }
            },
            RefSpec::TagOrId(w) => {
                let tags = idx.tags(&r.name)?;
                // An id prefix names its version whatever tags say (a tag
                // that looks like an id, set before such tags were refused,
                // cannot take a permalink's place).
                let lower = w.to_ascii_lowercase();
                let by_id: Vec<&VersionRecord> = if looks_like_id(w) {
                    versions.iter().filter(|v| v.id.to_hex().starts_with(&lower)).collect()
                } else {
                    Vec::new()
                };
                let tagged = tags.iter().find(|(t, _)| t.as_str() == w.as_str());
                if let (Some((_, n)), true) = (tagged, by_id.is_empty()) {
                    match versions.iter().find(|v| v.number == *n) {
                        Some(v) => (v.clone(), None),
                        None => return Err(not_found(format!("tag {w} points at removed version v{n}"))),
                    }
                } else {
                    let m = by_id;
                    match m.as_slice() {
                        [one] => ((*one).clone(), None),
                        [] => {
                            let tag_list = summarize(tags.iter().map(|(t, n)| format!("{t}->v{n}")));
                            return Err(not_found(format!(
                                "no tag or version id {w}; tags: {tag_list}; versions: v1..v{}",
                                versions.last().map(|v| v.number.get()).unwrap_or(0)
                            )));
                        }
                        many => {
                            return Err(not_found(format!(
                                "id prefix {w} is ambiguous ({}); give more digits",
                                list_numbers(many)
                            )))
                        }
                    }
                }
            }
        };
        let manifest = idx.manifest(record.id)?.ok_or_else(|| RegistryError::Damaged {
            version: VersionLabel::new(&r.name, record.number).to_string(),
            source: reg_store::StoreError::Missing(reg_store::BlobId(record.id.0)),
        })?;
        Ok((record, manifest, note))
    }
}

/// The version with the best monitored score ([`crate::ranking`]).
fn best(
    idx: &Index,
    name: &str,
    versions: &[VersionRecord],
    metric: Option<&str>,
    mode: Option<ScoreMode>,
) -> Result<(VersionRecord, Option<String>), RegistryError> {
    let mut manifests = Vec::with_capacity(versions.len());
    for v in versions {
        if let Some(m) = idx.manifest(v.id)? {
            manifests.push((v, m));
        }
    }
    let scored: Vec<ScoredVersion> = manifests
        .iter()
        .map(|(v, m)| ScoredVersion::of(v.number.get(), &m.meta))
        .collect();
    let ranking = rank(&scored, metric, mode);
    let Some((ranking, (number, value))) = ranking.as_ref().and_then(|r| Some((r, r.best()?))) else {
        let metrics = scored_metrics(&scored);
        return Err(RegistryError::NoSuchVersion {
            name: name.to_string(),
            spec: metric.map(|m| format!("best:{m}")).unwrap_or_else(|| "best".into()),
            available: if metrics.is_empty() {
                "no version records a monitored score (its ModelCheckpoint had no monitor)".into()
            } else {
                format!("scored metrics: {}", metrics.join(", "))
            },
        });
    };
    let record = versions
        .iter()
        .find(|v| v.number == number)
        .cloned()
        .ok_or_else(|| RegistryError::Internal(format!("ranked version v{number} of {name} is not listed")))?;
    let note = format!(
        "best {} ({}) = {} at v{}",
        ranking.metric,
        ranking.mode.name(),
        value,
        number
    );
    Ok((record, Some(note)))
}
