//! Errors of remote operations.

use reg_registry::RegistryError;
use reg_store::StoreError;

/// Returned by [`crate::Remote`] operations.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The remote's URL or settings cannot be used.
    #[error("remote {remote}: {reason}")]
    BadSpec {
        /// Remote name.
        remote: String,
        /// What is wrong.
        reason: String,
    },
    /// The object store failed (network, permissions, server errors).
    #[error("remote {remote}: {source}")]
    Store {
        /// Remote name.
        remote: String,
        /// The object_store error.
        source: object_store::Error,
    },
    /// The async runtime could not start.
    #[error("remote {remote}: cannot start the I/O runtime: {source}")]
    Runtime {
        /// Remote name.
        remote: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A version cannot be transferred intact: a blob or manifest it needs
    /// is missing or does not match its hash (on the remote for pulls, in
    /// the local store for pushes). Nothing damaged is stored.
    #[error("version {version} is damaged: {source}")]
    Damaged {
        /// `remote:name@vN` for remote versions, `name@vN` for local ones.
        version: String,
        /// The blob problem.
        source: StoreError,
    },
    /// A small remote object (version entry, tag, marker) does not parse.
    #[error("remote {remote}: {key} is damaged: {reason}")]
    BadObject {
        /// Remote name.
        remote: String,
        /// The object key.
        key: String,
        /// Decoder message.
        reason: String,
    },
    /// No such model or version on the remote.
    #[error("remote {remote}: {message}")]
    NotFound {
        /// Remote name.
        remote: String,
        /// What was not found, and what exists.
        message: String,
    },
    /// The remote was written by a newer reg.
    #[error(
        "remote {remote} has layout format {found}, newer than this reg understands ({})",
        crate::layout::REMOTE_FORMAT
    )]
    TooNew {
        /// Remote name.
        remote: String,
        /// Format found.
        found: u32,
    },
    /// A version entry could not be created after many attempts.
    #[error("remote {remote}: could not find a free version number for {name} after {attempts} attempts")]
    Numbering {
        /// Remote name.
        remote: String,
        /// Model name.
        name: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The number-claim lease of a name stayed taken (stores whose creates
    /// are not exclusive).
    #[error("remote {remote}: the lease for numbering {name} stayed taken for {waited_secs} s; another push holds it")]
    LeaseBusy {
        /// Remote name.
        remote: String,
        /// Model name.
        name: String,
        /// Seconds waited.
        waited_secs: u64,
    },
    /// The registry's own config, where probe answers are recorded, failed.
    #[error(transparent)]
    Config(#[from] crate::config::RemoteConfigError),
    /// The local registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The local blob store failed.
    #[error(transparent)]
    Local(#[from] StoreError),
}

impl RemoteError {
    /// True when the error means stored data is damaged, on the remote or
    /// in the local registry (the CLI exits 2).
    pub fn is_damage(&self) -> bool {
        match self {
            RemoteError::Damaged { .. } | RemoteError::BadObject { .. } => true,
            RemoteError::Registry(e) => e.is_damage(),
            RemoteError::Local(e) => !matches!(e, StoreError::Io { .. }),
            _ => false,
        }
    }

    /// True when reg itself failed rather than the input, the remote or
    /// the registry (the CLI exits 3).
    pub fn is_internal(&self) -> bool {
        match self {
            RemoteError::Runtime { .. } => true,
            RemoteError::Registry(e) => e.is_internal(),
            _ => false,
        }
    }
}
