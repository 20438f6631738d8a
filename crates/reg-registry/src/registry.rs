//! An open registry: its settings, its blob store and its locks. Holding
//! a [`Registry`] holds no lock: the index is opened for one short
//! transaction at a time ([`Registry::with_index`]; see [`crate::lock`]).
//!
//! Layout of a registry directory: [`reg_format::layout`] (docs/format.md).

use crate::config::Config;
use crate::error::{OpenError, RegistryError};
use crate::lock::{Locks, ReadGuard, WaitNotice, WaitPolicy, WriteGuard};
use reg_format::ids::{ModelName, VersionNumber};
use reg_format::index::{Index, VersionRecord};
use reg_format::layout::RegistryLayout;
use reg_format::refs::TagName;
use reg_store::BlobStore;
use std::cell::Cell;
use std::fs::{self, File};
use std::path::Path;

/// First line of the `FORMAT` file. Format 2 added delta blobs (blob
/// codec 3) and the index's `deltas` tree.
pub const FORMAT_MARKER: &str = "reg registry format 2";
/// The marker of format 1 registries, which are upgraded in place when
/// opened (nothing in them changes; a reg that knows only format 1 then
/// refuses the registry rather than misread delta blobs).
const FORMAT_1_MARKER: &str = "reg registry format 1";

/// An open registry. Cheap to hold: it keeps no lock and no database open
/// (see [`crate::lock`]), so any number of processes, and threads of one
/// process, can hold one at once.
pub struct Registry {
    pub(crate) config: Config,
    pub(crate) layout: RegistryLayout,
    pub(crate) store: BlobStore,
    pub(crate) locks: Locks,
    /// Skeleton blobs read lately (packs shared by many files).
    pub(crate) skeletons: crate::skeleton_cache::SkeletonCache,
    /// How the work a push leaves runs (crate::background).
    pub(crate) background: crate::runner::BackgroundRunner,
}

thread_local! {
    /// True while this thread is inside [`Registry::with_index`]: a nested
    /// session would wait for its own lock forever.
    static IN_SESSION: Cell<bool> = const { Cell::new(false) };
}

/// Resets [`IN_SESSION`] however the session ends.
struct SessionMark;

impl Drop for SessionMark {
    fn drop(&mut self) {
        IN_SESSION.with(|s| s.set(false));
    }
}

impl Registry {
    /// Open the registry `config` names, creating it if it does not exist.
    pub fn open(config: Config) -> Result<Registry, RegistryError> {
        let layout = RegistryLayout::new(config.root.clone());
        check_format(&layout)?;
        let disk = reg_store::LocalDisk::open(layout.blobs_dir())?;
        Registry::on(config, layout, std::sync::Arc::new(disk))
    }

    /// [`Registry::open`] with the blob files on `backend` rather than in
    /// `blobs/` (crash tests put them on a `reg_store::backend::CrashDisk`);
    /// the index, the lock files and retention's weights-only exports
    /// (real files, in `blobs/tmp/`) stay in the registry directory.
    pub fn open_with_backend(
        config: Config,
        backend: std::sync::Arc<dyn reg_store::Backend>,
    ) -> Result<Registry, RegistryError> {
        let layout = RegistryLayout::new(config.root.clone());
        check_format(&layout)?;
        fs::create_dir_all(layout.tmp_dir()).map_err(RegistryError::io("creating", layout.tmp_dir()))?;
        Registry::on(config, layout, backend)
    }

    fn on(
        config: Config,
        layout: RegistryLayout,
        backend: std::sync::Arc<dyn reg_store::Backend>,
    ) -> Result<Registry, RegistryError> {
        let store = BlobStore::with_backend(backend, config.compression_level)
            .with_policy(config.codecs)
            .with_durability(config.durability);
        let locks = Locks::new(layout.clone());
        Ok(Registry {
            config,
            layout,
            store,
            locks,
            skeletons: Default::default(),
            background: Default::default(),
        })
    }

