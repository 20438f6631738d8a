//! `pull`: bring a remote version into the local registry.
//!
//! The manifest is downloaded and checked against its id, every blob the
//! local store lacks is downloaded into `tmp/` and hash-checked (decoded,
//! blake3 of the raw bytes against the id) before it is renamed into the
//! store (a delta blob's parent is downloaded and stored before it, so
//! that it can be checked; a chain that loops or is longer than
//! `reg_store::MAX_CHAIN` is damage), and only then is the version
//! committed to the local index, with the next free local number (see
//! `reg_registry::import`, which checks the manifest again as it imports it). A damaged or
//! missing remote object stops the pull with an error naming the version;
//! nothing damaged is stored and no version appears. Blobs that arrived
//! intact before the error stay (a retry does not fetch them again; `reg gc`
//! removes them if no version ever needs them).

use crate::error::RemoteError;
use crate::layout;
use crate::remote::Remote;
use crate::report::{SyncReport, SyncedVersion};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use reg_registry::{Progress, Registry, VersionRef};
use reg_store::{BlobId, BlobStore, StoreError};
use std::io::Write;
use std::sync::Mutex;

impl Remote {
    /// Download the version `r` names (its number is the remote's) into
    /// the local registry. When the registry has the same file under the
    /// name already, nothing is transferred.
    pub fn pull(&self, reg: &Registry, r: &VersionRef, progress: &dyn Progress) -> Result<SyncReport, RemoteError> {
        let result = self.block_on(self.pull_async(reg, r, progress));
        progress.finish();
        result
    }

    async fn pull_async(
        &self,
        reg: &Registry,
        r: &VersionRef,
        progress: &dyn Progress,
    ) -> Result<SyncReport, RemoteError> {
        self.check_marker(false).await?;
        let (entry, versions) = self.resolve_among(r).await?;
        let all_tags = self.tags_async(&entry.name).await?;
        self.check_tags(&versions, &all_tags)?;
        let label = self.label(&entry.name, entry.number);
        let mut report = SyncReport::new(&self.name, "pull");
        if let Some(local) = reg.find_identical(&entry.name, entry.blake3, entry.size)? {
            report.versions.push(SyncedVersion {
                name: entry.name.clone(),
                local: local.number.get(),
                remote: entry.number,
                local_id: local.id,
                remote_id: entry.id,
                transferred: false,
            });
            return Ok(report);
        }
        // A writer from here on: gc cannot take the blobs fetched below
        // before the version that needs them is committed.
        let guard = reg.writer()?;
        let (json, manifest) = self.fetch_manifest_async(&entry).await?;
        report.object(json.len() as u64);

        let missing = reg.missing_blobs(&manifest);
        for id in manifest.blobs() {
            if !missing.contains(&id) {
                report.blobs_skipped += 1;
                report.blob_bytes_skipped += reg.store().stored_len(id).unwrap_or(0);
            }
        }
        // The progress total is the stored bytes to fetch (a HEAD per
        // missing blob; delta parents found on the way add theirs).
        let sizes: Vec<u64> = futures::stream::iter(missing.iter().copied())
            .map(|id| async move {
                match self.store.head(&layout::blob_key(id)).await {
                    Ok(meta) => Ok(meta.size),
                    Err(object_store::Error::NotFound { .. }) => Ok(0), // the download says so
                    Err(e) => Err(self.err()(e)),
                }
            })
            .buffered(self.tuning.concurrency.max(1) * 2)
            .try_collect()
            .await?;
        progress.phase("downloading", sizes.iter().sum());
        let store = reg.store();
        // Blobs this pull adds, removed again when the remote turns out
        // damaged: a damaged pull leaves the registry as it was. (After
        // other failures, such as a server going away, they stay, so a
        // retry resumes; `reg gc` removes them if nothing ever needs them.)
        let added: Mutex<Vec<BlobId>> = Mutex::new(Vec::new());
        let tags: Vec<String> = all_tags
            .into_iter()
            .filter(|t| t.number == entry.number)
            .map(|t| t.tag)
            .collect();
        let fetched = async {
            let received: Vec<u64> = futures::stream::iter(missing)
                .map(|id| self.download_blob(store, id, &label, progress, Vec::new(), &added))
                .buffer_unordered(self.tuning.concurrency.max(1))
                .try_collect()
                .await?;
            let imported = reg.import_version(&guard, &json, &tags, &label)?;
            Ok::<_, RemoteError>((received, imported))
        }
        .await;
        let (received, imported) = match fetched {
            Ok(done) => done,
            Err(e) => {
                if e.is_damage() {
                    let added = added.lock().map(|a| a.clone()).unwrap_or_default();
                    for id in added {
                        // Only blobs this pull wrote, which no version
                        // names (the import did not happen).
                        let _ = store.remove(id);
                    }
                }
                return Err(e);
            }
        };
        for len in received {
            report.blobs_transferred += 1;
            report.blob_bytes_transferred += len;
            report.object(len);
        }
        for t in &imported.tags_set {
            report.tags.push(format!("{}@{t} -> v{}", entry.name, imported.number));
        }
        for (t, n) in &imported.tags_kept {
            report.notes.push(format!(
                "tag {t} is not moved: it points at {} here",
                reg_format::VersionLabel::new(&entry.name, *n)
            ));
        }
        report.versions.push(SyncedVersion {
            name: entry.name.clone(),
            local: imported.number,
            remote: entry.number,
            local_id: imported.id,
            remote_id: entry.id,
            transferred: imported.created,
        });
        Ok(report)
    }

