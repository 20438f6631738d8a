//! `reg push -`: a checkpoint read from a stream (standard input, a pipe
//! from `torch.save`), stored as a version exactly as the same bytes
//! pushed as a file would be.
//!
//! The stream is cut by [`reg_ckpt::stream_in::split`] as it arrives, so
//! a stream that is not a checkpoint, ends early or has a record torch
//! does not write is refused at once, before the rest is read. Each
//! storage of [`DEFER_MIN_LEN`] bytes or more goes straight into a
//! pending blob of the store, stored raw, hashed (blake3 and the zip's
//! CRC-32) as it passes: it is written once, never spooled. Everything
//! else (the zip records, the pickle, the central directory, small
//! storages) goes to a private sparse file in the registry's `tmp/` at
//! its offset in the checkpoint, with holes where the big storages are;
//! the push then understands that file as it understands any pushed
//! file (its headers and pickle only: payload bytes are never read
//! through the map) and takes the big storages' ids and blobs from the
//! stream instead of reading them. The whole checkpoint's blake3 is
//! taken as it passes too. Memory is bounded by the read buffer and the
//! largest non-storage record (docs/cli.md, "reg push -").
//!
//! The big storages are stored raw; a fast push ([`PushOptions::fast`])
//! leaves their compression to the background job, any other compresses
//! them before it returns (both through the index's `deferred` queue, so
//! a push killed in between leaves them to the next job).
//!
//! Legacy torch files cannot be cut in one pass (their storages' sizes
//! are in a pickle that follows other pickles, see
//! [`reg_ckpt::stream_in`]): they are read to the end into the same temp
//! file and pushed from it.

use super::payloads::{NewBlob, DEFER_MIN_LEN};
use super::{PushOptions, PushReport};
use crate::error::{PushError, RegistryError};
use crate::progress::Progress;
use crate::registry::Registry;
use reg_ckpt::stream_in::{self, StreamError, StreamLimits, StreamSink};
use reg_store::{BlobId, BlobStore, PendingBlob};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// The name a stream's errors use when no `--source` was given.
const STDIN: &str = "<stdin>";

/// Reads at least this long hash on two threads.
const PARALLEL_HASH_MIN: usize = 128 << 10;

/// A storage that went straight into a pending blob.
pub(crate) struct StreamedPiece<'s> {
    /// Its length.
    pub(crate) len: u64,
    /// blake3 of its bytes.
    pub(crate) id: BlobId,
    /// CRC-32 of its bytes (checked against the zip's record).
    pub(crate) crc: u32,
    /// Its bytes, stored raw; `None` when the store holds them already
    /// (a chunk `reg stage` found stored) or another piece brings them.
    pub(crate) pending: Option<PendingBlob<'s>>,
}

/// What the stream gave besides the spool: the whole checkpoint's hash
/// and the storages that streamed into blobs, by their offset.
pub(crate) struct Streamed<'s> {
    /// blake3 of every byte of the checkpoint.
    pub(crate) file_hash: blake3::Hash,
    /// The big storages, by the offset of their first byte.
    pub(crate) pieces: BTreeMap<u64, StreamedPiece<'s>>,
}

/// Reads the stream, writing what it reads to the spool at its offset
/// while `recording` is on: until the cut's first piece (the bytes the
/// cut's read buffer takes ahead), and for a legacy file to the end.
struct Tee<'a> {
    input: &'a mut dyn Read,
    spool: &'a File,
    read: u64,
    recording: &'a Cell<bool>,
    progress: &'a dyn Progress,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        if self.recording.get() {
            self.spool.write_all_at(&buf[..n], self.read)?;
        }
        self.read += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Where the cut's pieces go: skeleton and small storages into the spool
