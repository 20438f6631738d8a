//! `pull`: write a version's original bytes back to a file.
//!
//! The file is assembled in a temp file beside the destination: its
//! pieces are independent (each payload blob has its own place in the
//! file), so every core decodes blobs and writes them at their offsets
//! (`pwrite`), each streaming one frame at a time. Then the whole-file
//! blake3 (the hash of the file that was pushed) is computed over the temp
//! file with all cores and compared, and only then is the temp file
//! renamed into place. A damaged version never leaves an output file
//! behind.
//!
//! Every byte is checked once, by the whole-file hash, rather than twice
//! (once per blob, once for the file): decoding still checks each frame
//! of a planes or delta blob against the checksum it records, and when
//! the file hash does not match, each blob is verified on its own to name
//! the one that is damaged.

use crate::error::{ReadError, RegistryError};
use crate::output::OutputFile;
use crate::progress::{Progress, Silent};
use crate::registry::Registry;
use crate::resolve::Resolved;
use rayon::prelude::*;
use reg_format::manifest::{FileLayout, Piece};
use reg_store::{BlobId, StoreError};
use std::fs::File;
use std::path::{Path, PathBuf};

/// What [`Registry::pull`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullReport {
    /// The output file (or directory).
    pub path: PathBuf,
    /// Bytes written.
    pub bytes: u64,
    /// Files written, for a directory version.
    pub files: Option<usize>,
}

/// `name@vN`, for errors.
pub(crate) fn label_of(v: &Resolved) -> String {
    v.manifest.label().to_string()
}

/// Map a store error to damage of `label` (I/O errors stay I/O errors).
pub(crate) fn damage_of(label: &str) -> impl Fn(StoreError) -> RegistryError + Sync + '_ {
    move |source| match source {
        StoreError::Io { .. } => RegistryError::Store(source),
        source => RegistryError::Damaged {
            version: label.to_string(),
            source,
        },
    }
}

/// Bytes per write: small enough to still be in the CPU cache when the
/// kernel copies them (4 MiB writes of cold data cost twice as much).
const WRITE_CHUNK: usize = 256 << 10;
/// Bytes of the finished file mapped at a time to hash it.
const HASH_WINDOW: u64 = 64 << 20;
/// Files from this size on are written by one thread fed by the
/// decoders (see [`Registry::write_through_one_writer`]); smaller ones,
/// such as most files of a directory version, by the decoders themselves.
const ONE_WRITER_FROM: u64 = 32 << 20;
/// Decoded frames waiting for the writer.
const WRITER_QUEUE: usize = 1;

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], pos: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, pos)
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut pos: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, pos)?;
        buf = &buf[n..];
        pos += n as u64;
    }
    Ok(())
}

/// One piece of the file: where it goes and what fills it.
pub(crate) enum Job<'m> {
    Skeleton { at: u64, bytes: &'m [u8] },
    Payload { at: u64, blob: BlobId, len: u64 },
}

