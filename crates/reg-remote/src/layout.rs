//! Object keys and the small JSON objects of a remote (docs/remote.md).
//!
//! ```text
//! reg-remote.json                      {"format": 1}
//! blobs/<blob id hex>                  a blob file, byte for byte as stored locally
//! manifests/<version id hex>           manifest JSON; its blake3 is the key
//! versions/<name>/<number, 10 digits>  VersionEntry JSON: remote number -> manifest
//! tags/<name>/<tag>                    TagEntry JSON
//! ```

use object_store::path::Path;
use reg_meta::ids::{FileHash, ModelName, SourceName, VersionId};
use reg_store::BlobId;
use serde::{Deserialize, Serialize};

/// The layout version this code writes and reads.
pub const REMOTE_FORMAT: u32 = 1;

/// Key of the format marker.
pub fn marker_key() -> Path {
    Path::from("reg-remote.json")
}

/// The format marker's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Layout version.
    pub format: u32,
}

/// Prefix of all blobs.
pub fn blobs_prefix() -> Path {
    Path::from("blobs")
}

/// Key of a blob.
pub fn blob_key(id: BlobId) -> Path {
    Path::from(format!("blobs/{}", id.to_hex()))
}

/// Key of a manifest (by the blake3 of its JSON).
pub fn manifest_key(id: BlobId) -> Path {
    Path::from(format!("manifests/{}", id.to_hex()))
}

/// Prefix of every version entry.
pub fn versions_root() -> Path {
    Path::from("versions")
}

/// Prefix of the version entries of a name.
pub fn versions_prefix(name: &str) -> Path {
    Path::from_iter(["versions", name])
}

/// Key of a version entry: the number is zero-padded to 10 digits so keys
/// sort like numbers.
pub fn version_key(name: &str, number: u32) -> Path {
    Path::from_iter(["versions".to_string(), name.to_string(), format!("{number:010}")])
}

/// Prefix of the tags of a name.
pub fn tags_prefix(name: &str) -> Path {
    Path::from_iter(["tags", name])
}

/// Key of a tag (characters object stores dislike are percent-encoded;
/// the entry holds the tag as written).
pub fn tag_key(name: &str, tag: &str) -> Path {
    Path::from_iter(["tags", name, tag])
}

/// `versions/<name>/<number>`: what a remote version number means. The
/// manifest it names is immutable; the number is the remote's own, and the
/// manifest's `number` field (its number where it was first pushed) is
/// not used on the remote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    /// Model name.
    pub name: ModelName,
    /// Remote version number (the key's number).
    pub number: u32,
    /// Manifest id (hex): `manifests/<id>`.
    #[serde(with = "reg_meta::ids::hex_version_id")]
    pub id: VersionId,
    /// Whole-file blake3 (hex).
    pub blake3: FileHash,
    /// File size.
    pub size: u64,
    /// Time of the original push (Unix seconds).
    pub created: u64,
    /// Checkpoint epoch.
    pub epoch: Option<i64>,
    /// Checkpoint global step.
    pub step: Option<i64>,
    /// Source file name (a plain file name; entries written before it
    /// was recorded read as `checkpoint`).
    #[serde(default = "unnamed_source")]
    pub source: SourceName,
    /// Push message.
    #[serde(default)]
    pub message: Option<String>,
    /// Number of tensors.
    #[serde(default)]
    pub tensors: u64,
}

fn unnamed_source() -> SourceName {
    SourceName::of_path(std::path::Path::new("checkpoint"))
}

impl VersionEntry {
    /// The manifest blob.
    pub fn manifest_id(&self) -> BlobId {
        self.id.blob()
    }
}

/// `tags/<name>/<tag>`: a tag of a remote version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagEntry {
    /// Model name.
    pub name: ModelName,
    /// The tag.
    pub tag: String,
    /// Remote version number it points at.
    pub number: u32,
    /// Manifest id (hex) of that version.
    #[serde(with = "reg_meta::ids::hex_version_id")]
    pub id: VersionId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(version_key("mlp", 7).as_ref(), "versions/mlp/0000000007");
        assert_eq!(versions_prefix("a=b").as_ref(), "versions/a=b");
        assert_eq!(tag_key("mlp", "best#1").as_ref(), "tags/mlp/best%231");
        let id = BlobId::of(b"x");
        assert_eq!(blob_key(id).as_ref(), format!("blobs/{}", id.to_hex()));
    }
}
