//! What a push or pull transferred.

use reg_format::ids::{ModelName, VersionId};
use serde::Serialize;

/// One version of a sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyncedVersion {
    /// Model name.
    pub name: ModelName,
    /// Its number in the local registry.
    pub local: u32,
    /// Its number on the remote.
    pub remote: u32,
    /// Local version id (hex).
    #[serde(with = "reg_format::ids::hex_version_id")]
    pub local_id: VersionId,
    /// Remote manifest id (hex).
    #[serde(with = "reg_format::ids::hex_version_id")]
    pub remote_id: VersionId,
    /// False when the other side had this version (same name and file
    /// hash) already.
    pub transferred: bool,
}

/// What [`crate::Remote::push`] or [`crate::Remote::pull`] did. Counts are
/// of objects actually sent (push) or received (pull).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Remote name.
    pub remote: String,
    /// `push` or `pull`.
    pub direction: &'static str,
    /// The versions involved.
    pub versions: Vec<SyncedVersion>,
    /// Blobs transferred.
    pub blobs_transferred: usize,
    /// Their stored (compressed) bytes.
    pub blob_bytes_transferred: u64,
    /// Blobs skipped because the other side had them.
    pub blobs_skipped: usize,
    /// Their stored bytes.
    pub blob_bytes_skipped: u64,
    /// Blobs uploaded in parts.
    pub multipart_blobs: usize,
    /// All objects transferred: blobs, manifests, version entries, tags.
    pub objects_transferred: usize,
    /// Their bytes.
    pub bytes_transferred: u64,
    /// Tags written on the receiving side.
    pub tags: Vec<String>,
    /// Things the user should know (renumbered versions, kept tags).
    pub notes: Vec<String>,
}

impl SyncReport {
    pub(crate) fn new(remote: &str, direction: &'static str) -> SyncReport {
        SyncReport {
            remote: remote.to_string(),
            direction,
            ..SyncReport::default()
        }
    }

    pub(crate) fn object(&mut self, bytes: u64) {
        self.objects_transferred += 1;
        self.bytes_transferred += bytes;
    }
}

/// `reg push FILE... --remote R --json`: what was pushed locally, then
/// what the upload of those versions sent.
#[derive(Clone, Debug, Serialize)]
pub struct PushedAndSynced<'a> {
    /// One view per file pushed.
    pub pushed: &'a [reg_registry::report::PushView],
    /// The upload.
    pub remote: &'a SyncReport,
}
