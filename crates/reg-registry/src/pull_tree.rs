//! `pull` of a directory version: the whole tree (or the files `--files`
//! globs match) written into a temp folder beside the destination, each
//! file rebuilt and checked against its own blake3, then renamed into
//! place, so the folder appears complete or not at all. `--force`
//! replaces an existing destination (moved aside, then removed, only
//! once the new tree is in place). Files get the mode `cp` gives new
//! files (0666 less the umask; 0777 less it for executable files);
//! folders 0777 less the umask.
//!
//! Paths come from the manifest as [`reg_format::ids::TreePath`]s, which are
//! validated when the manifest is read: joining one to the temp folder
//! never leaves it.

use crate::error::{ReadError, RegistryError};
use crate::progress::Progress;
use crate::pull::{label_of, PullReport};
use crate::registry::Registry;
use crate::resolve::Resolved;
use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use reg_format::manifest::FileLayout;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// The files of a directory version that `globs` match (every file when
/// there are none); a glob matching nothing is an error naming it.
pub(crate) fn select<'m>(
    label: &str,
    files: Vec<FileLayout<'m>>,
    globs: &[String],
) -> Result<Vec<FileLayout<'m>>, RegistryError> {
    if globs.is_empty() {
        return Ok(files);
    }
    let mut sets = Vec::with_capacity(globs.len());
    for g in globs {
        let bad = |e: globset::Error| ReadError::BadPattern {
            pattern: g.clone(),
            reason: e.to_string(),
        };
        let glob = Glob::new(g).map_err(bad)?;
        let mut one = GlobSetBuilder::new();
        one.add(glob);
        let set: GlobSet = one.build().map_err(bad)?;
        sets.push((g, set));
    }
    for (g, set) in &sets {
        if !files.iter().any(|f| f.path.is_some_and(|p| set.is_match(p.as_str()))) {
            let all: Vec<String> = files.iter().filter_map(|f| f.path.map(|p| p.to_string())).collect();
            return Err(ReadError::NoMatch {
                pattern: g.to_string(),
                version: label.to_string(),
                files: all,
            }
            .into());
        }
    }
    Ok(files
        .into_iter()
        .filter(|f| f.path.is_some_and(|p| sets.iter().any(|(_, s)| s.is_match(p.as_str()))))
        .collect())
}

/// A temp folder beside the destination, removed unless kept.
struct TempTree {
    path: PathBuf,
    keep: bool,
}

