//! Making a stored version visible: the one short index transaction of a
//! push (or an import, or retention's replacement of a version).
//!
//! Everything slow happened before: the payload and skeleton blobs are
//! in the store and synced. Under the index lock this takes the version's
//! number (the next free one *now*, so concurrent pushes of one name get
//! distinct numbers in commit order), encodes the manifest with that
//! number into a pending blob (the version id is its blake3) and reads it
//! back, commits the version record, manifest, tag, blob records and delta
//! edges in one sled transaction, and only then gives the manifest blob
//! its name: every manifest blob on disk is a version's the index lists
//! (or noted as removed), so one that is not shows the index lost it. A
//! file identical to a version committed meanwhile adds no version.

use crate::error::{PushError, RegistryError};
use crate::registry::Registry;
use crate::resolve::Resolved;
use reg_format::ids::{ModelName, VersionId};
use reg_format::index::{BlobRecord, Index, VersionRecord};
use reg_format::manifest::Manifest;
use reg_store::{BlobId, Codec, PutOutcome};

/// A version ready to be committed.
pub(crate) struct Commit<'a> {
    /// Its manifest; `number` is set by the commit.
    pub(crate) manifest: Manifest,
    /// Tag to set on it.
    pub(crate) tag: Option<&'a reg_format::TagName>,
    /// The version it takes the place of (same number), for retention.
    pub(crate) replaces: Option<&'a Resolved>,
    /// Every blob the version needs, with its raw length and, for a blob
    /// this operation wrote, what the store said.
    pub(crate) blobs: Vec<(BlobId, u64, Option<PutOutcome>)>,
    /// Blobs this operation stored raw, with their element width, for
    /// the background job to compress (recorded with the version).
    pub(crate) deferred: Vec<(BlobId, Option<u8>)>,
    /// `(parent, child)`: blobs stored as deltas by this operation.
    pub(crate) delta_edges: Vec<(BlobId, BlobId)>,
    /// Leave the previous version's re-encoding to the background job:
    /// recorded in the index's queue with the version.
    pub(crate) defer_deltas: bool,
    /// With `defer_deltas`: the retention (`keep_optimizer_last`) the job
    /// runs after the re-encoding, so the push never waits for it.
    pub(crate) retain: Option<usize>,
}

/// What [`Registry::commit`] did.
pub(crate) enum Committed {
    /// A new version (or the replacement of one).
    New {
        /// Its record.
        record: VersionRecord,
        /// Its manifest, with its number (boxed: it is large).
        manifest: Box<Manifest>,
        /// The manifest blob's store outcome.
        manifest_put: PutOutcome,
        /// The newest version of the name before it (none for a
        /// replacement): its changed tensors become deltas against it.
        previous: Option<Box<Resolved>>,
    },
    /// A version with the same whole-file hash and size existed already.
    Same(VersionRecord),
}

impl Registry {
    /// Commit a version (see the module docs).
    pub(crate) fn commit(&self, c: Commit<'_>) -> Result<Committed, RegistryError> {
        let name = c.manifest.name.clone();
        let doing = format!("reg push of {name} to commit");
        let committed = self.with_index(&doing, |idx| self.commit_in(idx, &name, c))?;
        Ok(committed)
    }

