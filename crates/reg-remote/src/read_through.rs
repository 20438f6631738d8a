//! Reading part of a remote version without pulling it whole
//! (`reg pull REF --remote R --tensors GLOB...`): the version's manifest
//! comes from the remote ([`Remote::read_version`]), and the local blob
//! store is opened on a [`ReadThrough`] backend, which fetches a blob the
//! local disk does not have the first time it is opened (and its delta
//! parents, as a pull would), verified, into the local store. An export
//! of the chosen tensors then reads exactly the blobs it needs: the
//! skeleton, and those tensors' storages; nothing else moves. What was
//! fetched stays in the local store, unreferenced until a pull of the
//! whole version names it (`reg gc` frees it before that); the caller
//! holds the registry's writer guard while it reads, so no gc takes a
//! blob in between.

use crate::{Remote, RemoteError};
use reg_format::index::VersionRecord;
use reg_format::manifest::Manifest;
use reg_registry::{Registry, Resolved, VersionId, VersionRef};
use reg_store::{Backend, BlobFile, BlobId, BlobStore, TempFile};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A local backend that fetches what it lacks from a remote on first read.
pub struct ReadThrough {
    local: Arc<dyn Backend>,
    remote: Arc<Remote>,
    /// The version being read, for messages (`name@vN` on the remote).
    label: String,
    fetched: AtomicU64,
    fetched_bytes: AtomicU64,
}

impl std::fmt::Debug for ReadThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadThrough")
            .field("local", &self.local)
            .field("remote", &self.remote.name)
            .finish()
    }
}

impl ReadThrough {
    /// Read through `local` to `remote`, for version `label` of it.
    pub fn new(local: Arc<dyn Backend>, remote: Arc<Remote>, label: String) -> ReadThrough {
        ReadThrough {
            local,
            remote,
            label,
            fetched: AtomicU64::new(0),
            fetched_bytes: AtomicU64::new(0),
        }
    }

    /// Blobs fetched so far, and their stored bytes (delta parents
    /// included).
    pub fn fetched(&self) -> (u64, u64) {
        (
            self.fetched.load(Ordering::Relaxed),
            self.fetched_bytes.load(Ordering::Relaxed),
        )
    }

    fn fetch(&self, id: BlobId) -> io::Result<()> {
        // The level is never used: a fetched blob is stored as the remote
        // holds it.
        let store = BlobStore::with_backend(self.local.clone(), 3);
        let added = Mutex::new(Vec::new());
        let got = self.remote.block_on(self.remote.download_blob(
            &store,
            id,
            &self.label,
            &reg_registry::Silent,
            Vec::new(),
            &added,
        ));
        match got {
            Ok(len) => {
                let n = added.lock().map(|a| a.len() as u64).unwrap_or(1);
                self.fetched.fetch_add(n.max(1), Ordering::Relaxed);
                self.fetched_bytes.fetch_add(len, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }
}

impl Backend for ReadThrough {
    fn open(&self, id: BlobId) -> io::Result<Box<dyn BlobFile>> {
        match self.local.open(id) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.fetch(id)?;
                self.local.open(id)
            }
            other => other,
        }
    }

    fn stored_len(&self, id: BlobId) -> io::Result<Option<u64>> {
        match self.local.stored_len(id)? {
            Some(len) => Ok(Some(len)),
            None => {
                self.fetch(id)?;
                self.local.stored_len(id)
            }
        }
    }

    fn create_temp(&self, hint: &str) -> io::Result<Box<dyn TempFile>> {
        self.local.create_temp(hint)
    }

    fn install(&self, temp: Box<dyn TempFile>, id: BlobId) -> io::Result<()> {
        self.local.install(temp, id)
    }

    fn remove(&self, id: BlobId) -> io::Result<bool> {
        self.local.remove(id)
    }

    fn sync(&self, ids: &[BlobId]) -> io::Result<()> {
        self.local.sync(ids)
    }

    fn list(&self) -> io::Result<Vec<BlobId>> {
        self.local.list()
    }

    fn clean_temps(&self) -> io::Result<usize> {
        self.local.clean_temps()
    }

    fn path_of(&self, id: BlobId) -> PathBuf {
        self.local.path_of(id)
    }

    fn temp_dir(&self) -> PathBuf {
        self.local.temp_dir()
    }

    fn location(&self) -> PathBuf {
        self.local.location()
    }
}

impl Remote {
    /// Version `r` of the remote as a version to read from (its manifest,
    /// checked against its id), without pulling it: read it through a
    /// registry opened on a [`ReadThrough`] backend. Returns it and its
    /// label on the remote.
    pub fn read_version(&self, r: &VersionRef) -> Result<(Resolved, String), RemoteError> {
        self.block_on(async {
            self.check_marker(false).await?;
            let (entry, _) = self.resolve_among(r).await?;
            let (_, manifest): (Vec<u8>, Manifest) = self.fetch_manifest_async(&entry).await?;
            let record = VersionRecord::from_manifest(VersionId(entry.manifest_id().0), &manifest);
            let label = self.label(&entry.name, entry.number);
            Ok((Resolved::detached(record, manifest), label))
        })
    }

    /// Open `reg`'s registry again with its blob store reading through to
    /// this remote for version `label` (see the module docs). The caller
    /// holds `reg`'s writer guard while it reads.
    pub fn read_through(
        self: &Arc<Self>,
        reg: &Registry,
        label: String,
    ) -> Result<(Registry, Arc<ReadThrough>), RemoteError> {
        let backend = Arc::new(ReadThrough::new(reg.store().backend().clone(), self.clone(), label));
        let reading = Registry::open_with_backend(reg.config().clone(), backend.clone())?;
        Ok((reading, backend))
    }
}
