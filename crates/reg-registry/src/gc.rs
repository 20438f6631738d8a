//! `gc`: delete the blobs no version needs, without breaking a delta chain.
//!
//! A blob is live when a version's manifest names it (its manifest blob
//! included). A live blob that is a delta against a blob no version names
//! would pin that parent forever, so gc first re-encodes such a blob
//! self-contained (an atomic rename: same id, same bytes) and only then
//! deletes the parent. If a re-encoding fails, the parent and its chain
//! are kept. Which blob depends on which is read from the blob headers,
//! the truth; the index's delta table is rewritten from them.
//!
//! **Fail safe.** gc decides everything before it deletes anything, and
//! any error while deciding (a manifest that does not read, a blob header
//! that cannot be read: EIO, EMFILE, a permission error, a missing file)
//! stops it with [`RegistryError::GcStopped`] (exit code 2) and nothing
//! deleted. An error never counts as "not needed".
//!
//! **Never on an incomplete index.** Before deleting a blob no version
//! needs, gc makes sure it is not the manifest of a version the index
//! lost (crate::manifest_blobs): a dead `raw` or `zstd` blob is read and
//! checked; one that is a manifest the index neither lists nor noted as
//! removed stops gc with [`RegistryError::IndexIncomplete`], and one that
//! cannot be read (it could be such a manifest) with
//! [`RegistryError::GcStopped`]. A missing or empty index never gets this
//! far ([`RegistryError::IndexLost`]). The manifest blobs of listed
//! versions that a crash left unwritten are written back from the index.

use crate::error::RegistryError;
use crate::lock::WriteGuard;
use crate::manifest_blobs::{kind_of, BlobKind};
use crate::registry::Registry;
use reg_format::ids::VersionId;
use reg_format::ids::VersionLabel;
use reg_format::index::{BlobRecord, Index};
use reg_store::{BlobId, StoreError};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// What [`Registry::gc`] removed (or would remove, in a dry run).
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    /// Blobs still referenced.
    pub kept_blobs: usize,
    /// Unreferenced blobs removed.
    pub removed_blobs: usize,
    /// Bytes of blob files freed.
    pub freed_bytes: u64,
    /// Live delta blobs re-encoded without their parent, so that the
    /// parent (needed by no version) could go.
    pub reencoded_blobs: usize,
    /// Leftover temp files removed.
    pub temp_files: usize,
    /// True when nothing was deleted.
    pub dry_run: bool,
    /// Dry runs only: why the kept blobs are kept, as counts by reason
    /// (`named by a version`, `delta parent of a kept blob`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kept_by_reason: BTreeMap<String, usize>,
}

/// Why gc keeps a blob (the keys of [`GcReport::kept_by_reason`]).
pub const KEPT_NAMED: &str = "named by a version";
/// A blob some kept blob decodes through.
pub const KEPT_PARENT: &str = "delta parent of a kept blob";

/// gc's decisions, made before anything is deleted.
#[derive(Debug, Default)]
pub(crate) struct GcPlan {
    /// Blobs some version's manifest names.
    pub(crate) live: HashSet<BlobId>,
    /// Versions the index noted as removed: their manifest blobs may go.
    pub(crate) removed: HashSet<BlobId>,
    /// `child -> parent` for every delta among the blobs to keep, from
    /// their headers (each read once).
    pub(crate) parents: BTreeMap<BlobId, BlobId>,
}

impl GcPlan {
    /// The blobs to keep: the live ones and every blob their delta chains
    /// decode through.
    pub(crate) fn keep(&self) -> HashSet<BlobId> {
        let mut keep = self.live.clone();
        let mut queue: Vec<BlobId> = self.live.iter().copied().collect();
        while let Some(id) = queue.pop() {
            if let Some(p) = self.parents.get(&id) {
                if keep.insert(*p) {
                    queue.push(*p);
                }
            }
        }
        keep
    }

