//! Where blob files live: the small storage trait under [`crate::BlobStore`].
//!
//! A [`Backend`] does I/O and nothing else. It holds blob files keyed by
//! [`BlobId`] and temp files being written; it knows no codec, no
//! durability policy and nothing of what a blob means. The store decides
//! (whether a temp file is fsynced before it takes its name, when names
//! are made durable, what exists already) and calls the backend for each
//! step, so everything the store does to the disk goes through these
//! methods:
//!
//! - reading: [`Backend::open`] (a [`BlobFile`]), [`Backend::stored_len`],
//!   [`Backend::list`];
//! - writing: [`Backend::create_temp`] (a [`TempFile`]: written, maybe
//!   rewound and rewritten, read back, fsynced), then [`Backend::install`]
//!   (an atomic rename to the blob's name, replacing a file of that name);
//! - deleting: [`Backend::remove`], [`Backend::clean_temps`];
//! - durability: [`TempFile::sync`] makes a temp file's bytes durable,
//!   [`BlobFile::sync`] a stored file's, and [`Backend::sync`] the installs
//!   and removals of the blobs it is given (on a disk: the directories
//!   that hold them). Nothing else is promised to survive a crash.
//!
//! Implementations: [`LocalDisk`] (a directory; the layout
//! `<root>/<2 hex>/<62 hex>` and `<root>/tmp/` is spelled there, once),
//! and, with the `crash-sim` feature, `CrashDisk` (in memory, losing
//! what was not synced when told to crash). A wrapper that caches,
//! verifies or only pretends to write (as rustic_core's backends do) is
//! a `Backend` over another `Arc<dyn Backend>`.

use crate::BlobId;
use std::any::Any;
use std::fmt;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

#[cfg(feature = "crash-sim")]
mod crash;
mod local;

#[cfg(feature = "crash-sim")]
pub use crash::{CrashDisk, Writeback};
pub use local::LocalDisk;

/// Storage for blob files and the temp files they are written in.
///
/// Every method may be called from many threads at once. Errors are plain
/// I/O errors; the store adds the blob and the path (from
/// [`Backend::path_of`]) when it reports them.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Open blob `id`'s file for reading, from its first byte. No file of
    /// that name is an error of kind [`io::ErrorKind::NotFound`];
    /// something other than a regular file in its place opens, and says
    /// so ([`BlobFile::is_regular`]).
    fn open(&self, id: BlobId) -> io::Result<Box<dyn BlobFile>>;

    /// The length of blob `id`'s file; `None` when there is no regular
    /// file of that name.
    fn stored_len(&self, id: BlobId) -> io::Result<Option<u64>>;

    /// A new, empty temp file; `hint` (a few ASCII letters or hex digits)
    /// may appear in its name. Dropping it without installing it deletes
    /// it.
    fn create_temp(&self, hint: &str) -> io::Result<Box<dyn TempFile>>;

    /// Give `temp` (made by this backend's [`Backend::create_temp`]) the
    /// name of blob `id` by an atomic rename, replacing a file of that
    /// name: a reader sees the old file or the new one, whole. Durable
    /// only after [`Backend::sync`] of `id` (and the file's bytes only if
    /// [`TempFile::sync`] ran before).
    fn install(&self, temp: Box<dyn TempFile>, id: BlobId) -> io::Result<()>;

    /// Delete blob `id`'s file; `false` when there was none. Durable only
    /// after [`Backend::sync`] of `id`.
    fn remove(&self, id: BlobId) -> io::Result<bool>;

    /// Make the installs and removals of the blobs `ids` durable: after
    /// this returns, a crash leaves each of those names as it is now (on
    /// a disk: fsync the directories that hold them, and the folder that
    /// holds a directory created since).
    fn sync(&self, ids: &[BlobId]) -> io::Result<()>;

    /// Every stored blob, in no particular order (names that are not blob
    /// ids are skipped).
    fn list(&self) -> io::Result<Vec<BlobId>>;

    /// Delete every temp file (those a crashed writer left; a running
    /// writer's would fail it); returns how many went.
    fn clean_temps(&self) -> io::Result<usize>;

    /// Where blob `id` lives: the file itself on a local disk, a name for
    /// messages elsewhere.
    fn path_of(&self, id: BlobId) -> PathBuf;

    /// Where temp files live (for messages, and for callers that check
    /// none is left behind on a local disk).
    fn temp_dir(&self) -> PathBuf;

    /// Where the backend keeps its files as a whole (a directory on a
    /// local disk), for messages.
    fn location(&self) -> PathBuf;

    /// Keep `temp` (made by [`Backend::create_temp`]) as the file `path`,
    /// outside the store on the same file system, for another process to
    /// adopt ([`Backend::adopt_temp`]): a blob one process stages for
    /// another's push. Backends without such files refuse.
    fn keep_temp(&self, temp: Box<dyn TempFile>, path: &Path) -> io::Result<()> {
        let _ = (temp, path);
        Err(no_kept_files())
    }

    /// Take the file at `path` (kept by [`Backend::keep_temp`], by any
    /// process) as a temp file of this backend, positioned at its end:
    /// [`Backend::install`] renames it into place; dropping it deletes
    /// it. Backends without such files refuse.
    fn adopt_temp(&self, path: &Path) -> io::Result<Box<dyn TempFile>> {
        let _ = path;
        Err(no_kept_files())
    }
}

fn no_kept_files() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this storage backend keeps no files outside the store (staged blobs need a local disk)",
    )
}

/// A blob file open for reading (from [`Backend::open`], or a
/// [`TempFile`] read back).
pub trait BlobFile: Read + Seek + Send {
    /// The file's length in bytes when it was opened.
    fn file_len(&self) -> u64;

    /// False when something other than a regular file (a folder, a
    /// device) is where the blob should be: the store reports that as
    /// damage.
    fn is_regular(&self) -> bool;

    /// Make the file's bytes durable (fsync), for a file installed
    /// without it that something is about to depend on.
    fn sync(&self) -> io::Result<()>;
}

/// A temp file being written (from [`Backend::create_temp`]).
///
/// `Any` lets the backend that made it take it back in
/// [`Backend::install`].
pub trait TempFile: Read + Write + Seek + Send + Any {
    /// Truncate (or extend) the file to `len` bytes; the position stays.
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    /// Make what was written durable (fsync).
    fn sync(&mut self) -> io::Result<()>;

    /// A new reader over what was written so far, from its first byte,
    /// with a position of its own.
    fn reader(&self) -> io::Result<Box<dyn BlobFile>>;

    /// The file's name, for messages.
    fn path(&self) -> PathBuf;
}

/// The error of a temp file given to a backend that did not make it.
pub(crate) fn foreign_temp() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "a temp file of another backend cannot be installed here",
    )
}
