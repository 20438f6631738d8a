//! Opening a registry.

use std::path::PathBuf;

/// Why a folder could not be opened (or created) as a registry.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Background work found the registry gone: no `FORMAT` file.
    #[error("{} is not a registry (no FORMAT file)", root.display())]
    NoFormatFile {
        /// The registry folder.
        root: PathBuf,
    },
    /// The `FORMAT` file names a format this reg does not read.
    #[error("{} is not a reg registry of a format this reg reads", root.display())]
    UnknownFormat {
        /// The registry folder.
        root: PathBuf,
    },
    /// The folder holds files of someone else's.
    #[error("{} exists, is not empty and is not a reg registry", root.display())]
    NotEmpty {
        /// The folder.
        root: PathBuf,
    },
}