    /// Live blobs that are deltas against a blob no version names.
    pub(crate) fn stranded(&self) -> Vec<(BlobId, BlobId)> {
        self.live
            .iter()
            .filter_map(|c| self.parents.get(c).map(|p| (*c, *p)))
            .filter(|(_, p)| !self.live.contains(p))
            .collect()
    }
}

fn stopped(blob: BlobId) -> impl FnOnce(StoreError) -> RegistryError {
    move |source| RegistryError::GcStopped { blob, source }
}

/// Every blob some version names (manifest blobs included), in an open
/// index; a version whose manifest is gone stops gc.
pub(crate) fn live_blobs(idx: &Index) -> Result<HashSet<BlobId>, RegistryError> {
    let mut live = HashSet::new();
    for (name, rec) in idx.all_versions()? {
        let m = idx.manifest(rec.id)?.ok_or_else(|| RegistryError::Damaged {
            version: VersionLabel::new(&name, rec.number).to_string(),
            source: StoreError::Missing(BlobId(rec.id.0)),
        })?;
        live.insert(BlobId(rec.id.0));
        live.extend(m.blobs());
    }
    Ok(live)
}

impl Registry {
    /// What to keep: the live blobs (one short index session) and, from
    /// their headers, the delta chains they decode through. Any header
    /// that cannot be read stops here (nothing is deleted on an error).
    pub(crate) fn gc_plan(&self, write_back: bool) -> Result<GcPlan, RegistryError> {
        let (live, removed, unwritten) = self.with_index("reg gc to plan", |idx| {
            let live = live_blobs(idx)?;
            let removed: HashSet<BlobId> = idx.removed()?.into_iter().map(|(id, _, _)| id.blob()).collect();
            // Manifest blobs a crash left unwritten (after the commit,
            // before the rename): the index holds their JSON.
            let mut unwritten = Vec::new();
            for (_, rec) in idx.all_versions()? {
                if !self.store.contains(rec.id.blob()) {
                    if let Some(json) = idx.manifest_json(rec.id)? {
                        unwritten.push((rec.id, json));
                    }
                }
            }
            Ok((live, removed, unwritten))
        })?;
        if write_back {
            self.write_back_manifests(&unwritten)?;
        }
        // Unwritten manifests (a dry run leaves them so) have no parent.
        let unread: HashSet<BlobId> = if write_back {
            HashSet::new()
        } else {
            unwritten.iter().map(|(id, _)| id.blob()).collect()
        };
        let mut parents = BTreeMap::new();
        let mut seen: HashSet<BlobId> = live.clone();
        let mut queue: Vec<BlobId> = live.iter().filter(|id| !unread.contains(*id)).copied().collect();
        while let Some(id) = queue.pop() {
            let info = self.store.describe(id).map_err(stopped(id))?;
            if let Some(p) = info.parent {
                parents.insert(id, p);
                if seen.insert(p) {
                    queue.push(p);
                }
            }
        }
        Ok(GcPlan { live, removed, parents })
    }

    /// Write manifest blobs back from the index's copies (each checked to
    /// hash to its version id); returns how many were written.
    pub(crate) fn write_back_manifests(&self, copies: &[(VersionId, Vec<u8>)]) -> Result<usize, RegistryError> {
        let mut written = 0;
        for (id, json) in copies {
            if BlobId::of(json) == id.blob() && self.store.put(id.blob(), json)?.written {
                written += 1;
            }
        }
        if written > 0 {
            self.store.sync()?;
        }
        Ok(written)
    }

    /// Refuse to delete a dead blob that is (or, unreadable, could be) the
    /// manifest of a version the index lost (see the module docs).
    fn check_dead(&self, plan: &GcPlan, id: BlobId) -> Result<(), RegistryError> {
        if plan.removed.contains(&id) {
            return Ok(());
        }
        match kind_of(&self.store, id) {
            Ok(BlobKind::Other) => Ok(()),
            Ok(BlobKind::Manifest(m)) => Err(RegistryError::IndexIncomplete {
                blob: id,
                version: m.label().to_string(),
            }),
            Ok(BlobKind::ManifestLike) => Err(RegistryError::IndexIncomplete {
                blob: id,
                version: "a version this reg cannot read".into(),
            }),
            Err(source) => Err(RegistryError::GcStopped { blob: id, source }),
        }
    }

