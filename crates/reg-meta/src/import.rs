//! Versions that arrive from elsewhere (a remote) rather than from a file.
//!
//! The caller first puts every blob the manifest needs into the store (in
//! stored form, hash-checked: `BlobStore::put_stored`), then calls
//! [`Registry::import_version`], which commits the version into the index
//! the way a push does: the manifest blob is stored, directories synced,
//! and one index transaction makes the version visible.
//!
//! Numbering: a version takes the next free number of its name in this
//! registry, exactly like a push, so local numbers can differ from the
//! numbers the version has elsewhere. A manifest records its number, so
//! when the number changes the manifest is rewritten with the new number
//! and the local version id (the blake3 of the manifest JSON) differs from
//! the id elsewhere. Versions are matched across registries by name and
//! whole-file blake3: a file that is already a version here is not
//! imported twice.

use crate::error::RegistryError;
use crate::ids::{FileHash, VersionId};
use crate::index::{BlobRecord, VersionRecord};
use crate::manifest::{Manifest, Piece, MANIFEST_SCHEMA};
use crate::refs::check_tag;
use crate::registry::Registry;
use reg_store::{BlobId, StoreError};

/// What [`Registry::import_version`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// Model name.
    pub name: String,
    /// The local version number (new, or the identical existing version).
    pub number: u32,
    /// The local version id.
    pub id: VersionId,
    /// False when an identical file was already a version of the name.
    pub created: bool,
    /// Tags set on the version.
    pub tags_set: Vec<String>,
    /// Tags not set because they already point at another version here.
    pub tags_kept: Vec<(String, u32)>,
}

/// What [`Registry::import_version`] records for the blobs it was given.
struct ImportedBlobs {
    /// Index records for the blobs the index does not list yet.
    records: Vec<(BlobId, BlobRecord)>,
    /// `(parent, child)`: the child blob is a delta against the parent.
    deltas: Vec<(BlobId, BlobId)>,
}

impl Registry {
    /// Blobs a manifest needs that the local store does not hold.
    pub fn missing_blobs(&self, manifest: &Manifest) -> Vec<BlobId> {
        manifest
            .blobs()
            .into_iter()
            .filter(|id| !self.store.contains(*id))
            .collect()
    }

    /// The version of `name` whose file has this blake3 and size, if any.
    pub fn find_identical(
        &self,
        name: &str,
        blake3: FileHash,
        size: u64,
    ) -> Result<Option<VersionRecord>, RegistryError> {
        Ok(self
            .index
            .versions(name)?
            .into_iter()
            .find(|v| v.blake3 == blake3 && v.size == size))
    }

    /// A local version's manifest JSON exactly as stored: its blake3 is the
    /// version id. Read from the manifest blob; when that blob is gone the
    /// index's copy is used.
    pub fn manifest_json(&self, name: &str, record: &VersionRecord) -> Result<Vec<u8>, RegistryError> {
        let label = || format!("{name}@v{}", record.number);
        match self.store.read(BlobId(record.id.0)) {
            Ok(bytes) => Ok(bytes),
            Err(StoreError::Missing(_)) => {
                let m = self.index.manifest(record.id)?.ok_or_else(|| RegistryError::Damaged {
                    version: label(),
                    source: StoreError::Missing(BlobId(record.id.0)),
                })?;
                m.to_json()
                    .map_err(|e| RegistryError::Internal(format!("cannot encode manifest of {}: {e}", label())))
            }
            Err(source) => Err(RegistryError::Damaged {
                version: label(),
                source,
            }),
        }
    }

