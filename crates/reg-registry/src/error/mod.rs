//! Errors of registry operations.
//!
//! One enum per operation family, each variant with the context it names
//! (no free-form strings): [`OpenError`] (opening a registry),
//! [`PushError`] (storing a version), [`ReadError`] (pull, ranges,
//! readers, exports), [`TagError`], [`ImportError`]; [`RegistryError`]
//! carries them and what every operation shares (I/O, the store, the
//! index, locks, damage). Messages name no CLI flag: the binary adds its
//! hints. [`RegistryError::is_damage`] tells the CLI which ones mean the
//! registry itself is damaged (exit 2) rather than a bad request or input
//! (exit 1).

mod open;
mod push;
mod read;
mod tag;

pub use open::OpenError;
pub use push::PushError;
pub use read::ReadError;
pub use tag::{ImportError, TagError};

use reg_format::index::IndexError;
use reg_store::StoreError;
use std::path::PathBuf;

/// Returned by [`crate::Registry`] operations.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// File system error outside the blob store.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The blob store failed (not damage of a specific version).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Finding or reading the configuration failed.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The input file is not a checkpoint reg can read.
    #[error("{file}: {source}")]
    Inspect {
        /// The input file.
        file: PathBuf,
        /// Why.
        source: reg_ckpt::InspectError,
    },
    /// A choice of tensors that does not fit the version.
    #[error(transparent)]
    Selection(#[from] crate::select::SelectionError),
    /// A checkpoint read from a stream was refused before it was read
    /// whole (`reg push -`); nothing was stored.
    #[error("{source_name}: {reason}; nothing was stored")]
    Stream {
        /// The stream's source file name, or `<stdin>`.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// The input directory is not a checkpoint directory reg can read.
    #[error("{dir}: {source}; nothing was stored")]
    InspectTree {
        /// The input directory.
        dir: PathBuf,
        /// Why (boxed: it is large).
        source: Box<reg_tree::TreeError>,
    },
    /// The pickle names globals that would run code when loaded.
    #[error("{file}: refused, its pickle would call {globals} when loaded")]
    Unsafe {
        /// The input file.
        file: PathBuf,
        /// The dangerous globals, comma-separated.
        globals: String,
    },
    /// A ref that does not parse.
    #[error(transparent)]
    BadRef(#[from] reg_format::refs::BadRef),
    /// A model name that is not valid.
    #[error(transparent)]
    BadName(#[from] reg_format::ids::BadName),
    /// No versions under this name.
    #[error("no model named {name:?}{hint}")]
    NoSuchName {
        /// The name asked for.
        name: String,
        /// " (did you mean ...?)" or a list of names.
        hint: String,
    },
    /// The name exists but the ref matches none of its versions.
    #[error("{name}@{spec} matches no version; {available}")]
    NoSuchVersion {
        /// Model name.
        name: String,
        /// The ref.
        spec: String,
        /// What does exist.
        available: String,
    },
    /// The output file exists.
    #[error("{0} exists")]
    Exists(PathBuf),
    /// A version cannot be read back because its data is damaged.
    #[error("version {version} is damaged: {source}")]
    Damaged {
        /// `name@vN`.
        version: String,
        /// The blob problem.
        source: StoreError,
    },
    /// Another process held a lock longer than `--wait-timeout`.
    #[error("gave up after {waited_secs}s waiting for {}: {path} is held", holder.as_deref().unwrap_or("another reg process"))]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Seconds waited.
        waited_secs: u64,
        /// Who holds it and what for, when known.
        holder: Option<String>,
    },
    /// A lock handed over by another process cannot be taken over.
    #[error("cannot take over {}: {why}", path.display())]
    TakeOver {
        /// The lock file.
        path: PathBuf,
        /// Why.
        why: &'static str,
    },
    /// Opening the registry failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A push refused its input.
    #[error(transparent)]
    Push(#[from] PushError),
    /// A version could not be read out as asked.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A tag could not be set or removed.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// A version could not be imported.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// gc could not read something it needs to decide what to keep, so it
    /// stopped before deleting anything.
    #[error("gc stopped before deleting anything: blob {blob} cannot be read: {source}; run `reg verify`")]
    GcStopped {
        /// The blob whose header or file could not be read.
        blob: reg_store::BlobId,
        /// Why.
        source: StoreError,
    },
    /// The index is missing or empty while the blob store holds versions:
    /// the registry lost its index (nothing may treat it as empty).
    #[error("the registry's index is missing or empty, but its blob store holds {blobs} blobs ({evidence}): the registry is damaged, not empty")]
    IndexLost {
        /// Blob files in the store.
        blobs: usize,
        /// What shows versions exist (a manifest blob).
        evidence: String,
    },
    /// gc found a version's manifest blob that the index neither lists nor
    /// noted as removed: the index may be incomplete, so it deleted nothing.
    #[error("gc stopped before deleting anything: blob {blob} is the manifest of {version}, which the index does not list; the index may be incomplete")]
    IndexIncomplete {
        /// The manifest blob.
        blob: reg_store::BlobId,
        /// `name@vN` as the manifest says.
        version: String,
    },
    /// The manifest a push or import made would not read back (a bug of
    /// reg's, never stored): exit code 3.
    #[error("the manifest made for {name} {source}; nothing was stored")]
    Unreadable {
        /// The model name.
        name: String,
        /// What is wrong with it.
        source: reg_format::manifest::ManifestError,
    },
    /// reg itself failed (a bug or a resource problem, not bad input):
    /// exit code 3.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RegistryError {
    /// True when the error means stored data is damaged (exit code 2).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            RegistryError::Damaged { .. }
                | RegistryError::GcStopped { .. }
                | RegistryError::IndexLost { .. }
                | RegistryError::IndexIncomplete { .. }
                | RegistryError::Index(IndexError::Damaged { .. })
        )
    }

    /// True when reg itself failed rather than the input or the registry
    /// (exit code 3).
    pub fn is_internal(&self) -> bool {
        matches!(self, RegistryError::Internal(_) | RegistryError::Unreadable { .. })
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RegistryError {
        let path = path.into();
        move |source| RegistryError::Io { action, path, source }
    }
}
