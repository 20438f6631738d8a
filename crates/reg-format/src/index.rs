//! The sled index: names, versions, tags, manifests and the blob table.
//!
//! Trees and their encodings (see docs/format.md):
//! - `versions`: key `name \0 number(u32 BE)` -> bincode [`VersionRecord`].
//! - `manifests`: key version id (32 bytes) -> manifest JSON.
//! - `tags`: key `name \0 tag` -> version number (u32 BE).
//! - `blobs`: key blob id (32 bytes) -> bincode [`BlobRecord`].
//! - `deltas`: key parent blob id ‖ child blob id (64 bytes) -> empty: the
//!   child is stored as a delta against the parent. Blob headers are the
//!   truth (gc and sync follow them); this tree answers "which blobs
//!   depend on this one" without opening every blob file.
//! - `pending`: key `name \0 number(u32 BE)` -> empty, or a u32 BE N:
//!   re-encoding as deltas still to do from that version of that name on
//!   (what a push leaves for the background `reg deltas`; kept until it
//!   is done, so an interrupted job is finished by the next one), and N
//!   when the push asked for retention (`keep_optimizer_last = N`) after
//!   it.
//! - `retention`: key name -> N (u32 BE) ‖ from (u32 BE): retention the
//!   job still has to run for that name, moved here from `pending` in the
//!   transaction that ends the re-encoding, removed (compare-and-swap on
//!   the value) once it ran and a gc freed what it replaced.
//! - `deferred`: key blob id (32 bytes) -> one byte, the element width
//!   of its float storage (0: none): a blob a push stored raw, leaving
//!   its compression to the background job (`PushOptions::fast`); written
//!   in the transaction that commits the version, removed once the job
//!   encoded it (or found it encoded or gone).
//! - `removed`: key version id (32 bytes) -> `name \0 number(u32 BE)`:
//!   versions taken out of the index (`rm`, or replaced by retention)
//!   whose manifest blob may still be on disk. gc deletes such a blob and
//!   its entry; any other manifest blob no version names means the index
//!   lost something, and stops gc.
//! - default tree: `format` -> index format version (u32 BE).
//!
//! A version becomes visible in one sled transaction that writes its
//! record, manifest and blob records together; the index is flushed before
//! a push reports success.

use crate::ids::{FileHash, ModelName, SourceName, VersionId, VersionNumber};
use crate::manifest::Manifest;
use crate::refs::TagName;
use reg_store::{BlobId, Codec};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use std::path::{Path, PathBuf};

/// The index format this code writes and reads: 2 added the `deltas`
/// tree; 3 the `removed` tree, manifests kept zstd-compressed when long,
/// and manifests whose non-finite floats are tags (which a format 2 reg
/// would misread). Older indexes are upgraded when opened (nothing in
/// them needs rewriting); a reg that knows only an older format refuses a
/// newer index, so it can never collect a blob that a delta still needs
/// or delete a manifest blob this reg relies on.
pub const INDEX_FORMAT: u32 = 3;

/// Returned by [`Index`] operations.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// sled failed.
    #[error("index at {path}: {source}")]
    Sled {
        /// The sled directory.
        path: PathBuf,
        /// The error.
        source: sled::Error,
    },
    /// A stored value does not decode.
    #[error("index entry {what} is damaged: {reason}")]
    Damaged {
        /// Which entry.
        what: String,
        /// Decoder message.
        reason: String,
    },
    /// A value could not be encoded for the index (nothing was written).
    #[error("cannot encode index entry {what}: {reason}")]
    Encode {
        /// Which entry.
        what: String,
        /// Encoder message.
        reason: String,
    },
    /// The index was written by a newer reg.
    #[error("index format {found} is newer than this reg understands ({INDEX_FORMAT}); upgrade reg")]
    TooNew {
        /// Format found.
        found: u32,
    },
}

/// A version as the index lists it (the manifest holds the rest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Version number within its name.
    pub number: VersionNumber,
    /// Manifest hash.
    pub id: VersionId,
    /// Push time (Unix seconds).
    pub created: u64,
    /// File size.
    pub size: u64,
    /// Whole-file blake3.
    pub blake3: FileHash,
    /// Source file name.
    pub source: SourceName,
    /// Checkpoint epoch.
    pub epoch: Option<i64>,
    /// Checkpoint global step.
    pub global_step: Option<i64>,
    /// Push message.
    pub message: Option<String>,
    /// Number of tensors.
    pub tensor_count: u64,
    /// Optimizer state was dropped by retention: the version pulls as a
    /// weights-only file.
    pub optimizer_dropped: bool,
}

