//! Blobs encoded before they are named: a caller that reads a file once
//! encodes each new payload into a temp file while it hashes it, checks
//! what it read (its id, a CRC the file records), and only then commits
//! the blob under its id. Until [`PendingBlob::commit`] nothing is visible
//! in the store, and dropping a pending blob deletes its temp file, so a
//! push that fails half-way leaves the store as it was.

use crate::backend::TempFile;
use crate::blob_file::{self, Written};
use crate::{BlobId, BlobStore, Codec, PutOutcome, RawSource, StoreError};

/// An encoded blob in a temp file of the store, not yet under its name.
pub struct PendingBlob<'s> {
    store: &'s BlobStore,
    tmp: Box<dyn TempFile>,
    written: Written,
    /// Made durable already ([`PendingBlob::sync_now`]).
    synced: bool,
}

impl<'s> PendingBlob<'s> {
    pub(crate) fn new(store: &'s BlobStore, tmp: Box<dyn TempFile>, written: Written) -> PendingBlob<'s> {
        PendingBlob {
            store,
            tmp,
            written,
            synced: false,
        }
    }

    /// Length of the blob file.
    pub fn stored_len(&self) -> u64 {
        self.written.stored_len
    }

    /// The codec the blob was encoded with.
    pub fn codec(&self) -> Codec {
        self.written.header.codec
    }

    /// Decode the temp file as a reader of the stored blob would, checking
    /// that it yields the raw bytes of `id`; returns them. For small blobs
    /// whose stored form must be proven readable before anything names it
    /// (a version's manifest).
    pub fn read_back(&self, id: BlobId) -> Result<Vec<u8>, StoreError> {
        let mut file = self.tmp.reader().map_err(StoreError::io("reading", self.tmp.path()))?;
        let header = blob_file::read_header(&mut file, id)?;
        let mut body = crate::chain::ChainReader::open(id, file, header, &|p| {
            Err(StoreError::Corrupt {
                id: p,
                reason: "a pending blob read back names a parent".into(),
            })
        })?;
        let mut out = Vec::new();
        blob_file::decode_to(&mut body, header, id, &mut out)?;
        Ok(out)
    }

    /// Store the blob as `id`, which must be the blake3 of the raw bytes
    /// it was encoded from (the caller hashed them as they were read).
    /// When the blob exists already the temp file is dropped.
    pub fn commit(self, id: BlobId) -> Result<PutOutcome, StoreError> {
        self.store.install(id, self.tmp, self.written, false, self.synced)
    }

    /// Keep the blob as the file `path` outside the store (same file
    /// system), durable, for another process's push to adopt with
    /// [`BlobStore::adopt_kept`]: a DCP rank's `reg stage` hands its
    /// chunks to the coordinator's push this way.
    pub fn keep_as(mut self, path: &std::path::Path) -> Result<(), StoreError> {
        if !self.synced {
            self.tmp.sync().map_err(StoreError::io("syncing", self.tmp.path()))?;
        }
        self.store
            .backend()
            .keep_temp(self.tmp, path)
            .map_err(StoreError::io("keeping a staged blob as", path))
    }

    /// Make the temp file durable now, as its commit would (per the
    /// store's durability), so that the commit only renames it: a caller
    /// that writes blobs one after another (a stream) syncs each one while
    /// it writes the next.
    pub fn sync_now(&mut self) -> Result<(), StoreError> {
        if self.store.durability == crate::Durability::Full && !self.synced {
            self.tmp.sync().map_err(StoreError::io("syncing", self.tmp.path()))?;
            self.synced = true;
        }
        Ok(())
    }
}

impl BlobStore {
    /// The blob another process kept at `path` ([`PendingBlob::keep_as`]),
    /// as a pending blob of this store: its commit renames the file into
    /// place (it is durable already), dropping it deletes the file. Its
    /// header must say a raw (uncompressed) blob of `raw_len` bytes.
    pub fn adopt_kept(&self, path: &std::path::Path, id: BlobId, raw_len: u64) -> Result<PendingBlob<'_>, StoreError> {
        let tmp = self
            .backend()
            .adopt_temp(path)
            .map_err(StoreError::io("adopting the staged blob", path))?;
        let mut reader = tmp.reader().map_err(StoreError::io("reading", path))?;
        let header = blob_file::read_header(&mut reader, id)?;
        let stored_len = reader.file_len();
        if header.codec != Codec::Raw || header.raw_len != raw_len || stored_len != header.body_start() + raw_len {
            return Err(blob_file::corrupt(
                id,
                format!(
                    "the staged blob {} is not a raw blob of {raw_len} bytes",
                    path.display()
                ),
            ));
        }
        let mut pending = PendingBlob::new(self, tmp, Written { header, stored_len });
        pending.synced = true;
        Ok(pending)
    }

    /// Encode `raw` (split into byte planes when `width` is given) into a
    /// temp file, as [`BlobStore::put_typed`] would store it.
    pub fn encode_pending(&self, raw: &dyn RawSource, width: Option<u8>) -> Result<PendingBlob<'_>, StoreError> {
        self.encode_with(raw, self.policy.level(self.level), self.policy.width(width))
    }

    /// Encode `raw` into a temp file with zstd `level` (`None`: raw) and
    /// byte planes of `width`-byte elements.
    pub(crate) fn encode_with(
        &self,
        raw: &dyn RawSource,
        level: Option<i32>,
        width: Option<u8>,
    ) -> Result<PendingBlob<'_>, StoreError> {
        let (tmp, written) = self
            .encode_to_tmp(None, |file| blob_file::write(file, raw, level, width).map(Some))?
            .ok_or_else(|| StoreError::Io {
                action: "encoding into",
                path: self.temp_dir(),
                source: std::io::Error::other("nothing was written"),
            })?;
        Ok(PendingBlob::new(self, tmp, written))
    }

    /// Encode `raw` as a delta against the stored blob `parent` (same
    /// length) into a temp file; `None` when no frame gains from the
    /// parent (then encode it with [`BlobStore::encode_pending`]).
    pub fn encode_pending_delta(
        &self,
        raw: &dyn RawSource,
        width: u8,
        parent: BlobId,
    ) -> Result<Option<PendingBlob<'_>>, StoreError> {
        if self.policy != crate::CodecPolicy::Auto || self.describe(parent)?.raw_len != raw.len() {
            return Ok(None);
        }
        let level = self.level;
        let mut parent_raw = self.reader(parent)?;
        let encoded = self.encode_to_tmp(None, |file| {
            blob_file::write_delta(file, raw, width, level, parent, &mut parent_raw)
        })?;
        Ok(encoded.map(|(tmp, written)| PendingBlob::new(self, tmp, written)))
    }
}
