//! The blob store of one registry: the policy over a [`Backend`].
//!
//! A blob file only ever appears under its final name complete: it is
//! encoded into a temp file, fsynced (always for a re-encoding, which
//! replaces bytes older versions need; for new blobs when the durability
//! is [`Durability::Full`]), then installed under its name. The names
//! installed or removed are made durable by [`BlobStore::sync`], which
//! callers run before they name the new blobs in an index. Where the
//! files are, and how renames and fsyncs are done, is the backend's.

use crate::backend::{Backend, LocalDisk, TempFile};
use crate::blob_file::{self, BlobHeader, HEADER_LEN};
use crate::chain::{self, ChainReader};
use crate::{BlobId, Codec, RawSource, StoreError};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How new blobs are encoded (`codecs` in registry.toml: `"auto"`,
/// `"zstd"` or `"raw"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecPolicy {
    /// Float blobs as byte planes, others zstd; raw when nothing pays.
    #[default]
    Auto,
    /// zstd for everything (no planes).
    Zstd,
    /// No compression at all (deduplication only).
    Raw,
}

impl CodecPolicy {
    /// Parse `auto`, `zstd` or `raw`.
    pub fn parse(s: &str) -> Option<CodecPolicy> {
        match s {
            "auto" => Some(CodecPolicy::Auto),
            "zstd" => Some(CodecPolicy::Zstd),
            "raw" => Some(CodecPolicy::Raw),
            _ => None,
        }
    }

    pub(crate) fn width(self, width: Option<u8>) -> Option<u8> {
        match self {
            CodecPolicy::Auto => width,
            CodecPolicy::Zstd | CodecPolicy::Raw => None,
        }
    }

    /// The zstd level to compress with; `None` stores the raw bytes.
    pub(crate) fn level(self, level: i32) -> Option<i32> {
        match self {
            CodecPolicy::Raw => None,
            _ => Some(level),
        }
    }
}

/// When new blobs reach the disk (`durability` in registry.toml: `"full"`
/// or `"fast"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every new blob file and the directories it lands in are fsynced
    /// before the call that wrote it returns (and so before an index names
    /// it): a version survives a power loss once its push has returned.
    #[default]
    Full,
    /// New blob files are left to the kernel to write back, as `cp`
    /// leaves a copy: a power loss in the next seconds can lose the newest
    /// versions (reads then report them damaged, never wrong bytes), but
    /// nothing older. Re-encodings of blobs that exist (as deltas, by gc) are
    /// fsynced in both modes, since they replace data older versions need;
    /// a re-encoding as a delta first makes its parent (and the parent's
    /// chain) durable, since the older version then needs that too.
    Fast,
}

/// What [`BlobStore::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// False when the blob was already stored (nothing written).
    pub written: bool,
    /// Bytes the blob file takes on disk (header included).
    pub stored_len: u64,
    /// The codec its body uses.
    pub codec: Codec,
    /// The blob a delta body is XORed against.
    pub parent: Option<BlobId>,
}

/// What a blob file's header says (see [`BlobStore::describe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// Decoded length.
    pub raw_len: u64,
    /// The codec of its body.
    pub codec: Codec,
    /// The parent of a delta blob.
    pub parent: Option<BlobId>,
}

impl From<BlobHeader> for BlobInfo {
    fn from(h: BlobHeader) -> BlobInfo {
        BlobInfo {
            raw_len: h.raw_len,
            codec: h.codec,
            parent: h.parent,
        }
    }
}

/// A temp file holding an encoded blob, with what was written.
pub(crate) type Encoded = (Box<dyn TempFile>, blob_file::Written);

/// Content-addressed, compressed blob files, on a [`Backend`].
#[derive(Debug)]
pub struct BlobStore {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) level: i32,
    pub(crate) policy: CodecPolicy,
    /// Blobs installed or removed since the last [`BlobStore::sync`] whose
    /// names must be made durable by it.
    pub(crate) dirty: Mutex<HashSet<BlobId>>,
    pub(crate) durability: Durability,
}

impl BlobStore {
    /// Open (creating if needed) the blob directory at `root` on the local
    /// disk ([`LocalDisk`]); new blobs are compressed with zstd at `level`.
    pub fn open(root: impl AsRef<Path>, level: i32) -> Result<BlobStore, StoreError> {
        Ok(BlobStore::with_backend(Arc::new(LocalDisk::open(root)?), level))
    }