/// at their offsets, big storages into pending blobs; everything through
/// the whole-file hash.
pub(super) struct Store<'a, 's> {
    pub(super) store: &'s BlobStore,
    pub(super) spool: &'a File,
    /// Set while the [`Tee`] under the cut writes what it reads to the
    /// spool (a piece turns it off).
    pub(super) recording: &'a Cell<bool>,
    pub(super) whole: blake3::Hasher,
    /// Where the checkpoint being cut starts in the spool (a DCP data
    /// file is many, one after another).
    pub(super) base: u64,
    /// To the thread that syncs each blob while the next one streams.
    pub(super) pieces: std::sync::mpsc::Sender<(u64, StreamedPiece<'s>)>,
}

/// Run `cut` with a sender for the pieces it streams into blobs, each
/// fsynced on a thread of its own while the next one streams (so a
/// commit only renames them); returns what `cut` returned and the pieces
/// by offset, or the first error syncing one.
pub(super) fn with_synced_pieces<'s, T>(
    store: &'s BlobStore,
    cut: impl FnOnce(std::sync::mpsc::Sender<(u64, StreamedPiece<'s>)>) -> T,
) -> (T, Result<BTreeMap<u64, StreamedPiece<'s>>, reg_store::StoreError>) {
    let (send, received) = std::sync::mpsc::channel::<(u64, StreamedPiece<'s>)>();
    std::thread::scope(|scope| {
        let syncer = scope.spawn(move || {
            let mut pieces = BTreeMap::new();
            let mut first_error = None;
            for (at, mut piece) in received {
                if let Some(Err(e)) = piece.pending.as_mut().map(PendingBlob::sync_now) {
                    first_error.get_or_insert(e);
                }
                pieces.insert(at, piece);
            }
            match first_error {
                Some(e) => Err(e),
                None => Ok(pieces),
            }
        });
        let out = cut(send);
        let synced = syncer.join().unwrap_or_else(|_| {
            Err(reg_store::StoreError::Io {
                action: "syncing",
                path: store.temp_dir(),
                source: io::Error::other("the thread syncing streamed blobs panicked"),
            })
        });
        (out, synced)
    })
}

/// A storage's bytes on their way into its blob, hashed as they pass.
struct Hashing<'a> {
    body: &'a mut dyn Read,
    whole: &'a mut blake3::Hasher,
    own: blake3::Hasher,
    crc: crc32fast::Hasher,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.body.read(buf)?;
        let bytes = &buf[..n];
        // The two hashes on two cores: the stream is read at the speed
        // of this loop.
        let (whole, own, crc) = (&mut *self.whole, &mut self.own, &mut self.crc);
        if n >= PARALLEL_HASH_MIN {
            rayon::join(
                || whole.update(bytes),
                || {
                    own.update(bytes);
                    crc.update(bytes);
                },
            );
        } else {
            whole.update(bytes);
            own.update(bytes);
            crc.update(bytes);
        }
        Ok(n)
    }
}

impl StreamSink for Store<'_, '_> {
    fn skeleton(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        self.recording.set(false);
        self.whole.update(bytes);
        self.spool.write_all_at(bytes, self.base + at)
    }

    fn payload(&mut self, at: u64, key: &str, len: u64, body: &mut dyn Read) -> io::Result<()> {
        self.recording.set(false);
        let ended = |got: u64| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the stream ended inside storage {key}, after {got} of its {len} bytes"),
            )
        };
        if len < DEFER_MIN_LEN {
            let mut bytes = Vec::with_capacity(len as usize);
            body.take(len).read_to_end(&mut bytes)?;
            if bytes.len() as u64 != len {
                return Err(ended(bytes.len() as u64));
            }
            self.whole.update(&bytes);
            return self.spool.write_all_at(&bytes, self.base + at);
        }
        let mut hashing = Hashing {
            body,
            whole: &mut self.whole,
            own: blake3::Hasher::new(),
            crc: crc32fast::Hasher::new(),
        };
        let pending = self.store.pending_raw_from(len, &mut hashing).map_err(|e| match e {
            reg_store::StoreError::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof => ended(0),
            other => io::Error::other(other.to_string()),
        })?;
        let piece = StreamedPiece {
            len,
            id: BlobId(*hashing.own.finalize().as_bytes()),
            crc: hashing.crc.finalize(),
            pending: Some(pending),
        };
        self.pieces
            .send((self.base + at, piece))
            .map_err(|_| io::Error::other("the thread syncing streamed blobs stopped"))
    }
}

