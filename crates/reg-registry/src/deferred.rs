//! Compression a fast push left to the background job
//! ([`crate::PushOptions::fast`]): the blobs it stored raw are listed in
//! the index's `deferred` tree with the version that names them, and the
//! job encodes each one as the store encodes new blobs
//! ([`reg_store::BlobStore::compress_deferred`]), records its new size
//! and forgets the entry. A blob that became a delta meanwhile (the delta
//! round runs first), or that gc removed, is simply forgotten.

use crate::error::RegistryError;
use crate::registry::Registry;
use rayon::prelude::*;
use reg_format::index::BlobRecord;
use reg_store::{BlobId, PutOutcome, StoreError};

/// What one run over the deferred queue did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Compressed {
    /// Blobs encoded.
    pub(crate) blobs: usize,
    /// Their stored bytes before and after.
    pub(crate) bytes_before: u64,
    pub(crate) bytes_after: u64,
    /// Blobs left raw because their bytes do not match their id (verify
    /// names them).
    pub(crate) damaged: Vec<BlobId>,
}

/// The payload blobs of the newest version of every name (kept raw with
/// `keep_newest_raw`).
pub(crate) fn newest_blobs(
    idx: &reg_format::index::Index,
) -> Result<std::collections::HashSet<BlobId>, reg_format::index::IndexError> {
    let mut out = std::collections::HashSet::new();
    for (name, _) in idx.names()? {
        if let Some(newest) = idx.versions(&name)?.last() {
            if let Some(m) = idx.manifest(newest.id)? {
                out.extend(m.payload_lens().into_keys());
            }
        }
    }
    Ok(out)
}

impl Registry {
    /// Compress the blobs `queued` (`(id, element width)`, as the index's
    /// deferred tree lists them). The caller holds `gc.lock` shared and
    /// `deltas.lock`, so no blob is deleted or re-encoded meanwhile. An
    /// I/O error stops the run with the rest still queued.
    pub(crate) fn compress_deferred(&self, queued: &[(BlobId, Option<u8>)]) -> Result<Compressed, RegistryError> {
        type Done = (BlobId, Result<Option<(u64, PutOutcome)>, StoreError>);
        let done: Vec<Done> = queued
            .par_iter()
            .with_max_len(1)
            .map(|(id, width)| {
                if !self.store.contains(*id) {
                    return (*id, Ok(None));
                }
                let before = self.store.stored_len(*id);
                let result = before.and_then(|b| Ok(self.store.compress_deferred(*id, *width)?.map(|o| (b, o))));
                (*id, result)
            })
            .collect();
        let mut report = Compressed::default();
        let mut forget = Vec::new();
        let mut records = Vec::new();
        let mut first_error = None;
        for (id, result) in done {
            match result {
                Ok(Some((before, out))) => {
                    report.blobs += 1;
                    report.bytes_before += before;
                    report.bytes_after += out.stored_len;
                    let raw_len = self.store.describe(id)?.raw_len;
                    records.push((id, BlobRecord::new(raw_len, out.stored_len, out.codec)));
                    forget.push(id);
                }
                Ok(None) => forget.push(id),
                Err(StoreError::Corrupt { .. }) => {
                    report.damaged.push(id);
                    forget.push(id);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.with_index("reg deltas recording compressed blobs", |idx| {
            for (id, record) in &records {
                if idx.has_blob(*id)? {
                    idx.set_blob_record(*id, record)?;
                }
            }
            idx.remove_deferred(&forget)?;
            Ok(idx.flush()?)
        })?;
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(report),
        }
    }
}