impl VersionRecord {
    /// The index record of a version whose manifest hashes to `id`.
    pub fn from_manifest(id: VersionId, m: &Manifest) -> VersionRecord {
        VersionRecord {
            number: VersionNumber(m.number),
            id,
            created: m.created,
            size: m.size,
            blake3: m.blake3,
            source: m.source.clone(),
            epoch: m.meta.epoch,
            global_step: m.meta.global_step,
            message: m.message.clone(),
            tensor_count: m.tensors.len() as u64,
            optimizer_dropped: m.optimizer_dropped.is_some(),
        }
    }
}

/// What the index knows of a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// Decoded length.
    pub raw_len: u64,
    /// Length of the blob file.
    pub stored_len: u64,
    /// Codec name.
    pub codec: String,
}

impl BlobRecord {
    /// A record for a blob stored with `codec`.
    pub fn new(raw_len: u64, stored_len: u64, codec: Codec) -> BlobRecord {
        BlobRecord {
            raw_len,
            stored_len,
            codec: codec.name().to_string(),
        }
    }
}

/// The open index of one registry.
pub struct Index {
    path: PathBuf,
    db: sled::Db,
    versions: sled::Tree,
    manifests: sled::Tree,
    tags: sled::Tree,
    blobs: sled::Tree,
    deltas: sled::Tree,
    pending: sled::Tree,
    retention: sled::Tree,
    deferred: sled::Tree,
    removed: sled::Tree,
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn encode<T: Serialize>(v: &T, what: impl Fn() -> String) -> Result<Vec<u8>, IndexError> {
    bincode::serde::encode_to_vec(v, config()).map_err(|e| IndexError::Encode {
        what: what(),
        reason: e.to_string(),
    })
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: impl Fn() -> String) -> Result<T, IndexError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map(|(v, _)| v)
        .map_err(|e| IndexError::Damaged {
            what: what(),
            reason: e.to_string(),
        })
}

/// Delete `snap.*.generating` files: snapshots a sled instance was still
/// writing when its process was killed. sled 0.34 picks the newest
/// `snap.*` file at open, and a half-written `.generating` one sorts last,
/// so it refuses to open ("Read corrupted data"); the finished snapshot
/// beside it, or the log, holds the same state. Called with the index
/// lock held, when no sled instance runs, so every such file is a
/// leftover. (sled's own advice, spacejam/sled#1527.)
fn remove_unfinished_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A sled error as an [`IndexError`]: corrupted data is damage of the
/// index (said in words, not sled's debug text), anything else a failure.
fn sled_error(path: &Path, source: sled::Error) -> IndexError {
    match source {
        sled::Error::Corruption { at, .. } => IndexError::Damaged {
            what: format!("database {}", path.display()),
            reason: match at {
                Some(at) => format!("sled found corrupted data at {at:?}"),
                None => "sled found corrupted data".into(),
            },
        },
        source => IndexError::Sled {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Manifests longer than this are kept zstd-compressed in the index (a
/// folder of many files has a manifest of megabytes).
const COMPRESS_MANIFESTS_FROM: usize = 64 << 10;

/// The `manifests` tree's value for a manifest's JSON: the JSON itself,
/// or, when long, one zstd frame of it (told apart by the first byte: JSON
/// starts with `{`, a zstd frame with its magic number).
fn manifest_to_value(json: &[u8]) -> Vec<u8> {
    if json.len() >= COMPRESS_MANIFESTS_FROM {
        if let Ok(packed) = zstd::bulk::compress(json, 3) {
            if packed.len() < json.len() {
                return packed;
            }
        }
    }
    json.to_vec()
}

/// The JSON of a `manifests` tree value ([`manifest_to_value`]).
fn manifest_from_value(value: &[u8]) -> Result<Vec<u8>, String> {
    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    if !value.starts_with(&ZSTD_MAGIC) {
        return Ok(value.to_vec());
    }
    let mut out = Vec::new();
    zstd::stream::copy_decode(value, &mut out).map_err(|e| format!("compressed manifest does not decode: {e}"))?;
    Ok(out)
}

fn version_key(name: &str, number: u32) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&number.to_be_bytes());
    k
}

/// The name and number of a `versions` key; anything else is damage.
fn split_version_key(k: &[u8]) -> Result<(ModelName, u32), IndexError> {
    let damaged = |reason: &str| IndexError::Damaged {
        what: format!("version key {}", String::from_utf8_lossy(k)),
        reason: reason.to_string(),
    };
    let zero = k
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| damaged("no name separator"))?;
    let name = std::str::from_utf8(&k[..zero]).map_err(|_| damaged("name is not UTF-8"))?;
    let name = ModelName::new(name).map_err(|e| damaged(&e.to_string()))?;
    let number: [u8; 4] = k[zero + 1..].try_into().map_err(|_| damaged("number is not 4 bytes"))?;
    Ok((name, u32::from_be_bytes(number)))
}

fn delta_key(parent: BlobId, child: BlobId) -> Vec<u8> {
    let mut k = Vec::with_capacity(64);
    k.extend_from_slice(&parent.0);
    k.extend_from_slice(&child.0);
    k
}

fn name_prefix(name: &str) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k
}