    /// Open the registry `config` names only if it exists (its `FORMAT`
    /// file is there): for background work, which must never create a
    /// registry that was removed meanwhile.
    pub fn open_existing(config: Config) -> Result<Registry, RegistryError> {
        let layout = RegistryLayout::new(config.root.clone());
        if !layout.format_file().is_file() {
            return Err(OpenError::NoFormatFile {
                root: layout.root().to_path_buf(),
            }
            .into());
        }
        Registry::open(config)
    }

    /// Say so through `notice` (once per wait) when this registry waits
    /// for another process, and give up after `policy.timeout`.
    pub fn with_waits(mut self, policy: WaitPolicy, notice: Box<dyn Fn(&WaitNotice) + Send + Sync>) -> Registry {
        self.locks.set_policy(policy);
        self.locks.set_notice(notice);
        self
    }

    /// The settings this registry was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where its files are.
    pub fn layout(&self) -> &RegistryLayout {
        &self.layout
    }

    /// The blob store.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// The verified bytes of a skeleton blob (kept a while: the small
    /// files of a directory share pack blobs).
    pub(crate) fn skeleton(&self, id: reg_store::BlobId) -> Result<std::sync::Arc<Vec<u8>>, reg_store::StoreError> {
        self.skeletons.get(&self.store, id)
    }

    /// Run `f` with the index open: take the index lock, open sled, run,
    /// flush, close, let go (see [`crate::lock`]). `doing` says what for,
    /// for whoever waits meanwhile (`reg push of mlp to commit`). Keep `f`
    /// short: every other command waits for it.
    pub fn with_index<T>(
        &self,
        doing: &str,
        f: impl FnOnce(&Index) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        if IN_SESSION.with(|s| s.replace(true)) {
            return Err(RegistryError::Internal(format!(
                "nested index session ({doing}) would wait for itself"
            )));
        }
        let _mark = SessionMark;
        let _lock = self.locks.index(doing)?;
        let index = Index::open(&self.layout.index_dir())?;
        // A missing (just created) or empty index is a new registry's only
        // when the store holds no version (crate::manifest_blobs).
        let lost = match index.is_empty() {
            Ok(true) => self.check_index_not_lost(),
            Ok(false) => Ok(()),
            Err(e) => Err(e.into()),
        };
        let result = lost.and_then(|()| f(&index)).and_then(|out| {
            index.flush()?;
            Ok(out)
        });
        drop(index);
        // sled lets go of its own lock on `index/db` from its background
        // threads, a moment after the database is dropped: hold the index
        // lock until it has, so the next process finds sled free.
        crate::lock::wait_until_unlocked(&self.layout.index_dir().join("db"));
        result
    }

    /// Become a writer of blobs and versions (`gc.lock` shared): no gc,
    /// rm or prune runs until the guard is dropped.
    pub fn writer(&self) -> Result<WriteGuard, RegistryError> {
        self.locks.writer()
    }

    /// Become the one process that may delete (`gc.lock` exclusive):
    /// waits for running writers.
    pub fn maintenance(&self, doing: &str) -> Result<WriteGuard, RegistryError> {
        self.locks.maintenance(doing)
    }

    /// Become a reader of blobs (`readers.lock` shared): gc does not
    /// delete what a reader may still open.
    pub fn reader(&self) -> Result<ReadGuard, RegistryError> {
        self.locks.reader()
    }

    /// Model names with their version counts.
    pub fn names(&self) -> Result<Vec<(ModelName, usize)>, RegistryError> {
        self.with_index("reg ls", |idx| Ok(idx.names()?))
    }

    /// Versions of a name, oldest first; an unknown name is an error that
    /// suggests what exists.
    pub fn versions(&self, name: &ModelName) -> Result<Vec<VersionRecord>, RegistryError> {
        self.with_index("reg log", |idx| versions_of(idx, name))
    }

    /// Every version of every name, by name then number.
    pub fn all_versions(&self) -> Result<Vec<(ModelName, VersionRecord)>, RegistryError> {
        self.with_index("listing versions", |idx| Ok(idx.all_versions()?))
    }

