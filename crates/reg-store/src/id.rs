//! The content address of a blob.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// blake3 hash of a blob's raw bytes: the blob's name everywhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// Hash bytes into their id.
    pub fn of(bytes: &[u8]) -> BlobId {
        BlobId(*blake3::hash(bytes).as_bytes())
    }

    /// Hash large inputs with all cores (same result as [`BlobId::of`]).
    pub fn of_large(bytes: &[u8]) -> BlobId {
        if bytes.len() < 1 << 20 {
            return BlobId::of(bytes);
        }
        let mut h = blake3::Hasher::new();
        h.update_rayon(bytes);
        BlobId(*h.finalize().as_bytes())
    }

    /// The id as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Parse 64 hex digits.
    pub fn from_hex(s: &str) -> Result<BlobId, ParseIdError> {
        if s.len() != 64 || !s.is_ascii() {
            return Err(ParseIdError(s.to_string()));
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).map_err(|_| ParseIdError(s.to_string()))?;
        }
        Ok(BlobId(out))
    }
}

impl From<blake3::Hash> for BlobId {
    fn from(h: blake3::Hash) -> Self {
        BlobId(*h.as_bytes())
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", &self.to_hex()[..12])
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("not a blob id (64 hex digits): {0:?}")]
pub struct ParseIdError(pub String);

impl Serialize for BlobId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for BlobId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BlobId::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = BlobId::of(b"abc");
        assert_eq!(BlobId::from_hex(&id.to_hex()).ok(), Some(id));
        assert!(BlobId::from_hex("zz").is_err());
        assert_eq!(BlobId::of_large(&vec![7u8; 3 << 20]), BlobId::of(&vec![7u8; 3 << 20]));
    }
}
