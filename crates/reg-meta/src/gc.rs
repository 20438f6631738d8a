//! `gc`: delete the blobs no version needs, without breaking a delta chain.
//!
//! A blob is live when a version's manifest names it (its manifest blob
//! included). A live blob that is a delta against a blob no version names
//! would pin that parent forever, so gc first re-encodes such a blob
//! self-contained (an atomic rename: same id, same bytes) and only then
//! deletes the parent. If a re-encoding fails, the parent and its chain
//! are kept. Which blob depends on which is read from the blob headers,
//! the truth; the index's delta table is rewritten from them.

use crate::error::RegistryError;
use crate::index::BlobRecord;
use crate::registry::Registry;
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
}

impl Registry {
    /// Every blob some version names (manifest blobs included).
    pub(crate) fn live_blobs(&self) -> Result<HashSet<BlobId>, RegistryError> {
        let mut live = HashSet::new();
        for (name, rec) in self.index.all_versions()? {
            let m = self.index.manifest(rec.id)?.ok_or_else(|| RegistryError::Damaged {
                version: format!("{name}@v{}", rec.number),
                source: StoreError::Missing(BlobId(rec.id.0)),
            })?;
            live.insert(BlobId(rec.id.0));
            live.extend(m.blobs());
        }
        Ok(live)
    }

    /// Delete blobs no version needs (see the module docs). The registry
    /// lock is held throughout, so no push can run at the same time.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport, RegistryError> {
        let mut keep = self.live_blobs()?;
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        // The parent of every live delta, from its header (read once).
        let mut parents: BTreeMap<BlobId, BlobId> = BTreeMap::new();
        for id in &keep {
            if let Ok(Some(parent)) = self.store.describe(*id).map(|i| i.parent) {
                parents.insert(*id, parent);
            }
        }
        // Live blobs whose parent no version names.
        let stranded: Vec<(BlobId, BlobId)> = parents
            .iter()
            .filter(|(_, p)| !keep.contains(*p))
            .map(|(c, p)| (*c, *p))
            .collect();
        let mut pinned: Vec<BlobId> = Vec::new();
        for (child, parent) in &stranded {
            if dry_run {
                report.reencoded_blobs += 1;
                continue;
            }
            match self.store.make_self_contained(*child) {
                Ok(out) => {
                    report.reencoded_blobs += 1;
                    parents.remove(child);
                    let raw_len = self.store.describe(*child)?.raw_len;
                    self.index
                        .set_blob_record(*child, &BlobRecord::new(raw_len, out.stored_len, out.codec))?;
                }
                // Damage (a missing or corrupt chain) is for verify to
                // report; gc only makes sure it deletes nothing it needs.
                Err(_) => {
                    let mut above = *parent;
                    pinned.push(above);
                    for p in self.store.chain(*parent).unwrap_or_default() {
                        parents.insert(above, p);
                        pinned.push(p);
                        above = p;
                    }
                }
            }
        }
        keep.extend(pinned);
        if !dry_run && !stranded.is_empty() {
            self.store.sync()?;
        }

        let on_disk: BTreeSet<BlobId> = self.store.list()?.into_iter().collect();
        let recorded: BTreeSet<BlobId> = self.index.blob_records()?.into_iter().map(|(id, _)| id).collect();
        let mut dead = Vec::new();
        for id in on_disk.union(&recorded) {
            if keep.contains(id) {
                report.kept_blobs += 1;
                continue;
            }
            report.removed_blobs += 1;
            report.freed_bytes += self.store.stored_len(*id).unwrap_or(0);
            dead.push(*id);
        }
        if !dry_run {
            let edges: Vec<(BlobId, BlobId)> = parents.iter().map(|(c, p)| (*p, *c)).collect();
            self.index.set_deltas(&edges)?;
            // Forget first, then delete: a crash in between leaves files gc
            // removes next time, never a record without its file.
            self.index.remove_blob_records(&dead)?;
            for id in &dead {
                self.store.remove(*id)?;
            }
            self.store.sync()?;
            report.temp_files = self.store.clean_tmp()?;
        }
        Ok(report)
    }
}
