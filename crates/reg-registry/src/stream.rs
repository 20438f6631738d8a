//! A version's original bytes as a stream that can start at any offset.
//!
//! [`Registry::version_reader`] gives a [`VersionReader`]: a `Read` over
//! the file a version was pushed from, walking the manifest's pieces in
//! file order (skeleton slices out of the skeleton blob, payload blobs
//! decoded one frame at a time through their delta chains). It starts at
//! any byte offset: whole pieces before it are skipped without being
//! opened, and inside the first payload the bytes before the offset are
//! decoded and discarded (a frame cannot be entered in the middle).
//! Memory is the skeleton blob plus one blob reader (a frame buffer per
//! chain level), whatever the file's size. It is what a server sends for
//! a download or a `Range` request.
//!
//! Nothing is hashed on the way: the frames of planes and delta blobs are
//! still checked against the checksums they record as they decode, but a
//! raw or zstd blob whose bytes changed on disk is not caught here (a
//! range of a file cannot be checked against the whole file's hash;
//! `reg pull` and `reg verify` check it). Damage found while reading is an
//! `InvalidData` I/O error naming the version.
//!
//! The reader holds its own handle on the blob directory, not the
//! registry, so the registry (and its lock) can be closed while a long
//! download runs. Blob files are opened one piece at a time: a re-encoding
//! that replaces a blob file (same bytes, other encoding) is harmless, a
//! gc that deletes the blobs of a removed version ends the stream with an
//! error.

use crate::error::{ReadError, RegistryError};
use crate::registry::Registry;
use crate::resolve::Resolved;
use reg_format::manifest::{FileLayout, Piece};
use reg_store::{BlobStore, ChainReader, StoreError};
use std::io::{self, Read};

/// Bytes decoded and thrown away at a time to reach the start offset.
const SKIP_CHUNK: usize = 256 << 10;

/// Reads a version's original bytes from some offset on (see the module
/// doc). Returned by [`Registry::version_reader`].
pub struct VersionReader {
    /// Keeps gc from deleting the blobs still to be read (the version's
    /// reader guard, see `crate::lock`).
    _pin: Option<std::sync::Arc<crate::lock::ReadGuard>>,
    store: BlobStore,
    skeleton: std::sync::Arc<Vec<u8>>,
    pieces: Vec<Piece>,
    /// Index of the next piece to open.
    next: usize,
    current: Current,
    /// `name@vN`, for errors.
    label: String,
    /// Bytes left to produce.
    remaining: u64,
}

/// The piece being read.
enum Current {
    /// Between pieces (or at the end).
    None,
    /// Skeleton bytes `at..end` of the skeleton blob.
    Skeleton { at: usize, end: usize },
    /// A payload blob, with this many bytes left to produce.
    Payload { reader: Box<ChainReader>, left: u64 },
}

impl VersionReader {
    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    fn damaged(&self, reason: impl std::fmt::Display) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("version {} is damaged: {reason}", self.label),
        )
    }

    /// Open piece `self.next`, skipping its first `skip` bytes.
    fn open_next(&mut self, skip: u64) -> io::Result<()> {
        let Some(piece) = self.pieces.get(self.next).cloned() else {
            self.current = Current::None;
            return Ok(());
        };
        self.next += 1;
        self.current = match piece {
            Piece::Skeleton { offset, len } => {
                // Checked against the skeleton's length when the reader was made.
                let at = to_usize(offset.saturating_add(skip))?;
                let end = to_usize(offset.saturating_add(len))?;
                Current::Skeleton { at, end }
            }
            Piece::Payload { blob, len } => {
                let mut reader = self.store.unchecked_reader(blob).map_err(|e| self.store_error(e))?;
                if reader.len() != len {
                    return Err(self.damaged(format!(
                        "blob {blob} holds {} bytes, the manifest says {len}",
                        reader.len()
                    )));
                }
                let mut to_skip = skip;
                let mut scratch = vec![0u8; SKIP_CHUNK.min(to_usize(skip)?).max(1)];
                while to_skip > 0 {
                    let want = scratch.len().min(to_usize(to_skip)?);
                    let n = reader
                        .read(&mut scratch[..want])
                        .map_err(|e| self.damaged(format!("blob {blob}: {e}")))?;
                    if n == 0 {
                        return Err(self.damaged(format!("blob {blob} is truncated")));
                    }
                    to_skip -= n as u64;
                }
                Current::Payload {
                    reader: Box::new(reader),
                    left: len - skip,
                }
            }
        };
        Ok(())
    }

    fn store_error(&self, e: StoreError) -> io::Error {
        match e {
            StoreError::Io { .. } => io::Error::other(e.to_string()),
            e => self.damaged(e),
        }
    }
}

