//! Cutting a checkpoint that arrives as a stream (`reg push -`), in one
//! pass: skeleton bytes and tensor payloads as they go by, never the
//! whole file in memory.
//!
//! - **torch zip** (`torch.save` to a stream or a file, Lightning's
//!   `.ckpt`): a sequence of stored records, each a local header, its
//!   data and a data descriptor (torch's writer does not know sizes up
//!   front, so local headers carry zeros and the sizes follow the data),
//!   then the central directory. `data.pkl` comes first: once it is read,
//!   the pickle says how many bytes each `data/<key>` storage record
//!   holds, so a storage streams through with its length known. Other
//!   records (`version`, `byteorder`, the pickle itself) are read up to
//!   the data descriptor that matches them (signature, CRC-32 and length
//!   of the bytes before it) and kept as skeleton; they are small
//!   ([`StreamLimits::max_record`]).
//! - **safetensors**: the 8-byte length and the JSON header give every
//!   tensor's range before the first tensor byte arrives.
//!
//! Legacy torch files (`_use_new_zipfile_serialization=False`) are five
//! pickles and then the storages, whose sizes come from types named in
//! the object pickle (the fourth); reg reads them as a file instead
//! ([`StreamError::NotOnePass`]: the caller spools them), as they are
//! rare since torch 1.6 made the zip format the default.
//!
//! The sink receives the pieces in file order; the caller then
//! understands the file as usual from its skeleton (the records and the
//! central directory are all skeleton) and checks that the cut matches.

use crate::safetensors;
use crate::tensors;
use std::collections::BTreeMap;
use std::io::{self, Read};

/// Where the pieces of a stream go, in file order.
pub trait StreamSink {
    /// Skeleton bytes starting at file offset `at`.
    fn skeleton(&mut self, at: u64, bytes: &[u8]) -> io::Result<()>;
    /// A payload of `len` bytes at `at` (storage `key`): read exactly
    /// `len` bytes from `body` before returning (it yields no more).
    fn payload(&mut self, at: u64, key: &str, len: u64, body: &mut dyn Read) -> io::Result<()>;
}

/// Bounds of what a stream may make the reader hold in memory.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// Largest non-storage record (`data.pkl` included), and the largest
    /// safetensors header.
    pub max_record: u64,
    /// Largest central directory and end records.
    pub max_tail: u64,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_record: 512 << 20,
            max_tail: 64 << 20,
        }
    }
}

/// What a stream turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streamed {
    /// A torch zip.
    TorchZip,
    /// A safetensors file.
    Safetensors,
}

/// What went wrong reading a stream. Returned by [`split`].
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stream ended before the format said it would.
    #[error("the stream ended after {at} bytes, inside {what}")]
    Truncated {
        /// Bytes read.
        at: u64,
        /// What was being read.
        what: String,
    },
    /// Not a format reg can read, or read in one pass.
    #[error("not a checkpoint reg reads from a stream (a torch zip as torch.save writes it, or safetensors): {0}")]
    NotACheckpoint(String),
    /// A legacy torch file: read as a file (see the module docs).
    #[error("a legacy torch file (torch.save with _use_new_zipfile_serialization=False)")]
    NotOnePass,
    /// A record that is not as torch writes it.
    #[error("record {name} at byte {at}: {reason}")]
    BadRecord {
        /// The record's name.
        name: String,
        /// Its local header's offset.
        at: u64,
        /// What is wrong.
        reason: String,
    },
    /// A piece larger than the limits allow in memory.
    #[error("{what} is longer than {limit} bytes, more than reg holds in memory for a stream")]
    TooLong {
        /// What.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// Reading the stream or handing a piece to the sink failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A reader that counts what it read and computes the CRC-32 of the
/// current payload or record.
struct Counting<'r> {
    inner: &'r mut dyn Read,
    at: u64,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl Counting<'_> {
    /// Exactly `n` bytes, or [`StreamError::Truncated`].
    fn take_exact(&mut self, n: usize, what: &str) -> Result<Vec<u8>, StreamError> {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match self.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(StreamError::Truncated {
                        at: self.at,
                        what: what.to_string(),
                    })
                }
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(buf)
    }
}

/// Cut the checkpoint `input` streams into `sink`; returns its format and
/// its length.
pub fn split(
    input: &mut dyn Read,
    sink: &mut dyn StreamSink,
    limits: StreamLimits,
) -> Result<(Streamed, u64), StreamError> {
    let mut buffered = io::BufReader::with_capacity(1 << 20, input);
    let (format, len) = split_next(&mut buffered, sink, limits)?;
    // One checkpoint and nothing else.
    let after = io::copy(&mut Read::take(&mut buffered, limits.max_tail), &mut io::sink())?;
    if after > 0 {
        return Err(StreamError::NotACheckpoint(format!(
            "{after} bytes follow the end of the zip at byte {len}"
        )));
    }
    Ok((format, len))
}

