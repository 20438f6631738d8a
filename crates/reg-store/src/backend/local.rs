//! The blob directory on a local disk.
//!
//! Layout (the one place it is spelled): `<root>/<first two hex digits of
//! the id>/<remaining 62 hex digits>`, and `<root>/tmp/` for files being
//! written. Temp files are `tempfile` files of `tmp/`, deleted when
//! dropped; installing one is a rename into its blob's directory
//! (created when missing). [`Backend::sync`] fsyncs the directories of
//! the blobs it is given, and the root when one of them was created by
//! this `LocalDisk` since the root was last synced.

use super::{foreign_temp, Backend, BlobFile, TempFile};
use crate::{BlobId, StoreError};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A blob directory on the local disk.
#[derive(Debug)]
pub struct LocalDisk {
    root: PathBuf,
    /// Blob directories this disk created whose entry in the root is not
    /// fsynced yet.
    new_dirs: Mutex<BTreeSet<PathBuf>>,
}

impl LocalDisk {
    /// Open (creating if needed) the blob directory at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<LocalDisk, StoreError> {
        let root = root.as_ref().to_path_buf();
        let tmp = LocalDisk::temp_dir_in(&root);
        fs::create_dir_all(&tmp).map_err(StoreError::io("creating", &tmp))?;
        Ok(LocalDisk {
            root,
            new_dirs: Mutex::new(BTreeSet::new()),
        })
    }

    /// The directory this disk lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The temp folder of a blob directory at `root` (for callers that
    /// put files of their own beside the blobs being written).
    pub fn temp_dir_in(root: &Path) -> PathBuf {
        root.join("tmp")
    }

    fn dir_of(&self, id: BlobId) -> PathBuf {
        self.root.join(&id.to_hex()[..2])
    }
}

/// fsync a directory so renames into it, and removals from it, are durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    OpenOptions::new().read(true).open(dir)?.sync_all()
}

impl Backend for LocalDisk {
    fn open(&self, id: BlobId) -> io::Result<Box<dyn BlobFile>> {
        Ok(Box::new(LocalFile::new(File::open(self.path_of(id))?)?))
    }

    fn stored_len(&self, id: BlobId) -> io::Result<Option<u64>> {
        match fs::metadata(self.path_of(id)) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn create_temp(&self, hint: &str) -> io::Result<Box<dyn TempFile>> {
        let file = tempfile::Builder::new().prefix(hint).tempfile_in(self.temp_dir())?;
        Ok(Box::new(LocalTemp { file }))
    }

    fn install(&self, temp: Box<dyn TempFile>, id: BlobId) -> io::Result<()> {
        let temp: Box<dyn std::any::Any> = temp;
        let temp = temp.downcast::<LocalTemp>().map_err(|_| foreign_temp())?;
        let dir = self.dir_of(id);
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            if let Ok(mut new) = self.new_dirs.lock() {
                new.insert(dir);
            }
        }
        temp.file.persist(self.path_of(id)).map(|_| ()).map_err(|e| e.error)
    }

    fn remove(&self, id: BlobId) -> io::Result<bool> {
        match fs::remove_file(self.path_of(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn sync(&self, ids: &[BlobId]) -> io::Result<()> {
        let dirs: BTreeSet<PathBuf> = ids.iter().map(|id| self.dir_of(*id)).collect();
        for dir in &dirs {
            sync_dir(dir)?;
        }
        let created = match self.new_dirs.lock() {
            Ok(mut new) => {
                let before = new.len();
                new.retain(|d| !dirs.contains(d));
                new.len() != before
            }
            // A poisoned set: sync the root to be safe.
            Err(_) => true,
        };
        if created {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<BlobId>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() != 2 || !entry.path().is_dir() {
                continue;
            }
            for f in fs::read_dir(entry.path())?.flatten() {
                let rest = f.file_name().to_string_lossy().into_owned();
                if let Ok(id) = BlobId::from_hex(&format!("{name}{rest}")) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    fn clean_temps(&self) -> io::Result<usize> {
        let mut n = 0;
        for entry in fs::read_dir(self.temp_dir())?.flatten() {
            if fs::remove_file(entry.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    fn path_of(&self, id: BlobId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    fn temp_dir(&self) -> PathBuf {
        LocalDisk::temp_dir_in(&self.root)
    }

    fn location(&self) -> PathBuf {
        self.root.clone()
    }

    fn keep_temp(&self, temp: Box<dyn TempFile>, path: &Path) -> io::Result<()> {
        let temp: Box<dyn std::any::Any> = temp;
        let temp = temp.downcast::<LocalTemp>().map_err(|_| foreign_temp())?;
        temp.file.persist(path).map(|_| ()).map_err(|e| e.error)
    }

    fn adopt_temp(&self, path: &Path) -> io::Result<Box<dyn TempFile>> {
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        file.seek(SeekFrom::End(0))?;
        let file = tempfile::NamedTempFile::from_parts(file, tempfile::TempPath::try_from_path(path)?);
        Ok(Box::new(LocalTemp { file }))
    }
}

/// A file of the local disk open for reading.
struct LocalFile {
    file: File,
    len: u64,
    regular: bool,
}

impl LocalFile {
    fn new(file: File) -> io::Result<LocalFile> {
        let meta = file.metadata()?;
        Ok(LocalFile {
            file,
            len: meta.len(),
            regular: meta.is_file(),
        })
    }
}

impl Read for LocalFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for LocalFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl BlobFile for LocalFile {
    fn file_len(&self) -> u64 {
        self.len
    }

    fn is_regular(&self) -> bool {
        self.regular
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// A temp file of `<root>/tmp/`.
struct LocalTemp {
    file: tempfile::NamedTempFile,
}

impl Read for LocalTemp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.as_file_mut().read(buf)
    }
}

impl Write for LocalTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_file_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_file_mut().flush()
    }
}

impl Seek for LocalTemp {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.as_file_mut().seek(pos)
    }
}

impl TempFile for LocalTemp {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.as_file().set_len(len)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.as_file().sync_all()
    }

    fn reader(&self) -> io::Result<Box<dyn BlobFile>> {
        Ok(Box::new(LocalFile::new(self.file.reopen()?)?))
    }

    fn path(&self) -> PathBuf {
        self.file.path().to_path_buf()
    }
}
