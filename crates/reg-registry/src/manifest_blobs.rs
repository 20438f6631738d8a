//! Manifest blobs the index may not know: how a lost index is told from a
//! new one, and what gc must never delete.
//!
//! A push names a version's manifest blob only after the index
//! transaction that lists the version (`push/commit.rs`), and `rm` and
//! retention note the versions they take out in the index's `removed`
//! tree. So every manifest blob on disk is a version the index lists, or
//! one it noted as removed. A manifest blob of neither kind means the
//! index lost versions (a restored backup without its index, an index
//! folder deleted, an older copy put back): gc stops rather than delete
//! what those versions need, and verify reports it. An index that is
//! missing or empty while the store holds manifest blobs is damage, not
//! an empty registry ([`Registry::check_index_not_lost`]).
//!
//! Manifests are stored `raw` or `zstd` (never as float planes), so only
//! such blobs are read to tell; a blob that cannot be read at all could
//! be a manifest, and counts as one that cannot be told.

use crate::error::RegistryError;
use crate::registry::Registry;
use reg_format::manifest::Manifest;
use reg_store::{BlobId, BlobStore, Codec, StoreError};
use std::io::Read;

/// The first bytes of every manifest's JSON.
const MANIFEST_PREFIX: &[u8] = b"{\"schema\":";

/// Blobs larger than this are only sniffed (their first bytes), not
/// decoded whole, when telling whether they are manifests.
pub(crate) const MAX_MANIFEST_LEN: u64 = 256 << 20;

/// When the index is missing or empty, at most this many blobs are
/// looked at; a store with more is taken as holding versions.
const LOST_INDEX_SCAN: usize = 1000;

/// What a blob turned out to be.
#[derive(Debug)]
pub(crate) enum BlobKind {
    /// A version's manifest (its JSON decodes), with its raw bytes.
    Manifest(Box<Manifest>),
    /// Its bytes start like a manifest but do not decode as one this reg
    /// reads (a newer schema): treated as a manifest that cannot be used.
    ManifestLike,
    /// Not a manifest.
    Other,
}

/// Tell whether the stored blob `id` is a manifest. An error means the
/// blob cannot be read (damaged, missing, unreadable): it could be one.
pub(crate) fn kind_of(store: &BlobStore, id: BlobId) -> Result<BlobKind, StoreError> {
    let info = store.describe(id)?;
    if !matches!(info.codec, Codec::Raw | Codec::Zstd) || info.raw_len < MANIFEST_PREFIX.len() as u64 {
        return Ok(BlobKind::Other);
    }
    if info.raw_len > MAX_MANIFEST_LEN {
        let mut head = [0u8; MANIFEST_PREFIX.len()];
        store
            .unchecked_reader(id)?
            .read_exact(&mut head)
            .map_err(|e| StoreError::Corrupt {
                id,
                reason: format!("cannot decode its first bytes: {e}"),
            })?;
        return Ok(if head == MANIFEST_PREFIX {
            BlobKind::ManifestLike
        } else {
            BlobKind::Other
        });
    }
    let bytes = store.read(id)?;
    if !bytes.starts_with(MANIFEST_PREFIX) {
        return Ok(BlobKind::Other);
    }
    Ok(match Manifest::from_json(&bytes) {
        Ok(m) => BlobKind::Manifest(Box::new(m)),
        Err(_) => BlobKind::ManifestLike,
    })
}

impl Registry {
    /// With the index missing (`fresh`: just created) or empty, make sure
    /// the store holds no version's manifest: otherwise the registry lost
    /// its index and is damaged ([`RegistryError::IndexLost`]), and nothing
    /// may treat it as empty. Blobs without a manifest (a first push that
    /// was killed before it committed) are not versions.
    pub(crate) fn check_index_not_lost(&self) -> Result<(), RegistryError> {
        let ids = match self.store.list() {
            Ok(ids) => ids,
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if ids.is_empty() {
            return Ok(());
        }
        let lost = |evidence: String| RegistryError::IndexLost {
            blobs: ids.len(),
            evidence,
        };
        for id in ids.iter().take(LOST_INDEX_SCAN) {
            match kind_of(&self.store, *id) {
                Ok(BlobKind::Other) => {}
                Ok(BlobKind::Manifest(m)) => {
                    return Err(lost(format!(
                        "blob {} is the manifest of {}",
                        short(*id),
                        reg_format::VersionLabel::new(&m.name, m.number)
                    )))
                }
                Ok(BlobKind::ManifestLike) => return Err(lost(format!("blob {} is a manifest", short(*id)))),
                Err(e) => return Err(lost(format!("blob {} cannot be read ({e})", short(*id)))),
            }
        }
        if ids.len() > LOST_INDEX_SCAN {
            return Err(lost(format!("more than {LOST_INDEX_SCAN} blobs")));
        }
        Ok(())
    }
}

/// The first 12 hex digits of a blob id, as messages show ids.
pub(crate) fn short(id: BlobId) -> String {
    id.to_hex()[..12].to_string()
}
