//! An open registry: blob store + index + the process lock.
//!
//! Layout of a registry directory (see docs/format.md):
//! `FORMAT` (a one-line marker), `lock`, `blobs/` (the blob store),
//! `index/` (sled).

use crate::config::Config;
use crate::error::RegistryError;
use crate::index::{Index, VersionRecord};
use reg_store::BlobStore;
use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

/// First line of the `FORMAT` file. Format 2 added delta blobs (blob
/// codec 3) and the index's `deltas` tree.
pub const FORMAT_MARKER: &str = "reg registry format 2";
/// The marker of format 1 registries, which are upgraded in place when
/// opened (nothing in them changes; a reg that knows only format 1 then
/// refuses the registry rather than misread delta blobs).
const FORMAT_1_MARKER: &str = "reg registry format 1";

/// An open registry. Holding one holds the registry's exclusive lock: sled
/// allows one process at a time, so every `reg` process takes turns.
pub struct Registry {
    pub(crate) config: Config,
    pub(crate) store: BlobStore,
    pub(crate) index: Index,
    _lock: File,
}

/// How long to wait for the lock, from `REG_LOCK_TIMEOUT` (seconds).
fn lock_timeout() -> Duration {
    let secs = std::env::var("REG_LOCK_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

fn acquire_lock(path: &Path, on_wait: &dyn Fn()) -> Result<File, RegistryError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(RegistryError::io("opening lock", path))?;
    let start = Instant::now();
    let timeout = lock_timeout();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) => {
                if start.elapsed() >= timeout {
                    return Err(RegistryError::Locked {
                        path: path.to_path_buf(),
                        waited_secs: start.elapsed().as_secs(),
                    });
                }
                if !told && start.elapsed() > Duration::from_millis(300) {
                    on_wait();
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(fs::TryLockError::Error(e)) => return Err(RegistryError::io("locking", path)(e)),
        }
    }
}

impl Registry {
    /// Open the registry `config` names, creating it if it does not exist.
    /// `on_wait` is called once if another process holds the lock.
    pub fn open(config: Config, on_wait: &dyn Fn()) -> Result<Registry, RegistryError> {
        let (lock, store) = Registry::lock_and_store(&config, on_wait)?;
        Registry::assemble(config, lock, store)
    }

    /// Open the registry `config` names with `lock`, its lock file, which
    /// this process holds already: handed over by a process that held the
    /// lock and passed its open file on (see [`Registry::into_lock`]), so
    /// that no other process can take the registry in between. Fails when
    /// `lock` is not this registry's lock file or is not locked by it.
    pub fn open_locked(config: Config, lock: File) -> Result<Registry, RegistryError> {
        let path = config.root.join("lock");
        if !same_file(&lock, &path) {
            return Err(RegistryError::Invalid(format!(
                "the lock handed over is not {}",
                path.display()
            )));
        }
        // A lock already held through this open file is taken again at
        // once; one held by another process would make this fail.
        lock.try_lock().map_err(|_| RegistryError::Locked {
            path: path.clone(),
            waited_secs: 0,
        })?;
        let store = open_store(&config)?;
        Registry::assemble(config, lock, store)
    }

    /// Close the index and blob store and return the (still locked) lock
    /// file, to hand the registry over to another process.
    pub fn into_lock(self) -> Result<File, RegistryError> {
        self.index.flush()?;
        Ok(self._lock)
    }

    /// Create the directory if needed, check its format marker, take the
    /// lock and open the blob store.
    pub(crate) fn lock_and_store(config: &Config, on_wait: &dyn Fn()) -> Result<(File, BlobStore), RegistryError> {
        let root = config.root.clone();
        fs::create_dir_all(&root).map_err(RegistryError::io("creating registry", &root))?;
        let marker = root.join("FORMAT");
        match fs::read_to_string(&marker) {
            Ok(text) if text.lines().next() == Some(FORMAT_MARKER) => {}
            Ok(text) if text.lines().next() == Some(FORMAT_1_MARKER) => write_marker(&marker)?,
            Ok(_) => {
                return Err(RegistryError::Invalid(format!(
                    "{} is not a reg registry of a format this reg reads",
                    root.display()
                )))
            }
            Err(_) => {
                let non_empty = fs::read_dir(&root)
                    .is_ok_and(|d| d.flatten().any(|e| !crate::remotes::is_own_config_file(&e.file_name())));
                if non_empty && !root.join("index").exists() && !root.join("blobs").exists() {
                    return Err(RegistryError::Invalid(format!(
                        "{} exists, is not empty and is not a reg registry",
                        root.display()
                    )));
                }
                write_marker(&marker)?;
            }
        }
        let lock = acquire_lock(&root.join("lock"), on_wait)?;
        Ok((lock, open_store(config)?))
    }

    pub(crate) fn assemble(config: Config, lock: File, store: BlobStore) -> Result<Registry, RegistryError> {
        let index = open_index_patiently(&config.root.join("index"))?;
        Ok(Registry {
            config,
            store,
            index,
            _lock: lock,
        })
    }

    /// The settings this registry was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The blob store.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Model names with their version counts.
    pub fn names(&self) -> Result<Vec<(crate::ids::ModelName, u32)>, RegistryError> {
        Ok(self.index.names()?)
    }

    /// Versions of a name, oldest first; an unknown name is an error that
    /// suggests what exists.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionRecord>, RegistryError> {
        let versions = self.index.versions(name)?;
        if versions.is_empty() {
            return Err(self.no_such_name(name)?);
        }
        Ok(versions)
    }

    pub(crate) fn no_such_name(&self, name: &str) -> Result<RegistryError, RegistryError> {
        let names: Vec<crate::ids::ModelName> = self.index.names()?.into_iter().map(|(n, _)| n).collect();
        let hint = if names.is_empty() {
            " (the registry is empty)".to_string()
        } else {
            let mut ranked: Vec<(usize, &crate::ids::ModelName)> = names.iter().map(|n| (edit_distance(name, n), n)).collect();
            ranked.sort();
            let near: Vec<&str> = ranked.iter().take(3).map(|(_, n)| n.as_str()).collect();
            format!("; known names: {}", near.join(", "))
        };
        Ok(RegistryError::NoSuchName {
            name: name.to_string(),
            hint,
        })
    }
}

/// The blob store of the registry `config` names, with its settings.
fn open_store(config: &Config) -> Result<BlobStore, RegistryError> {
    Ok(BlobStore::open(config.root.join("blobs"), config.compression_level)?
        .with_policy(config.codecs)
        .with_durability(config.durability))
}

/// True when `file` is the file at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        #[cfg(unix)]
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            a.dev() == b.dev() && a.ino() == b.ino()
        }
        #[cfg(not(unix))]
        (Ok(_), Ok(_)) => true,
        _ => false,
    }
}

/// Open the index, waiting a little for sled's own file lock: with the
/// registry lock held, whoever else holds it is a reg process on its way
/// out (it let go of the registry lock first), or the one that handed the
/// registry over.
fn open_index_patiently(path: &Path) -> Result<Index, RegistryError> {
    let start = Instant::now();
    loop {
        match Index::open(path) {
            Ok(index) => return Ok(index),
            Err(e) if start.elapsed() < Duration::from_secs(10) && is_lock_busy(&e) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_lock_busy(e: &crate::index::IndexError) -> bool {
    matches!(e, crate::index::IndexError::Sled { source: sled::Error::Io(io), .. }
        if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock"))
}

/// Write the `FORMAT` file atomically (temp file, fsync, rename).
fn write_marker(marker: &Path) -> Result<(), RegistryError> {
    let tmp = marker.with_extension("tmp");
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