impl Index {
    /// Open (creating) the sled database at `path`. The caller holds
    /// the registry's index lock, so no other sled instance has it open.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let err = |source| sled_error(path, source);
        remove_unfinished_snapshots(path);
        let db = sled::Config::new().path(path).open().map_err(err)?;
        let found = match db.get("format").map_err(err)? {
            Some(v) => v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX),
            None => 0,
        };
        if found > INDEX_FORMAT {
            return Err(IndexError::TooNew { found });
        }
        if found < INDEX_FORMAT {
            db.insert("format", &INDEX_FORMAT.to_be_bytes()).map_err(err)?;
            db.flush().map_err(err)?;
        }
        Ok(Index {
            versions: db.open_tree("versions").map_err(err)?,
            manifests: db.open_tree("manifests").map_err(err)?,
            tags: db.open_tree("tags").map_err(err)?,
            blobs: db.open_tree("blobs").map_err(err)?,
            deltas: db.open_tree("deltas").map_err(err)?,
            pending: db.open_tree("pending").map_err(err)?,
            retention: db.open_tree("retention").map_err(err)?,
            deferred: db.open_tree("deferred").map_err(err)?,
            removed: db.open_tree("removed").map_err(err)?,
            path: path.to_path_buf(),
            db,
        })
    }

    /// The result of a sled transaction that never aborts on purpose.
    fn transacted(&self, result: Result<(), TransactionError<()>>) -> Result<(), IndexError> {
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(self.err()(e)),
            Err(TransactionError::Abort(())) => Err(IndexError::Damaged {
                what: "transaction".into(),
                reason: "aborted".into(),
            }),
        }
    }

    fn err(&self) -> impl Fn(sled::Error) -> IndexError + '_ {
        move |source| sled_error(&self.path, source)
    }

    /// Every model name with its number of versions, sorted.
    pub fn names(&self) -> Result<Vec<(ModelName, usize)>, IndexError> {
        let mut out: Vec<(ModelName, usize)> = Vec::new();
        for item in self.versions.iter() {
            let (k, _) = item.map_err(self.err())?;
            let (name, _) = split_version_key(&k)?;
            match out.last_mut() {
                Some((n, c)) if *n == name => *c += 1,
                _ => out.push((name, 1)),
            }
        }
        Ok(out)
    }

    /// Versions of a name, oldest first.
    pub fn versions(&self, name: &ModelName) -> Result<Vec<VersionRecord>, IndexError> {
        let mut out = Vec::new();
        for item in self.versions.scan_prefix(name_prefix(name)) {
            let (k, v) = item.map_err(self.err())?;
            out.push(decode(&v, || format!("version {}", String::from_utf8_lossy(&k)))?);
        }
        Ok(out)
    }

    /// The manifest of a version.
    pub fn manifest(&self, id: VersionId) -> Result<Option<Manifest>, IndexError> {
        match self.manifest_json(id)? {
            None => Ok(None),
            Some(bytes) => Manifest::from_json(&bytes).map(Some).map_err(|e| IndexError::Damaged {
                what: format!("manifest {}", id.short()),
                reason: e.to_string(),
            }),
        }
    }

    /// A version's manifest JSON exactly as pushed (its blake3 is the
    /// version id), to write its manifest blob back when that is missing.
    pub fn manifest_json(&self, id: VersionId) -> Result<Option<Vec<u8>>, IndexError> {
        match self.manifests.get(id.0).map_err(self.err())? {
            None => Ok(None),
            Some(stored) => manifest_from_value(&stored)
                .map(Some)
                .map_err(|reason| IndexError::Damaged {
                    what: format!("manifest {}", id.short()),
                    reason,
                }),
        }
    }

    /// Tags of a name: `(tag, version number)`, sorted by tag.
    pub fn tags(&self, name: &ModelName) -> Result<Vec<(TagName, VersionNumber)>, IndexError> {
        let prefix = name_prefix(name);
        let mut out = Vec::new();
        for item in self.tags.scan_prefix(&prefix) {
            let (k, v) = item.map_err(self.err())?;
            let damaged = |reason: &str| IndexError::Damaged {
                what: format!("tag {}", String::from_utf8_lossy(&k)),
                reason: reason.to_string(),
            };
            let tag = std::str::from_utf8(&k[prefix.len()..])
                .map_err(|_| damaged("tag is not UTF-8"))?
                .to_string();
            let tag = TagName::stored(tag);
            let number: [u8; 4] = v
                .as_ref()
                .try_into()
                .map_err(|_| damaged(&format!("value is {} bytes, not a 4-byte version number", v.len())))?;
            out.push((tag, VersionNumber(u32::from_be_bytes(number))));
        }
        Ok(out)
    }

    /// Point `tag` of `name` at version `number`.
    pub fn set_tag(&self, name: &ModelName, tag: &TagName, number: VersionNumber) -> Result<(), IndexError> {
        let mut k = name_prefix(name);
        k.extend_from_slice(tag.as_bytes());
        self.tags.insert(k, &number.0.to_be_bytes()).map_err(self.err())?;
        Ok(())
    }

    /// Delete a tag; true when it existed.
    pub fn remove_tag(&self, name: &ModelName, tag: &TagName) -> Result<bool, IndexError> {
        let mut k = name_prefix(name);
        k.extend_from_slice(tag.as_bytes());
        Ok(self.tags.remove(k).map_err(self.err())?.is_some())
    }

    /// Whether the blob table lists a blob.
    pub fn has_blob(&self, id: BlobId) -> Result<bool, IndexError> {
        self.blobs.contains_key(id.0).map_err(self.err())
    }

    /// Every blob record.
    pub fn blob_records(&self) -> Result<Vec<(BlobId, BlobRecord)>, IndexError> {
        let mut out = Vec::new();
        for item in self.blobs.iter() {
            let (k, v) = item.map_err(self.err())?;
            let mut id = [0u8; 32];
            if k.len() == 32 {
                id.copy_from_slice(&k);
            }
            out.push((BlobId(id), decode(&v, || format!("blob {}", BlobId(id).to_hex()))?));
        }
        Ok(out)
    }

    /// Make a version visible: its record, manifest, tag, new blob
    /// records and the blobs whose compression it deferred (`deferred`:
    /// id and element width) in one transaction, then flush to disk.
    pub fn commit_version(
        &self,
        record: &VersionRecord,
        manifest_json: &[u8],
        name: &ModelName,
        tag: Option<&TagName>,
        new_blobs: &[(BlobId, BlobRecord)],
        deferred: &[(BlobId, Option<u8>)],
    ) -> Result<(), IndexError> {
        let rec = encode(record, || {
            format!("version {}", crate::ids::VersionLabel::new(name, record.number))
        })?;
        let vkey = version_key(name, record.number.0);
        let blob_rows: Vec<([u8; 32], Vec<u8>)> = new_blobs
            .iter()
            .map(|(id, r)| Ok((id.0, encode(r, || format!("blob {id}"))?)))
            .collect::<Result<_, IndexError>>()?;
        let manifest_value = manifest_to_value(manifest_json);
        let tag_row = tag.map(|t| {
            let mut k = name_prefix(name);
            k.extend_from_slice(t.as_bytes());
            k
        });
        let trees = (&self.versions, &self.manifests, &self.tags, &self.blobs, &self.deferred);
        let result: Result<(), TransactionError<()>> =
            trees.transaction(|(versions, manifests, tags, blobs, deferred_tree)| {
                versions.insert(vkey.as_slice(), rec.as_slice())?;
                manifests.insert(&record.id.0, manifest_value.as_slice())?;
                if let Some(k) = &tag_row {
                    tags.insert(k.as_slice(), &record.number.0.to_be_bytes())?;
                }
                for (id, row) in &blob_rows {
                    blobs.insert(id, row.as_slice())?;
                }
                for (id, width) in deferred {
                    deferred_tree.insert(&id.0, &[width.unwrap_or(0)])?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        self.transacted(result)?;
        self.flush()
    }

    /// True when the index holds nothing at all: no version, no blob
    /// record, no removed version (a new registry's, or one that lost its
    /// index, which `reg_registry::Registry` tells apart by the blobs).
    pub fn is_empty(&self) -> Result<bool, IndexError> {
        for tree in [&self.versions, &self.manifests, &self.blobs, &self.removed] {
            if tree.first().map_err(self.err())?.is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Versions removed from the index whose manifest blob gc may still
    /// have to delete: `(version id, name, number)`.
    pub fn removed(&self) -> Result<Vec<(VersionId, ModelName, VersionNumber)>, IndexError> {
        let mut out = Vec::new();
        for item in self.removed.iter() {
            let (k, v) = item.map_err(self.err())?;
            let id: [u8; 32] = k.as_ref().try_into().map_err(|_| IndexError::Damaged {
                what: format!("removed version {}", String::from_utf8_lossy(&k)),
                reason: format!("key is {} bytes, not a 32-byte version id", k.len()),
            })?;
            let (name, number) = split_version_key(&v)?;
            out.push((VersionId(id), name, VersionNumber(number)));
        }
        Ok(out)
    }

    /// Forget removed versions whose manifest blobs are gone.
    pub fn forget_removed(&self, ids: &[VersionId]) -> Result<(), IndexError> {
        self.remove_keys(&self.removed, ids.iter().map(|id| id.0))?;
        self.flush()
    }

    /// Take a manifest out of the index that a replacement took the place
    /// of (retention), noting it in `removed` in the same transaction.
    pub fn retire_manifest(&self, id: VersionId, name: &ModelName, number: VersionNumber) -> Result<(), IndexError> {
        let note = version_key(name, number.0);
        let result: Result<(), TransactionError<()>> =
            (&self.manifests, &self.removed).transaction(|(manifests, removed)| {
                manifests.remove(&id.0)?;
                removed.insert(&id.0, note.as_slice())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        self.transacted(result)?;
        self.flush()
    }

    /// Remove a version: its record, its manifest and the tags pointing at
    /// it, noting it in `removed`, in one transaction, then flush.
    pub fn remove_version(&self, name: &ModelName, number: VersionNumber, id: VersionId) -> Result<(), IndexError> {
        let vkey = version_key(name, number.0);
        let tag_keys: Vec<Vec<u8>> = self
            .tags(name)?
            .into_iter()
            .filter(|(_, n)| *n == number)
            .map(|(t, _)| {
                let mut k = name_prefix(name);
                k.extend_from_slice(t.as_bytes());
                k
            })
            .collect();
        let result: Result<(), TransactionError<()>> = (&self.versions, &self.manifests, &self.tags, &self.removed)
            .transaction(|(versions, manifests, tags, removed)| {
                versions.remove(vkey.as_slice())?;
                manifests.remove(&id.0)?;
                removed.insert(&id.0, vkey.as_slice())?;
                for k in &tag_keys {
                    tags.remove(k.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        self.transacted(result)?;
        self.flush()
    }

    /// Add blob records.
    pub fn insert_blob_records(&self, rows: &[(BlobId, BlobRecord)]) -> Result<(), IndexError> {
        let mut batch = sled::Batch::default();
        for (id, r) in rows {
            batch.insert(&id.0, encode(r, || format!("blob {id}"))?);
        }
        self.blobs.apply_batch(batch).map_err(self.err())?;
        self.flush()
    }

    /// Forget blob records (after their files were deleted).
    pub fn remove_blob_records(&self, ids: &[BlobId]) -> Result<(), IndexError> {
        self.remove_keys(&self.blobs, ids.iter().map(|id| id.0))?;
        self.flush()
    }

    /// Every version of every name: `(name, record)`, by name then number.
    pub fn all_versions(&self) -> Result<Vec<(ModelName, VersionRecord)>, IndexError> {
        let mut out = Vec::new();
        for item in self.versions.iter() {
            let (k, v) = item.map_err(self.err())?;
            let (name, number) = split_version_key(&k)?;
            let rec: VersionRecord = decode(&v, || {
                format!("version {}", crate::ids::VersionLabel::new(&name, number))
            })?;
            if rec.number != number {
                return Err(IndexError::Damaged {
                    what: format!("version {}", crate::ids::VersionLabel::new(&name, number)),
                    reason: format!("its record says v{}", rec.number),
                });
            }
            out.push((name, rec));
        }
        Ok(out)
    }

    /// Replace the record of a stored blob (after it was re-encoded).
    pub fn set_blob_record(&self, id: BlobId, record: &BlobRecord) -> Result<(), IndexError> {
        let row = encode(record, || format!("blob {id}"))?;
        self.blobs.insert(id.0, row).map_err(self.err())?;
        Ok(())
    }

    /// Record that `child` is stored as a delta against `parent`.
    pub fn add_delta(&self, parent: BlobId, child: BlobId) -> Result<(), IndexError> {
        self.deltas.insert(delta_key(parent, child), &[]).map_err(self.err())?;
        Ok(())
    }

    /// Forget that `child` is a delta against `parent`.
    pub fn remove_delta(&self, parent: BlobId, child: BlobId) -> Result<(), IndexError> {
        self.deltas.remove(delta_key(parent, child)).map_err(self.err())?;
        Ok(())
    }

    /// The blobs recorded as deltas against `parent`.
    pub fn delta_children(&self, parent: BlobId) -> Result<Vec<BlobId>, IndexError> {
        let mut out = Vec::new();
        for item in self.deltas.scan_prefix(parent.0) {
            let (k, _) = item.map_err(self.err())?;
            if let Some(child) = k.get(32..64) {
                let mut id = [0u8; 32];
                id.copy_from_slice(child);
                out.push(BlobId(id));
            }
        }
        Ok(out)
    }

    /// Every recorded `(parent, child)` delta.
    pub fn deltas(&self) -> Result<Vec<(BlobId, BlobId)>, IndexError> {
        let mut out = Vec::new();
        for item in self.deltas.iter() {
            let (k, _) = item.map_err(self.err())?;
            if k.len() == 64 {
                let (mut p, mut c) = ([0u8; 32], [0u8; 32]);
                p.copy_from_slice(&k[..32]);
                c.copy_from_slice(&k[32..]);
                out.push((BlobId(p), BlobId(c)));
            }
        }
        Ok(out)
    }

    /// Make the delta table exactly `edges` (gc and index rebuilds read
    /// them from blob headers), then flush.
    pub fn set_deltas(&self, edges: &[(BlobId, BlobId)]) -> Result<(), IndexError> {
        let want: std::collections::BTreeSet<Vec<u8>> = edges.iter().map(|(p, c)| delta_key(*p, *c)).collect();
        let mut batch = sled::Batch::default();
        for item in self.deltas.iter() {
            let (k, _) = item.map_err(self.err())?;
            if !want.contains(k.as_ref()) {
                batch.remove(k);
            }
        }
        for k in &want {
            batch.insert(k.as_slice(), &[]);
        }
        self.deltas.apply_batch(batch).map_err(self.err())?;
        self.flush()
    }

    /// Record that `name` needs re-encoding as deltas from version `from`
    /// on, and then retention keeping optimizer state in the newest
    /// `retain` versions, when given.
    pub fn add_pending(&self, name: &ModelName, from: VersionNumber, retain: Option<u32>) -> Result<(), IndexError> {
        let value = retain.map(|n| n.to_be_bytes().to_vec()).unwrap_or_default();
        self.pending
            .insert(version_key(name, from.0), value)
            .map_err(self.err())?;
        Ok(())
    }

    /// The background work still to do: `(name, from, retain)`, by name
    /// then number.
    pub fn pending(&self) -> Result<Vec<(ModelName, VersionNumber, Option<u32>)>, IndexError> {
        let mut out = Vec::new();
        for item in self.pending.iter() {
            let (k, v) = item.map_err(self.err())?;
            let (name, from) = split_version_key(&k)?;
            let retain = match v.len() {
                0 => None,
                4 => Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
                n => {
                    return Err(IndexError::Damaged {
                        what: format!("pending work of {}", crate::ids::VersionLabel::new(&name, from)),
                        reason: format!("value is {n} bytes, not 0 or 4"),
                    })
                }
            };
            out.push((name, VersionNumber(from), retain));
        }
        Ok(out)
    }

    /// Forget a re-encoding that is done; its retention request (`retain`
    /// as [`Index::pending`] read it), if any, moves to the `retention`
    /// tree in the same transaction, so a job killed in between leaves
    /// one or the other, never neither.
    pub fn remove_pending(&self, name: &ModelName, from: VersionNumber, retain: Option<u32>) -> Result<(), IndexError> {
        let key = version_key(name, from.0);
        let result: Result<(), TransactionError<()>> =
            (&self.pending, &self.retention).transaction(|(pending, retention)| {
                pending.remove(key.as_slice())?;
                if let Some(n) = retain {
                    let mut value = n.to_be_bytes().to_vec();
                    value.extend_from_slice(&from.0.to_be_bytes());
                    retention.insert(name.as_bytes(), value)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        self.transacted(result)
    }

    /// Retention still to run: `(name, keep_optimizer_last, token)`, the
    /// token to pass to [`Index::remove_retention`].
    pub fn retention_queue(&self) -> Result<Vec<(ModelName, u32, Vec<u8>)>, IndexError> {
        let mut out = Vec::new();
        for item in self.retention.iter() {
            let (k, v) = item.map_err(self.err())?;
            let damaged = |reason: String| IndexError::Damaged {
                what: format!("retention request {}", String::from_utf8_lossy(&k)),
                reason,
            };
            let name = std::str::from_utf8(&k).map_err(|_| damaged("name is not UTF-8".into()))?;
            let name = ModelName::new(name).map_err(|e| damaged(e.to_string()))?;
            let n: [u8; 4] = v
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .filter(|_| v.len() == 8)
                .ok_or_else(|| damaged(format!("value is {} bytes, not 8", v.len())))?;
            out.push((name, u32::from_be_bytes(n), v.to_vec()));
        }
        Ok(out)
    }

    /// Forget a retention request that ran, unless a newer one replaced
    /// it meanwhile (`token` is the value [`Index::retention_queue`] read).
    pub fn remove_retention(&self, name: &ModelName, token: &[u8]) -> Result<(), IndexError> {
        // A failed swap means a newer request: it stays for its own run.
        let _swapped = self
            .retention
            .compare_and_swap(name.as_bytes(), Some(token), None::<&[u8]>)
            .map_err(self.err())?;
        Ok(())
    }

    /// Blobs stored raw whose compression is still to do: `(id, element
    /// width)`, in id order.
    pub fn deferred(&self) -> Result<Vec<(BlobId, Option<u8>)>, IndexError> {
        let mut out = Vec::new();
        for item in self.deferred.iter() {
            let (k, v) = item.map_err(self.err())?;
            let id: [u8; 32] = k.as_ref().try_into().map_err(|_| IndexError::Damaged {
                what: "a deferred compression".into(),
                reason: format!("key is {} bytes, not 32", k.len()),
            })?;
            let width = match v.as_ref() {
                [0] => None,
                [w] => Some(*w),
                _ => {
                    return Err(IndexError::Damaged {
                        what: format!("the deferred compression of blob {}", BlobId(id)),
                        reason: format!("value is {} bytes, not 1", v.len()),
                    })
                }
            };
            out.push((BlobId(id), width));
        }
        Ok(out)
    }

    /// Forget deferred compressions that are done.
    pub fn remove_deferred(&self, ids: &[BlobId]) -> Result<(), IndexError> {
        self.remove_keys(&self.deferred, ids.iter().map(|id| id.0))?;
        Ok(())
    }

    /// Remove the 32-byte `keys` from `tree` in one batch.
    fn remove_keys(&self, tree: &sled::Tree, keys: impl Iterator<Item = [u8; 32]>) -> Result<(), IndexError> {
        let mut batch = sled::Batch::default();
        for key in keys {
            batch.remove(&key);
        }
        tree.apply_batch(batch).map_err(self.err())?;
        Ok(())
    }

    /// Flush everything to disk.
    pub fn flush(&self) -> Result<(), IndexError> {
        self.db.flush().map_err(self.err())?;
        Ok(())
    }
}