impl Registry {
    /// Push the checkpoint `input` streams (a torch zip as `torch.save`
    /// writes it, a legacy torch file, or safetensors) as a new version.
    /// `opts.source` names the file the version records (what `reg pull`
    /// writes by default); the model name defaults to its stem. A stream
    /// that ends early, is not a checkpoint, is followed by other bytes or
    /// carries an unsafe pickle is refused and nothing is stored.
    pub fn push_stream(
        &self,
        input: &mut dyn Read,
        opts: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<PushReport, RegistryError> {
        let shown = opts.source.clone().unwrap_or_else(|| STDIN.to_string());
        if opts.name.is_none() && opts.source.is_none() && self.config.default_name.is_none() {
            return Err(PushError::StreamUnnamed { stdin: STDIN }.into());
        }
        if opts.parent.is_some() {
            return Err(PushError::ParentOfStream { source_name: shown }.into());
        }
        // The writer guard (gc.lock shared) from the first byte: gc, which
        // cleans blobs/tmp/, waits until the spool is pushed or gone.
        let guard = self.writer()?;
        let tmp_dir = self.layout.tmp_dir();
        std::fs::create_dir_all(&tmp_dir).map_err(RegistryError::io("creating", &tmp_dir))?;
        let spool = tempfile::Builder::new()
            .prefix("stream-")
            .suffix(".spool")
            .tempfile_in(&tmp_dir)
            .map_err(RegistryError::io("creating a temp file in", &tmp_dir))?;
        progress.phase("reading", 0);
        let streamed = read_stream(&self.store, input, spool.as_file(), &shown, progress)?;
        let path = spool.path().to_path_buf();
        let mut opts = opts.clone();
        opts.source = Some(shown);
        let result = self.push_inner(&guard, &path, &opts, progress, None, streamed);
        let result = result.and_then(|report| self.compress_unless_deferred(report, &opts));
        progress.finish();
        drop(spool);
        drop(guard);
        self.after_push(result?, &opts)
    }

    /// The storages a stream brought are stored raw: unless the push
    /// leaves them to the background job, compress them now (when a job
    /// runs, it takes them: it holds `deltas.lock` and empties the queue
    /// before it lets it go).
    fn compress_unless_deferred(
        &self,
        mut report: PushReport,
        opts: &PushOptions,
    ) -> Result<PushReport, RegistryError> {
        if report.deferred.is_empty() || self.defers_compression(opts) {
            return Ok(report);
        }
        let Some(_lock) = self.locks.try_deltas("reg push compressing what it streamed")? else {
            return Ok(report);
        };
        // This push's blobs only: others a fast push left are the job's.
        let done = self.compress_deferred(&report.deferred)?;
        report.written_bytes = report.written_bytes.saturating_sub(done.bytes_before) + done.bytes_after;
        // Each one is compressed now, or stays raw where that does not pay.
        report.deferred.clear();
        Ok(report)
    }
}

/// Read the whole stream, checking as it goes that it is one checkpoint
/// and nothing else: big storages into pending blobs, the rest into
/// `spool` at its offsets (all of it for a legacy file: `None`).
fn read_stream<'s>(
    store: &'s BlobStore,
    input: &mut dyn Read,
    spool: &File,
    shown: &str,
    progress: &dyn Progress,
) -> Result<Option<Streamed<'s>>, RegistryError> {
    let stream_err = |e: StreamError| RegistryError::Stream {
        source_name: shown.to_string(),
        reason: e.to_string(),
    };
    let io_err = |e: io::Error| RegistryError::Stream {
        source_name: shown.to_string(),
        reason: match e.kind() {
            io::ErrorKind::UnexpectedEof => e.to_string(),
            _ => format!("reading the stream: {e}"),
        },
    };
    let recording = Cell::new(true);
    let mut reader = Tee {
        input,
        spool,
        read: 0,
        recording: &recording,
        progress,
    };
    let ((cut, whole), synced) = with_synced_pieces(store, |send| {
        let mut sink = Store {
            store,
            spool,
            recording: &recording,
            whole: blake3::Hasher::new(),
            base: 0,
            pieces: send,
        };
        let cut = stream_in::split(&mut reader, &mut sink, StreamLimits::default());
        (cut, sink.whole.finalize())
    });
    match cut {
        Ok((_, len)) => {
            // What the read buffer took beyond the checkpoint, and what
            // is still to come, must be nothing.
            io::copy(&mut reader, &mut io::sink()).map_err(io_err)?;
            if reader.read != len {
                return Err(RegistryError::Stream {
                    source_name: shown.to_string(),
                    reason: format!(
                        "{} more bytes follow the end of the checkpoint at byte {len}",
                        reader.read - len
                    ),
                });
            }
            // The holes where big storages are, up to the last byte.
            spool.set_len(len).map_err(io_err)?;
            Ok(Some(Streamed {
                file_hash: whole,
                pieces: synced?,
            }))
        }
        Err(StreamError::NotOnePass) => {
            io::copy(&mut reader, &mut io::sink()).map_err(io_err)?;
            Ok(None)
        }
        Err(StreamError::Io(e)) => Err(io_err(e)),
        Err(e) => Err(stream_err(e)),
    }
}

