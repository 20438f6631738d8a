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

use crate::error::{ImportError, RegistryError};
use crate::lock::WriteGuard;
use crate::push::{Commit, Committed};
use crate::registry::Registry;
use reg_format::ids::VersionLabel;
use reg_format::ids::{FileHash, VersionId};
use reg_format::index::VersionRecord;
use reg_format::manifest::{Manifest, MANIFEST_SCHEMA};
use reg_format::refs::TagName;
use reg_format::{ModelName, VersionNumber};
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
    /// Every blob the version needs (delta parents included), with its
    /// raw length.
    blobs: Vec<(BlobId, u64, Option<reg_store::PutOutcome>)>,
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
        name: &ModelName,
        blake3: FileHash,
        size: u64,
    ) -> Result<Option<VersionRecord>, RegistryError> {
        Ok(self
            .with_index("reg sync looking for an identical version", |idx| {
                Ok(idx.versions(name)?)
            })?
            .into_iter()
            .find(|v| v.blake3 == blake3 && v.size == size))
    }

    /// A local version's manifest JSON exactly as stored: its blake3 is the
    /// version id. Read from the manifest blob; when that blob is gone the
    /// index's copy is used.
    pub fn manifest_json(&self, name: &str, record: &VersionRecord) -> Result<Vec<u8>, RegistryError> {
        let label = || VersionLabel::new(name, record.number).to_string();
        match self.store.read(BlobId(record.id.0)) {
            Ok(bytes) => Ok(bytes),
            Err(StoreError::Missing(_)) => {
                let m = self
                    .with_index("reg sync reading a manifest", |idx| Ok(idx.manifest(record.id)?))?
                    .ok_or_else(|| RegistryError::Damaged {
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
    /// payload lengths the manifest records), put there under `_guard`
    /// (`gc.lock`, so gc cannot take them meanwhile). The version takes
    /// the next free number of its name (see the module docs); `tags` are
    /// set on it unless they already point at another version. `origin`
    /// names the version in errors (`origin:mlp@v3`).
    pub fn import_version(
        &self,
        _guard: &WriteGuard,
        manifest_json: &[u8],
        tags: &[String],
        origin: &str,
    ) -> Result<ImportReport, RegistryError> {
        // What comes from elsewhere is checked here, at the boundary: a
        // manifest that does not parse into its validated types (a
        // `source` that is not a plain file name, a bad name or hash) is
        // damage of the remote, never used.
        let manifest = Manifest::from_json(manifest_json).map_err(|e| RegistryError::Damaged {
            version: origin.to_string(),
            source: StoreError::Corrupt {
                id: BlobId::of(manifest_json),
                reason: format!("manifest does not parse: {e}"),
            },
        })?;
        if manifest.schema > MANIFEST_SCHEMA {
            return Err(ImportError::SchemaTooNew {
                origin: origin.to_string(),
                schema: manifest.schema,
                known: MANIFEST_SCHEMA,
            }
            .into());
        }
        let name = manifest.name.clone();
        // Checked before anything is stored: a bad tag refuses the import.
        let tags: Vec<TagName> = tags.iter().map(|t| TagName::new(t)).collect::<Result<_, _>>()?;
        let ImportedBlobs { blobs, deltas } = self.check_imported_blobs(&manifest, origin)?;
        let committed = self.commit(Commit {
            manifest,
            tag: None,
            replaces: None,
            blobs,
            deferred: Vec::new(),
            delta_edges: deltas,
            defer_deltas: false,
            retain: None,
        })?;
        let (number, id, created) = match committed {
            Committed::New { record, .. } => (record.number.get(), record.id, true),
            Committed::Same(same) => (same.number.get(), same.id, false),
        };
        let mut out = ImportReport {
            name: name.to_string(),
            number,
            id,
            created,
            tags_set: Vec::new(),
            tags_kept: Vec::new(),
        };
        if !tags.is_empty() {
            self.with_index(&format!("reg sync tagging {name}"), |idx| {
                let local_tags = idx.tags(&name)?;
                for tag in &tags {
                    match local_tags.iter().find(|(t, _)| t == tag) {
                        Some((_, n)) if *n == out.number => {}
                        Some((_, n)) => out.tags_kept.push((tag.to_string(), n.get())),
                        None => {
                            idx.set_tag(&name, tag, VersionNumber(out.number))?;
                            out.tags_set.push(tag.to_string());
                        }
                    }
                }
                Ok(())
            })?;
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
        m.check_shape().map_err(|reason| {
            damaged(StoreError::Corrupt {
                id: BlobId::of(&m.to_json().unwrap_or_default()),
                reason: format!("manifest: {reason}"),
            })
        })?;
        let payload_lens = m.payload_lens();
        let skeleton_lens = m.skeleton_lens();
        let listing = m.tree.as_ref().map(|t| t.listing().len() as u64);
        let mut blobs: Vec<(BlobId, u64, Option<reg_store::PutOutcome>)> = Vec::new();
        let mut deltas = Vec::new();
        for id in m.blobs() {
            let reg_store::BlobInfo { raw_len, .. } = self.store.describe(id).map_err(damaged)?;
            // A payload has exactly its length; a skeleton at least what
            // its pieces read; a tree listing exactly its own.
            let short = match (payload_lens.get(&id), skeleton_lens.get(&id), listing) {
                (Some(len), _, _) => raw_len != *len,
                (None, Some(needed), _) => raw_len < *needed,
                (None, None, Some(len)) if id == m.skeleton => raw_len != len,
                _ => false,
            };
            if short {
                return Err(damaged(StoreError::Corrupt {
                    id,
                    reason: format!("holds {raw_len} bytes, the manifest needs a different length"),
                }));
            }
            blobs.push((id, raw_len, None));
            // The delta parents it is encoded against (fetched with it).
            let mut child = id;
            for parent in self.store.chain(id).map_err(damaged)? {
                deltas.push((parent, child));
                if !blobs.iter().any(|(b, _, _)| *b == parent) {
                    let info = self.store.describe(parent).map_err(damaged)?;
                    blobs.push((parent, info.raw_len, None));
                }
                child = parent;
            }
        }
        Ok(ImportedBlobs { blobs, deltas })
    }
}
