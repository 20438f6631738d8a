//! Names and ids of models, versions and files, as validated types.
//!
//! Everything that comes from outside reg's own code (the command line, a
//! remote, the local index, a manifest) is parsed into one of these before
//! it is used: a value of the type is valid by construction, and the
//! `Deserialize` impls validate too, so a manifest with a `source` of
//! `../x` or a version id of 11 digits does not parse at all.
//!
//! - [`ModelName`]: what versions are grouped under.
//! - [`VersionId`]: the blake3 of a version's manifest JSON.
//! - [`FileHash`]: the blake3 of a version's whole file (its checksum).
//! - [`VersionNumber`]: a version's number under its name (`vN`).
//! - [`SourceName`]: the file (or directory) name a version was pushed
//!   from: one plain path component, safe to write in the working
//!   directory.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A model name: what versions are grouped under (`mnist`, `bert-base`).
/// Letters, digits and `-_.=`, 1 to 128 characters, not starting with `.`
/// or `-`. Names never contain `@` (refs) or `/` (paths).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelName(String);

/// A string that is not a valid [`ModelName`].
#[derive(Debug, thiserror::Error)]
#[error("invalid model name {0:?}: use letters, digits, '-', '_', '=' and '.', at most 128 characters")]
pub struct BadName(pub String);

impl ModelName {
    /// Validate a name.
    pub fn new(name: &str) -> Result<ModelName, BadName> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with(['.', '-'])
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '='));
        if ok {
            Ok(ModelName(name.to_string()))
        } else {
            Err(BadName(name.to_string()))
        }
    }

    /// Turn an arbitrary file stem into a valid name (other characters
    /// become `-`).
    pub fn sanitized(stem: &str) -> ModelName {
        let mut s: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .take(128)
            .collect();
        while s.starts_with(['.', '-']) {
            s.remove(0);
        }
        if s.is_empty() {
            s = "model".into();
        }
        ModelName(s)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ModelName {
    type Error = BadName;
    fn try_from(s: String) -> Result<ModelName, BadName> {
        ModelName::new(&s)
    }
}

impl From<ModelName> for String {
    fn from(n: ModelName) -> String {
        n.0
    }
}

impl std::ops::Deref for ModelName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ModelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ModelName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ModelName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text that is not 64 lowercase hex digits (a version id or file hash).
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} {shown:?}: expected 64 hex digits")]
pub struct BadHash {
    /// What was being parsed ("version id", "file hash").
    pub what: &'static str,
    /// The text, cut to 80 characters.
    pub shown: String,
}

