//! `pull`: bring a remote version into the local registry.
//!
//! The manifest is downloaded and checked against its id, every blob the
//! local store lacks is downloaded into `tmp/` and hash-checked (decoded,
//! blake3 of the raw bytes against the id) before it is renamed into the
//! store (a delta blob's parent is downloaded and stored before it, so
//! that it can be checked), and only then is the version committed to the local index, with
//! the next free local number (see `reg_meta::import`). A damaged or
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
use reg_meta::{Piece, Progress, Registry, VersionRef};
use reg_store::{BlobId, BlobStore, StoreError};
use std::io::Write;

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
        let entry = self.resolve_async(r).await?;
        let label = self.label(&entry.name, entry.number);
        let mut report = SyncReport::new(&self.name, "pull");
        if let Some(local) = reg.find_identical(&entry.name, entry.blake3, entry.size)? {
            report.versions.push(SyncedVersion {
                name: entry.name.clone(),
                local: local.number,
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
        // Raw lengths as the progress total (stored lengths are not known
        // before the download; compressed blobs finish early).
        let raw_len = |id: BlobId| -> u64 {
            manifest
                .pieces
                .iter()
                .find_map(|p| match p {
                    Piece::Payload { blob, len } if *blob == id => Some(*len),
                    _ => None,
                })
                .unwrap_or(0)
        };
        progress.phase("downloading", missing.iter().map(|id| raw_len(*id)).sum());
        let store = reg.store();
        let received: Vec<u64> = futures::stream::iter(missing)
            .map(|id| self.download_blob(store, id, &label, progress))
            .buffer_unordered(self.tuning.concurrency.max(1))
            .try_collect()
            .await?;
        for len in received {
            report.blobs_transferred += 1;
            report.blob_bytes_transferred += len;
            report.object(len);
        }

        let tags: Vec<String> = self
            .tags_async(&entry.name)
            .await?
            .into_iter()
            .filter(|t| t.number == entry.number)
            .map(|t| t.tag)
            .collect();
        let imported = reg.import_version(&guard, &json, &tags, &label)?;
        for t in &imported.tags_set {
            report.tags.push(format!("{}@{t} -> v{}", entry.name, imported.number));
        }
        for (t, n) in &imported.tags_kept {
            report
                .notes
                .push(format!("tag {t} is not moved: it points at {}@v{n} here", entry.name));
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
    /// needs); it is verified before it is stored. Returns the stored
    /// length of it and of the parents fetched for it.
    async fn download_blob(
        &self,
        store: &BlobStore,
        id: BlobId,
        label: &str,
        progress: &dyn Progress,
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
                    path: store.root().join("tmp"),
                    source,
                })
            })?;
            progress.advance(chunk.len() as u64);
        }
        // A delta is checked against its parent: fetch that first.
        let mut parents_len = 0;
        if let Some(parent) = writer.parent()? {
            if !store.contains(parent) {
                parents_len = Box::pin(self.download_blob(store, parent, label, progress)).await?;
            }
        }
        let len = writer.len() + parents_len;
        writer.commit().map_err(|e| match e {
            StoreError::Io { .. } => RemoteError::Local(e),
            other => damaged(other),
        })?;
        Ok(len)
    }
}
