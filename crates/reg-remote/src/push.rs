//! `push`: send local versions to a remote.
//!
//! Order of writes, so that a push cut short at any point is invisible
//! and resumes by itself: every missing blob first (the delta parents a
//! blob is encoded against before it), then the manifests, then each
//! version entry (conditional create). A blob already on the remote (same
//! key, found by one LIST of `blobs/`; any stored form decodes to the same
//! bytes) is not sent again; a version whose file (name and whole-file
//! blake3) is already on the remote is not sent again either.

use crate::config::Creates;
use crate::error::RemoteError;
use crate::layout::{self, TagEntry, VersionEntry};
use crate::remote::Remote;
use crate::report::{SyncReport, SyncedVersion};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use reg_format::ids::ModelName;
use reg_format::index::VersionRecord;
use reg_registry::{Manifest, Progress, Registry, RegistryError, VersionRef};
use reg_store::{BlobId, BlobStore, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::time::Duration;

/// Which local versions [`Remote::push`] sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every version of every name.
    All,
    /// Every version of one name.
    Name(String),
    /// The one version a ref names.
    Version(VersionRef),
    /// Versions of a name by local number.
    Numbers {
        /// Model name.
        name: String,
        /// Local version numbers.
        numbers: Vec<u32>,
    },
}

/// A version to send.
pub(crate) struct Outgoing {
    pub(crate) name: ModelName,
    pub(crate) record: VersionRecord,
    pub(crate) json: Vec<u8>,
    /// blake3 of `json`: the remote manifest key.
    pub(crate) id: BlobId,
    pub(crate) manifest: Manifest,
}

impl Remote {
    /// Send local versions (see [`Selection`]) with everything they need
    /// that the remote lacks. Versions keep their order; each takes the
    /// next free number of its name on the remote.
    pub fn push(&self, reg: &Registry, what: &Selection, progress: &dyn Progress) -> Result<SyncReport, RemoteError> {
        let result = self.block_on(self.push_async(reg, what, progress));
        progress.finish();
        result
    }

    pub(crate) fn select(
        &self,
        reg: &Registry,
        what: &Selection,
    ) -> Result<Vec<(ModelName, VersionRecord)>, RemoteError> {
        Ok(match what {
            Selection::All => reg.all_versions()?,
            Selection::Name(n) => {
                let n = ModelName::new(n).map_err(RegistryError::from)?;
                reg.versions(&n)?.into_iter().map(|v| (n.clone(), v)).collect()
            }
            Selection::Version(r) => {
                let v = reg.resolve(r)?;
                vec![(v.manifest.name.clone(), v.record)]
            }
            Selection::Numbers { name, numbers } => {
                let name = ModelName::new(name).map_err(RegistryError::from)?;
                reg.versions(&name)?
                    .into_iter()
                    .filter(|v| numbers.contains(&v.number.get()))
                    .map(|v| (name.clone(), v))
                    .collect()
            }
        })
    }

