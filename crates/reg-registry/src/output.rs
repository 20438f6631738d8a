//! Writing a file that appears complete or not at all: a temp file beside
//! the destination, fsynced, then renamed (without replacing an existing
//! file unless forced).

use crate::error::{ReadError, RegistryError};
use std::fs::File;
use std::path::{Path, PathBuf};

/// A file being written for `dest`.
pub(crate) struct OutputFile {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
    force: bool,
}

impl OutputFile {
    /// Refuse an existing `dest` (unless `force`) or a directory, then
    /// create the temp file beside it with the mode `cp` would give a new
    /// file: 0666 (0777 when `executable`) less the umask.
    pub(crate) fn create(dest: &Path, force: bool, executable: bool) -> Result<OutputFile, RegistryError> {
        if dest.is_dir() {
            return Err(ReadError::OutputIsDirectory {
                path: dest.to_path_buf(),
            }
            .into());
        }
        if dest.exists() && !force {
            return Err(RegistryError::Exists(dest.to_path_buf()));
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".reg-pull-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The mode is given to open(2), which applies the umask.
            let mode = if executable { 0o777 } else { 0o666 };
            builder.permissions(std::fs::Permissions::from_mode(mode));
        }
        #[cfg(not(unix))]
        let _ = executable;
        let tmp = builder
            .tempfile_in(&dir)
            .map_err(RegistryError::io("creating a temp file in", &dir))?;
        Ok(OutputFile {
            tmp,
            dest: dest.to_path_buf(),
            force,
        })
    }

    /// The temp file to write into.
    pub(crate) fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Rename into place. Dropping an `OutputFile` without committing
    /// deletes the temp file. The file is not fsynced: it is a copy of data
    /// the registry keeps durably (like `cp`, which does not sync either),
    /// and the rename still makes it appear whole or not at all to readers.
    pub(crate) fn commit(self) -> Result<PathBuf, RegistryError> {
        let dest = self.dest;
        let persisted = if self.force {
            self.tmp.persist(&dest).map_err(|e| e.error)
        } else {
            self.tmp.persist_noclobber(&dest).map_err(|e| e.error)
        };
        persisted.map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => RegistryError::Exists(dest.clone()),
            _ => RegistryError::io("renaming into", &dest)(e),
        })?;
        Ok(dest)
    }
}
