//! Training-aware retention for directory versions: drop the files that
//! hold only optimizer, scheduler or RNG state (a Trainer's
//! `optimizer.pt`, `scheduler.pt`, `rng_state*.pth`; DeepSpeed's
//! `*_optim_states.pt`), keeping every other file byte for byte. No bytes
//! are rewritten: the version's manifest is replaced by one listing the
//! remaining files (same name and number, marked `optimizer_dropped`),
//! and gc frees the blobs only the dropped files used. Layouts whose
//! optimizer state shares files with the weights (a DCP data file holds
//! both) have nothing to drop and are left as they are.

use crate::error::RegistryError;
use crate::lock::WriteGuard;
use crate::push::{Commit, Committed};
use crate::registry::Registry;
use crate::resolve::Resolved;
use reg_format::manifest::{DroppedFrom, Manifest};

impl Registry {
    /// Replace a directory version by the same tree without its
    /// training-state files (see the module docs). Returns false when it
    /// has none to drop.
    pub(crate) fn drop_optimizer_files(&self, _guard: &WriteGuard, v: &Resolved) -> Result<bool, RegistryError> {
        let old = &v.manifest;
        let Some(tree) = &old.tree else {
            return Ok(false);
        };
        let keep: Vec<bool> = tree.files.iter().map(|f| !f.holds_training_state_only()).collect();
        if keep.iter().all(|k| *k) || !keep.iter().any(|k| *k) {
            return Ok(false);
        }
        // New file indices for the chunks of the files kept.
        let mut index = Vec::with_capacity(keep.len());
        let mut next = 0u32;
        for k in &keep {
            index.push(k.then_some(next));
            if *k {
                next += 1;
            }
        }
        let mut new_tree = tree.clone();
        new_tree.files = tree
            .files
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(f, _)| f.clone())
            .collect();
        new_tree.tensors = tree
            .tensors
            .iter()
            .filter_map(|t| {
                let mut t = t.clone();
                for c in &mut t.chunks {
                    c.file = index.get(c.file as usize).copied().flatten()?;
                }
                Some(t)
            })
            .collect();
        let listing = new_tree.listing();
        let listing_id = reg_store::BlobId::of(&listing);
        let listing_put = self.store.put(listing_id, &listing)?;
        self.store.sync()?;
        let mut meta = old.meta.clone();
        meta.optimizers.clear();
        meta.schedulers.clear();
        let manifest = Manifest {
            size: new_tree.files.iter().map(|f| f.size).sum(),
            blake3: reg_format::ids::FileHash::from(listing_id),
            skeleton: listing_id,
            meta,
            optimizer_dropped: Some(old.optimizer_dropped.clone().unwrap_or(DroppedFrom {
                size: old.size,
                blake3: old.blake3,
                when: crate::push::now_secs(),
            })),
            tree: Some(new_tree),
            ..old.clone()
        };
        let mut blobs = vec![(listing_id, listing.len() as u64, Some(listing_put))];
        let payload_lens = manifest.payload_lens();
        let skeleton_lens = manifest.skeleton_lens();
        for id in manifest.blobs() {
            if id == listing_id {
                continue;
            }
            let len = payload_lens.get(&id).or(skeleton_lens.get(&id)).copied().unwrap_or(0);
            blobs.push((id, len, None));
        }
        match self.commit(Commit {
            manifest,
            tag: None,
            replaces: Some(v),
            blobs,
            deferred: Vec::new(),
            delta_edges: Vec::new(),
            defer_deltas: false,
            retain: None,
        })? {
            Committed::New { .. } => Ok(true),
            Committed::Same(_) => Ok(false),
        }
    }
}