/// The ids of the payloads that streamed into blobs, and their new
/// blobs: a piece for every payload segment of at least
/// [`DEFER_MIN_LEN`] bytes, at its offset and of its length, with the
/// CRC its zip record names. `payloads` are the checkpoint's; the ones
/// left over are read from the spool. The ids of pieces that brought no
/// blob and are not in the store go to `elsewhere` (another file of the
/// push must bring them).
pub(crate) fn take_streamed<'c, 's>(
    store: &'s BlobStore,
    streamed: &mut Streamed<'s>,
    payloads: Vec<super::payloads::Payload<'c>>,
    ids: &mut [Option<BlobId>],
    shown: &std::path::Path,
    elsewhere: &mut Vec<BlobId>,
) -> Result<(Vec<super::payloads::Payload<'c>>, Vec<NewBlob<'s>>), RegistryError> {
    let mut rest = Vec::new();
    let mut new: Vec<NewBlob<'s>> = Vec::new();
    for p in payloads {
        let start = p.seg.range.start;
        let len = p.seg.range.end - start;
        let Some(piece) = streamed.pieces.remove(&start) else {
            if len >= DEFER_MIN_LEN {
                return Err(cut_mismatch(shown, start));
            }
            rest.push(p);
            continue;
        };
        if piece.len != len {
            return Err(cut_mismatch(shown, start));
        }
        if let Some(want) = p.crc {
            if want != piece.crc {
                return Err(super::payloads::crc_error(shown, &p, want, piece.crc));
            }
        }
        ids[p.index] = Some(piece.id);
        if store.contains(piece.id) || new.iter().any(|n| n.id == piece.id) {
            continue;
        }
        match piece.pending {
            Some(pending) => new.push(NewBlob {
                id: piece.id,
                pending,
                raw_len: len,
                deferred: Some(p.width),
            }),
            None => elsewhere.push(piece.id),
        }
    }
    if let Some(at) = streamed.pieces.keys().next() {
        return Err(cut_mismatch(shown, *at));
    }
    Ok((rest, new))
}

impl Registry {
    /// The payloads of a file some of whose storages arrived as blobs
    /// (`streamed`: a stream push's or a staged file's): those pieces by
    /// [`take_streamed`], the rest read from the file as any file's
    /// payloads. Returns the id of each segment and the new blobs; errors
    /// name the file `shown`; `elsewhere` as for [`take_streamed`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read_streamed_payloads<'s>(
        &'s self,
        src: &super::payloads::Source<'_>,
        streamed: &mut Streamed<'s>,
        payloads: Vec<super::payloads::Payload<'_>>,
        known_lens: &std::collections::HashSet<u64>,
        bases: &(dyn Fn(&str, BlobId, u64) -> Option<crate::deltas::Pair> + Sync),
        pool: &rayon::ThreadPool,
        progress: &dyn Progress,
        shown: &std::path::Path,
        elsewhere: &mut Vec<BlobId>,
    ) -> Result<super::payloads::Payloads<'s>, RegistryError> {
        let mut ids = vec![None; src.segments];
        let (rest, mut new) = take_streamed(&self.store, streamed, payloads, &mut ids, shown, elsewhere)?;
        let read = self.read_payloads(src, &rest, known_lens, bases, pool, progress)?;
        for (slot, id) in ids.iter_mut().zip(read.ids) {
            *slot = slot.or(id);
        }
        // Small and big storages never share an id (their lengths differ).
        new.extend(read.new);
        Ok(super::payloads::Payloads { ids, new })
    }
}

fn cut_mismatch(shown: &std::path::Path, at: u64) -> RegistryError {
    RegistryError::Stream {
        source_name: shown.display().to_string(),
        reason: format!("the storage at byte {at} is not where the checkpoint's own records put it"),
    }
}
