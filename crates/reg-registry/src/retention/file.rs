//! Retention of a single-file version: the version becomes the
//! weights-only file its export makes (what Lightning's
//! `save_weights_only=True` keeps), with the same name and number.
//!
//! The export is not written out and pushed again: it is written into a
//! sparse spool in the registry's `tmp/` that holds only its small
//! records (zip headers, the pickle, small storages, the central
//! directory), with holes where its big storages go, while the bytes of
//! every storage are hashed (the whole file's blake3) and CRC-checked as
//! they pass. Those storages are the blobs the version has already, so
//! the push that takes the spool's place ([`Registry::replace_version`])
//! takes them from the store by id, as a stream push takes the blobs
//! that streamed in (`crate::push::Streamed`), and reads only the small
//! records from the spool.

use crate::error::RegistryError;
use crate::export::StorageMarks;
use crate::lock::WriteGuard;
use crate::push::{Streamed, StreamedPiece, DEFER_MIN_LEN};
use crate::registry::Registry;
use crate::resolve::Resolved;
use reg_store::BlobId;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

impl Registry {
    /// Replace the single-file version `v` by its weights-only export
    /// (see the module docs).
    pub(crate) fn drop_optimizer(&self, guard: &WriteGuard, v: &Resolved) -> Result<(), RegistryError> {
        let tmp_dir = self.layout.tmp_dir();
        std::fs::create_dir_all(&tmp_dir).map_err(RegistryError::io("creating", &tmp_dir))?;
        let file = tempfile::Builder::new()
            .prefix(&format!("weights-{}-", v.record.id.short()))
            .suffix(".spool")
            .tempfile_in(&tmp_dir)
            .map_err(RegistryError::io("creating a temp file in", &tmp_dir))?;
        let spool = Spool {
            file: file.as_file(),
            state: RefCell::new(SpoolState::default()),
        };
        self.export_to_marked(
            v,
            crate::ExportFormat::WeightsOnly,
            crate::select::ExportScope::default(),
            &mut &spool,
            Some(&spool),
        )?;
        let state = spool.state.into_inner();
        file.as_file()
            .set_len(state.pos)
            .map_err(RegistryError::io("writing", file.path()))?;
        let streamed = Streamed {
            file_hash: state.hasher.finalize(),
            pieces: state.pieces,
        };
        self.replace_version(guard, v, file.path(), streamed).map(|_| ())
    }
}

/// The export's output: small records written to `file` at their
/// offsets, storages hashed and counted as they pass.
struct Spool<'a> {
    file: &'a File,
    state: RefCell<SpoolState>,
}

/// What the spool has seen of the export so far.
#[derive(Default)]
struct SpoolState {
    /// Bytes of the export written so far.
    pos: u64,
    /// blake3 of every byte of the export.
    hasher: blake3::Hasher,
    /// The storage being written, between [`StorageMarks::begin`] and
    /// [`StorageMarks::end`].
    storage: Option<Storage>,
    /// Storages of [`DEFER_MIN_LEN`] bytes or more, by their offset: the
    /// push takes them from the store.
    pieces: BTreeMap<u64, StreamedPiece<'static>>,
    /// A small storage could not be written to the file; the export's
    /// next write reports it.
    error: Option<io::Error>,
}

/// A storage on its way through the spool.
struct Storage {
    id: BlobId,
    start: u64,
    len: u64,
    crc: crc32fast::Hasher,
    /// Its first bytes, up to [`DEFER_MIN_LEN`]: written to the file when
    /// the storage turns out small (the push reads those from it).
    head: Vec<u8>,
}

impl Write for &Spool<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.state.borrow_mut();
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        state.hasher.update(buf);
        let at = state.pos;
        match state.storage.as_mut() {
            Some(s) => {
                s.crc.update(buf);
                s.len += buf.len() as u64;
                let room = (DEFER_MIN_LEN as usize).saturating_sub(s.head.len());
                s.head.extend_from_slice(&buf[..room.min(buf.len())]);
            }
            None => self.file.write_all_at(buf, at)?,
        }
        state.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.state.borrow_mut().error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl StorageMarks for Spool<'_> {
    fn begin(&self, id: BlobId) {
        let mut state = self.state.borrow_mut();
        let start = state.pos;
        state.storage = Some(Storage {
            id,
            start,
            len: 0,
            crc: crc32fast::Hasher::new(),
            head: Vec::new(),
        });
    }

    fn end(&self) {
        let mut state = self.state.borrow_mut();
        let Some(s) = state.storage.take() else { return };
        if s.len >= DEFER_MIN_LEN {
            let piece = StreamedPiece {
                len: s.len,
                id: s.id,
                crc: s.crc.finalize(),
                pending: None,
            };
            state.pieces.insert(s.start, piece);
        } else if let Err(e) = self.file.write_all_at(&s.head, s.start) {
            state.error = Some(e);
        }
    }
}