    /// Delete blobs no version needs (see the module docs). Holds
    /// `gc.lock` exclusively (waiting for running pushes and re-encodings;
    /// pushes that start meanwhile wait for it), and waits for readers
    /// that may still open what it deletes; readers never wait for it.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport, RegistryError> {
        let guard = self.maintenance("reg gc")?;
        self.gc_locked(&guard, dry_run)
    }

    /// [`Registry::gc`] for a caller that holds `gc.lock` exclusively.
    pub(crate) fn gc_locked(&self, guard: &WriteGuard, dry_run: bool) -> Result<GcReport, RegistryError> {
        if !guard.is_exclusive() {
            return Err(RegistryError::Internal("gc needs gc.lock held exclusively".into()));
        }
        if !dry_run {
            self.locks.no_own_readers()?;
        }
        let mut plan = self.gc_plan(!dry_run)?;
        // Before anything is re-encoded or deleted: no blob outside the
        // live set may be a manifest the index lost.
        let on_disk: BTreeSet<BlobId> = self.store.list()?.into_iter().collect();
        for id in on_disk.iter().filter(|id| !plan.live.contains(*id)) {
            self.check_dead(&plan, *id)?;
        }
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        let stranded = plan.stranded();
        if dry_run {
            report.reencoded_blobs = stranded.len();
        } else {
            let mut records = Vec::new();
            for (child, _) in &stranded {
                // A failed re-encoding keeps the parent (it stays in the
                // plan); damage is for verify to report.
                if let Ok(out) = self.store.make_self_contained(*child) {
                    report.reencoded_blobs += 1;
                    plan.parents.remove(child);
                    let raw_len = self.store.describe(*child).map_err(stopped(*child))?.raw_len;
                    records.push((*child, BlobRecord::new(raw_len, out.stored_len, out.codec)));
                }
            }
            if !stranded.is_empty() {
                self.store.sync()?;
            }
            if !records.is_empty() {
                self.with_index("reg gc to record re-encodings", |idx| {
                    for (id, r) in &records {
                        idx.set_blob_record(*id, r)?;
                    }
                    Ok(())
                })?;
            }
        }
        let mut keep = plan.keep();
        if dry_run {
            // A stranded delta would be re-encoded: its parent would go.
            let mut without = GcPlan {
                live: plan.live.clone(),
                removed: plan.removed.clone(),
                parents: plan.parents.clone(),
            };
            for (child, _) in &stranded {
                without.parents.remove(child);
            }
            keep = without.keep();
        }

        let on_disk: BTreeSet<BlobId> = self.store.list()?.into_iter().collect();
        let recorded: BTreeSet<BlobId> = self
            .with_index("reg gc to list blobs", |idx| Ok(idx.blob_records()?))?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut dead = Vec::new();
        for id in on_disk.union(&recorded) {
            if keep.contains(id) {
                report.kept_blobs += 1;
                if dry_run {
                    let reason = if plan.live.contains(id) {
                        KEPT_NAMED
                    } else {
                        KEPT_PARENT
                    };
                    *report.kept_by_reason.entry(reason.to_string()).or_default() += 1;
                }
                continue;
            }
            report.removed_blobs += 1;
            report.freed_bytes += match self.store.stored_len(*id) {
                Ok(n) => n,
                Err(StoreError::Missing(_)) => 0,
                Err(e) => return Err(stopped(*id)(e)),
            };
            dead.push(*id);
        }
        if !dry_run {
            let edges: Vec<(BlobId, BlobId)> = plan
                .parents
                .iter()
                .filter(|(c, _)| keep.contains(*c))
                .map(|(c, p)| (*p, *c))
                .collect();
            // Forget first, then delete: a crash in between leaves files gc
            // removes next time, never a record without its file.
            self.with_index("reg gc to forget dead blobs", |idx| {
                idx.set_deltas(&edges)?;
                Ok(idx.remove_blob_records(&dead)?)
            })?;
            // Readers that started before that transaction may still open
            // what is about to go; later ones cannot see it.
            self.locks.drain_readers()?;
            for id in &dead {
                self.store.remove(*id)?;
            }
            self.store.sync()?;
            // Removed versions whose manifest blobs are gone need no note.
            let gone: Vec<VersionId> = plan
                .removed
                .iter()
                .filter(|id| !self.store.contains(**id))
                .map(|id| VersionId(id.0))
                .collect();
            if !gone.is_empty() {
                // Their absence must be durable before the notes go, even
                // where another process (an rm) deleted them unsynced: a
                // manifest blob back after a crash with no note would be a
                // version the index lost.
                self.store
                    .sync_names(&gone.iter().map(|id| id.blob()).collect::<Vec<_>>())?;
                self.with_index(
                    "reg gc to forget removed versions",
                    |idx| Ok(idx.forget_removed(&gone)?),
                )?;
            }
            report.temp_files = self.store.clean_tmp()? + self.clean_staging()?;
        }
        Ok(report)
    }
}

