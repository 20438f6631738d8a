//! The `torch.save` zip format: one prefix folder holding `data.pkl`, one
//! `data/<key>` record per tensor storage, and a few small records.
//!
//! [`read`] locates everything and verifies every record's CRC-32, so a
//! flipped byte anywhere in the archive is refused rather than stored.

use std::collections::HashSet;
use std::ops::Range;

use crate::segment::{cover, Segment};
use crate::zip::{self, ZipEntry, ZipError};

/// Why a file is not a readable torch zip checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum TorchZipError {
    /// The zip structure itself is broken.
    #[error(transparent)]
    Zip(#[from] ZipError),
    /// The archive has no `data.pkl` at its top level.
    #[error("torch zip: no data.pkl record")]
    NoPickle,
    /// More than one candidate `data.pkl`.
    #[error("torch zip: several data.pkl records ({}, {})", .first.escape_debug(), .second.escape_debug())]
    SeveralPickles {
        /// The first one found.
        first: String,
        /// Another one.
        second: String,
    },
    /// An entry lies outside the archive's prefix folder.
    #[error("torch zip entry {}: not under the archive folder {prefix:?}", .name.escape_debug())]
    OutsidePrefix {
        /// The entry name.
        name: String,
        /// The prefix every entry must share.
        prefix: String,
    },
    /// Two entries have the same name.
    #[error("torch zip entry {}: appears more than once", .name.escape_debug())]
    Duplicate {
        /// The entry name.
        name: String,
    },
    /// A compressed entry; torch only writes stored ones.
    #[error("torch zip entry {}: compressed with method {method}, torch only writes stored (method 0) records", .name.escape_debug())]
    Compressed {
        /// The entry name.
        name: String,
        /// Its compression method.
        method: u16,
    },
    /// A record's bytes do not match its CRC-32.
    #[error("zip entry {}: crc mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})", .name.escape_debug())]
    Crc {
        /// The entry name.
        name: String,
        /// The CRC the central directory records.
        stored: u32,
        /// The CRC of the bytes in the file.
        computed: u32,
    },
    /// A `data/` record with an empty key.
    #[error("torch zip entry {}: empty storage key", .name.escape_debug())]
    EmptyKey {
        /// The entry name.
        name: String,
    },
}

/// A located torch zip checkpoint.
#[derive(Clone, Debug)]
pub struct TorchZip {
    /// The folder every record is under, with its slash (`archive/`), or
    /// empty when records sit at the top level.
    pub prefix: String,
    /// The bytes of `<prefix>data.pkl`.
    pub pickle: Range<u64>,
    /// Every record, in central directory order.
    pub entries: Vec<ZipEntry>,
    /// Each `<prefix>data/<key>` record: the storage key and its bytes, in
    /// central directory order.
    pub storages: Vec<(String, Range<u64>)>,
}

/// True when `file` starts like a zip archive (`PK\x03\x04`).
pub fn is_zip(file: &[u8]) -> bool {
    file.starts_with(b"PK\x03\x04")
}

/// The prefix of a top-level `data.pkl` name (`"archive/"`, `""`), if it is one.
fn pickle_prefix(name: &str) -> Option<&str> {
    let prefix = name.strip_suffix("data.pkl")?;
    match prefix.find('/') {
        None if prefix.is_empty() => Some(prefix),
        Some(i) if i + 1 == prefix.len() => Some(prefix),
        _ => None,
    }
}

/// Read a torch zip checkpoint: locate its records and verify their CRCs.
pub fn read(file: &[u8]) -> Result<TorchZip, TorchZipError> {
    read_with(file, true)
}

/// Like [`read`], but when `check_storages` is false the CRCs of
/// `data/<key>` records are left to the caller (who reads those bytes
/// anyway and checks them against [`ZipEntry::crc32`] on the way), so only
/// the small records are touched here.
pub fn read_with(file: &[u8], check_storages: bool) -> Result<TorchZip, TorchZipError> {
    let entries = zip::read_entries(file)?;
    let mut pickle: Option<&ZipEntry> = None;
    for e in &entries {
        if pickle_prefix(&e.name).is_some() {
            if let Some(first) = pickle {
                return Err(TorchZipError::SeveralPickles {
                    first: first.name.clone(),
                    second: e.name.clone(),
                });
            }
            pickle = Some(e);
        }
    }
    let pickle = pickle.ok_or(TorchZipError::NoPickle)?;
    let prefix = pickle_prefix(&pickle.name).unwrap_or("").to_owned();
    let storage_prefix = format!("{prefix}data/");

    let mut seen = HashSet::with_capacity(entries.len());
    let mut storages = Vec::new();
    for e in &entries {
        if !e.name.starts_with(&prefix) {
            return Err(TorchZipError::OutsidePrefix {
                name: e.name.clone(),
                prefix,
            });
        }
        if !seen.insert(e.name.as_str()) {
            return Err(TorchZipError::Duplicate { name: e.name.clone() });
        }
        if e.method != 0 {
            return Err(TorchZipError::Compressed {
                name: e.name.clone(),
                method: e.method,
            });
        }
        // read_entries checked the range lies inside the file.
        let bytes = usize::try_from(e.data.start)
            .ok()
            .zip(usize::try_from(e.data.end).ok())
            .and_then(|(s, t)| file.get(s..t))
            .ok_or_else(|| ZipError::Entry {
                name: e.name.clone(),
                reason: "data lies outside the file".into(),
            })?;
        let is_storage = e.name.starts_with(&storage_prefix);
        let computed = if check_storages || !is_storage {
            crc32fast::hash(bytes)
        } else {
            e.crc32
        };
        // torch writes CRC 0 when `compute_crc32` is off: nothing to check.
        if e.crc32 != 0 && computed != e.crc32 {
            return Err(TorchZipError::Crc {
                name: e.name.clone(),
                stored: e.crc32,
                computed,
            });
        }
        if let Some(key) = e.name.strip_prefix(&storage_prefix) {
            if key.is_empty() {
                return Err(TorchZipError::EmptyKey { name: e.name.clone() });
            }
            storages.push((key.to_owned(), e.data.clone()));
        }
    }
    Ok(TorchZip {
        prefix,
        pickle: pickle.data.clone(),
        storages,
        entries,
    })
}

impl TorchZip {
    /// Cut a file of `file_len` bytes into one payload segment per storage
    /// (keyed by storage key) and skeleton segments for everything else.
    pub fn segments(&self, file_len: u64) -> Vec<Segment> {
        cover(
            file_len,
            self.storages.iter().map(|(k, r)| (r.clone(), k.clone())).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(pickle_prefix("archive/data.pkl"), Some("archive/"));
        assert_eq!(pickle_prefix("data.pkl"), Some(""));
        assert_eq!(pickle_prefix("a/b/data.pkl"), None);
        assert_eq!(pickle_prefix("archive/xdata.pkl"), None);
        assert_eq!(pickle_prefix("/data.pkl"), Some("/"));
    }

    #[test]
    fn sniff() {
        assert!(is_zip(b"PK\x03\x04rest"));
        assert!(!is_zip(b"PK\x05\x06"));
        assert!(!is_zip(b""));
    }
}
