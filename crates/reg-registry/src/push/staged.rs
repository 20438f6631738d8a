//! A directory version written file by file by other processes: `reg
//! stage SESSION PATH` streams one file into a staging session (a DCP
//! rank's data file, as `torch.distributed.checkpoint` writes it), and
//! `reg push SESSION/DIR --staged SESSION` makes the version of the
//! folder once every file is there (the DCP coordinator's `finish`).
//!
//! `reg stage` cuts the stream as it arrives. A DCP data file is its
//! items one after another, each a `torch.save` zip (or, saved as
//! safetensors, one safetensors file): each item is cut like a pushed
//! stream ([`reg_ckpt::stream_in::split_next`]), its storages of
//! [`DEFER_MIN_LEN`] bytes or more going straight into raw blobs, hashed
//! and fsynced as they pass; the rest (zip records, pickles, small
//! storages) goes into the session's file at its offset, with holes where
//! the big storages are. Bytes that are not an item reg can cut (what a
//! storage extension rewrote) go into the file as they are, to its end.
//! It then keeps each new chunk's blob in the session
//! (`.staged/blobs/ID`, durable) and writes a record of the file
//! (`.staged/files/PATH.json`): its length, its blake3, and each chunk's
//! offset, length, id and CRC-32. A chunk the store holds already is not
//! kept (a frozen tensor costs its hashing only).
//!
//! The push reads such a file as it reads any (headers and pickles only:
//! payload bytes are never read through its map), takes the file's hash
//! from the record instead of reading it, and each chunk's id and blob
//! from the record instead of the holes; the kept blobs are renamed into
//! the store. A record that does not match what the file's own records
//! say is refused, like a cut stream.
//!
//! The session folder is the staging session of [`crate::lock`]: while
//! its lock is held gc leaves it alone; once abandoned, gc removes it and
//! everything `reg stage` kept in it.

use super::from_stream::{with_synced_pieces, Store, Streamed, StreamedPiece};
use super::payloads::DEFER_MIN_LEN;
use crate::error::{PushError, RegistryError};
use crate::progress::Progress;
use crate::registry::Registry;
use reg_ckpt::stream_in::{self, StreamLimits, StreamSink};
use reg_format::layout::{staged_blob, staged_record, STAGED, STAGING_LOCK};
use reg_store::{BlobId, BlobStore};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// What `reg stage` recorded of one file it streamed.
#[derive(Debug, Serialize, Deserialize)]
struct StagedFile {
    /// The file's length.
    len: u64,
    /// blake3 of all its bytes (hex).
    blake3: String,
    /// Its chunks that went into blobs, in file order.
    chunks: Vec<StagedChunk>,
}

/// One chunk of a staged file that went into a blob.
#[derive(Debug, Serialize, Deserialize)]
struct StagedChunk {
    /// Its first byte's offset in the file.
    at: u64,
    /// Its length.
    len: u64,
    /// blake3 of its bytes (hex): the blob's id.
    blob: String,
    /// CRC-32 of its bytes (the zip record's is checked against it).
    crc: u32,
    /// Whether the blob was kept in the session (else the store held it
    /// when the file was staged, or another chunk of the file kept it).
    kept: bool,
}

/// What one `reg stage` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StageReport {
    /// The staged file, relative to the session folder.
    pub path: String,
    /// Its length.
    pub bytes: u64,
    /// Chunks that went into blobs.
    pub chunks: usize,
    /// Of those, the ones the store did not hold yet (kept in the session).
    pub new_chunks: usize,
    /// Their bytes.
    pub new_bytes: u64,
}

/// Counts what passes for the progress bar.
struct Counted<'a> {
    input: &'a mut dyn Read,
    progress: &'a dyn Progress,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

