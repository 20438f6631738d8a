//! Storing a version: push of files, directories, streams and staged
//! saves. Every one of these leaves the registry as it was.

use std::path::PathBuf;

/// Why a push (or a `reg stage`) refused its input; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The input is not a regular file.
    #[error("{} is not a regular file", path.display())]
    NotRegularFile {
        /// The input.
        path: PathBuf,
    },
    /// A directory's entry that cannot be part of a version.
    #[error("{}: {why}; nothing was stored", path.display())]
    BadEntry {
        /// The entry.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A file of a directory changed between listing and reading.
    #[error("{}: it changed between listing the folder and reading it (replaced or swapped for a link); nothing was stored", path.display())]
    ChangedSinceListed {
        /// The file.
        path: PathBuf,
    },
    /// The input changed while its storages were being read.
    #[error("{} changed while it was being pushed (storage {storage}); nothing was stored", path.display())]
    ChangedWhilePushed {
        /// The input.
        path: PathBuf,
        /// The storage whose bytes changed.
        storage: String,
    },
    /// A stream push with nothing to name the model by.
    #[error("a checkpoint read from {stdin} needs a model name or a source file name")]
    StreamUnnamed {
        /// How standard input is shown.
        stdin: &'static str,
    },
    /// A parent version (deltas against a base) asked for a stream.
    #[error("{source_name}: a parent version (deltas against a base model) needs the checkpoint as a file, not a stream; nothing was stored")]
    ParentOfStream {
        /// The stream's source name.
        source_name: String,
    },
    /// A parent version asked for a directory.
    #[error("{}: a parent version stores a single file as deltas against a base; a directory's chunks dedupe against every version already", dir.display())]
    ParentOfDirectory {
        /// The directory.
        dir: PathBuf,
    },
    /// A chunk staged as "already stored" is no longer in the store.
    #[error("{}: chunk {chunk} was staged as stored already and is no longer in the store (removed by gc or prune since); nothing was stored, save again", dir.display())]
    StagedChunkGone {
        /// The staged directory.
        dir: PathBuf,
        /// The chunk's blob id (hex).
        chunk: String,
    },
    /// A folder that is not a staging session of this registry.
    #[error("{} is not a staging session of the registry at {} (a folder of its staging/ with a {lock})", session.display(), root.display())]
    NotAStagingSession {
        /// The folder given.
        session: PathBuf,
        /// The registry.
        root: PathBuf,
        /// The session lock file's name.
        lock: &'static str,
    },
    /// A path a staging session cannot hold.
    #[error(
        "{rel:?} is not a path a staging session can hold (a relative path of plain names, not {staged}/ or {lock})"
    )]
    BadStagedPath {
        /// The path given.
        rel: String,
        /// The session's record folder's name.
        staged: &'static str,
        /// The session lock file's name.
        lock: &'static str,
    },
    /// A staged directory outside the session named with it.
    #[error("{} is not in the staging session {}", dir.display(), session.display())]
    OutsideSession {
        /// The directory.
        dir: PathBuf,
        /// The session.
        session: PathBuf,
    },
    /// The version is committed (in the index) but its manifest blob
    /// could not be written; verify and gc write it back.
    #[error("{version} is committed, but its manifest blob could not be written ({reason}); verify and gc write it back from the index's copy")]
    ManifestBlobUnwritten {
        /// `NAME@vN`.
        version: String,
        /// Why.
        reason: String,
    },
}
