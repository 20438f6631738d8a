//! The last skeleton blobs read, kept for the next file that names one.
//!
//! The small files of a directory version share pack blobs as their
//! skeletons (`push/pack.rs`): a pull, a tar stream or a full verify of a
//! folder of 10,000 files would otherwise decode the same pack 10,000
//! times. Blobs never change their bytes, so what was read and verified
//! once stays true.

use reg_store::{BlobId, BlobStore, StoreError};
use std::sync::{Arc, Mutex};

/// Skeleton blobs kept at once.
const KEPT: usize = 4;

/// Blobs larger than this are read each time, never kept.
const KEPT_MAX: usize = 16 << 20;

/// A few recently read skeleton blobs, shared between threads.
#[derive(Default)]
pub(crate) struct SkeletonCache {
    kept: Mutex<Vec<(BlobId, Arc<Vec<u8>>)>>,
}

impl SkeletonCache {
    /// The verified bytes of skeleton blob `id`, from the cache or the store.
    pub(crate) fn get(&self, store: &BlobStore, id: BlobId) -> Result<Arc<Vec<u8>>, StoreError> {
        if let Ok(kept) = self.kept.lock() {
            if let Some((_, bytes)) = kept.iter().find(|(k, _)| *k == id) {
                return Ok(bytes.clone());
            }
        }
        let bytes = Arc::new(store.read(id)?);
        if bytes.len() <= KEPT_MAX {
            if let Ok(mut kept) = self.kept.lock() {
                if kept.len() >= KEPT {
                    kept.remove(0);
                }
                kept.push((id, bytes.clone()));
            }
        }
        Ok(bytes)
    }
}