/// Cut the checkpoint that `input` streams next into `sink`, reading no
/// byte past its end when it is a torch zip (a zip ends with its end
/// record): a stream of zips one after another (a DCP data file, whose
/// items are each a `torch.save`) is cut by calling this once per item
/// on the same reader. A safetensors file takes the rest of the stream.
/// Offsets given to the sink count from the checkpoint's first byte.
/// `input` should be buffered (it is read in small pieces).
pub fn split_next(
    input: &mut dyn Read,
    sink: &mut dyn StreamSink,
    limits: StreamLimits,
) -> Result<(Streamed, u64), StreamError> {
    let mut r = Counting { inner: input, at: 0 };
    let head = r.take_exact(8, "its first bytes").map_err(|e| match e {
        StreamError::Truncated { at, .. } => StreamError::NotACheckpoint(format!("it is {at} bytes long")),
        other => other,
    })?;
    if head.starts_with(b"PK\x03\x04") {
        zip(&mut r, head, sink, limits)?;
        return Ok((Streamed::TorchZip, r.at));
    }
    if head.first() == Some(&0x80) || head.starts_with(b"\x80\x02\x8a") {
        return Err(StreamError::NotOnePass);
    }
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&head);
    if let Ok(len) = safetensors::header_len_of(&prefix) {
        if len <= limits.max_record {
            safetensors_stream(&mut r, head, len, sink)?;
            return Ok((Streamed::Safetensors, r.at));
        }
        return Err(StreamError::TooLong {
            what: "the safetensors header".into(),
            limit: limits.max_record,
        });
    }
    Err(StreamError::NotACheckpoint(
        "its first bytes are neither a zip nor safetensors".into(),
    ))
}

fn safetensors_stream(
    r: &mut Counting<'_>,
    prefix: Vec<u8>,
    len: u64,
    sink: &mut dyn StreamSink,
) -> Result<(), StreamError> {
    let header = r.take_exact(len as usize, "the safetensors header")?;
    if header.first() != Some(&b'{') {
        return Err(StreamError::NotACheckpoint(
            "its first bytes are neither a zip nor safetensors".into(),
        ));
    }
    let mut head = prefix;
    head.extend_from_slice(&header);
    let file = safetensors::read_header(&head).map_err(|e| StreamError::NotACheckpoint(e.to_string()))?;
    sink.skeleton(0, &head)?;
    let mut at = head.len() as u64;
    for t in &file.tensors {
        if t.data.start < at {
            return Err(StreamError::NotACheckpoint(format!(
                "tensor {} overlaps another",
                t.name
            )));
        }
        if t.data.start > at {
            let gap = r.take_exact((t.data.start - at) as usize, "the padding between tensors")?;
            sink.skeleton(at, &gap)?;
        }
        stream_payload(r, sink, t.data.start, &t.name, t.data.end - t.data.start)?;
        at = t.data.end;
    }
    // Whatever follows the last tensor is the file's own (kept as it is).
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)?;
    if !rest.is_empty() {
        sink.skeleton(at, &rest)?;
    }
    Ok(())
}

/// Hand `len` payload bytes to the sink, checking it read them all.
fn stream_payload(
    r: &mut Counting<'_>,
    sink: &mut dyn StreamSink,
    at: u64,
    key: &str,
    len: u64,
) -> Result<(), StreamError> {
    let before = r.at;
    let mut body = Read::take(&mut *r, len);
    sink.payload(at, key, len, &mut body)?;
    let left = body.limit();
    if left > 0 {
        // The sink stopped early or the stream ended.
        let mut sinkhole = io::sink();
        let copied = io::copy(&mut body, &mut sinkhole)?;
        if copied < left {
            return Err(StreamError::Truncated {
                at: before + len - left + copied,
                what: format!("tensor storage {key}"),
            });
        }
    }
    Ok(())
}