impl Registry {
    /// Stream the file `rel` of the staging session `session` from
    /// `input` (see the module docs); returns what it stored. A stream
    /// whose item is cut or not as torch writes it is refused in one line
    /// (the session's file and record are then absent).
    pub fn stage_stream(
        &self,
        input: &mut dyn Read,
        session: &Path,
        rel: &str,
        progress: &dyn Progress,
    ) -> Result<StageReport, RegistryError> {
        let session = self.staging_session(session)?;
        check_staged_path(rel)?;
        let path = session.join(rel);
        let record = staged_record(&session, rel);
        for dir in [path.parent(), record.parent()].into_iter().flatten() {
            std::fs::create_dir_all(dir).map_err(RegistryError::io("creating", dir))?;
        }
        // The writer guard: gc, which cleans blobs/tmp/ where the chunks
        // are written first, waits until they are kept in the session.
        let guard = self.writer()?;
        // A record from an earlier try of the same file goes first: a
        // record always describes the file beside it.
        let _ = std::fs::remove_file(&record);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(RegistryError::io("creating", &path))?;
        progress.phase("staging", 0);
        let staged = stage_items(&self.store, input, &file, rel, progress);
        let (whole, len, pieces) = match staged {
            Ok(s) => s,
            Err(e) => {
                drop(file);
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        file.set_len(len).map_err(RegistryError::io("writing", &path))?;
        let blobs = staged_blob(&session, BlobId([0; 32]));
        if let Some(dir) = blobs.parent() {
            std::fs::create_dir_all(dir).map_err(RegistryError::io("creating", dir))?;
        }
        let mut report = StageReport {
            path: rel.to_string(),
            bytes: len,
            chunks: pieces.len(),
            new_chunks: 0,
            new_bytes: 0,
        };
        let mut chunks = Vec::with_capacity(pieces.len());
        let mut kept_here = HashSet::new();
        for (at, piece) in pieces {
            let kept = match piece.pending {
                Some(pending) if !self.store.contains(piece.id) && kept_here.insert(piece.id) => {
                    pending.keep_as(&staged_blob(&session, piece.id))?;
                    report.new_chunks += 1;
                    report.new_bytes += piece.len;
                    true
                }
                _ => kept_here.contains(&piece.id),
            };
            chunks.push(StagedChunk {
                at,
                len: piece.len,
                blob: piece.id.to_hex(),
                crc: piece.crc,
                kept,
            });
        }
        let written = StagedFile {
            len,
            blake3: whole.to_hex().to_string(),
            chunks,
        };
        let json = serde_json::to_vec(&written)
            .map_err(|e| RegistryError::Internal(format!("encoding the record of {rel}: {e}")))?;
        let dir = record.parent().unwrap_or(&session);
        let mut tmp =
            tempfile::NamedTempFile::new_in(dir).map_err(RegistryError::io("creating a temp file in", dir))?;
        io::Write::write_all(&mut tmp, &json).map_err(RegistryError::io("writing", &record))?;
        tmp.persist(&record)
            .map_err(|e| RegistryError::io("writing", &record)(e.error))?;
        drop(guard);
        Ok(report)
    }

    /// `session` as a staging session of this registry: a folder directly
    /// in `staging/` holding its lock file.
    pub(crate) fn staging_session(&self, session: &Path) -> Result<PathBuf, RegistryError> {
        let not_one = || {
            RegistryError::from(PushError::NotAStagingSession {
                session: session.to_path_buf(),
                root: self.layout.root().to_path_buf(),
                lock: STAGING_LOCK,
            })
        };
        let canonical = session.canonicalize().map_err(|_| not_one())?;
        let staging = self.layout.staging_dir().canonicalize().map_err(|_| not_one())?;
        if canonical.parent() != Some(staging.as_path()) || !canonical.join(STAGING_LOCK).is_file() {
            return Err(not_one());
        }
        Ok(canonical)
    }
}

/// A staged file's path: relative, plain names, not the session's own.
fn check_staged_path(rel: &str) -> Result<(), RegistryError> {
    let path = Path::new(rel);
    let plain = !rel.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    let first = path
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    if !plain || first.as_deref() == Some(STAGED) || rel == STAGING_LOCK {
        return Err(PushError::BadStagedPath {
            rel: rel.to_string(),
            staged: STAGED,
            lock: STAGING_LOCK,
        }
        .into());
    }
    Ok(())
}

/// Read `input` to its end into `file`: items cut one by one, chunks into
/// pending blobs. Returns the file's hash, its length and the chunks.
fn stage_items<'s>(
    store: &'s BlobStore,
    input: &mut dyn Read,
    file: &File,
    rel: &str,
    progress: &dyn Progress,
) -> Result<(blake3::Hash, u64, BTreeMap<u64, StreamedPiece<'s>>), RegistryError> {
    let recording = Cell::new(false);
    let mut buffered = BufReader::with_capacity(1 << 20, Counted { input, progress });
    let ((cut, whole), synced) = with_synced_pieces(store, |send| {
        let mut sink = Store {
            store,
            spool: file,
            recording: &recording,
            whole: blake3::Hasher::new(),
            base: 0,
            pieces: send,
        };
        let cut = cut_items(&mut buffered, &mut sink);
        (cut, sink.whole.finalize())
    });
    let len = cut.map_err(|(at, reason)| RegistryError::Stream {
        source_name: rel.to_string(),
        reason: format!("the item at byte {at}: {reason}"),
    })?;
    Ok((whole, len, synced?))
}

/// Cut the items of a data file one after another; returns its length,
/// or where and why it failed.
fn cut_items(input: &mut dyn Read, sink: &mut Store<'_, '_>) -> Result<u64, (u64, String)> {
    let mut at = 0u64;
    loop {
        let mut head = [0u8; 9];
        let n = read_up_to(input, &mut head).map_err(|e| (at, e.to_string()))?;
        if n == 0 {
            return Ok(at);
        }
        sink.base = at;
        let zip = head.starts_with(b"PK\x03\x04");
        let safetensors = n == head.len()
            && head[8] == b'{'
            && u64::from_le_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]])
                <= StreamLimits::default().max_record;
        if !(zip || safetensors) {
            // Not an item reg cuts: the rest of the file as it is.
            return copy_rest(input, &head[..n], sink)
                .map(|rest| at + rest)
                .map_err(|e| (at, e.to_string()));
        }
        let mut item = io::Cursor::new(&head[..n]).chain(&mut *input);
        let (_, len) =
            stream_in::split_next(&mut item, sink, StreamLimits::default()).map_err(|e| (at, e.to_string()))?;
        at += len;
    }
}