impl TempTree {
    /// Create `.reg-pull-<pid>-<n>` in `parent` (mode 0777 less the umask).
    fn create(parent: &Path) -> Result<TempTree, RegistryError> {
        for n in 0..1000u32 {
            let path = parent.join(format!(".reg-pull-{}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(TempTree { path, keep: false }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(RegistryError::io("creating a temp folder in", parent)(e)),
            }
        }
        Err(ReadError::TempFolder {
            parent: parent.to_path_buf(),
        }
        .into())
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Create a file for writing with the mode `cp` gives a new file.
fn create_file(path: &Path, executable: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).read(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if executable { 0o777 } else { 0o666 });
    }
    #[cfg(not(unix))]
    let _ = executable;
    options.open(path)
}

impl Registry {
    /// Write a directory version (or the files `globs` match) to the
    /// folder `out` (see the module docs).
    pub fn pull_tree(
        &self,
        version: &Resolved,
        out: &Path,
        force: bool,
        globs: &[String],
        progress: &dyn Progress,
    ) -> Result<PullReport, RegistryError> {
        let label = label_of(version);
        if !version.manifest.is_directory() && !globs.is_empty() {
            return Err(ReadError::PickFromSingleFile { version: label }.into());
        }
        let files = select(&label, version.manifest.files(), globs)?;
        if out.exists() && !force {
            return Err(RegistryError::Exists(out.to_path_buf()));
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut temp = TempTree::create(&parent)?;
        let total: u64 = files.iter().map(|f| f.size).sum();
        progress.phase("writing", total);
        files.par_iter().with_max_len(1).try_for_each(|f| {
            let Some(rel) = f.path else {
                return Err(RegistryError::Internal(format!("{label}: a tree file without a path")));
            };
            let path = rel.under(&temp.path);
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(RegistryError::io("creating", dir))?;
            }
            let file = create_file(&path, f.executable).map_err(RegistryError::io("creating", &path))?;
            self.write_file(&label, f, &file, &path, &crate::progress::Silent)?;
            progress.advance(f.size);
            Ok(())
        })?;
        // Into place: an existing destination (--force) is moved aside
        // first and removed only once the new tree is there.
        let aside = out
            .exists()
            .then(|| parent.join(format!(".reg-old-{}", std::process::id())));
        if let Some(aside) = &aside {
            fs::rename(out, aside).map_err(RegistryError::io("moving aside", out))?;
        }
        if let Err(e) = fs::rename(&temp.path, out) {
            if let Some(aside) = &aside {
                let _ = fs::rename(aside, out);
            }
            return Err(RegistryError::io("renaming into", out)(e));
        }
        temp.keep = true;
        if let Some(aside) = &aside {
            let removed = if aside.is_dir() {
                fs::remove_dir_all(aside)
            } else {
                fs::remove_file(aside)
            };
            removed.map_err(RegistryError::io("removing the replaced", aside))?;
        }
        Ok(PullReport {
            path: out.to_path_buf(),
            bytes: total,
            files: Some(files.len()),
        })
    }
}

/// Reads `inner` and checks, at its end, that what was read hashes to
/// `want` (an error then, instead of a clean end).
struct Checked<R> {
    inner: R,
    hasher: blake3::Hasher,
    want: reg_format::ids::FileHash,
    what: String,
}

impl<R: std::io::Read> std::io::Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let got = reg_format::ids::FileHash::from(reg_store::BlobId::from(self.hasher.finalize()));
            if got != self.want {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} does not match its recorded hash", self.what),
                ));
            }
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Counts what is written and keeps nothing.
struct Count(u64);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The tar header of one file of a version.
fn tar_header(f: &FileLayout<'_>, created: u64, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(if f.executable { 0o755 } else { 0o644 });
    header.set_mtime(created);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

impl Registry {
    /// The exact length of [`Registry::pull_tar_to`]'s stream, without
    /// reading any blob: the headers (long paths take extra blocks) are
    /// written to a counter, and each file adds its size padded to 512.
    pub fn tar_len(&self, version: &Resolved, globs: &[String]) -> Result<u64, RegistryError> {
        let label = label_of(version);
        let files = select(&label, version.manifest.files(), globs)?;
        let mut tar = tar::Builder::new(Count(0));
        let mut data = 0u64;
        for f in &files {
            let Some(path) = f.path else { continue };
            let mut header = tar_header(f, version.manifest.created, 0);
            tar.append_data(&mut header, path.as_str(), std::io::empty())
                .map_err(RegistryError::io("sizing", "a tar stream"))?;
            data += f.size.div_ceil(512) * 512;
        }
        let count = tar.into_inner().map_err(RegistryError::io("sizing", "a tar stream"))?;
        Ok(count.0 + data)
    }

    /// Write a directory version (or the files `globs` match) into `w` as
    /// a tar stream (ustar/GNU headers: path, size, mode 0644 or 0755,
    /// the push time), each file streamed from its blobs and checked
    /// against its blake3 as it goes: a mismatch ends the stream with an
    /// error (damage), so a reader must check for it. Returns the bytes of
    /// file data written.
    pub fn pull_tar_to(
        &self,
        version: &Resolved,
        globs: &[String],
        w: &mut dyn std::io::Write,
    ) -> Result<u64, RegistryError> {
        let label = label_of(version);
        if !version.manifest.is_directory() {
            return Err(ReadError::SingleFileVersion {
                version: label,
                instead: "pull it as it is",
            }
            .into());
        }
        let files = select(&label, version.manifest.files(), globs)?;
        let mut tar = tar::Builder::new(w);
        let mut total = 0u64;
        for f in &files {
            let Some(path) = f.path else { continue };
            let mut header = tar_header(f, version.manifest.created, f.size);
            let reader = self.file_reader(version, path.as_str(), 0)?;
            let checked = Checked {
                inner: reader,
                hasher: blake3::Hasher::new(),
                want: f.blake3,
                what: format!("{label}: {path}"),
            };
            tar.append_data(&mut header, path.as_str(), checked).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    RegistryError::Damaged {
                        version: label.clone(),
                        source: reg_store::StoreError::Corrupt {
                            id: f.skeleton,
                            reason: e.to_string(),
                        },
                    }
                } else {
                    RegistryError::io("writing", "the tar stream")(e)
                }
            })?;
            total += f.size;
        }
        tar.finish().map_err(RegistryError::io("writing", "the tar stream"))?;
        Ok(total)
    }
}