/// Read the rest of a zip's tail into `tail` (which holds its first
/// bytes, from the central directory's first signature on), record by
/// record, up to the end of the end record: the central directory
/// headers, the zip64 end record and locator, the end record and its
/// comment. Never reads past the zip's last byte.
fn read_tail(r: &mut Counting<'_>, tail: &mut Vec<u8>, limits: StreamLimits) -> Result<(), StreamError> {
    let mut at = 0usize;
    // Make `tail` at least `len` bytes long.
    let mut need = |tail: &mut Vec<u8>, len: usize| -> Result<(), StreamError> {
        if len as u64 > limits.max_tail {
            return Err(StreamError::TooLong {
                what: "the central directory".into(),
                limit: limits.max_tail,
            });
        }
        if tail.len() < len {
            let more = r.take_exact(len - tail.len(), "the zip's central directory (no end record)")?;
            tail.extend_from_slice(&more);
        }
        Ok(())
    };
    loop {
        need(tail, at + 4)?;
        let sig = [tail[at], tail[at + 1], tail[at + 2], tail[at + 3]];
        let record_end = if &sig == CENTRAL {
            need(tail, at + 46)?;
            at + 46 + (le16(tail, at + 28) + le16(tail, at + 30) + le16(tail, at + 32)) as usize
        } else if &sig == ZIP64_END {
            need(tail, at + 12)?;
            let size = usize::try_from(le64(tail, at + 4)).unwrap_or(usize::MAX);
            (at + 12).saturating_add(size)
        } else if &sig == ZIP64_LOCATOR {
            at + 20
        } else if &sig == END {
            need(tail, at + 22)?;
            let end = at + 22 + le16(tail, at + 20) as usize;
            return need(tail, end);
        } else {
            return Err(StreamError::BadRecord {
                name: "(central directory)".into(),
                at: at as u64,
                reason: "a record that is not part of a zip's central directory".into(),
            });
        };
        need(tail, record_end)?;
        at = record_end;
    }
}

const LOCAL: &[u8; 4] = b"PK\x03\x04";
const ZIP64_END: &[u8; 4] = b"PK\x06\x06";
const ZIP64_LOCATOR: &[u8; 4] = b"PK\x06\x07";
const END: &[u8; 4] = b"PK\x05\x06";
const DESCRIPTOR: &[u8; 4] = b"PK\x07\x08";
const CENTRAL: &[u8; 4] = b"PK\x01\x02";