fn to_usize(n: u64) -> io::Result<usize> {
    usize::try_from(n).map_err(io::Error::other)
}

impl Read for VersionReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.remaining == 0 || buf.is_empty() {
                return Ok(0);
            }
            match &mut self.current {
                Current::None => {
                    if self.next >= self.pieces.len() {
                        return Err(self.damaged("the pieces end before the file does"));
                    }
                    self.open_next(0)?;
                }
                Current::Skeleton { at, end } => {
                    let n = buf.len().min(*end - *at);
                    if n == 0 {
                        self.current = Current::None;
                        continue;
                    }
                    buf[..n].copy_from_slice(&self.skeleton[*at..*at + n]);
                    *at += n;
                    self.remaining -= n as u64;
                    return Ok(n);
                }
                Current::Payload { reader, left } => {
                    if *left == 0 {
                        self.current = Current::None;
                        continue;
                    }
                    let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let n = match reader.read(&mut buf[..want]) {
                        Ok(0) => return Err(self.damaged("a payload blob is truncated")),
                        Ok(n) => n,
                        Err(e) => return Err(self.damaged(e)),
                    };
                    *left -= n as u64;
                    self.remaining -= n as u64;
                    return Ok(n);
                }
            }
        }
    }
}

impl Registry {
    /// A reader over version `v`'s original bytes from byte `start` on
    /// (`start` may equal the size: an empty reader). The reader does not
    /// borrow the registry, which may be closed while it is read.
    pub fn version_reader(&self, v: &Resolved, start: u64) -> Result<VersionReader, RegistryError> {
        if v.manifest.is_directory() {
            return Err(ReadError::DirectoryVersion {
                version: v.manifest.label().to_string(),
                instead: "read its files one by one (file_reader) or as a tar stream",
            }
            .into());
        }
        let layout = v.manifest.files().remove(0);
        self.layout_reader(v, &layout, start)
    }

    /// A reader over one file of a directory version (`path` as the
    /// version lists it), from byte `start` on.
    pub fn file_reader(&self, v: &Resolved, path: &str, start: u64) -> Result<VersionReader, RegistryError> {
        let files = v.manifest.files();
        let Some(layout) = files.iter().find(|f| f.path.is_some_and(|p| p.as_str() == path)) else {
            return Err(ReadError::NoSuchFile {
                version: v.manifest.label().to_string(),
                path: path.to_string(),
            }
            .into());
        };
        self.layout_reader(v, layout, start)
    }

    fn layout_reader(&self, v: &Resolved, m: &FileLayout<'_>, start: u64) -> Result<VersionReader, RegistryError> {
        let label = v.manifest.label().to_string();
        if start > m.size {
            return Err(ReadError::StartPastEnd {
                version: label,
                size: m.size,
                start,
            }
            .into());
        }
        let damaged = |source: StoreError| RegistryError::Damaged {
            version: label.clone(),
            source,
        };
        let skeleton = self.skeleton(m.skeleton).map_err(damaged)?;
        // The same checks as pull's plan: the pieces add up to the file
        // and every skeleton slice lies inside the skeleton blob.
        let mut total = 0u64;
        let mut first = None;
        for (i, piece) in m.pieces.iter().enumerate() {
            if let Piece::Skeleton { offset, len } = piece {
                if offset.checked_add(*len).is_none_or(|end| end > skeleton.len() as u64) {
                    return Err(damaged(StoreError::Corrupt {
                        id: m.skeleton,
                        reason: "skeleton shorter than the manifest says".into(),
                    }));
                }
            }
            let end = total.saturating_add(piece.len());
            if first.is_none() && start < end {
                first = Some((i, start - total));
            }
            total = end;
        }
        if total != m.size {
            return Err(damaged(StoreError::Corrupt {
                id: m.skeleton,
                reason: format!("manifest pieces add up to {total} bytes, the file has {}", m.size),
            }));
        }
        // A store of its own on the same backend: the reader outlives `self`.
        let store = self.store.handle();
        let mut reader = VersionReader {
            _pin: v._pin.clone(),
            store,
            skeleton,
            pieces: m.pieces.to_vec(),
            next: m.pieces.len(),
            current: Current::None,
            label: label.clone(),
            remaining: m.size - start,
        };
        if let Some((index, skip)) = first {
            reader.next = index;
            reader.open_next(skip).map_err(|e| ReadError::CannotSeek {
                version: label.clone(),
                start,
                reason: e.to_string(),
            })?;
        }
        Ok(reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, DeltaTiming, PushOptions, VersionRef};
    use std::path::{Path, PathBuf};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
    }

