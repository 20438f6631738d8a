//! Where things are in a registry directory: every file and folder name
//! the registry uses is spelled here once, except those inside `blobs/`,
//! which are `reg_store::LocalDisk`'s (docs/format.md describes them).
//!
//! ```text
//! <root>/
//!   FORMAT          one line: the registry format marker
//!   config.toml     the registry's own settings and remotes (optional)
//!   config.lock     serialises edits of config.toml
//!   index/          the sled index (names, versions, tags, manifests, blob table)
//!   blobs/          the blob store (blobs/<2 hex>/<62 hex>, blobs/tmp/)
//!   lock            the index lock: held while sled is open (short)
//!   lock.owner      who holds `lock` and what for (advisory, for messages)
//!   gc.lock         shared by writers (push, import, deltas), exclusive for gc, rm, prune
//!   gc.lock.owner   who holds `gc.lock` exclusively
//!   deltas.lock     held by the one `reg deltas` re-encoding at a time
//!   readers.0.lock  shared by the readers of generation 0 while they read blobs
//!   readers.1.lock  the same for generation 1; gc drains the old one before deleting
//!   readers.gen     the current readers' generation (a number; gc moves it on)
//!   deltas.failed   why the last background `reg deltas` failed (absent after a success)
//!   staging/ID/     files a writer stages for one version (the DCP writer), with
//!   staging/ID/.lock  held by the stager while the session lives; gc removes the rest
//!   staging/ID/.staged/files/PATH.json  what `reg stage` streamed into staging/ID/PATH
//!   staging/ID/.staged/blobs/<64 hex>   a chunk `reg stage` stored, raw, for the push to adopt
//! ```

use std::path::{Path, PathBuf};

/// Name of the registry's own config file (settings and remotes), inside
/// the registry directory; `reg remote add` may write it before the
/// registry's first use.
pub const OWN_CONFIG_FILE: &str = "config.toml";

/// Lock file that serialises edits of [`OWN_CONFIG_FILE`].
pub const OWN_CONFIG_LOCK: &str = "config.lock";

/// True for the files of the registry's own config ([`OWN_CONFIG_FILE`],
/// [`OWN_CONFIG_LOCK`]).
pub fn is_own_config_file(name: &std::ffi::OsStr) -> bool {
    name == OWN_CONFIG_FILE || name == OWN_CONFIG_LOCK
}

/// The lock file of a staging session (`staging/ID/.lock`, see
/// [`RegistryLayout::staging_dir`] and `reg_registry::lock`).
pub const STAGING_LOCK: &str = ".lock";

/// The folder of a staging session holding what `reg stage` recorded
/// (files and blobs, see [`staged_record`] and [`staged_blob`]).
pub const STAGED: &str = ".staged";

/// Where `reg stage` records how it streamed the file `rel` of the
/// staging session `session` (`rel` relative to the session folder).
pub fn staged_record(session: &Path, rel: &str) -> PathBuf {
    session.join(STAGED).join("files").join(format!("{rel}.json"))
}

/// Where `reg stage` keeps the chunk `id` of the staging session
/// `session` until the push adopts it.
pub fn staged_blob(session: &Path, id: reg_store::BlobId) -> PathBuf {
    session.join(STAGED).join("blobs").join(id.to_hex())
}

/// The paths of one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryLayout {
    root: PathBuf,
}

impl RegistryLayout {
    /// The layout of the registry at `root`.
    pub fn new(root: impl Into<PathBuf>) -> RegistryLayout {
        RegistryLayout { root: root.into() }
    }

    /// The registry directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The format marker file.
    pub fn format_file(&self) -> PathBuf {
        self.root.join("FORMAT")
    }

    /// The registry's own config file (settings and remotes kept inside
    /// the registry, as git keeps `.git/config`).
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The sled database directory.
    pub fn index_dir(&self) -> PathBuf {
        self.root.join("index")
    }

    /// The blob store directory.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// Where writers that cannot stream into a push (the Python package's
    /// DCP writer) stage the files of a version, one folder per session
    /// holding a [`STAGING_LOCK`] while it lives; gc removes abandoned ones.
    pub fn staging_dir(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// The blob store's temp folder (pending blobs, re-encodings,
    /// weights-only files made by retention).
    pub fn tmp_dir(&self) -> PathBuf {
        reg_store::LocalDisk::temp_dir_in(&self.blobs_dir())
    }

    /// The lock file of `lock` (see `reg_registry::lock`).
    pub fn lock_file(&self, lock: LockName) -> PathBuf {
        self.root.join(lock.file_name())
    }

    /// The file naming the current readers' generation (see
    /// `reg_registry::lock`: gc moves it on, then drains the old generation).
    pub fn readers_generation_file(&self) -> PathBuf {
        self.root.join("readers.gen")
    }

    /// Why the last background job (`reg deltas --background`, which has
    /// no terminal) failed; removed when a later run succeeds.
    pub fn background_failure_file(&self) -> PathBuf {
        self.root.join("deltas.failed")
    }

    /// Where the holder of `lock` says who it is.
    pub fn owner_file(&self, lock: LockName) -> PathBuf {
        self.root.join(format!("{}.owner", lock.file_name()))
    }
}

/// The registry's lock files (see `reg_registry::lock` for who takes which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockName {
    /// `lock`: held while the sled index is open.
    Index,
    /// `gc.lock`: shared by writers, exclusive for deletions.
    Gc,
    /// `deltas.lock`: one re-encoding at a time.
    Deltas,
    /// `readers.0.lock`: shared by readers of blobs of even generations.
    ReadersEven,
    /// `readers.1.lock`: shared by readers of blobs of odd generations.
    ReadersOdd,
}

impl LockName {
    /// The file name in the registry directory.
    pub fn file_name(self) -> &'static str {
        match self {
            LockName::Index => "lock",
            LockName::Gc => "gc.lock",
            LockName::Deltas => "deltas.lock",
            LockName::ReadersEven => "readers.0.lock",
            LockName::ReadersOdd => "readers.1.lock",
        }
    }

    /// The readers' lock of generation `generation`.
    pub fn readers(generation: u64) -> LockName {
        if generation.is_multiple_of(2) {
            LockName::ReadersEven
        } else {
            LockName::ReadersOdd
        }
    }
}