    /// Stream one blob into the local store (after the delta parents it
    /// needs); it is verified before it is stored. `children` are the
    /// deltas waiting for it (a chain may not loop or exceed
    /// `reg_store::MAX_CHAIN`). Returns the stored length of it and of the
    /// parents fetched for it.
    pub(crate) async fn download_blob(
        &self,
        store: &BlobStore,
        id: BlobId,
        label: &str,
        progress: &dyn Progress,
        children: Vec<BlobId>,
        added: &Mutex<Vec<BlobId>>,
    ) -> Result<u64, RemoteError> {
        let damaged = |source| RemoteError::Damaged {
            version: label.to_string(),
            source,
        };
        let got = match self.store.get(&layout::blob_key(id)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Err(damaged(StoreError::Missing(id))),
            Err(e) => return Err(self.err()(e)),
        };
        let mut writer = store.stored_writer(id)?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(self.err())?;
            writer.write_all(&chunk).map_err(|source| {
                RemoteError::Local(StoreError::Io {
                    action: "writing",
                    path: writer.path(),
                    source,
                })
            })?;
            progress.advance(chunk.len() as u64);
        }
        // A delta is checked against its parent: fetch that first.
        let mut parents_len = 0;
        if let Some(parent) = writer.parent()? {
            if parent == id || children.contains(&parent) || children.len() >= reg_store::MAX_CHAIN {
                return Err(damaged(StoreError::Corrupt {
                    id,
                    reason: format!(
                        "its delta chain is cyclic or longer than {} links (parent {parent})",
                        reg_store::MAX_CHAIN
                    ),
                }));
            }
            if !store.contains(parent) {
                match self.store.head(&layout::blob_key(parent)).await {
                    Ok(meta) => progress.grow(meta.size),
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(damaged(StoreError::MissingParent { id, parent }));
                    }
                    Err(e) => return Err(self.err()(e)),
                }
                let mut chain = children;
                chain.push(id);
                parents_len = Box::pin(self.download_blob(store, parent, label, progress, chain, added)).await?;
            }
        }
        let len = writer.len() + parents_len;
        let outcome = writer.commit().map_err(|e| match e {
            StoreError::Io { .. } => RemoteError::Local(e),
            other => damaged(other),
        })?;
        if outcome.written {
            if let Ok(mut a) = added.lock() {
                a.push(id);
            }
        }
        Ok(len)
    }
}
