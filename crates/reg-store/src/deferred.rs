//! Compression deferred from a push to later: a push in the training loop
//! stores its new payloads raw (as fast as the disk takes them), and the
//! registry's background job encodes each one with the store's codecs
//! afterwards ([`BlobStore::compress_deferred`]). The blob's id and bytes
//! never change, only its file: the new one replaces the raw one
//! atomically, so a reader that opened the raw file reads it to the end
//! and a crash leaves one or the other, both whole.

use crate::source::BlobSource;
use crate::{blob_file, BlobId, BlobStore, Codec, PendingBlob, PutOutcome, RawSource, StoreError};

impl BlobStore {
    /// Write `raw` into a temp file stored as it is (codec `raw`), to be
    /// compressed later by [`BlobStore::compress_deferred`]. Same contract
    /// as [`BlobStore::encode_pending`].
    pub fn encode_pending_raw(&self, raw: &dyn RawSource) -> Result<PendingBlob<'_>, StoreError> {
        self.encode_with(raw, None, None)
    }

    /// Write exactly `len` bytes read from `body` (a storage as a stream
    /// brings it, hashed by the caller as it goes) into a temp file
    /// stored raw, to be committed under its id and compressed later. A
    /// body that ends early is an I/O error of kind `UnexpectedEof`.
    pub fn pending_raw_from(&self, len: u64, body: &mut dyn std::io::Read) -> Result<PendingBlob<'_>, StoreError> {
        let mut tmp = self
            .backend
            .create_temp("stream")
            .map_err(StoreError::io("creating a temp file in", self.temp_dir()))?;
        let written = blob_file::write_raw_from(tmp.as_mut(), body, len).map_err(|source| StoreError::Io {
            action: "writing",
            path: tmp.path(),
            source,
        })?;
        Ok(PendingBlob::new(self, tmp, written))
    }

    /// Encode the stored blob `id`, kept raw by a push that deferred its
    /// compression, as the store's policy encodes new blobs (byte planes
    /// of `width`-byte elements for a float storage), when that makes its
    /// file smaller. Returns what was stored, or `None` when nothing
    /// changed: the blob is encoded already (a delta made meanwhile, say),
    /// the policy is `raw`, or compressing does not pay. Its bytes are
    /// checked against its id as they are read: a damaged blob is
    /// [`StoreError::Corrupt`] and stays as it was.
    pub fn compress_deferred(&self, id: BlobId, width: Option<u8>) -> Result<Option<PutOutcome>, StoreError> {
        let info = self.describe(id)?;
        let level = self.policy.level(self.level);
        if info.codec != Codec::Raw || info.parent.is_some() || level.is_none() {
            return Ok(None);
        }
        let old_len = self.stored_len(id)?;
        let source = BlobSource::new(self, id, info.raw_len, true);
        let width = self.policy.width(width.filter(|w| *w > 1));
        let Some((tmp, written)) =
            self.encode_to_tmp(Some(id), |file| blob_file::write(file, &source, level, width).map(Some))?
        else {
            return Ok(None);
        };
        if written.header.codec == Codec::Raw || written.stored_len >= old_len {
            return Ok(None);
        }
        self.install(id, tmp, written, true, false).map(Some)
    }
}
