//! Object keys and the small JSON objects of a remote (docs/remote.md).
//!
//! ```text
//! reg-remote.json                      {"format": 1}
//! blobs/<blob id hex>                  a blob file, byte for byte as stored locally
//! manifests/<version id hex>           manifest JSON; its blake3 is the key
//! versions/<name>/<number, 10 digits>  VersionEntry JSON: remote number -> manifest
//! tags/<name>/<tag>                    TagEntry JSON
//! leases/<name>/<ms>-<token>           a number-claim lease (stores whose creates are not exclusive)
//! ```
//!
//! Everything read from a remote is hostile until parsed here: a key is
//! parsed into a model name and a number ([`parse_version_key`]), an
//! entry into its validated types and checked against its key
//! ([`parse_version_entry`], [`parse_tag_entry`]); the caller reads at
//! most [`MAX_SMALL_OBJECT`] bytes of any of them. Anything else is
//! damage of the remote, reported with the key.

use object_store::path::Path;
use reg_format::ids::{FileHash, ModelName, SourceName, VersionId};
use reg_format::refs::check_tag;
use reg_store::BlobId;
use serde::{Deserialize, Serialize};

/// The layout version this code writes and reads.
pub const REMOTE_FORMAT: u32 = 1;

/// Most bytes read of a small object (marker, version entry, tag entry,
/// lease): an entry is a few hundred bytes; a larger object is damage.
pub const MAX_SMALL_OBJECT: u64 = 64 << 10;

/// Most bytes read of a manifest (one of a checkpoint with a hundred
/// thousand tensors is some tens of megabytes).
pub const MAX_MANIFEST: u64 = 256 << 20;

/// Digits of the number in a version key.
const NUMBER_DIGITS: usize = 10;

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

/// The model name and number a version key names:
/// `versions/<name>/<number, 10 digits>`. Anything else under `versions/`
/// is damage.
pub fn parse_version_key(key: &Path) -> Result<(ModelName, u32), String> {
    let parts: Vec<String> = key.parts().map(|p| p.as_ref().to_string()).collect();
    let [root, name, number] = parts.as_slice() else {
        return Err("is not a version key (versions/<name>/<number>)".into());
    };
    if root != "versions" {
        return Err("is not a version key (versions/<name>/<number>)".into());
    }
    let name = ModelName::new(name).map_err(|e| e.to_string())?;
    if number.len() != NUMBER_DIGITS || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("version number {number:?} is not {NUMBER_DIGITS} digits"));
    }
    let n = number
        .parse::<u32>()
        .map_err(|_| format!("version number {number:?} is out of range"))?;
    if n == 0 {
        return Err("version number 0 (numbers start at 1)".into());
    }
    Ok((name, n))
}

/// Parse a version entry read from `key` and check it against the key:
/// the same name and number.
pub fn parse_version_entry(key: &Path, bytes: &[u8]) -> Result<VersionEntry, String> {
    let (name, number) = parse_version_key(key)?;
    let e: VersionEntry = parse_json(bytes)?;
    if e.name != name || e.number != number {
        return Err(format!(
            "names {} instead of {}",
            reg_format::VersionLabel::new(&e.name, e.number),
            reg_format::VersionLabel::new(&name, number)
        ));
    }
    Ok(e)
}

/// Parse a tag entry read from `key` and check it against the key: the
/// entry's name and tag must make this key, and the tag must be valid.
pub fn parse_tag_entry(key: &Path, bytes: &[u8]) -> Result<TagEntry, String> {
    let t: TagEntry = parse_json(bytes)?;
    check_tag(&t.tag).map_err(|e| e.to_string())?;
    if tag_key(&t.name, &t.tag) != *key {
        return Err(format!("names {}@{} instead", t.name, t.tag));
    }
    if t.number == 0 {
        return Err("points at version 0".into());
    }
    Ok(t)
}

/// Parse the format marker.
pub fn parse_marker(bytes: &[u8]) -> Result<Marker, String> {
    parse_json(bytes)
}

