//! Why a directory is not a readable checkpoint. Every message names the
//! file (its path in the tree) it is about.

use super::chunks::TilingError;
use reg_ckpt::InspectError;

/// Returned by [`inspect_tree`](super::inspect_tree).
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// No files at all.
    #[error("the directory holds no files")]
    Empty,
    /// A path that is not a clean relative path.
    #[error("{}: {reason}", .path.escape_debug())]
    Path {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file of a checkpoint format that does not read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why it does not read.
        source: InspectError,
    },
    /// A `.metadata` beside DCP data files that is not DCP's metadata pickle.
    #[error("{path}: not a torch.distributed.checkpoint metadata pickle: {reason}")]
    NotDcpMetadata {
        /// The `.metadata` file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// `.metadata` names a data file the directory lacks.
    #[error("{metadata} names {file} (holding {fqn}), which is not in the directory")]
    DcpMissingFile {
        /// The `.metadata` file.
        metadata: String,
        /// The missing data file.
        file: String,
        /// An entry it should hold.
        fqn: String,
    },
    /// `.metadata` names a data file outside the directory.
    #[error("{metadata} names {file}, outside the directory")]
    DcpEscapes {
        /// The `.metadata` file.
        metadata: String,
        /// The path it gives.
        file: String,
    },
    /// `.metadata` places an item past the end of its data file.
    #[error("{metadata}: {fqn} lies at bytes {offset}..{} of {file}, past its end ({file_len} bytes)", .offset.saturating_add(*.length))]
    DcpPastEnd {
        /// The `.metadata` file.
        metadata: String,
        /// The data file.
        file: String,
        /// The entry.
        fqn: String,
        /// Where the item starts.
        offset: u64,
        /// Its length.
        length: u64,
        /// The data file's length.
        file_len: u64,
    },
    /// Two items of a data file share bytes.
    #[error("{file}: the items of {first} and {second} overlap")]
    DcpItemsOverlap {
        /// The data file.
        file: String,
        /// One entry.
        first: String,
        /// The other.
        second: String,
    },
    /// An item that is not what `.metadata` says.
    #[error("{file}: item {fqn} at byte {offset}: {reason}")]
    DcpItem {
        /// The data file.
        file: String,
        /// The entry.
        fqn: String,
        /// Where the item starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A data file two `.metadata` files both claim.
    #[error("{file} is named by two DCP .metadata files")]
    DcpShared {
        /// The data file.
        file: String,
    },
    /// A tensor whose chunks leave gaps or overlap.
    #[error("{source} (chunks in {files})")]
    Tiling {
        /// The files holding its chunks.
        files: String,
        /// What is wrong.
        source: Box<TilingError>,
    },
    /// A weight index that does not match the shards.
    #[error("{path}: {reason}")]
    HfIndex {
        /// The index or shard file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Two tensors of the same name.
    #[error("tensor {name} is in both {first} and {second}")]
    DuplicateTensor {
        /// The name.
        name: String,
        /// Files of one.
        first: String,
        /// Files of the other.
        second: String,
    },
    /// A JSON file the layout depends on that does not read.
    #[error("{path}: not valid JSON: {reason}")]
    Json {
        /// The file.
        path: String,
        /// The parse error.
        reason: String,
    },
}
