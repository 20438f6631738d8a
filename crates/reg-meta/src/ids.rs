//! Names and ids of models and versions.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A model name: what versions are grouped under (`mnist`, `bert-base`).
/// Letters, digits and `-_.`, 1 to 128 characters, not starting with `.`
/// or `-`. Names never contain `@` (refs) or `/` (paths).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModelName(String);

/// A string that is not a valid [`ModelName`].
#[derive(Debug, thiserror::Error)]
#[error("invalid model name {0:?}: use letters, digits, '-', '_' and '.', at most 128 characters")]
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

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version's id: the blake3 hash of its manifest, shown as hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionId(pub [u8; 32]);

impl VersionId {
    /// The id as 64 hex digits.
    pub fn to_hex(&self) -> String {
        reg_store::BlobId(self.0).to_hex()
    }

    /// The first 12 hex digits, for display.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
