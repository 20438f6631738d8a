//! Listing a checkpoint directory: every regular file below it, by a
//! relative `/`-separated path, with its owner executable bit.
//!
//! Dotfiles are included (DCP's `.metadata`). Empty folders are not kept
//! (as git). A symbolic link is followed when it points at a regular file
//! inside the directory (its bytes are stored as that file's); one that
//! leaves the directory, points at a folder or dangles is refused, as is
//! a FIFO, a socket, a device file or a name that is not UTF-8. Every
//! refusal is one line naming the path; nothing is read before the
//! listing is complete.
//!
//! Between listing and reading, someone who can write the folder could
//! swap a listed file for a symlink to a file outside it (a shared
//! scratch folder). So the listing records each file's identity (device
//! and inode, of the link's target for a followed link) and
//! [`super::read::Input::open_listed`] opens without following a final
//! symlink (`O_NOFOLLOW`) and refuses a file whose identity is not the
//! listed one: what is stored is always the file that was listed.

use crate::error::{PushError, RegistryError};
use reg_format::ids::TreePath;
use std::fs;
use std::path::{Path, PathBuf};

/// Folders deeper than this are refused (a loop guard; checkpoints are
/// a few levels deep).
const MAX_DEPTH: usize = 64;

/// One file of a directory being pushed.
#[derive(Clone, Debug)]
pub(crate) struct WalkedFile {
    /// Its path in the directory.
    pub(crate) rel: TreePath,
    /// Where it is on disk (a symlink's target already resolved).
    pub(crate) abs: PathBuf,
    /// Device and inode of the file listed (of the target of a link).
    pub(crate) identity: FileIdentity,
}

/// What makes a file the same file: device and inode (on Unix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    /// The identity of the file `meta` describes.
    pub(crate) fn of(meta: &fs::Metadata) -> FileIdentity {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileIdentity {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            FileIdentity { dev: 0, ino: 0 }
        }
    }
}

fn refuse(path: &Path, why: &str) -> RegistryError {
    PushError::BadEntry {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
    .into()
}

/// Every file below `root`, sorted by path.
pub(crate) fn walk(root: &Path) -> Result<Vec<WalkedFile>, RegistryError> {
    let canonical_root = fs::canonicalize(root).map_err(RegistryError::io("reading", root))?;
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_path_buf(), String::new(), 0)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(refuse(&dir, "folders nested too deep"));
        }
        let entries = fs::read_dir(&dir).map_err(RegistryError::io("listing", &dir))?;
        for entry in entries {
            let entry = entry.map_err(RegistryError::io("listing", &dir))?;
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(refuse(&path, "the name is not valid UTF-8"));
            };
            let rel = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type().map_err(RegistryError::io("reading", &path))?;
            if kind.is_dir() {
                stack.push((path, rel, depth + 1));
                continue;
            }
            let (abs, identity) = if kind.is_symlink() {
                let target =
                    fs::canonicalize(&path).map_err(|_| refuse(&path, "a symbolic link that points nowhere"))?;
                if !target.starts_with(&canonical_root) {
                    return Err(refuse(&path, "a symbolic link that leaves the directory"));
                }
                let meta = fs::metadata(&target).map_err(RegistryError::io("reading", &target))?;
                if !meta.is_file() {
                    return Err(refuse(&path, "a symbolic link to something that is not a regular file"));
                }
                (target, FileIdentity::of(&meta))
            } else if kind.is_file() {
                let meta = fs::symlink_metadata(&path).map_err(RegistryError::io("reading", &path))?;
                if !meta.is_file() {
                    return Err(refuse(&path, "it changed while the folder was listed"));
                }
                (path.clone(), FileIdentity::of(&meta))
            } else {
                return Err(refuse(&path, "not a regular file (a FIFO, socket or device)"));
            };
            let rel = TreePath::new(&rel).map_err(|e| refuse(&path, &e.to_string()))?;
            out.push(WalkedFile { rel, abs, identity });
        }
    }
    if out.is_empty() {
        return Err(refuse(root, "the directory holds no files"));
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}