/// blake3 of the first `len` bytes of `file`, hashed with all cores
/// straight from the page cache, one mapped window at a time (so memory
/// stays bounded and nothing is copied).
fn hash_file(file: &File, len: u64, progress: &dyn Progress) -> std::io::Result<BlobId> {
    let mut hasher = blake3::Hasher::new();
    let mut at = 0u64;
    while at < len {
        let n = HASH_WINDOW.min(len - at);
        let window = usize::try_from(n).map_err(std::io::Error::other)?;
        // SAFETY: the file is the pull's own temp file: nothing else
        // writes or truncates it while the window is mapped. Windows start
        // at multiples of HASH_WINDOW, so at page boundaries.
        let map = unsafe { memmap2::MmapOptions::new().offset(at).len(window).map(file)? };
        hasher.update_rayon(&map);
        at += n;
        progress.advance(n);
    }
    Ok(BlobId::from(hasher.finalize()))
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
        if version.manifest.is_directory() {
            return self.pull_tree(version, out, force, &[], progress);
        }
        let mut output = OutputFile::create(out, force, version.manifest.executable)?;
        let label = label_of(version);
        let layout = version.manifest.files().remove(0);
        self.write_file(&label, &layout, output.file(), out, progress)?;
        output.commit()?;
        Ok(PullReport {
            path: out.to_path_buf(),
            bytes: layout.size,
            files: None,
        })
    }

    /// Rebuild one file of a version into `file` (an empty file of the
    /// caller's), every core writing blobs at their offsets, then check
    /// its whole-file hash. `out` names it in errors.
    pub(crate) fn write_file(
        &self,
        label: &str,
        layout: &FileLayout<'_>,
        file: &File,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        let damaged = damage_of(label);
        let skeleton = self.skeleton(layout.skeleton).map_err(&damaged)?;
        let jobs = plan(layout, &skeleton).map_err(&damaged)?;
        let write_err = |e| RegistryError::io("writing", out)(e);
        file.set_len(layout.size).map_err(write_err)?;

        progress.phase("writing", layout.size);
        // Largest first, so that no core is left with one big blob at the end.
        let mut order: Vec<&Job<'_>> = jobs.iter().collect();
        order.sort_by_key(|j| std::cmp::Reverse(job_len(j)));
        if layout.size >= ONE_WRITER_FROM {
            self.write_through_one_writer(&order, file, progress, &damaged, &write_err)?;
        } else {
            order
                .par_iter()
                .with_max_len(1)
                .try_for_each(|job| self.write_job(job, file, progress, &damaged, &write_err))?;
        }

        progress.phase("verifying", layout.size);
        let hash = hash_file(file, layout.size, progress).map_err(write_err)?;
        if reg_format::ids::FileHash::from(hash) != layout.blake3 {
            // Name the damaged blob when one is.
            self.store.verify(layout.skeleton).map_err(&damaged)?;
            for p in layout.pieces {
                if let Piece::Payload { blob, .. } = p {
                    self.store.verify(*blob).map_err(&damaged)?;
                }
            }
            let what = layout.path.map(|p| format!("{p}: ")).unwrap_or_default();
            return Err(RegistryError::Damaged {
                version: label.to_string(),
                source: StoreError::Corrupt {
                    id: layout.skeleton,
                    reason: format!("{what}reassembled file does not match its recorded hash"),
                },
            });
        }
        Ok(())
    }

    /// Stream the version's original bytes into `w` in file order (for a
    /// pipe: `reg pull REF -o -`), hashing them on the way; returns the
    /// bytes written. The output cannot be taken back: when the bytes do
    /// not match the recorded whole-file hash the error (damage, naming
    /// the version) comes after them, and the caller must discard them.
    pub fn pull_to(&self, version: &Resolved, w: &mut dyn std::io::Write) -> Result<u64, RegistryError> {
        let label = label_of(version);
        if version.manifest.is_directory() {
            return Err(ReadError::DirectoryVersion {
                version: label,
                instead: "pull it into a folder (or as a tar stream)",
            }
            .into());
        }
        let layout = version.manifest.files().remove(0);
        self.stream_file(&label, &layout, w)
    }

    /// Stream one file of a version into `w` in order, checking its hash
    /// at the end (the error comes after the bytes; see [`Registry::pull_to`]).
    pub(crate) fn stream_file(
        &self,
        label: &str,
        m: &FileLayout<'_>,
        w: &mut dyn std::io::Write,
    ) -> Result<u64, RegistryError> {
        let damaged = damage_of(label);
        let write_err = |e| RegistryError::io("writing", "the output")(e);
        let skeleton = self.store.read(m.skeleton).map_err(&damaged)?;
        let mut hasher = blake3::Hasher::new();
        let mut scratch = vec![0u8; WRITE_CHUNK];
        for job in plan(m, &skeleton).map_err(&damaged)? {
            match job {
                Job::Skeleton { bytes, .. } => {
                    hasher.update(bytes);
                    w.write_all(bytes).map_err(write_err)?;
                }
                Job::Payload { blob, len, .. } => {
                    let mut reader = self.store.unchecked_reader(blob).map_err(&damaged)?;
                    let mut done = 0u64;
                    while done < len {
                        let chunk = reader.next_chunk(&mut scratch).map_err(|e| {
                            damaged(StoreError::Corrupt {
                                id: blob,
                                reason: format!("cannot decode: {e}"),
                            })
                        })?;
                        if chunk.is_empty() || done + chunk.len() as u64 > len {
                            return Err(damaged(StoreError::Corrupt {
                                id: blob,
                                reason: format!("does not hold the {len} bytes the manifest says"),
                            }));
                        }
                        hasher.update(chunk);
                        w.write_all(chunk).map_err(write_err)?;
                        done += chunk.len() as u64;
                    }
                }
            }
        }
        w.flush().map_err(write_err)?;
        if reg_format::ids::FileHash::from(BlobId::from(hasher.finalize())) != m.blake3 {
            return Err(RegistryError::Damaged {
                version: label.to_string(),
                source: StoreError::Corrupt {
                    id: m.skeleton,
                    reason: "reassembled file does not match its recorded hash".into(),
                },
            });
        }
        Ok(m.size)
    }

    /// Decode the pieces on every core and write them from one thread.
    ///
    /// Linux file systems take the inode's lock for each buffered write,
    /// so cores writing into one file take turns: while one copies into
    /// the page cache the other spins on the lock (19% of a 2 GB pull's
    /// samples, more when fresh page-cache memory is slow to fault in)
    /// instead of decoding. Here decoders hand whole frames to a writer
    /// thread, buffers going back and forth, so the copy runs beside the
    /// decoding. In-flight memory is bounded by the channel: per core the
    /// reader's frames and the one it is sending, [`WRITER_QUEUE`] queued,
    /// one being written, and at most cores + 2 spares (8 MiB each).
    fn write_through_one_writer(
        &self,
        order: &[&Job<'_>],
        file: &File,
        progress: &dyn Progress,
        damaged: &(dyn Fn(StoreError) -> RegistryError + Sync),
        write_err: &(dyn Fn(std::io::Error) -> RegistryError + Sync),
    ) -> Result<(), RegistryError> {
        let spares: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
        let take_spare = || spares.lock().ok().and_then(|mut s| s.pop()).unwrap_or_default();
        // Keep no more spares than can be in flight at once.
        let most = rayon::current_num_threads() + WRITER_QUEUE + 1;
        let give_back = |spare: Vec<u8>| {
            if let Ok(mut s) = spares.lock() {
                if s.len() < most && spare.capacity() > 0 {
                    s.push(spare);
                }
            }
        };
        let (frames, received) = std::sync::mpsc::sync_channel::<(u64, Vec<u8>)>(WRITER_QUEUE);
        // Owns the sender: dropping it ends the writer's loop.
        let send = move |at: u64, bytes: Vec<u8>| {
            frames
                .send((at, bytes))
                .map_err(|_| RegistryError::Internal("the pull's writer stopped".into()))
        };
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| -> std::io::Result<()> {
                for (at, bytes) in received {
                    write_at(file, &bytes, at)?;
                    progress.advance(bytes.len() as u64);
                    give_back(bytes);
                }
                Ok(())
            });
            let decoded = order.par_iter().with_max_len(1).try_for_each(|job| match job {
                Job::Skeleton { at, bytes } => send(*at, bytes.to_vec()),
                Job::Payload { at, blob, len } => {
                    let mut reader = self.payload_reader(*blob, *len, damaged)?;
                    let mut done = 0u64;
                    while done < *len {
                        let frame = reader
                            .next_owned(take_spare())
                            .map_err(|e| undecodable(*blob, e, damaged))?;
                        if frame.is_empty() {
                            return Err(damaged(truncated(*blob)));
                        }
                        let n = frame.len() as u64;
                        send(at + done, frame)?;
                        done += n;
                    }
                    give_back(reader.into_spare());
                    Ok(())
                }
            });
            // The writer ends once every sender is gone.
            drop(send);
            let written = writer
                .join()
                .map_err(|_| RegistryError::Internal("the pull's writer panicked".into()))?;
            // A write error explains a decoder's "writer stopped".
            written.map_err(write_err)?;
            decoded
        })
    }

    /// A reader of the payload blob `blob`, which the manifest says holds
    /// `len` bytes (a blob of another length is damage).
    fn payload_reader(
        &self,
        blob: BlobId,
        len: u64,
        damaged: &(dyn Fn(StoreError) -> RegistryError + Sync),
    ) -> Result<reg_store::ChainReader, RegistryError> {
        let reader = self.store.unchecked_reader(blob).map_err(damaged)?;
        if reader.len() != len {
            return Err(damaged(StoreError::Corrupt {
                id: blob,
                reason: format!("holds {} bytes, manifest says {len}", reader.len()),
            }));
        }
        Ok(reader)
    }

    /// Decode one piece into its place in `file`.
    fn write_job(
        &self,
        job: &Job<'_>,
        file: &File,
        progress: &dyn Progress,
        damaged: &(dyn Fn(StoreError) -> RegistryError + Sync),
        write_err: &(dyn Fn(std::io::Error) -> RegistryError + Sync),
    ) -> Result<(), RegistryError> {
        match job {
            Job::Skeleton { at, bytes } => {
                write_at(file, bytes, *at).map_err(write_err)?;
                progress.advance(bytes.len() as u64);
            }
            Job::Payload { at, blob, len } => {
                let mut reader = self.payload_reader(*blob, *len, damaged)?;
                let mut scratch = vec![0u8; WRITE_CHUNK.min(usize::try_from(*len).unwrap_or(WRITE_CHUNK)).max(1)];
                let mut done = 0u64;
                while done < *len {
                    let chunk = reader
                        .next_chunk(&mut scratch)
                        .map_err(|e| undecodable(*blob, e, damaged))?;
                    if chunk.is_empty() {
                        return Err(damaged(truncated(*blob)));
                    }
                    // Small writes: the bytes are still in cache when the
                    // kernel copies them into the page cache.
                    for piece in chunk.chunks(WRITE_CHUNK) {
                        write_at(file, piece, at + done).map_err(write_err)?;
                        done += piece.len() as u64;
                        progress.advance(piece.len() as u64);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A payload blob that fails to decode, as damage of the version.
fn undecodable(
    blob: BlobId,
    e: std::io::Error,
    damaged: &(dyn Fn(StoreError) -> RegistryError + Sync),
) -> RegistryError {
    damaged(StoreError::Corrupt {
        id: blob,
        reason: format!("cannot decode: {e}"),
    })
}

/// A payload blob that ends before the manifest's length.
fn truncated(blob: BlobId) -> StoreError {
    StoreError::Corrupt {
        id: blob,
        reason: "truncated".into(),
    }
}

fn job_len(job: &Job<'_>) -> u64 {
    match job {
        Job::Skeleton { bytes, .. } => bytes.len() as u64,
        Job::Payload { len, .. } => *len,
    }
}

/// The pieces of a file with their offsets; the pieces must add up to
/// the file size.
pub(crate) fn plan<'s>(m: &FileLayout<'_>, skeleton: &'s [u8]) -> Result<Vec<Job<'s>>, StoreError> {
    let mut at = 0u64;
    let mut jobs = Vec::with_capacity(m.pieces.len());
    for piece in m.pieces {
        match piece {
            Piece::Skeleton { offset, len } => {
                let bytes = usize::try_from(*offset)
                    .ok()
                    .zip(usize::try_from(offset.saturating_add(*len)).ok())
                    .and_then(|(a, b)| skeleton.get(a..b))
                    .ok_or_else(|| StoreError::Corrupt {
                        id: m.skeleton,
                        reason: "skeleton shorter than the manifest says".into(),
                    })?;
                jobs.push(Job::Skeleton { at, bytes });
            }
            Piece::Payload { blob, len } => jobs.push(Job::Payload {
                at,
                blob: *blob,
                len: *len,
            }),
        }
        at = at.saturating_add(piece.len());
    }
    if at != m.size {
        return Err(StoreError::Corrupt {
            id: m.skeleton,
            reason: format!("manifest pieces add up to {at} bytes, the file has {}", m.size),
        });
    }
    Ok(jobs)
}

impl Resolved {
    /// The model name of this version.
    pub fn record_name(&self) -> &str {
        &self.manifest.name
    }
}