impl Registry {
    /// Remove the staging sessions no process holds any more (a DCP save
    /// whose coordinator died); returns how many folders went.
    fn clean_staging(&self) -> Result<usize, RegistryError> {
        let dir = self.layout.staging_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(RegistryError::io("listing", &dir)(e)),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && crate::lock::staging_abandoned(&path) && std::fs::remove_dir_all(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The folder staging sessions go in (created when missing).
    pub fn staging_dir(&self) -> Result<std::path::PathBuf, RegistryError> {
        let dir = self.layout.staging_dir();
        std::fs::create_dir_all(&dir).map_err(RegistryError::io("creating", &dir))?;
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    fn plan(live: &[u8], parents: &[(u8, u8)]) -> GcPlan {
        GcPlan {
            live: live.iter().map(|n| id(*n)).collect(),
            removed: HashSet::new(),
            parents: parents.iter().map(|(c, p)| (id(*c), id(*p))).collect(),
        }
    }

    fn sorted(set: HashSet<BlobId>) -> Vec<BlobId> {
        let mut v: Vec<BlobId> = set.into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn keep_follows_every_chain_of_a_live_blob_to_its_end() {
        // 1 -> 2 -> 3 -> 4 (1 live), 5 live and whole, 6 -> 7 both dead.
        let p = plan(&[1, 5], &[(1, 2), (2, 3), (3, 4), (6, 7)]);
        assert_eq!(sorted(p.keep()), vec![id(1), id(2), id(3), id(4), id(5)]);
        // 1 decodes through 2, which no version names: it is the one to
        // re-encode; 2 -> 3 is not (2 is not live).
        assert_eq!(p.stranded(), vec![(id(1), id(2))]);
    }

    #[test]
    fn a_chain_of_live_blobs_strands_nothing() {
        let p = plan(&[1, 2, 3], &[(1, 2), (2, 3)]);
        assert_eq!(sorted(p.keep()), vec![id(1), id(2), id(3)]);
        assert!(p.stranded().is_empty());
        // Two live blobs on one dead parent: both are stranded, the parent
        // and its own parent are kept until they are re-encoded.
        let p = plan(&[1, 2], &[(1, 9), (2, 9), (9, 8)]);
        let mut stranded = p.stranded();
        stranded.sort();
        assert_eq!(stranded, vec![(id(1), id(9)), (id(2), id(9))]);
        assert_eq!(sorted(p.keep()), vec![id(1), id(2), id(8), id(9)]);
    }
}
