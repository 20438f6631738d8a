//! Blob files in their stored form, for moving blobs between stores.
//!
//! A remote keeps blob files exactly as they are on disk here (header and
//! encoded body, see docs/format.md), so uploads send the file bytes as
//! they are and downloads write them back as they arrive. A blob that
//! arrives is written to a temp file, then decoded and hashed; only when it
//! yields exactly the bytes its id names is it renamed into place. A
//! damaged download never enters the store.

use crate::backend::{BlobFile, TempFile};
use crate::blob_file;
use crate::chain::{self, ChainReader};
use crate::{BlobId, BlobStore, PutOutcome, StoreError};
use std::io::{self, Read, Write};
use std::path::PathBuf;

impl BlobStore {
    /// The blob file's bytes exactly as stored (header and encoded body).
    /// Not verified: the receiving side checks them.
    pub fn read_stored(&self, id: BlobId) -> Result<Vec<u8>, StoreError> {
        let (mut file, len) = self.open_stored(id)?;
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut out)
            .map_err(|e| missing_or_io(id, self.path_of(id), e))?;
        Ok(out)
    }

    /// Open the blob file for streaming its stored bytes; returns the
    /// backend's reader and the file's length.
    pub fn open_stored(&self, id: BlobId) -> Result<(Box<dyn BlobFile>, u64), StoreError> {
        let file = self
            .backend
            .open(id)
            .map_err(|e| missing_or_io(id, self.path_of(id), e))?;
        let len = file.file_len();
        Ok((file, len))
    }

    /// Store a blob file received in stored form, after checking that it
    /// decodes to bytes whose blake3 is `id`. Does nothing when the blob
    /// is already stored. A damaged file is [`StoreError::Corrupt`] and
    /// leaves nothing behind.
    pub fn put_stored(&self, id: BlobId, stored: &[u8]) -> Result<PutOutcome, StoreError> {
        let mut w = self.stored_writer(id)?;
        w.write_all(stored).map_err(StoreError::io("writing", w.path()))?;
        w.commit()
    }

    /// A writer for a blob file that arrives in pieces; nothing is stored
    /// until [`StoredWriter::commit`] has verified it. Dropping the writer
    /// without committing deletes what was written.
    pub fn stored_writer(&self, id: BlobId) -> Result<StoredWriter<'_>, StoreError> {
        let tmp = self
            .backend
            .create_temp(&format!("{}.in", &id.to_hex()[..16]))
            .map_err(StoreError::io("creating a temp file in", self.temp_dir()))?;
        Ok(StoredWriter {
            store: self,
            id,
            tmp,
            len: 0,
        })
    }
}

fn missing_or_io(id: BlobId, path: PathBuf, e: io::Error) -> StoreError {
    match e.kind() {
        io::ErrorKind::NotFound => StoreError::Missing(id),
        _ => StoreError::Io {
            action: "reading",
            path,
            source: e,
        },
    }
}

/// A blob file being received in stored form (see
/// [`BlobStore::stored_writer`]).
pub struct StoredWriter<'s> {
    store: &'s BlobStore,
    id: BlobId,
    tmp: Box<dyn TempFile>,
    len: u64,
}

impl Write for StoredWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tmp.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

impl StoredWriter<'_> {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The temp file being written, for messages.
    pub fn path(&self) -> PathBuf {
        self.tmp.path()
    }

    /// A new reader of what was written, from its first byte.
    fn written_so_far(&mut self) -> Result<Box<dyn BlobFile>, StoreError> {
        let tmp_path = self.tmp.path();
        self.tmp.flush().map_err(StoreError::io("writing", &tmp_path))?;
        self.tmp.reader().map_err(StoreError::io("reopening", &tmp_path))
    }

    /// The parent named in the header written so far, for a delta blob
    /// (`None` for other codecs, or before the header has arrived).
    pub fn parent(&mut self) -> Result<Option<BlobId>, StoreError> {
        let mut reader = self.written_so_far()?;
        match blob_file::read_header(&mut reader, self.id) {
            Ok(h) => Ok(h.parent),
            Err(_) => Ok(None),
        }
    }

    /// Verify what was written (header, decoding, length and blake3 of the
    /// decoded bytes against the id), then make it the blob's file: fsync,
    /// install under its name, make the name durable (in both durability
    /// modes: a received blob is often the only copy here of a version
    /// about to be committed). When the blob exists already, the received
    /// copy is dropped.
    pub fn commit(mut self) -> Result<PutOutcome, StoreError> {
        let id = self.id;
        let tmp_path = self.tmp.path();
        let mut reader = self.written_so_far()?;
        let header = blob_file::read_header(&mut reader, id)?;
        // A delta decodes against its parent, which must be stored first.
        let backend = &*self.store.backend;
        let mut decoded = ChainReader::open(id, reader, header, &|p| chain::open_file(backend, p))?;
        blob_file::decode_to(&mut decoded, header, id, &mut io::sink())?;
        if header.codec == crate::Codec::Raw && self.len != blob_file::HEADER_LEN + header.raw_len {
            return Err(blob_file::corrupt(id, "raw blob file has trailing bytes"));
        }
        if let Some(stored_len) = self
            .store
            .backend
            .stored_len(id)
            .map_err(StoreError::io("reading metadata of", self.store.path_of(id)))?
        {
            return Ok(PutOutcome {
                written: false,
                stored_len,
                codec: header.codec,
                parent: header.parent,
            });
        }
        self.tmp.sync().map_err(StoreError::io("syncing", &tmp_path))?;
        let path = self.store.path_of(id);
        backend.install(self.tmp, id).map_err(|source| StoreError::Io {
            action: "renaming a blob into",
            path: path.clone(),
            source,
        })?;
        backend
            .sync(&[id])
            .map_err(StoreError::io("syncing the directory of", &path))?;
        Ok(PutOutcome {
            written: true,
            stored_len: self.len,
            codec: header.codec,
            parent: header.parent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bytes_travel_and_damage_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let a = tempfile::tempdir()?;
        let b = tempfile::tempdir()?;
        let src = BlobStore::open(a.path().join("blobs"), 3)?;
        let dst = BlobStore::open(b.path().join("blobs"), 3)?;
        let data = vec![7u8; 50_000];
        let id = BlobId::of(&data);
        src.put(id, &data)?;
        let stored = src.read_stored(id)?;
        assert_eq!(stored.len() as u64, src.open_stored(id)?.1);

        let mut bad = stored.clone();
        let last = bad.len() - 3;
        bad[last] ^= 0x40;
        assert!(matches!(dst.put_stored(id, &bad), Err(StoreError::Corrupt { .. })));
        assert!(!dst.contains(id));
        let wrong = BlobId::of(b"something else");
        assert!(dst.put_stored(wrong, &stored).is_err());
        assert!(!dst.contains(wrong));

        let out = dst.put_stored(id, &stored)?;
        assert!(out.written);
        assert_eq!(dst.read(id)?, data);
        assert_eq!(dst.read_stored(id)?, stored);
        assert!(!dst.put_stored(id, &stored)?.written);
        assert_eq!(std::fs::read_dir(dst.temp_dir())?.count(), 0);
        assert!(matches!(dst.read_stored(BlobId::of(b"x")), Err(StoreError::Missing(_))));
        Ok(())
    }
}