    /// A store on `backend`; new blobs are compressed with zstd at `level`.
    pub fn with_backend(backend: Arc<dyn Backend>, level: i32) -> BlobStore {
        BlobStore {
            backend,
            level,
            policy: CodecPolicy::Auto,
            dirty: Mutex::new(HashSet::new()),
            durability: Durability::Full,
        }
    }

    /// Another store on the same backend with the same settings, for a
    /// reader that must own its store; what this one has left to
    /// [`BlobStore::sync`] stays this one's.
    pub fn handle(&self) -> BlobStore {
        BlobStore {
            backend: Arc::clone(&self.backend),
            level: self.level,
            policy: self.policy,
            dirty: Mutex::new(HashSet::new()),
            durability: self.durability,
        }
    }

    /// Choose how new blobs are encoded (benchmarks compare the policies).
    pub fn with_policy(mut self, policy: CodecPolicy) -> BlobStore {
        self.policy = policy;
        self
    }

    /// Choose when new blobs reach the disk.
    pub fn with_durability(mut self, durability: Durability) -> BlobStore {
        self.durability = durability;
        self
    }

    /// The backend the blob files are on.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Where the blob `id` lives (whether or not it exists): its file on
    /// the local disk, a name for messages on other backends.
    pub fn path_of(&self, id: BlobId) -> PathBuf {
        self.backend.path_of(id)
    }

    /// Where temp files are written (see [`Backend::temp_dir`]).
    pub fn temp_dir(&self) -> PathBuf {
        self.backend.temp_dir()
    }

    /// True when the blob file exists.
    pub fn contains(&self, id: BlobId) -> bool {
        matches!(self.backend.stored_len(id), Ok(Some(_)))
    }

    /// Store `raw` under `id` (which must be `BlobId::of(raw)`; callers hash
    /// once and pass it in). Does nothing when the blob exists.
    pub fn put(&self, id: BlobId, raw: &[u8]) -> Result<PutOutcome, StoreError> {
        self.put_from(id, &raw)
    }

    /// Store the bytes of `raw` under `id` (the blake3 of those bytes),
    /// streaming them through the compressor. Does nothing when the blob
    /// exists.
    pub fn put_from(&self, id: BlobId, raw: &dyn RawSource) -> Result<PutOutcome, StoreError> {
        self.put_typed(id, raw, None)
    }

    /// [`BlobStore::put_from`] for bytes that are `width`-byte floats: they
    /// are split into byte planes and each plane compressed as it pays
    /// (`None`: plain zstd).
    pub fn put_typed(&self, id: BlobId, raw: &dyn RawSource, width: Option<u8>) -> Result<PutOutcome, StoreError> {
        if let Some(existing) = self.existing(id)? {
            return Ok(existing);
        }
        self.encode_pending(raw, width)?.commit(id)
    }

    /// The stored outcome of `id` when its file exists.
    pub(crate) fn existing(&self, id: BlobId) -> Result<Option<PutOutcome>, StoreError> {
        let stored_len = self
            .backend
            .stored_len(id)
            .map_err(StoreError::io("reading metadata of", self.path_of(id)))?;
        let Some(stored_len) = stored_len else {
            return Ok(None);
        };
        let info = self.describe(id)?;
        Ok(Some(PutOutcome {
            written: false,
            stored_len,
            codec: info.codec,
            parent: info.parent,
        }))
    }

    /// Encode into a new temp file; `id` (when known) names it and is the
    /// blob a source that fails its own check is reported as.
    pub(crate) fn encode_to_tmp(
        &self,
        id: Option<BlobId>,
        encode: impl FnOnce(&mut dyn TempFile) -> std::io::Result<Option<blob_file::Written>>,
    ) -> Result<Option<Encoded>, StoreError> {
        let hint = id
            .map(|i| i.to_hex()[..16].to_string())
            .unwrap_or_else(|| "pending".into());
        let mut tmp = self
            .backend
            .create_temp(&hint)
            .map_err(StoreError::io("creating a temp file in", self.temp_dir()))?;
        let written = encode(tmp.as_mut()).map_err(|e| match (e.kind(), id) {
            // A source blob that fails its own check while being read.
            (std::io::ErrorKind::InvalidData, Some(id)) => blob_file::corrupt(id, e.to_string()),
            _ => StoreError::Io {
                action: "writing",
                path: tmp.path(),
                source: e,
            },
        })?;
        Ok(written.map(|w| (tmp, w)))
    }