/// `from_hex`, `to_hex`, `short` and `Display` (hex) of a 32-byte hash
/// newtype; `$what` names it in parse errors.
macro_rules! hex32_newtype {
    ($ty:ident, $what:literal) => {
        impl $ty {
            /// Parse 64 lowercase hex digits.
            pub fn from_hex(text: &str) -> Result<$ty, BadHash> {
                parse_hex32(text, $what).map($ty)
            }

            /// As 64 hex digits.
            pub fn to_hex(&self) -> String {
                reg_store::BlobId(self.0).to_hex()
            }

            /// The first 12 hex digits, for display.
            pub fn short(&self) -> String {
                let mut hex = self.to_hex();
                hex.truncate(12);
                hex
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

fn parse_hex32(text: &str, what: &'static str) -> Result<[u8; 32], BadHash> {
    let bad = || BadHash {
        what,
        shown: text.chars().take(80).collect(),
    };
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(bad());
    }
    reg_store::BlobId::from_hex(text).map(|id| id.0).map_err(|_| bad())
}

/// A version's id: the blake3 hash of its manifest JSON. In the index it
/// is stored as 32 bytes (bincode); in JSON views it is written as hex
/// through [`hex_version_id`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionId(pub [u8; 32]);

hex32_newtype!(VersionId, "version id");

impl VersionId {
    /// The manifest blob this id names.
    pub fn blob(&self) -> reg_store::BlobId {
        reg_store::BlobId(self.0)
    }
}

/// Serde helpers that write a [`VersionId`] as 64 hex digits (the JSON
/// views) and read it back validated: `#[serde(with = "hex_version_id")]`.
pub mod hex_version_id {
    use super::VersionId;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Write the id as hex.
    pub fn serialize<S: Serializer>(id: &VersionId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }

    /// Read and validate a hex id.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VersionId, D::Error> {
        let text = String::deserialize(d)?;
        VersionId::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// The blake3 of a version's whole file (or, for a directory version, of
/// its file list; see docs/format.md): what pull checks the output
/// against. Written as 64 hex digits everywhere (JSON and the index), so
/// it reads and writes exactly as the plain hex string it replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileHash(pub [u8; 32]);

hex32_newtype!(FileHash, "file hash");

impl From<reg_store::BlobId> for FileHash {
    fn from(id: reg_store::BlobId) -> FileHash {
        FileHash(id.0)
    }
}

impl Serialize for FileHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for FileHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FileHash, D::Error> {
        let text = String::deserialize(d)?;
        FileHash::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// The name of the file or directory a version was pushed from, which is
/// also the name `reg pull` writes in the working directory when given no
/// `-o`: one plain path component. Not empty, at most 255 bytes, not `.`
/// or `..`, no `/`, `\`, NUL or other control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceName(String);

/// A string that is not a valid [`SourceName`].
#[derive(Debug, thiserror::Error)]
#[error("invalid source name {0:?}: expected a plain file name (no '/', '\\', '..', NUL or control characters)")]
pub struct BadSourceName(pub String);

impl SourceName {
    /// Validate a source name.
    pub fn new(name: &str) -> Result<SourceName, BadSourceName> {
        let ok = !name.is_empty()
            && name.len() <= 255
            && name != "."
            && name != ".."
            && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control());
        if ok {
            Ok(SourceName(name.to_string()))
        } else {
            Err(BadSourceName(name.chars().take(80).collect()))
        }
    }

    /// The source name of the file or directory at `path`: its last
    /// component, with characters a source name cannot hold replaced by
    /// `_` (`checkpoint` when nothing is left).
    pub fn of_path(path: &std::path::Path) -> SourceName {
        let last = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cleaned: String = last
            .chars()
            .map(|c| if c == '\\' || c.is_control() { '_' } else { c })
            .collect();
        let mut cut = String::new();
        for c in cleaned.chars() {
            if cut.len() + c.len_utf8() > 255 {
                break;
            }
            cut.push(c);
        }
        SourceName::new(&cut).unwrap_or_else(|_| SourceName("checkpoint".into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SourceName {
    type Error = BadSourceName;
    fn try_from(s: String) -> Result<SourceName, BadSourceName> {
        SourceName::new(&s)
    }
}

impl From<SourceName> for String {
    fn from(n: SourceName) -> String {
        n.0
    }
}

impl std::ops::Deref for SourceName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for SourceName {
    fn as_ref(&self) -> &std::ffi::OsStr {
        std::ffi::OsStr::new(&self.0)
    }
}

impl AsRef<std::path::Path> for SourceName {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The path of a file inside a directory version: relative, `/`
/// separated, each component a plain name (not empty, not `.` or `..`, no
/// `\\`, NUL or control characters, at most 255 bytes), at most 4096 bytes
/// in all. Joining one to a folder can never leave the folder.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TreePath(String);

/// A string that is not a valid [`TreePath`].
#[derive(Debug, thiserror::Error)]
#[error("invalid path {0:?} in a directory version: expected a relative path of plain names")]
pub struct BadTreePath(pub String);

impl TreePath {
    /// Validate a relative path.
    pub fn new(path: &str) -> Result<TreePath, BadTreePath> {
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.len() <= 255
                && c != "."
                && c != ".."
                && !c.chars().any(|ch| ch == '\\' || ch.is_control())
        };
        if !path.is_empty() && path.len() <= 4096 && path.split('/').all(component_ok) {
            Ok(TreePath(path.to_string()))
        } else {
            Err(BadTreePath(path.chars().take(120).collect()))
        }
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path below `root` (always inside it).
    pub fn under(&self, root: &std::path::Path) -> std::path::PathBuf {
        self.0.split('/').fold(root.to_path_buf(), |p, c| p.join(c))
    }
}

impl TryFrom<String> for TreePath {
    type Error = BadTreePath;
    fn try_from(s: String) -> Result<TreePath, BadTreePath> {
        TreePath::new(&s)
    }
}

impl From<TreePath> for String {
    fn from(p: TreePath) -> String {
        p.0
    }
}

impl fmt::Display for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_are_one_plain_component() {
        for bad in ["", ".", "..", "../x", "/abs/x", "a/b", "a\\b", "a\0b", "a\nb"] {
            assert!(SourceName::new(bad).is_err(), "{bad:?} accepted");
            let json = serde_json::to_string(bad).unwrap_or_default();
            assert!(
                serde_json::from_str::<SourceName>(&json).is_err(),
                "{bad:?} deserialized"
            );
        }
        for good in ["epoch=3.ckpt", "checkpoint-8", ".metadata", "model..bin", "é.pt"] {
            assert_eq!(SourceName::new(good).map(|s| s.to_string()).ok().as_deref(), Some(good));
        }
        assert_eq!(SourceName::of_path(std::path::Path::new("/x/y/")).as_str(), "y");
        assert_eq!(SourceName::of_path(std::path::Path::new("..")).as_str(), "checkpoint");
        assert_eq!(
            SourceName::of_path(std::path::Path::new(&"a".repeat(300)))
                .as_str()
                .len(),
            255
        );
    }

    #[test]
    fn hashes_need_exactly_64_lowercase_hex_digits() {
        let good = "ab".repeat(32);
        assert!(FileHash::from_hex(&good).is_ok());
        assert!(VersionId::from_hex(&good).is_ok());
        for bad in [
            "",
            "abc",
            &"AB".repeat(32),
            &"ab".repeat(33),
            &"é".repeat(32),
            &"zz".repeat(32),
        ] {
            assert!(FileHash::from_hex(bad).is_err(), "{bad:?}");
            assert!(VersionId::from_hex(bad).is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&FileHash::from_hex(&good).ok()).unwrap_or_default();
        assert_eq!(json, format!("\"{good}\""));
    }

    #[test]
    fn tree_paths_stay_inside() {
        for bad in ["", "/abs", "a//b", "../x", "a/../b", "a/./b", "a\\b", "a\0b", "a/", "."] {
            assert!(TreePath::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in [".metadata", "__0_0.distcp", "unet/config.json", "a/b/c.pt"] {
            assert!(TreePath::new(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn model_names_validate_when_deserialized() {
        assert!(serde_json::from_str::<ModelName>("\"mlp\"").is_ok());
        for bad in ["\"\"", "\"a/b\"", "\"a@b\"", "\"-x\"", "\"../x\""] {
            assert!(serde_json::from_str::<ModelName>(bad).is_err(), "{bad}");
        }
    }
}

/// A version's number under its name: 1, 2, ... in push order, as `vN`
/// names it. Displayed as the bare number (`NAME@v{number}` is
/// [`VersionLabel`]'s to spell); serialized as the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionNumber(pub u32);

impl VersionNumber {
    /// The number as an integer.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl From<u32> for VersionNumber {
    fn from(n: u32) -> VersionNumber {
        VersionNumber(n)
    }
}

impl From<VersionNumber> for u32 {
    fn from(n: VersionNumber) -> u32 {
        n.0
    }
}

impl PartialEq<u32> for VersionNumber {
    fn eq(&self, other: &u32) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for VersionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A version as people name it, `NAME@vN`: the one place that spells it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionLabel {
    /// The model name.
    pub name: String,
    /// The version number.
    pub number: u32,
}

impl VersionLabel {
    /// The label of version `number` of `name`.
    pub fn new(name: impl AsRef<str>, number: impl Into<u32>) -> VersionLabel {
        VersionLabel {
            name: name.as_ref().to_string(),
            number: number.into(),
        }
    }
}

impl std::fmt::Display for VersionLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@v{}", self.name, self.number)
    }
}