    fn commit_in(&self, idx: &Index, name: &ModelName, c: Commit<'_>) -> Result<Committed, RegistryError> {
        let existing = idx.versions(name)?;
        if c.replaces.is_none() {
            if let Some(same) = existing
                .iter()
                .find(|v| v.blake3 == c.manifest.blake3 && v.size == c.manifest.size)
            {
                if let Some(tag) = c.tag {
                    idx.set_tag(name, tag, same.number)?;
                }
                return Ok(Committed::Same(same.clone()));
            }
        }
        let mut manifest = c.manifest;
        manifest.number = match c.replaces {
            Some(old) => old.manifest.number,
            None => existing.last().map(|v| v.number.get() + 1).unwrap_or(1),
        };
        let previous = match (c.replaces, existing.last()) {
            (None, Some(rec)) => idx
                .manifest(rec.id)?
                .map(|m| Box::new(Resolved::unpinned(rec.clone(), m))),
            _ => None,
        };
        let json = manifest.encode().map_err(|source| RegistryError::Unreadable {
            name: name.to_string(),
            source,
        })?;
        let manifest_id = BlobId::of(&json);
        // The manifest blob is encoded into a temp file and decoded back
        // from it before the version becomes visible: a version is never
        // committed with a manifest that does not read. It takes its name
        // only after the transaction, so a manifest blob on disk always
        // belongs to a version the index lists (or noted in `removed`):
        // one that does not means the index lost it (see crate::gc).
        let label = || manifest.label().to_string();
        let pending = self.store.encode_pending(&json.as_slice(), None)?;
        let stored = pending
            .read_back(manifest_id)
            .map_err(|source| RegistryError::Damaged {
                version: label(),
                source,
            })?;
        Manifest::check_decodes(&stored).map_err(|e| RegistryError::Damaged {
            version: label(),
            source: reg_store::StoreError::Corrupt {
                id: manifest_id,
                reason: format!("the manifest blob just written {e}"),
            },
        })?;

        // Records for every blob the version needs that the index does not
        // list yet: the new ones, and stored ones an interrupted push left
        // without a record.
        let mut records = Vec::new();
        let manifest_row = PutOutcome {
            written: true,
            stored_len: pending.stored_len(),
            codec: pending.codec(),
            parent: None,
        };
        let all = c.blobs.iter().map(|(id, raw, put)| (*id, *raw, *put)).chain([(
            manifest_id,
            json.len() as u64,
            Some(manifest_row),
        )]);
        for (id, raw_len, put) in all {
            if idx.has_blob(id)? || records.iter().any(|(r, _)| *r == id) {
                continue;
            }
            let (stored_len, codec): (u64, Codec) = match put {
                Some(p) => (p.stored_len, p.codec),
                None => (self.store.stored_len(id)?, self.store.describe(id)?.codec),
            };
            records.push((id, BlobRecord::new(raw_len, stored_len, codec)));
        }
        // A stored blob this commit did not write may not be durable yet
        // (another writer's, not synced; an interrupted push's): make it
        // so before the version names it (the rare case: normally none).
        let unsynced: Vec<BlobId> = c
            .blobs
            .iter()
            .filter(|(id, _, put)| !put.is_some_and(|p| p.written) && records.iter().any(|(r, _)| r == id))
            .map(|(id, _, _)| *id)
            .collect();
        self.store.make_durable(&unsynced)?;
        let record = VersionRecord::from_manifest(VersionId(manifest_id.0), &manifest);
        idx.commit_version(&record, &json, name, c.tag, &records, &c.deferred)?;
        for (parent, child) in &c.delta_edges {
            idx.add_delta(*parent, *child)?;
        }
        if let (true, Some(prev)) = (c.defer_deltas, &previous) {
            let retain = c.retain.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            idx.add_pending(name, prev.record.number, retain)?;
        }
        if let Some(old) = c.replaces.filter(|o| o.record.id != record.id) {
            // The old manifest blob is no version's any more; gc (which
            // retention runs next) deletes its file.
            idx.retire_manifest(old.record.id, name, old.record.number)?;
        }
        // Visible now; the manifest blob takes its name (a crash before
        // this leaves the version without its blob, which verify and gc
        // write back from the index's copy).
        let manifest_put = pending
            .commit(manifest_id)
            .and_then(|put| self.store.sync().map(|()| put))
            .map_err(|e| {
                RegistryError::from(PushError::ManifestBlobUnwritten {
                    version: label().to_string(),
                    reason: e.to_string(),
                })
            })?;
        Ok(Committed::New {
            record,
            manifest: Box::new(manifest),
            manifest_put,
            previous,
        })
    }
}