    async fn push_async(
        &self,
        reg: &Registry,
        what: &Selection,
        progress: &dyn Progress,
    ) -> Result<SyncReport, RemoteError> {
        let chosen = self.select(reg, what)?;
        let mut report = SyncReport::new(&self.name, "push");
        if chosen.is_empty() {
            return Ok(report);
        }
        self.check_marker(true).await?;
        let (creates, note) = self.creates_for(reg).await?;
        report.notes.extend(note);

        // What the remote has of these names.
        let mut remote: BTreeMap<ModelName, Vec<VersionEntry>> = BTreeMap::new();
        for (name, _) in &chosen {
            if !remote.contains_key(name) {
                let v = self.versions_async(name).await?;
                remote.insert(name.clone(), v);
            }
        }
        let mut outgoing = Vec::new();
        for (name, record) in chosen {
            let there = remote
                .get(&name)
                .and_then(|vs| vs.iter().find(|e| e.blake3 == record.blake3 && e.size == record.size));
            if let Some(e) = there {
                report.versions.push(SyncedVersion {
                    name: name.clone(),
                    local: record.number.get(),
                    remote: e.number,
                    local_id: record.id,
                    remote_id: e.id,
                    transferred: false,
                });
                continue;
            }
            let json = reg.manifest_json(&name, &record)?;
            let manifest = Manifest::from_json(&json).map_err(|e| RegistryError::Damaged {
                version: reg_registry::VersionLabel::new(&name, record.number).to_string(),
                source: StoreError::Corrupt {
                    id: BlobId::of(&json),
                    reason: format!("manifest does not parse: {e}"),
                },
            })?;
            outgoing.push(Outgoing {
                id: BlobId::of(&json),
                name,
                record,
                json,
                manifest,
            });
        }

        // Blobs, with the delta parents they are encoded against: one
        // LIST, then only what is missing, parents before their deltas.
        let mut needed: BTreeMap<BlobId, (String, usize)> = BTreeMap::new();
        for o in &outgoing {
            let label = reg_registry::VersionLabel::new(&o.name, o.record.number).to_string();
            for id in o.manifest.blobs() {
                let chain = reg.store().chain(id).map_err(|source| RemoteError::Damaged {
                    version: label.clone(),
                    source,
                })?;
                let depth = chain.len();
                needed.entry(id).or_insert_with(|| (label.clone(), depth));
                for (i, parent) in chain.into_iter().enumerate() {
                    needed.entry(parent).or_insert_with(|| (label.clone(), depth - 1 - i));
                }
            }
        }
        let mut to_send: Vec<(BlobId, u64, String, usize)> = Vec::new();
        if !needed.is_empty() {
            let listed = self.list_all(&layout::blobs_prefix()).await?;
            // Any stored form of a blob will do: every form decodes to the
            // same bytes, and its parents were sent before it.
            let present: HashMap<String, u64> = listed
                .into_iter()
                .filter_map(|o| Some((o.location.filename()?.to_string(), o.size)))
                .collect();
            for (id, (label, depth)) in needed {
                let local_len = reg.store().stored_len(id).map_err(|source| RemoteError::Damaged {
                    version: label.clone(),
                    source,
                })?;
                if present.contains_key(&id.to_hex()) {
                    report.blobs_skipped += 1;
                    report.blob_bytes_skipped += local_len;
                } else {
                    to_send.push((id, local_len, label, depth));
                }
            }
        }
        progress.phase("uploading", to_send.iter().map(|(_, len, _, _)| len).sum());
        let store = reg.store();
        to_send.sort_by_key(|(_, _, _, depth)| *depth);
        let deepest = to_send.last().map(|t| t.3).unwrap_or(0);
        for depth in 0..=deepest {
            let wave: Vec<_> = to_send.iter().filter(|t| t.3 == depth).collect();
            let sent: Vec<(u64, bool)> = futures::stream::iter(wave)
                .map(|(id, len, label, _)| async move {
                    let multipart = self.upload_blob(store, *id, *len, label, progress).await?;
                    Ok::<_, RemoteError>((*len, multipart))
                })
                .buffer_unordered(self.tuning.concurrency.max(1))
                .try_collect()
                .await?;
            for (len, multipart) in sent {
                report.blobs_transferred += 1;
                report.blob_bytes_transferred += len;
                report.multipart_blobs += usize::from(multipart);
                report.object(len);
            }
        }

        // Manifests (content-addressed, immutable), then the entries.
        let manifest_sizes: Vec<u64> = futures::stream::iter(&outgoing)
            .map(|o| async move { self.put_small(&layout::manifest_key(o.id), o.json.clone()).await })
            .buffer_unordered(self.tuning.concurrency.max(1))
            .try_collect()
            .await?;
        for n in manifest_sizes {
            report.object(n);
        }
        // Entries, name by name, in local order: each takes the next free
        // number of its name (see numbering.rs).
        let mut created: Vec<(usize, VersionEntry)> = Vec::new();
        for (name, vs) in &remote {
            let batch: Vec<(usize, &Outgoing)> = outgoing.iter().enumerate().filter(|(_, o)| &o.name == name).collect();
            if batch.is_empty() {
                continue;
            }
            let start = vs.last().map(|e| e.number.saturating_add(1)).unwrap_or(1);
            let versions: Vec<&Outgoing> = batch.iter().map(|(_, o)| *o).collect();
            let claimed = self.claim(creates, &versions, start).await?;
            for ((i, _), (entry, bytes)) in batch.iter().zip(claimed) {
                report.object(bytes);
                created.push((*i, entry));
            }
        }
        self.confirm_entries(creates, &outgoing, &mut created, &mut report)
            .await?;
        for (i, entry) in &created {
            let o = &outgoing[*i];
            report.versions.push(SyncedVersion {
                name: o.name.clone(),
                local: o.record.number.get(),
                remote: entry.number,
                local_id: o.record.id,
                remote_id: entry.id,
                transferred: true,
            });
        }
        report
            .versions
            .sort_by(|a, b| (&a.name, a.local).cmp(&(&b.name, b.local)));
        self.push_tags(reg, &mut report).await?;
        Ok(report)
    }