    /// Every checkpoint fixture (not the broken ones).
    fn fixture_files() -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack: Vec<PathBuf> = ["lightning", "torch", "safetensors", "objects"]
            .iter()
            .map(|d| fixtures().join(d))
            .collect();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("fixture dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    fn read_from(reg: &Registry, v: &Resolved, start: u64) -> Vec<u8> {
        let mut r = reg.version_reader(v, start).expect("reader");
        assert_eq!(r.remaining(), v.manifest.size - start);
        let mut out = Vec::new();
        // Small reads, so that pieces are crossed in the middle of a read too.
        let mut buf = [0u8; 777];
        loop {
            let n = r.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(r.remaining(), 0);
        out
    }

    /// Offsets of every class: the ends, each piece's first, second and
    /// last byte, and a byte in its middle.
    fn offsets(v: &Resolved) -> Vec<u64> {
        let mut out = vec![0, v.manifest.size];
        let mut at = 0u64;
        for p in &v.manifest.pieces {
            let len = p.len();
            out.extend([at, at + 1, at + len / 2, (at + len).saturating_sub(1)]);
            at += len;
        }
        out.retain(|o| *o <= v.manifest.size);
        out.sort();
        out.dedup();
        out
    }

    fn check_all(reg: &Registry, name: &str, file: &Path) {
        let bytes = std::fs::read(file).expect("fixture");
        let v = reg.resolve(&VersionRef::parse(name).expect("ref")).expect("resolve");
        assert_eq!(read_from(reg, &v, 0), bytes, "{}", file.display());
        for start in offsets(&v) {
            let got = read_from(reg, &v, start);
            assert!(
                got == bytes[start as usize..],
                "{} from byte {start}: {} bytes differ",
                file.display(),
                got.len()
            );
        }
        assert!(reg.version_reader(&v, v.manifest.size + 1).is_err());
    }

    #[test]
    fn every_fixture_from_every_offset_class() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            deltas: DeltaTiming::Inline,
            ..Config::at(dir.path().join("reg"))
        };
        let reg = Registry::open(config).expect("open");
        let mut pushed = Vec::new();
        for (i, file) in fixture_files().iter().enumerate() {
            // Series of one folder share a name, so older versions become deltas.
            let name = format!(
                "f{}",
                file.parent()
                    .and_then(|p| p.file_name())
                    .map(|s| s.to_string_lossy().replace(['=', '.'], "-"))
                    .unwrap_or_default()
            );
            let opts = PushOptions {
                name: Some(name.clone()),
                ..PushOptions::default()
            };
            let r = reg.push(file, &opts).expect("push");
            pushed.push((
                reg_format::ids::VersionLabel::new(&name, r.number).to_string(),
                file.clone(),
                i,
            ));
        }
        let deltas = pushed.iter().any(|(name, _, _)| {
            let v = reg.resolve(&VersionRef::parse(name).expect("ref")).expect("resolve");
            reg.show_view(&v).expect("show").stored.deltas > 0
        });
        assert!(
            deltas,
            "no version is stored as deltas: the test would not read a chain"
        );
        for (name, file, _) in &pushed {
            check_all(&reg, name, file);
        }
    }

    /// Payloads of several frames (8 MiB each), as deltas: starts inside
    /// the second frame of a chained blob.
    #[test]
    fn multi_frame_delta_payloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            deltas: DeltaTiming::Inline,
            ..Config::at(dir.path().join("reg"))
        };
        let reg = Registry::open(config).expect("open");
        let spec = reg_write::synth::RunSpec {
            layers: 1,
            frozen: 0,
            ..reg_write::synth::RunSpec::of_size(30 << 20)
        };
        let mut files = Vec::new();
        for epoch in 0..2 {
            let path = dir.path().join(format!("epoch={epoch}.ckpt"));
            let f = std::fs::File::create(&path).expect("create");
            reg_write::synth::write_epoch(std::io::BufWriter::new(f), &spec, epoch).expect("write");
            let opts = PushOptions {
                name: Some("big".into()),
                ..PushOptions::default()
            };
            reg.push(&path, &opts).expect("push");
            files.push(path);
        }
        let v1 = reg.resolve(&VersionRef::parse("big@v1").expect("ref")).expect("v1");
        assert!(reg.show_view(&v1).expect("show").stored.deltas > 0, "v1 has no deltas");
        let bytes = std::fs::read(&files[0]).expect("read");
        let mut at = 0u64;
        for p in &v1.manifest.pieces {
            if p.len() > 9 << 20 {
                for start in [at + (8 << 20) - 1, at + (8 << 20), at + (8 << 20) + 4097] {
                    assert!(
                        read_from(&reg, &v1, start) == bytes[start as usize..],
                        "from byte {start}"
                    );
                }
            }
            at += p.len();
        }
        let v2 = reg.resolve(&VersionRef::parse("big@v2").expect("ref")).expect("v2");
        assert!(read_from(&reg, &v2, 0) == std::fs::read(&files[1]).expect("read"));
    }
}