/// Parse a small JSON object; the message is one line.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() as u64 > MAX_SMALL_OBJECT {
        return Err(format!(
            "is {} bytes, more than an entry can be ({MAX_SMALL_OBJECT})",
            bytes.len()
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| e.to_string().replace('\n', " "))
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

/// Prefix of the number-claim leases of a name.
pub fn leases_prefix(name: &str) -> Path {
    Path::from_iter(["leases", name])
}

/// Key of a lease taken at `millis` (Unix time) by `token`.
pub fn lease_key(name: &str, millis: u64, token: &str) -> Path {
    Path::from_iter(["leases".to_string(), name.to_string(), format!("{millis:016}-{token}")])
}

/// The time and token of a lease key; anything else under `leases/` is
/// damage.
pub fn parse_lease_key(key: &Path) -> Result<(u64, String), String> {
    let last = key.filename().ok_or("is not a lease key")?;
    let (ms, token) = last.split_once('-').ok_or("is not a lease key (<ms>-<token>)")?;
    let valid_token = !token.is_empty() && token.len() <= 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    if ms.len() != 16 || !ms.bytes().all(|b| b.is_ascii_digit()) || !valid_token {
        return Err("is not a lease key (<ms>-<token>)".into());
    }
    let ms = ms.parse::<u64>().map_err(|_| "lease time out of range".to_string())?;
    Ok((ms, token.to_string()))
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
    #[serde(with = "reg_format::ids::hex_version_id")]
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
    #[serde(with = "reg_format::ids::hex_version_id")]
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

    fn entry_json(name: &str, number: u32) -> String {
        format!(
            r#"{{"name":"{name}","number":{number},"id":"{h}","blake3":"{h}","size":1,"created":0,"epoch":null,"step":null,"source":"a.ckpt"}}"#,
            h = "ab".repeat(32)
        )
    }

    #[test]
    fn version_entries_are_checked_against_their_key() {
        let key = version_key("mlp", 3);
        assert!(parse_version_entry(&key, entry_json("mlp", 3).as_bytes()).is_ok());
        assert!(parse_version_entry(&key, entry_json("mlp", 4).as_bytes()).is_err());
        assert!(parse_version_entry(&key, entry_json("other", 3).as_bytes()).is_err());
        let short = entry_json("mlp", 3).replace(&"ab".repeat(32), "abc");
        assert!(parse_version_entry(&key, short.as_bytes()).is_err());
        let wrong_type = entry_json("mlp", 3).replace(r#""size":1"#, r#""size":"big""#);
        assert!(parse_version_entry(&key, wrong_type.as_bytes()).is_err());
        let huge = format!("{}{}", entry_json("mlp", 3), " ".repeat(MAX_SMALL_OBJECT as usize));
        assert!(parse_version_entry(&key, huge.as_bytes())
            .unwrap_err()
            .contains("bytes"));
        for bad in [
            "versions/mlp/3",
            "versions/mlp/0000000000",
            "versions/-x/0000000001",
            "versions/mlp/00000000x1",
            "versions/a/b/0000000001",
            "other/mlp/0000000001",
        ] {
            assert!(parse_version_key(&Path::from(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            parse_version_key(&key).map(|(n, v)| (n.to_string(), v)).ok(),
            Some(("mlp".into(), 3))
        );
    }

    #[test]
    fn tag_and_lease_keys_parse_or_are_damage() {
        let id = "ab".repeat(32);
        let body = format!(r#"{{"name":"mlp","tag":"best#1","number":2,"id":"{id}"}}"#);
        assert!(parse_tag_entry(&tag_key("mlp", "best#1"), body.as_bytes()).is_ok());
        assert!(parse_tag_entry(&tag_key("mlp", "other"), body.as_bytes()).is_err());
        let zero = body.replace(r#""number":2"#, r#""number":0"#);
        assert!(parse_tag_entry(&tag_key("mlp", "best#1"), zero.as_bytes()).is_err());
        let k = lease_key("mlp", 1234, "00ff");
        assert_eq!(parse_lease_key(&k).ok(), Some((1234, "00ff".to_string())));
        assert!(parse_lease_key(&Path::from("leases/mlp/junk")).is_err());
        assert!(parse_lease_key(&Path::from("leases/mlp/0000000000001234-../x")).is_err());
    }
}
