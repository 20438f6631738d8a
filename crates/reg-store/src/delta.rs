//! Delta blobs: storing a blob as the XOR with a parent blob, re-encoding
//! a stored blob against a parent (`encode_as_delta`) or without one, and following
//! chains of parents through blob headers.
//!
//! The store keeps one rule: a blob is only ever encoded against a parent
//! that is already stored and does not itself depend on the blob, so
//! chains end in a self-contained blob and never loop. How long chains
//! may grow, and which blob is whose parent, is the caller's policy
//! (`reg-registry` bounds chains by `max_delta_chain`). Re-encodings replace a
//! blob file atomically: same id, same bytes, another encoding.

use crate::blob_file;
use crate::chain;
use crate::source::{BlobSource, Checked};
use crate::store::{CodecPolicy, Durability};
use crate::{BlobId, BlobStore, ParentCheck, PutOutcome, RawSource, StoreError};

impl BlobStore {
    /// The stored blob `id` as a [`RawSource`] that decodes it without
    /// checking its hash, for callers that check the bytes themselves
    /// (such as [`BlobStore::encode_as_delta`] with [`ParentCheck::Id`]).
    pub fn unchecked_source(&self, id: BlobId) -> Result<BlobSource<'_>, StoreError> {
        Ok(BlobSource::new(self, id, self.describe(id)?.raw_len, false))
    }

    /// The stored blob `id` as a [`RawSource`] (decoded and hash-checked
    /// as it is read).
    pub fn source(&self, id: BlobId) -> Result<BlobSource<'_>, StoreError> {
        Ok(BlobSource::new(self, id, self.describe(id)?.raw_len, true))
    }

    /// [`BlobStore::put_typed`] for a float blob that is likely close to
    /// the stored blob `parent` (the same tensor of a base model): frames
    /// are XORed with the parent's where that pays, and the blob is stored
    /// as a delta; when nothing pays it is stored as [`put_typed`] would.
    /// The parent must be stored, with the same length, and must not
    /// depend on `id`.
    ///
    /// [`put_typed`]: BlobStore::put_typed
    pub fn put_delta(
        &self,
        id: BlobId,
        raw: &dyn RawSource,
        width: u8,
        parent: BlobId,
    ) -> Result<PutOutcome, StoreError> {
        if let Some(existing) = self.existing(id)? {
            return Ok(existing);
        }
        if !self.chain(parent)?.contains(&id) {
            if let Some(pending) = self.encode_pending_delta(raw, width, parent)? {
                return pending.commit(id);
            }
        }
        self.put_typed(id, raw, Some(width))
    }

    /// Re-encode the stored blob `id` as a delta against the stored blob
    /// `parent` (of the same length), whose raw bytes `parent_raw` yields,
    /// when that makes its file smaller. The new file replaces the old one
    /// atomically (same id, same bytes). Returns `None`, changing nothing,
    /// when it would not be smaller, when `parent` depends on `id`, or
    /// when the policy is not `auto`. The parent's bytes are checked as
    /// `check` says before the new file takes the old one's place (a delta
    /// against wrong bytes would make `id` undecodable); `id`'s own bytes
    /// are read without a hash check, so damage in them stays damage that
    /// its hash reveals, as before.
    pub fn encode_as_delta(
        &self,
        id: BlobId,
        width: u8,
        parent: BlobId,
        parent_raw: &dyn RawSource,
        check: ParentCheck,
    ) -> Result<Option<PutOutcome>, StoreError> {
        let current = self.describe(id)?;
        if self.policy != CodecPolicy::Auto
            || id == parent
            || current.raw_len != parent_raw.len()
            || self.chain(parent)?.contains(&id)
        {
            return Ok(None);
        }
        let old_len = self.stored_len(id)?;
        let source = BlobSource::new(self, id, current.raw_len, false);
        let reader = parent_raw
            .reader()
            .map_err(StoreError::io("reading the parent of", self.path_of(id)))?;
        let mut checked = Checked::new(reader, check);
        let level = self.level;
        let tmp = self.encode_to_tmp(Some(id), |file| {
            blob_file::write_delta(file, &source, width, level, parent, &mut checked)
        })?;
        let Some((tmp, written)) = tmp else { return Ok(None) };
        if !checked.matches(parent) {
            return Err(blob_file::corrupt(parent, "bytes given as its content do not match it"));
        }
        if written.stored_len >= old_len {
            return Ok(None);
        }
        if self.durability == Durability::Fast {
            // The parent may be a new blob left to the kernel's writeback:
            // the durable delta must not outlive it, or a crash would take
            // an older version (the one `id` belongs to) with the newest.
            // With `Full` it is durable since its push synced it.
            let mut needed = vec![parent];
            needed.extend(self.chain(parent)?);
            self.make_durable(&needed)?;
        }
        self.install(id, tmp, written, true, false).map(Some)
    }

    /// Re-encode the stored blob `id` without its delta parent, so that it
    /// no longer depends on another blob (before that blob is deleted).
    /// Float planes keep their element width. Does nothing for a blob that
    /// is self-contained already.
    pub fn make_self_contained(&self, id: BlobId) -> Result<PutOutcome, StoreError> {
        let info = self.describe(id)?;
        let stored_len = self.stored_len(id)?;
        if info.parent.is_none() {
            return Ok(PutOutcome {
                written: false,
                stored_len,
                codec: info.codec,
                parent: None,
            });
        }
        let width = self.frame_width(id)?;
        let source = BlobSource::new(self, id, info.raw_len, true);
        let (level, policy_width) = (self.policy.level(self.level), width.filter(|w| *w > 1));
        let tmp = self.encode_to_tmp(Some(id), |file| {
            blob_file::write(file, &source, level, policy_width).map(Some)
        })?;
        let Some((tmp, written)) = tmp else {
            return Err(blob_file::corrupt(id, "cannot be re-encoded"));
        };
        self.install(id, tmp, written, true, false)
    }

    /// The element width the first frame of a framed blob records.
    fn frame_width(&self, id: BlobId) -> Result<Option<u8>, StoreError> {
        let (mut f, h) = chain::open_file(&*self.backend, id)?;
        if !h.codec.is_framed() || h.raw_len == 0 {
            return Ok(None);
        }
        let mut encoded = Vec::new();
        let mut r = std::io::BufReader::new(&mut f);
        crate::frames::read_encoded(&mut r, &mut encoded).map_err(|_| blob_file::corrupt(id, "truncated"))?;
        let info = crate::codecs::inspect(&encoded).map_err(|e| blob_file::corrupt(id, e.to_string()))?;
        Ok(Some(info.transform.width()))
    }

    /// The parents of `id`, nearest first, read from blob headers (empty
    /// for a self-contained blob). A parent that is not stored is
    /// [`StoreError::MissingParent`].
    pub fn chain(&self, id: BlobId) -> Result<Vec<BlobId>, StoreError> {
        let mut out: Vec<BlobId> = Vec::new();
        let mut next = self.describe(id)?.parent;
        while let Some(p) = next {
            if p == id || out.contains(&p) || out.len() >= chain::MAX_CHAIN {
                return Err(blob_file::corrupt(
                    id,
                    format!("its delta chain is cyclic or longer than {} links", chain::MAX_CHAIN),
                ));
            }
            let child = out.last().copied().unwrap_or(id);
            out.push(p);
            next = match self.describe(p) {
                Ok(info) => info.parent,
                Err(StoreError::Missing(_)) => return Err(StoreError::MissingParent { id: child, parent: p }),
                Err(e) => return Err(e),
            };
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
