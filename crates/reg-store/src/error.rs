//! Errors of the blob store.
//!
//! Every variant names the blob and, where a file is involved, its path.
//! A blob whose bytes do not hash to its id, or whose file is unreadable,
//! is [`StoreError::Corrupt`]; a blob that is not there is
//! [`StoreError::Missing`], and a delta whose parent is not there
//! [`StoreError::MissingParent`]; everything else is I/O.

use crate::BlobId;
use std::path::PathBuf;

/// Returned by [`crate::BlobStore`] operations.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`writing`, `reading` ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The blob is not in the store.
    #[error("blob {0} is missing")]
    Missing(BlobId),
    /// The blob is a delta against a parent blob that is not in the store.
    #[error("blob {id} is a delta against blob {parent}, which is missing")]
    MissingParent {
        /// The delta blob.
        id: BlobId,
        /// Its missing parent.
        parent: BlobId,
    },
    /// The blob file exists but its content is damaged.
    #[error("blob {id} is corrupt: {reason}")]
    Corrupt {
        /// The blob.
        id: BlobId,
        /// What is wrong.
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { action, path, source }
    }
}