    /// Tags of a name: `(tag, version number)`, sorted by tag.
    pub fn tags(&self, name: &ModelName) -> Result<Vec<(TagName, VersionNumber)>, RegistryError> {
        self.with_index("reading tags", |idx| Ok(idx.tags(name)?))
    }
}

/// `name` as a model name; a string that cannot be one is reported as
/// [`no_such_name`] would (it names no model), with what exists.
pub(crate) fn model_name(idx: &Index, name: &str) -> Result<ModelName, RegistryError> {
    match ModelName::new(name) {
        Ok(n) => Ok(n),
        Err(_) => Err(no_such_name(idx, name)?),
    }
}

/// Versions of a name in an open index, oldest first; an unknown name is
/// an error that suggests what exists.
pub(crate) fn versions_of(idx: &Index, name: &ModelName) -> Result<Vec<VersionRecord>, RegistryError> {
    let versions = idx.versions(name)?;
    if versions.is_empty() {
        return Err(no_such_name(idx, name)?);
    }
    Ok(versions)
}

/// The error for an unknown name, with the nearest known names.
pub(crate) fn no_such_name(idx: &Index, name: &str) -> Result<RegistryError, RegistryError> {
    let names: Vec<ModelName> = idx.names()?.into_iter().map(|(n, _)| n).collect();
    let hint = if names.is_empty() {
        " (the registry is empty)".to_string()
    } else {
        let mut ranked: Vec<(usize, &ModelName)> = names.iter().map(|n| (edit_distance(name, n), n)).collect();
        ranked.sort();
        let near: Vec<&str> = ranked.iter().take(3).map(|(_, n)| n.as_str()).collect();
        format!("; known names: {}", near.join(", "))
    };
    Ok(RegistryError::NoSuchName {
        name: name.to_string(),
        hint,
    })
}

/// Create the directory if needed and check (or write) its format marker.
fn check_format(layout: &RegistryLayout) -> Result<(), RegistryError> {
    let root = layout.root();
    fs::create_dir_all(root).map_err(RegistryError::io("creating registry", root))?;
    let marker = layout.format_file();
    match fs::read_to_string(&marker) {
        Ok(text) if text.lines().next() == Some(FORMAT_MARKER) => Ok(()),
        Ok(text) if text.lines().next() == Some(FORMAT_1_MARKER) => write_marker(&marker),
        Ok(_) => Err(OpenError::UnknownFormat {
            root: root.to_path_buf(),
        }
        .into()),
        Err(_) => {
            // A registry's own config (written by `reg remote add` before
            // anything else), and what another reg creating the same
            // registry at this moment may have left already (its lock
            // files, its marker), do not make the folder someone else's.
            let foreign = fs::read_dir(root).is_ok_and(|d| {
                d.flatten().any(|e| {
                    let name = e.file_name();
                    !reg_format::layout::is_own_config_file(&name) && !is_own_file(&name.to_string_lossy())
                })
            });
            if foreign && !layout.index_dir().exists() && !layout.blobs_dir().exists() {
                return Err(OpenError::NotEmpty {
                    root: root.to_path_buf(),
                }
                .into());
            }
            write_marker(&marker)
        }
    }
}

/// True for the names reg itself puts in a registry folder before the
/// `FORMAT` file is there (see [`reg_format::layout`]): lock files, their owner
/// notes, the readers' generation, the marker (written by the other reg
/// since this one looked for it) and its temp files.
fn is_own_file(name: &str) -> bool {
    name == "lock"
        || name.starts_with("FORMAT")
        || name.ends_with(".lock")
        || name.ends_with(".owner")
        || name.starts_with("readers.gen")
}

/// Write the `FORMAT` file atomically (temp file, fsync, rename). Two
/// processes creating one registry at once write the same bytes.
fn write_marker(marker: &Path) -> Result<(), RegistryError> {
    let tmp = marker.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, format!("{FORMAT_MARKER}\n")).map_err(RegistryError::io("writing", &tmp))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(RegistryError::io("syncing", &tmp))?;
    fs::rename(&tmp, marker).map_err(RegistryError::io("writing", marker))
}

/// Levenshtein distance, for "did you mean".
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