    /// fsync a finished temp file (as the durability asks, unless
    /// `synced` says it was already) and rename it to the blob's name
    /// (replacing an existing file of the same blob when `replace`).
    pub(crate) fn install(
        &self,
        id: BlobId,
        mut tmp: Box<dyn TempFile>,
        written: blob_file::Written,
        replace: bool,
        synced: bool,
    ) -> Result<PutOutcome, StoreError> {
        if !replace {
            // Stored meanwhile (another writer, or a duplicate payload):
            // the temp file is dropped.
            if let Some(existing) = self.existing(id)? {
                return Ok(existing);
            }
        }
        // A file that replaces another is synced in every mode: an older
        // version may need the bytes it holds.
        let durable = replace || self.durability == Durability::Full;
        if durable && !synced {
            tmp.sync().map_err(StoreError::io("syncing", tmp.path()))?;
        }
        self.backend.install(tmp, id).map_err(|source| StoreError::Io {
            action: "renaming a blob into",
            path: self.path_of(id),
            source,
        })?;
        if durable {
            self.mark_dirty(id);
        }
        Ok(PutOutcome {
            written: true,
            stored_len: written.stored_len,
            codec: written.header.codec,
            parent: written.header.parent,
        })
    }

    /// Note that `id`'s name changed, for the next [`BlobStore::sync`].
    fn mark_dirty(&self, id: BlobId) {
        if let Ok(mut dirty) = self.dirty.lock() {
            dirty.insert(id);
        }
    }

    /// Make the blobs installed and removed since the last call durable
    /// (on the local disk: fsync the directories they are in), so that a
    /// crash leaves them as they are (with [`Durability::Fast`], only the
    /// re-encodings of existing blobs and the removals). Callers run it
    /// before they name new blobs in an index, and after removals before
    /// they forget them.
    pub fn sync(&self) -> Result<(), StoreError> {
        let ids: Vec<BlobId> = match self.dirty.lock() {
            Ok(mut d) => d.drain().collect(),
            Err(_) => Vec::new(),
        };
        if ids.is_empty() {
            return Ok(());
        }
        self.backend
            .sync(&ids)
            .map_err(StoreError::io("syncing blob directories in", self.backend.location()))
    }

