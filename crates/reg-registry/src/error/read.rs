//! Reading a version out: pull, partial pulls, byte ranges, file
//! readers and exports.

use std::path::PathBuf;

/// Why a version (or the part asked for) could not be read out as asked.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The output path is a directory where a file was to be written.
    #[error("{} is a directory", path.display())]
    OutputIsDirectory {
        /// The output path.
        path: PathBuf,
    },
    /// A directory version asked for as one file.
    #[error("{version} is a directory: {instead}")]
    DirectoryVersion {
        /// `NAME@vN`.
        version: String,
        /// How it can be read instead.
        instead: &'static str,
    },
    /// A single-file version asked for as a directory (or for its files).
    #[error("{version} is a single file: {instead}")]
    SingleFileVersion {
        /// `NAME@vN`.
        version: String,
        /// How it can be read instead.
        instead: &'static str,
    },
    /// Files picked out of a single-file version.
    #[error("{version} is a single file: only a directory version's files can be picked")]
    PickFromSingleFile {
        /// `NAME@vN`.
        version: String,
    },
    /// A directory version asked for without naming one of its files.
    #[error("{version} is a directory version: name one of its files")]
    FileNotNamed {
        /// `NAME@vN`.
        version: String,
    },
    /// A single-file version asked for a file inside it.
    #[error("{version} is one file ({source_name}), not a directory with {path:?}")]
    NotADirectory {
        /// `NAME@vN`.
        version: String,
        /// The version's file name.
        source_name: String,
        /// The file asked for.
        path: String,
    },
    /// A directory version has no file at this path.
    #[error("{version} has no file {path:?}")]
    NoSuchFile {
        /// `NAME@vN`.
        version: String,
        /// The file asked for.
        path: String,
    },
    /// A byte range that ends past the end of the file.
    #[error("range {start}:{len} of {version} {file} is past its end ({size} bytes)")]
    RangePastEnd {
        /// `NAME@vN`.
        version: String,
        /// The file (its name, or its path in a directory version).
        file: String,
        /// First byte asked for.
        start: u64,
        /// Bytes asked for.
        len: u64,
        /// The file's length.
        size: u64,
    },
    /// A read that starts past the end of the version's file.
    #[error("{version} has {size} bytes; cannot start reading at byte {start}")]
    StartPastEnd {
        /// `NAME@vN`.
        version: String,
        /// The file's length.
        size: u64,
        /// Where the read was to start.
        start: u64,
    },
    /// A read could not be started at the byte asked for.
    #[error("cannot read {version} from byte {start}: {reason}")]
    CannotSeek {
        /// `NAME@vN`.
        version: String,
        /// Where the read was to start.
        start: u64,
        /// Why.
        reason: String,
    },
    /// A stored piece is shorter than the manifest says.
    #[error("{version}: a piece is shorter than its manifest says")]
    ShortPiece {
        /// `NAME@vN`.
        version: String,
    },
    /// A file pattern that is not a glob.
    #[error("file pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A file pattern that matches no file of the version.
    #[error("file pattern {pattern:?} matches no file of {version}; its files: {}", files.join(", "))]
    NoMatch {
        /// The pattern.
        pattern: String,
        /// `NAME@vN`.
        version: String,
        /// The version's files.
        files: Vec<String>,
    },
    /// No temp folder could be made beside the output.
    #[error("cannot create a temp folder in {}", parent.display())]
    TempFolder {
        /// Where it was to be made.
        parent: PathBuf,
    },
    /// An export with nothing to export.
    #[error("{version} has no tensors to export")]
    NoTensors {
        /// `NAME@vN`.
        version: String,
    },
    /// The export's writer refused the version (a tensor safetensors
    /// cannot hold, an object tree the weights-only writer cannot keep).
    #[error("cannot export {version}: {reason}")]
    Export {
        /// `NAME@vN`.
        version: String,
        /// Why.
        reason: String,
    },
}