    /// Commit a version whose manifest came from elsewhere. Every blob it
    /// needs must already be in the store (checked, with the skeleton and
    /// payload lengths the manifest records). The version takes the next
    /// free number of its name (see the module docs); `tags` are set on it
    /// unless they already point at another version. `origin` names the
    /// version in errors (`origin:mlp@v3`).
    pub fn import_version(
        &self,
        manifest_json: &[u8],
        tags: &[String],
        origin: &str,
    ) -> Result<ImportReport, RegistryError> {
        // What comes from elsewhere is checked here, at the boundary: a
        // manifest that does not parse into its validated types (a
        // `source` that is not a plain file name, a bad name or hash) is
        // damage of the remote, never used.
        let mut manifest = Manifest::from_json(manifest_json).map_err(|e| RegistryError::Damaged {
            version: origin.to_string(),
            source: StoreError::Corrupt {
                id: BlobId::of(manifest_json),
                reason: format!("manifest does not parse: {e}"),
            },
        })?;
        if manifest.schema > MANIFEST_SCHEMA {
            return Err(RegistryError::Invalid(format!(
                "{origin}: manifest schema {} is newer than this reg understands ({MANIFEST_SCHEMA}); upgrade reg",
                manifest.schema
            )));
        }
        let name = manifest.name.clone();
        for tag in tags {
            check_tag(tag)?;
        }
        let ImportedBlobs {
            records: new_records,
            deltas,
        } = self.check_imported_blobs(&manifest, origin)?;

        let report = |number: u32, id: VersionId, created: bool| ImportReport {
            name: name.to_string(),
            number,
            id,
            created,
            tags_set: Vec::new(),
            tags_kept: Vec::new(),
        };
        let existing = self.index.versions(name.as_str())?;
        let mut out = match existing
            .iter()
            .find(|v| v.blake3 == manifest.blake3 && v.size == manifest.size)
        {
            Some(same) => report(same.number, same.id, false),
            None => {
                let number = existing.last().map(|v| v.number + 1).unwrap_or(1);
                let json = if manifest.number == number {
                    manifest_json.to_vec()
                } else {
                    manifest.number = number;
                    manifest
                        .to_json()
                        .map_err(|e| RegistryError::Internal(format!("cannot encode manifest: {e}")))?
                };
                let manifest_id = BlobId::of(&json);
                let put = self.store.put(manifest_id, &json)?;
                self.store.sync()?;
                let mut records = new_records;
                if !self.index.has_blob(manifest_id)? {
                    records.push((
                        manifest_id,
                        BlobRecord::new(json.len() as u64, put.stored_len, put.codec),
                    ));
                }
                let record = VersionRecord {
                    number,
                    ..VersionRecord::from_manifest(VersionId(manifest_id.0), &manifest)
                };
                self.index
                    .commit_version(&record, &json, name.as_str(), None, &records)?;
                for (parent, child) in &deltas {
                    self.index.add_delta(*parent, *child)?;
                }
                report(number, record.id, true)
            }
        };
        let local_tags = self.index.tags(name.as_str())?;
        for tag in tags {
            match local_tags.iter().find(|(t, _)| t == tag) {
                Some((_, n)) if *n == out.number => {}
                Some((_, n)) => out.tags_kept.push((tag.clone(), *n)),
                None => {
                    self.index.set_tag(name.as_str(), tag, out.number)?;
                    out.tags_set.push(tag.clone());
                }
            }
        }
        if !out.tags_set.is_empty() {
            self.index.flush()?;
        }
        Ok(out)
    }

    /// Check that every blob of an incoming manifest is stored and has the
    /// length the manifest says; return index records for the blobs the
    /// index does not list yet (delta parents included) and the
    /// `(parent, child)` delta edges to record with the version.
    fn check_imported_blobs(&self, m: &Manifest, origin: &str) -> Result<ImportedBlobs, RegistryError> {
        let damaged = |source: StoreError| RegistryError::Damaged {
            version: origin.to_string(),
            source,
        };
        let mut skeleton_needed = 0u64;
        let mut total = 0u64;
        let mut payload_lens: Vec<(BlobId, u64)> = Vec::new();
        for p in &m.pieces {
            total = total.saturating_add(p.len());
            match p {
                Piece::Skeleton { offset, len } => skeleton_needed = skeleton_needed.max(offset.saturating_add(*len)),
                Piece::Payload { blob, len } => payload_lens.push((*blob, *len)),
            }
        }
        if total != m.size {
            return Err(damaged(StoreError::Corrupt {
                id: m.skeleton,
                reason: format!("manifest pieces add up to {total} bytes, the file has {}", m.size),
            }));
        }
        let mut records = Vec::new();
        let mut deltas = Vec::new();
        for id in m.blobs() {
            let reg_store::BlobInfo { raw_len, codec, .. } = self.store.describe(id).map_err(damaged)?;
            let want = if id == m.skeleton {
                None
            } else {
                payload_lens.iter().find(|(b, _)| *b == id).map(|(_, l)| *l)
            };
            let short = match want {
                Some(len) => raw_len != len,
                None => raw_len < skeleton_needed,
            };
            if short {
                return Err(damaged(StoreError::Corrupt {
                    id,
                    reason: format!("holds {raw_len} bytes, the manifest needs a different length"),
                }));
            }
            if !self.index.has_blob(id)? {
                records.push((id, BlobRecord::new(raw_len, self.store.stored_len(id)?, codec)));
            }
            // The delta parents it is encoded against (fetched with it).
            let mut child = id;
            for parent in self.store.chain(id).map_err(damaged)? {
                deltas.push((parent, child));
                if !self.index.has_blob(parent)? && !records.iter().any(|(r, _)| *r == parent) {
                    let info = self.store.describe(parent).map_err(damaged)?;
                    let stored = self.store.stored_len(parent)?;
                    records.push((parent, BlobRecord::new(info.raw_len, stored, info.codec)));
                }
                child = parent;
            }
        }
        Ok(ImportedBlobs { records, deltas })
    }
}
