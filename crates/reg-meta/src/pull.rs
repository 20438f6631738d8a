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
        // One thread decodes and verifies blobs in file order while this one
        // writes and hashes the file; a bounded channel keeps memory small.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(8);
        let consumed: Result<(), RegistryError> = std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut sink = ChannelWriter::new(&tx);
                let result = (|| {
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
                                sink.write_all(bytes).map_err(write_err)?;
                            }
                            Piece::Payload { blob, len } => {
                                let n = self.store.copy_to(*blob, &mut sink).map_err(damaged)?;
                                if n != *len {
                                    return Err(damaged(StoreError::Corrupt {
                                        id: *blob,
                                        reason: format!("holds {n} bytes, manifest says {len}"),
                                    }));
                                }
                            }
                        }
                    }
                    sink.flush().map_err(write_err)
                })();
                if let Err(e) = result {
                    let _ = tx.send(Chunk::Failed(e));
                }
            });
            for chunk in rx {
                match chunk {
                    Chunk::Data(bytes) => w.write_all(&bytes).map_err(write_err)?,
                    Chunk::Failed(e) => return Err(e),
                }
            }
            Ok(())
        });
        consumed?;
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

/// What the decoding thread hands the writing thread.
enum Chunk {
    Data(Vec<u8>),
    Failed(RegistryError),
}

/// Collects bytes into 1 MiB chunks sent to the writing thread.
struct ChannelWriter<'a> {
    tx: &'a std::sync::mpsc::SyncSender<Chunk>,
    buf: Vec<u8>,
}

const CHUNK_BYTES: usize = 1 << 20;

impl<'a> ChannelWriter<'a> {
    fn new(tx: &'a std::sync::mpsc::SyncSender<Chunk>) -> ChannelWriter<'a> {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.tx
            .send(Chunk::Data(full))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the writer stopped"))
    }
}

impl Write for ChannelWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK_BYTES - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl Resolved {
    /// The model name of this version.
    pub fn record_name(&self) -> &str {
        &self.manifest.name
    }
}
