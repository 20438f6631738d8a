//! Retention: what a registry keeps of old versions' training state.
//!
//! `keep_optimizer_last = N` (registry.toml, or `reg prune
//! --keep-optimizer-last N`) keeps optimizer, scheduler and callback
//! state in the newest N versions of a name and drops it from the older
//! ones, keeping their weights. A dropped version keeps its name, number
//! and creation time and is marked `optimizer_dropped` (with the size and
//! hash of the file it was); gc frees what only the dropped state used.
//!
//! - this module: which versions to drop from ([`Registry::drop_optimizer_state`]),
//!   for prune and for the background job a push queues;
//! - [`file`]: a single-file version becomes the weights-only file its
//!   export makes, streamed into the store as it is written (only the
//!   small records touch the disk; the tensors are the blobs it has);
//! - [`tree`]: a directory version drops the files that hold only
//!   training state, no byte rewritten.

mod file;
mod tree;

use crate::error::RegistryError;
use crate::lock::WriteGuard;
use crate::registry::{versions_of, Registry};
use crate::resolve::Resolved;
use reg_format::ids::{ModelName, VersionLabel, VersionNumber};
use reg_format::index::VersionRecord;
use reg_format::manifest::Manifest;
use reg_format::refs::TagName;
use reg_store::BlobId;
use std::collections::{BTreeMap, BTreeSet};

/// The versions of a name with their manifests and tags, read to judge
/// them (prune, retention).
pub(crate) type Judged = (
    Vec<VersionRecord>,
    Vec<(TagName, VersionNumber)>,
    BTreeMap<u32, Manifest>,
);

impl Registry {
    /// The versions of `name`, their tags and manifests, in one index
    /// transaction. A version whose manifest cannot be read cannot be
    /// ranked or judged: that stops the caller rather than have it remove
    /// what may be the one to keep.
    pub(crate) fn versions_to_judge(&self, name: &ModelName, doing: &str) -> Result<Judged, RegistryError> {
        self.with_index(&format!("{doing} of {name} to plan"), |idx| {
            let versions = versions_of(idx, name)?;
            let mut manifests = BTreeMap::new();
            for v in &versions {
                let m = idx.manifest(v.id)?.ok_or_else(|| RegistryError::Damaged {
                    version: VersionLabel::new(name, v.number.get()).to_string(),
                    source: reg_store::StoreError::Missing(BlobId(v.id.0)),
                })?;
                manifests.insert(v.number.get(), m);
            }
            Ok((versions, idx.tags(name)?, manifests))
        })
    }

    /// Drop optimizer (and scheduler, callback) state from every version
    /// but the newest `n` and those in `skip`, keeping weights; returns the
    /// numbers dropped (to be dropped, with `dry_run`). Needs only a
    /// writer's hold of `gc.lock`: the replaced blobs are left to gc.
    pub(crate) fn drop_optimizer_state(
        &self,
        guard: &WriteGuard,
        versions: &[VersionRecord],
        manifests: &BTreeMap<u32, Manifest>,
        n: usize,
        skip: &[u32],
        dry_run: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        let recent: BTreeSet<u32> = versions.iter().rev().take(n).map(|v| v.number.get()).collect();
        let mut dropped = Vec::new();
        for v in versions {
            if recent.contains(&v.number.get()) || v.optimizer_dropped || skip.contains(&v.number.get()) {
                continue;
            }
            let Some(m) = manifests.get(&v.number.get()) else {
                continue;
            };
            if m.meta.optimizers.is_empty() && m.meta.schedulers.is_empty() {
                continue;
            }
            // A directory drops only the files holding training state; a
            // layout without such files keeps its state.
            if m.is_directory() && !m.has_droppable_training_files() {
                continue;
            }
            dropped.push(v.number.get());
            if dry_run {
                continue;
            }
            let version = Resolved::unpinned(v.clone(), m.clone());
            if m.is_directory() {
                self.drop_optimizer_files(guard, &version)?;
            } else {
                self.drop_optimizer(guard, &version)?;
            }
        }
        Ok(dropped)
    }

    /// Retention queued by a push (`keep_optimizer_last = n` for `name`),
    /// run by the background job under its writer's hold of `gc.lock` and
    /// `deltas.lock` (so no push waits for it, and one runs at a time);
    /// what it replaced is freed by a later gc. Returns the numbers
    /// dropped.
    pub(crate) fn retain_optimizer_state(
        &self,
        guard: &WriteGuard,
        name: &ModelName,
        n: usize,
    ) -> Result<Vec<u32>, RegistryError> {
        let (versions, _, manifests) = self.versions_to_judge(name, "reg deltas retention")?;
        self.drop_optimizer_state(guard, &versions, &manifests, n, &[], false)
    }
}