    /// Make the names of the blobs `ids` durable as they are now, present
    /// or absent, whoever installed or removed them (another process may
    /// have, and not synced): before an index forgets a blob it no longer
    /// finds, or names one it did not write.
    pub fn sync_names(&self, ids: &[BlobId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.backend
            .sync(ids)
            .map_err(StoreError::io("syncing blob directories in", self.backend.location()))
    }

    /// Make the stored blobs `ids` durable, bytes and names, before
    /// something that must survive a crash depends on them: a version
    /// that names blobs its push found stored but did not write (another
    /// writer's, not synced yet; an interrupted push's), a re-encoding
    /// as a delta against them.
    pub fn make_durable(&self, ids: &[BlobId]) -> Result<(), StoreError> {
        for id in ids {
            let (file, _) = chain::open_file(&*self.backend, *id)?;
            file.sync().map_err(StoreError::io("syncing", self.path_of(*id)))?;
        }
        self.sync_names(ids)
    }

    fn open_chain(&self, id: BlobId) -> Result<(ChainReader, BlobHeader), StoreError> {
        let (f, header) = chain::open_file(&*self.backend, id)?;
        let reader = ChainReader::open(id, f, header, &|p| chain::open_file(&*self.backend, p))?;
        Ok((reader, header))
    }

    /// Raw length, codec and parent of a stored blob, from its header.
    pub fn describe(&self, id: BlobId) -> Result<BlobInfo, StoreError> {
        chain::open_file(&*self.backend, id).map(|(_, h)| h.into())
    }

    /// Where blob `id`'s bytes lie as they are, when it is stored raw (no
    /// codec, no parent): its file, the offset of its first raw byte and
    /// the file's length. `None` for an encoded blob. The file may be replaced (compressed by
    /// the background job) or removed (gc) at any time after: a caller
    /// that maps it checks what it opened (docs/format.md: the header's
    /// codec byte, the file's length).
    pub fn raw_extent(&self, id: BlobId) -> Result<Option<(PathBuf, u64, u64)>, StoreError> {
        let (file, header) = chain::open_file(&*self.backend, id)?;
        if header.codec != Codec::Raw || header.parent.is_some() {
            return Ok(None);
        }
        Ok(Some((self.path_of(id), header.body_start(), file.file_len())))
    }

    /// Stream the blob's raw bytes into `out`, verifying length and hash.
    /// On error the bytes already written to `out` must be discarded.
    pub fn copy_to(&self, id: BlobId, out: &mut dyn Write) -> Result<u64, StoreError> {
        let (mut reader, header) = self.open_chain(id)?;
        blob_file::decode_to(&mut reader, header, id, out)
    }

    /// A reader over the blob's raw bytes (through its delta chain) that
    /// does *not* check the blob's hash, for callers that verify the bytes
    /// another way (pull checks the whole file's hash). The frames of
    /// planes and delta blobs are still checked against the checksums they
    /// record as they decode.
    pub fn unchecked_reader(&self, id: BlobId) -> Result<ChainReader, StoreError> {
        self.open_chain(id).map(|(r, _)| r)
    }

    /// A reader over the blob's raw bytes that verifies the hash at the end.
    pub fn reader(&self, id: BlobId) -> Result<crate::BlobReader, StoreError> {
        let (reader, header) = self.open_chain(id)?;
        crate::BlobReader::new(reader, header.raw_len, id)
    }

    /// The blob's raw bytes, verified. Meant for small blobs (skeletons,
    /// manifests); large ones should be streamed with [`BlobStore::copy_to`].
    pub fn read(&self, id: BlobId) -> Result<Vec<u8>, StoreError> {
        let (mut reader, header) = self.open_chain(id)?;
        let file_len = self.stored_len(id)?;
        // Trust the header's length only as far as the file could hold it.
        let cap = match header.codec {
            Codec::Raw => header.raw_len.min(file_len.saturating_sub(HEADER_LEN)),
            Codec::Zstd | Codec::Planes | Codec::Delta => header.raw_len.min(file_len.saturating_mul(64)),
        };
        let mut out = Vec::with_capacity(usize::try_from(cap).unwrap_or(0));
        blob_file::decode_to(&mut reader, header, id, &mut out)?;
        Ok(out)
    }

    /// Bytes the blob file takes on disk.
    pub fn stored_len(&self, id: BlobId) -> Result<u64, StoreError> {
        match self.backend.stored_len(id) {
            Ok(Some(len)) => Ok(len),
            Ok(None) => Err(StoreError::Missing(id)),
            Err(e) => Err(StoreError::Io {
                action: "reading metadata of",
                path: self.path_of(id),
                source: e,
            }),
        }
    }

    /// Read the whole blob file and check its content against its id.
    pub fn verify(&self, id: BlobId) -> Result<(), StoreError> {
        self.copy_to(id, &mut std::io::sink()).map(|_| ())
    }

    /// Delete a blob file (missing is not an error). The removal is
    /// durable after the next [`BlobStore::sync`].
    pub fn remove(&self, id: BlobId) -> Result<(), StoreError> {
        let removed = self
            .backend
            .remove(id)
            .map_err(StoreError::io("removing", self.path_of(id)))?;
        if removed {
            self.mark_dirty(id);
        }
        Ok(())
    }

    /// Every blob id in the store, sorted (files with names that are not
    /// ids are skipped).
    pub fn list(&self) -> Result<Vec<BlobId>, StoreError> {
        let mut out = self
            .backend
            .list()
            .map_err(StoreError::io("listing", self.backend.location()))?;
        out.sort();
        Ok(out)
    }

    /// Remove leftover temp files (from a crashed writer).
    pub fn clean_tmp(&self) -> Result<usize, StoreError> {
        self.backend
            .clean_temps()
            .map_err(StoreError::io("listing", self.temp_dir()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn put_read_verify_and_detect_damage() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = BlobStore::open(dir.path().join("blobs"), 3)?;
        let compressible = vec![42u8; 100_000];
        let random: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for data in [&compressible[..], &random[..], b"", b"tiny"] {
            let id = BlobId::of(data);
            let out = store.put(id, data)?;
            assert!(out.written);
            assert!(!store.put(id, data)?.written);
            assert_eq!(store.read(id)?, data);
            store.verify(id)?;
        }
        assert_eq!(store.put(BlobId::of(&compressible), &compressible)?.codec, Codec::Zstd);
        store.sync()?;
        // flip a byte in the body of each: reads must fail as corrupt
        for data in [&compressible[..], &random[..]] {
            let id = BlobId::of(data);
            let path = store.path_of(id);
            let mut bytes = fs::read(&path)?;
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x55;
            fs::write(&path, &bytes)?;
            assert!(matches!(store.read(id), Err(StoreError::Corrupt { .. })));
            assert!(matches!(store.verify(id), Err(StoreError::Corrupt { .. })));
        }
        assert!(matches!(store.read(BlobId::of(b"nope")), Err(StoreError::Missing(_))));
        assert_eq!(store.list()?.len(), 4);
        Ok(())
    }
}