/// Fill `buf` as far as the stream goes; returns how much it got.
fn read_up_to(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// `head` and the rest of the stream into the file as skeleton; returns
/// how many bytes that was.
fn copy_rest(input: &mut dyn Read, head: &[u8], sink: &mut Store<'_, '_>) -> io::Result<u64> {
    sink.skeleton(0, head)?;
    let mut at = head.len() as u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(at),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sink.skeleton(at, &buf[..n])?;
        at += n as u64;
    }
}

/// The files of a directory push that `reg stage` streamed: their
/// records, by the file's path in the pushed folder.
pub(crate) struct StagedFiles {
    session: PathBuf,
    /// The pushed folder's path in the session ("" for the session).
    prefix: PathBuf,
    /// Blobs adopted so far (each once per push).
    adopted: HashSet<BlobId>,
}

impl StagedFiles {
    /// The staged files of the folder `dir`, which must be in the staging
    /// session `session` of `registry`.
    pub(crate) fn of(registry: &Registry, session: &Path, dir: &Path) -> Result<StagedFiles, RegistryError> {
        let session = registry.staging_session(session)?;
        let canonical = dir.canonicalize().map_err(RegistryError::io("reading", dir))?;
        let prefix = canonical
            .strip_prefix(&session)
            .map_err(|_| {
                RegistryError::from(PushError::OutsideSession {
                    dir: dir.to_path_buf(),
                    session: session.clone(),
                })
            })?
            .to_path_buf();
        Ok(StagedFiles {
            session,
            prefix,
            adopted: HashSet::new(),
        })
    }

    /// What `reg stage` recorded of the folder's file `rel` (of length
    /// `len`): its hash and chunks, which the push takes instead of
    /// reading the holes, the kept chunks adopted as pending blobs of
    /// `store`; `None` for a file it did not stage (the coordinator's
    /// `.metadata`).
    pub(crate) fn take<'s>(
        &mut self,
        store: &'s BlobStore,
        rel: &str,
        len: u64,
    ) -> Result<Option<Streamed<'s>>, RegistryError> {
        let in_session = self.prefix.join(rel);
        let in_session = in_session.to_string_lossy();
        let record = staged_record(&self.session, &in_session);
        let bytes = match std::fs::read(&record) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RegistryError::io("reading", &record)(e)),
        };
        let bad = |why: String| RegistryError::Stream {
            source_name: in_session.to_string(),
            reason: format!("its staging record {}: {why}", record.display()),
        };
        let staged: StagedFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if staged.len != len {
            return Err(bad(format!("it records {} bytes, the file has {len}", staged.len)));
        }
        let file_hash = blake3::Hash::from_hex(&staged.blake3).map_err(|e| bad(e.to_string()))?;
        let mut pieces = BTreeMap::new();
        for c in staged.chunks {
            let id = BlobId::from_hex(&c.blob).map_err(|e| bad(e.to_string()))?;
            if c.len < DEFER_MIN_LEN || c.at.checked_add(c.len).is_none_or(|end| end > len) {
                return Err(bad(format!("its chunk at byte {} is not one reg stage writes", c.at)));
            }
            let kept = staged_blob(&self.session, id);
            let pending = if c.kept && !store.contains(id) && self.adopted.insert(id) {
                Some(store.adopt_kept(&kept, id, c.len)?)
            } else {
                None
            };
            pieces.insert(
                c.at,
                StreamedPiece {
                    len: c.len,
                    id,
                    crc: c.crc,
                    pending,
                },
            );
        }
        Ok(Some(Streamed { file_hash, pieces }))
    }
}