    /// Upload one blob file as stored; large ones in parallel parts.
    /// Returns true when it went in parts.
    async fn upload_blob(
        &self,
        store: &BlobStore,
        id: BlobId,
        len: u64,
        label: &str,
        progress: &dyn Progress,
    ) -> Result<bool, RemoteError> {
        // Never spread a damaged local blob.
        store.verify(id).map_err(|source| RemoteError::Damaged {
            version: label.to_string(),
            source,
        })?;
        let key = layout::blob_key(id);
        if len < self.tuning.multipart_threshold {
            let bytes = store.read_stored(id)?;
            self.store
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(self.err())?;
            progress.advance(len);
            return Ok(false);
        }
        let (mut file, _) = store.open_stored(id)?;
        let part = self.tuning.part_size.max(1);
        let upload = self.store.put_multipart(&key).await.map_err(self.err())?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
        let sent: Result<(), RemoteError> = async {
            let mut buf = vec![0u8; part];
            loop {
                let n = read_full(&mut file, &mut buf).map_err(|source| {
                    RemoteError::Local(StoreError::Io {
                        action: "reading",
                        path: store.path_of(id),
                        source,
                    })
                })?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(self.tuning.part_concurrency.max(1))
                    .await
                    .map_err(self.err())?;
                writer.write(&buf[..n]);
                progress.advance(n as u64);
            }
        }
        .await;
        match sent {
            Ok(()) => {
                writer.finish().await.map_err(self.err())?;
                Ok(true)
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Read back the entries this push created. A server whose conditional
    /// create is not atomic can let a concurrent writer replace an entry;
    /// such a version is created again at the next free number.
    async fn confirm_entries(
        &self,
        creates: Creates,
        outgoing: &[Outgoing],
        created: &mut [(usize, VersionEntry)],
        report: &mut SyncReport,
    ) -> Result<(), RemoteError> {
        if created.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _round in 0..5 {
            let mut lost = Vec::new();
            for (k, (_, entry)) in created.iter().enumerate() {
                let key = layout::version_key(&entry.name, entry.number);
                let ours = match self.get_small(&key).await? {
                    Some(bytes) => layout::parse_version_entry(&key, &bytes).is_ok_and(|e| e.id == entry.id),
                    None => false,
                };
                if !ours {
                    lost.push(k);
                }
            }
            if lost.is_empty() {
                return Ok(());
            }
            for k in lost {
                let (i, old) = &created[k];
                let o = &outgoing[*i];
                let start = self
                    .versions_async(&o.name)
                    .await?
                    .last()
                    .map(|e| e.number + 1)
                    .unwrap_or(1);
                let mut claimed = self.claim(creates, &[o], start).await?;
                let Some((entry, bytes)) = claimed.pop() else {
                    return Err(RemoteError::Numbering {
                        remote: self.name.clone(),
                        name: o.name.to_string(),
                        attempts: 1,
                    });
                };
                report.object(bytes);
                report.notes.push(format!(
                    "{}: a concurrent push replaced its entry v{}; created again as v{}",
                    reg_format::VersionLabel::new(&o.name, o.record.number),
                    old.number,
                    entry.number
                ));
                created[k].1 = entry;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Point remote tags at the remote numbers of the pushed versions, for
    /// every local tag that names one of them.
    async fn push_tags(&self, reg: &Registry, report: &mut SyncReport) -> Result<(), RemoteError> {
        let names: BTreeSet<ModelName> = report.versions.iter().map(|v| v.name.clone()).collect();
        for name in names {
            let local_tags = reg.tags(&name)?;
            if local_tags.is_empty() {
                continue;
            }
            let remote_tags = self.tags_async(&name).await?;
            for (tag, local_number) in local_tags {
                let Some(v) = report
                    .versions
                    .iter()
                    .find(|v| v.name == name && local_number == v.local)
                else {
                    continue;
                };
                let entry = TagEntry {
                    name: name.clone(),
                    tag: tag.to_string(),
                    number: v.remote,
                    id: v.remote_id,
                };
                let remote_number = v.remote;
                if remote_tags.contains(&entry) {
                    continue;
                }
                let body = serde_json::to_vec(&entry).unwrap_or_default();
                let n = self.put_small(&layout::tag_key(&name, &tag), body).await?;
                report.object(n);
                report.tags.push(format!("{name}@{tag} -> v{remote_number}"));
            }
        }
        Ok(())
    }
}

/// Read until `buf` is full or the file ends.
fn read_full(file: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
