//! `pull`: write a version's original bytes back to a file.
//!
//! The file is assembled in a temp file beside the destination, every blob
//! is hash-checked as it streams, the whole-file hash is compared, and only
//! then is the temp file renamed into place. A damaged version never leaves
//! an output file behind.

use crate::error::RegistryError;
use crate::manifest::Piece;
use crate::output::OutputFile;
use crate::progress::{Progress, Silent};
use crate::registry::Registry;
use crate::resolve::Resolved;
use reg_store::{BlobId, StoreError};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What [`Registry::pull`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullReport {
    /// The output file.
    pub path: PathBuf,
    /// Bytes written.
    pub bytes: u64,
}

/// A writer that hashes what passes through and reports progress.
struct HashingWriter<'p, W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    len: u64,
    progress: &'p dyn Progress,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Registry {
    /// Write the version's original file to `out`. Refuses to replace an
    /// existing file unless `force`.
    pub fn pull(&self, version: &Resolved, out: &Path, force: bool) -> Result<PullReport, RegistryError> {
        self.pull_with(version, out, force, &Silent)
    }

    /// [`Registry::pull`] with progress reporting.
    pub fn pull_with(
        &self,
        version: &Resolved,
        out: &Path,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<PullReport, RegistryError> {
        progress.phase("writing", version.manifest.size);
        let result = self.pull_inner(version, out, force, progress);
        progress.finish();
        result
    }

    fn pull_inner(
        &self,
        version: &Resolved,
        out: &Path,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<PullReport, RegistryError> {
        let mut output = OutputFile::create(out, force)?;
        let label = format!("{}@v{}", version.record_name(), version.record.number);
        let damaged = |source: StoreError| match source {
            StoreError::Io { .. } => RegistryError::Store(source),
            source => RegistryError::Damaged {
                version: label.clone(),
                source,
            },
        };
        let m = &version.manifest;
        let skeleton = self.store.read(m.skeleton).map_err(damaged)?;
        let mut w = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, output.file()),
            hasher: blake3::Hasher::new(),
            len: 0,
            progress,
        };
        let write_err = |e| RegistryError::io("writing", out)(e);
        for piece in &m.pieces {
            match piece {
                Piece::Skeleton { offset, len } => {
                    let bytes = usize::try_from(*offset)
                        .ok()
                        .zip(usize::try_from(offset + len).ok())
                        .and_then(|(a, b)| skeleton.get(a..b))
                        .ok_or_else(|| {
                            damaged(StoreError::Corrupt {
                                id: m.skeleton,
                                reason: "skeleton shorter than the manifest says".into(),
                            })
                        })?;
                    w.write_all(bytes).map_err(write_err)?;
                }
                Piece::Payload { blob, len } => {
                    let n = self.store.copy_to(*blob, &mut w).map_err(damaged)?;
                    if n != *len {
                        return Err(damaged(StoreError::Corrupt {
                            id: *blob,
                            reason: format!("holds {n} bytes, manifest says {len}"),
                        }));
                    }
                }
            }
        }
        w.flush().map_err(write_err)?;
        let (hash, len) = (BlobId::from(w.hasher.finalize()).to_hex(), w.len);
        drop(w);
        if hash != m.blake3 || len != m.size {
            return Err(RegistryError::Damaged {
                version: label,
                source: StoreError::Corrupt {
                    id: m.skeleton,
                    reason: "reassembled file does not match its recorded hash".into(),
                },
            });
        }
        output.commit()?;
        Ok(PullReport {
            path: out.to_path_buf(),
            bytes: len,
        })
    }
}

impl Resolved {
    /// The model name of this version.
    pub fn record_name(&self) -> &str {
        &self.manifest.name
    }
}