fn le16(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn le32(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

fn zip(
    r: &mut Counting<'_>,
    first: Vec<u8>,
    sink: &mut dyn StreamSink,
    limits: StreamLimits,
) -> Result<(), StreamError> {
    // Storage lengths by key, once data.pkl has been read.
    let mut storages: Option<BTreeMap<String, u64>> = None;
    let mut sig = first[..4].to_vec();
    let mut carry = first[4..].to_vec();
    loop {
        let start = r.at - (sig.len() + carry.len()) as u64;
        if sig.as_slice() != LOCAL {
            // The central directory and the end records: the rest.
            if sig.as_slice() != CENTRAL {
                return Err(StreamError::BadRecord {
                    name: "(after the last record)".into(),
                    at: start,
                    reason: "neither a local header nor the central directory".into(),
                });
            }
            let mut tail = sig;
            tail.extend_from_slice(&carry);
            read_tail(r, &mut tail, limits)?;
            sink.skeleton(start, &tail)?;
            return Ok(());
        }
        // Local header: 30 bytes, then name and extra field.
        let mut header = sig;
        header.extend_from_slice(&carry);
        let need = 30usize.saturating_sub(header.len());
        header.extend(r.take_exact(need, "a zip local header")?);
        let (name_len, extra_len) = (le16(&header, 26) as usize, le16(&header, 28) as usize);
        header.extend(r.take_exact(name_len + extra_len, "a zip local header")?);
        let name = String::from_utf8_lossy(&header[30..30 + name_len]).into_owned();
        let bad = |reason: &str| StreamError::BadRecord {
            name: name.clone(),
            at: start,
            reason: reason.to_string(),
        };
        let (flags, method) = (le16(&header, 6), le16(&header, 8));
        if method != 0 {
            return Err(bad("compressed (torch stores its records)"));
        }
        let extra = &header[30 + name_len..];
        let zip64 = has_zip64(extra);
        let data_at = start + header.len() as u64;
        sink.skeleton(start, &header)?;
        let described = flags & 0x8 != 0;
        let sized = if described {
            None
        } else {
            Some(match zip64_sizes(extra) {
                Some(size) => size,
                None => le32(&header, 18),
            })
        };
        let storage_key = name
            .rsplit_once("/data/")
            .map(|(_, k)| k.to_string())
            .filter(|k| !k.contains('/'));
        let storage_len = storage_key
            .as_ref()
            .and_then(|k| storages.as_ref().and_then(|s| s.get(k)).copied());
        match (storage_key, storage_len.or(sized)) {
            (Some(key), Some(len)) => {
                stream_payload(r, sink, data_at, &key, len)?;
                if described {
                    let d = r.take_exact(if zip64 { 24 } else { 16 }, "a data descriptor")?;
                    if d[..4] != DESCRIPTOR[..] {
                        return Err(bad("its data descriptor is not where the pickle says the storage ends"));
                    }
                    sink.skeleton(data_at + len, &d)?;
                }
            }
            (_, Some(len)) => {
                if len > limits.max_record {
                    return Err(StreamError::TooLong {
                        what: format!("record {name}"),
                        limit: limits.max_record,
                    });
                }
                let data = r.take_exact(len as usize, &format!("record {name}"))?;
                let mut piece = data.clone();
                if described {
                    let d = r.take_exact(if zip64 { 24 } else { 16 }, "a data descriptor")?;
                    piece.extend_from_slice(&d);
                }
                sink.skeleton(data_at, &piece)?;
                note_pickle(&name, &data, &mut storages).map_err(|e| bad(&e))?;
            }
            (_, None) => {
                // Length unknown: up to the descriptor that matches.
                let (data, d) = until_descriptor(r, zip64, limits.max_record, &name)?;
                let mut piece = data.clone();
                piece.extend_from_slice(&d);
                sink.skeleton(data_at, &piece)?;
                note_pickle(&name, &data, &mut storages).map_err(|e| bad(&e))?;
            }
        }
        sig = r.take_exact(4, "the next zip record")?;
        carry = Vec::new();
    }
}

/// After `data.pkl`: the byte length of each storage the pickle declares.
fn note_pickle(name: &str, data: &[u8], storages: &mut Option<BTreeMap<String, u64>>) -> Result<(), String> {
    if !(name == "data.pkl" || name.ends_with("/data.pkl")) || storages.is_some() {
        return Ok(());
    }
    let graph = reg_pickle::parse(data, &reg_pickle::Limits::default()).map_err(|e| e.to_string())?;
    let declared = tensors::storages(&graph).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (key, s) in declared {
        let bytes = s
            .numel
            .checked_mul(s.dtype.size() as u64)
            .ok_or_else(|| format!("storage {key} is larger than 2^64 bytes"))?;
        out.insert(key, bytes);
    }
    *storages = Some(out);
    Ok(())
}

/// Read a record of unknown length up to its data descriptor: the first
/// `PK\x07\x08` followed by the CRC-32 and the length of the bytes before
/// it. Returns the data and the descriptor.
fn until_descriptor(
    r: &mut Counting<'_>,
    zip64: bool,
    max: u64,
    name: &str,
) -> Result<(Vec<u8>, Vec<u8>), StreamError> {
    let dlen = if zip64 { 24 } else { 16 };
    let mut buf: Vec<u8> = Vec::new();
    let mut searched = 0usize;
    let mut chunk = [0u8; 24];
    loop {
        // Look for a matching descriptor in what has arrived.
        while let Some(off) = find(&buf[searched..], DESCRIPTOR).map(|o| o + searched) {
            if buf.len() < off + dlen {
                break;
            }
            let d = &buf[off..off + dlen];
            let crc = le32(d, 4);
            let (csize, usize_) = if zip64 {
                (le64(d, 8), le64(d, 16))
            } else {
                (le32(d, 8), le32(d, 12))
            };
            if csize == off as u64 && usize_ == off as u64 && u64::from(crc32fast::hash(&buf[..off])) == crc {
                let descriptor = buf[off..off + dlen].to_vec();
                let rest = buf.split_off(off + dlen);
                buf.truncate(off);
                if !rest.is_empty() {
                    return Err(StreamError::BadRecord {
                        name: name.to_string(),
                        at: r.at,
                        reason: "bytes read past its descriptor".into(),
                    });
                }
                return Ok((buf, descriptor));
            }
            searched = off + 1;
        }
        if buf.len() as u64 > max {
            return Err(StreamError::TooLong {
                what: format!("record {name}"),
                limit: max,
            });
        }
        // Never past the end of a descriptor that may have begun: with a
        // `P` among the last `dlen` bytes, one byte at a time; else at most
        // `dlen` bytes, which cannot pass the end of one starting later
        // (the input is buffered: small reads cost no system call).
        let recent = &buf[buf.len().saturating_sub(dlen)..];
        let want = if recent.contains(&b'P') { 1 } else { dlen };
        let n = match r.read(&mut chunk[..want]) {
            Ok(0) => {
                return Err(StreamError::Truncated {
                    at: r.at,
                    what: format!("record {name}"),
                })
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        buf.extend_from_slice(&chunk[..n]);
        searched = searched.min(buf.len().saturating_sub(dlen + 4));
    }
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// True when a local extra field holds a zip64 block (id 1).
fn has_zip64(extra: &[u8]) -> bool {
    zip64_block(extra).is_some()
}

fn zip64_block(extra: &[u8]) -> Option<&[u8]> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let id = le16(extra, at);
        let len = le16(extra, at + 2) as usize;
        let body = extra.get(at + 4..at + 4 + len)?;
        if id == 1 {
            return Some(body);
        }
        at += 4 + len;
    }
    None
}

/// The compressed size a zip64 block gives (its second field), when the
/// local header has one with sizes.
fn zip64_sizes(extra: &[u8]) -> Option<u64> {
    let b = zip64_block(extra)?;
    b.get(8..16).map(|_| le64(b, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the pieces into a file again, and the payload ranges.
    #[derive(Default)]
    struct Collect {
        file: Vec<u8>,
        payloads: Vec<(u64, String, u64)>,
    }

    impl StreamSink for Collect {
        fn skeleton(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
            assert_eq!(at, self.file.len() as u64, "pieces out of order");
            self.file.extend_from_slice(bytes);
            Ok(())
        }
        fn payload(&mut self, at: u64, key: &str, len: u64, body: &mut dyn Read) -> io::Result<()> {
            assert_eq!(at, self.file.len() as u64, "pieces out of order");
            let n = body.read_to_end(&mut self.file)?;
            self.payloads.push((at, key.to_string(), len));
            if n as u64 == len {
                Ok(())
            } else {
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short payload"))
            }
        }
    }

    /// A reader that hands out at most 7 bytes at a time, as a pipe may.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn fixture(rel: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(rel);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn a_torch_zip_streams_into_the_cut_inspect_makes() {
        for rel in [
            "lightning/mlp/epoch=01.ckpt",
            "torch/zoo.pt",
            "lightning/diverged/epoch=01.ckpt",
        ] {
            let file = fixture(rel);
            let mut sink = Collect::default();
            let (format, len) = split(&mut Trickle(&file), &mut sink, StreamLimits::default()).expect(rel);
            assert_eq!((format, len), (Streamed::TorchZip, file.len() as u64));
            assert!(sink.file == file, "{rel} rebuilt differently");
            let ckpt = crate::inspect(&file).expect("inspect");
            let want: Vec<(u64, String, u64)> = ckpt
                .segments
                .iter()
                .filter_map(|s| match &s.kind {
                    crate::SegmentKind::Payload { storage_key } => Some((s.range.start, storage_key.clone(), s.len())),
                    crate::SegmentKind::Skeleton => None,
                })
                .collect();
            assert_eq!(sink.payloads, want, "{rel}");
        }
    }

    #[test]
    fn safetensors_streams_too() {
        let file = fixture("safetensors/zoo.safetensors");
        let mut sink = Collect::default();
        let (format, _) = split(&mut Trickle(&file), &mut sink, StreamLimits::default()).expect("split");
        assert_eq!(format, Streamed::Safetensors);
        assert!(sink.file == file);
        assert!(!sink.payloads.is_empty());
    }

    #[test]
    fn a_cut_stream_garbage_and_legacy_are_refused() {
        let file = fixture("lightning/mlp/epoch=01.ckpt");
        for cut in [10, 100, 1000, file.len() / 2, file.len() - 30] {
            let mut sink = Collect::default();
            let e = split(&mut &file[..cut], &mut sink, StreamLimits::default()).expect_err("cut");
            assert!(
                matches!(
                    e,
                    StreamError::Truncated { .. } | StreamError::BadRecord { .. } | StreamError::Io(_)
                ),
                "{cut}: {e}"
            );
        }
        let legacy = fixture("torch/legacy.pt");
        assert!(matches!(
            split(&mut &legacy[..], &mut Collect::default(), StreamLimits::default()),
            Err(StreamError::NotOnePass)
        ));
        let garbage = fixture("bad/garbage.ckpt");
        assert!(split(&mut &garbage[..], &mut Collect::default(), StreamLimits::default()).is_err());
        assert!(split(&mut &b""[..], &mut Collect::default(), StreamLimits::default()).is_err());
        let tight = StreamLimits {
            max_record: 64,
            max_tail: 1 << 20,
        };
        assert!(matches!(
            split(&mut &file[..], &mut Collect::default(), tight),
            Err(StreamError::TooLong { .. })
        ));
    }
}
