//! A streaming writer for torch zip checkpoints, laid out as torch 2.x
//! (miniz) writes them.
//!
//! Every record is stored (method 0). Its local header has general-purpose
//! flags `0x0808` (data descriptor, UTF-8 name), version 0, time and date 0,
//! CRC and sizes 0, and an `FB` extra field of `Z` padding so the data
//! starts at a multiple of 64 bytes; the data is followed by a data
//! descriptor (`PK\x07\x08`, CRC, sizes). Empty records get flags `0x0800`
//! and no descriptor, as miniz writes them. An entry whose size or local
//! header offset reaches `0xFFFFFFFF` is zip64: its local header carries a
//! zip64 extra field (the sizes when the size is large, the offset when the
//! offset is, as torch's `getPadding` lays it out), its descriptor has
//! 8-byte sizes, and its central directory entry has `0xFFFFFFFF`
//! placeholders with the real values in a zip64 extra field (version
//! needed 45). The end is always a zip64 end record (version made by
//! `0x031e`, needed 45, as in torch's files) plus locator, then the classic
//! end record with `0xFFFF` / `0xFFFFFFFF` placeholders where values do not
//! fit.
//!
//! Output is written straight through (small headers in one `write_all`
//! each, storage bytes as the source produces them); pass a buffered writer.
//! After an error the output is incomplete and must be discarded.

use std::collections::HashSet;
use std::io::{self, Write};

use super::WriteError;

const LOCAL_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
/// Sizes and offsets from this value on need zip64 (miniz: `>= MZ_UINT32_MAX`).
const ZIP64_LIMIT: u64 = 0xFFFF_FFFF;
/// Record data alignment.
const ALIGN: u64 = 64;
const FLAGS_DESCRIPTOR: u16 = 0x0808;
const FLAGS_EMPTY: u16 = 0x0800;
const VERSION_ZIP64: u16 = 45;

/// Writes a record's bytes to the given output.
pub type Fill<'a> = dyn FnMut(&mut dyn Write) -> io::Result<()> + 'a;

/// A storage record to stream: `data/<key>` of `len` bytes that `fill`
/// writes (exactly `len` of them) when the writer gets to it.
pub struct StorageSource<'a> {
    /// The storage key.
    pub key: String,
    /// Its byte length.
    pub len: u64,
    /// Writes the storage bytes.
    pub fill: Box<Fill<'a>>,
}

/// What the central directory needs of a written record.
struct Written {
    name: String,
    crc: u32,
    len: u64,
    offset: u64,
}

/// A torch zip being written. Record names are relative to the prefix
/// folder (`data.pkl` becomes `archive/data.pkl`).
pub struct TorchZipWriter<W: Write> {
    out: W,
    pos: u64,
    prefix: String,
    written: Vec<Written>,
    names: HashSet<String>,
    limit: u64,
    combined_crc: u64,
}

/// Counts and checksums bytes on their way to the output, refusing more
/// than announced.
struct Tee<'w, W: Write> {
    out: &'w mut W,
    crc: crc32fast::Hasher,
    count: u64,
    allowed: u64,
    /// Bytes offered in total, including refused ones.
    offered: u64,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.offered = self.offered.saturating_add(buf.len() as u64);
        if self.count.saturating_add(buf.len() as u64) > self.allowed {
            return Err(io::Error::other("storage source wrote more bytes than announced"));
        }
        let n = self.out.write(buf)?;
        self.crc.update(&buf[..n]);
        self.count += n as u64;
        self.offered -= (buf.len() - n) as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// c10's `hash_combine`, which torch uses to fold record CRCs into the
/// serialization id.
pub(super) fn hash_combine(seed: u64, value: u64) -> u64 {
    seed ^ value
        .wrapping_add(0x9e37_79b9)
        .wrapping_add(seed << 6)
        .wrapping_add(seed >> 2)
}

impl<W: Write> TorchZipWriter<W> {
    /// Start a torch zip whose records sit under `prefix` (`archive`,
    /// with or without the trailing slash; empty for top-level records).
    pub fn new(out: W, prefix: &str) -> Self {
        Self::with_zip64_limit(out, prefix, ZIP64_LIMIT)
    }

    /// Like [`TorchZipWriter::new`] with a lower zip64 threshold, so tests
    /// can exercise zip64 entries without writing 4 GiB.
    pub(crate) fn with_zip64_limit(out: W, prefix: &str, limit: u64) -> Self {
        let mut prefix = prefix.to_owned();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        TorchZipWriter {
            out,
            pos: 0,
            prefix,
            written: Vec::new(),
            names: HashSet::new(),
            limit,
            combined_crc: 0,
        }
    }

    fn emit(&mut self, bytes: &[u8], what: &str) -> Result<(), WriteError> {
        self.out
            .write_all(bytes)
            .map_err(|e| WriteError::io(format!("writing zip {what}"), e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Add a record from memory.
    pub fn add_record(&mut self, name: &str, data: &[u8]) -> Result<(), WriteError> {
        self.add_stream(name, data.len() as u64, &mut |w: &mut dyn Write| w.write_all(data))
    }

    /// Add a record of `len` bytes that `fill` writes; the CRC-32 is
    /// computed on the way. `fill` must write exactly `len` bytes.
    pub fn add_stream(
        &mut self,
        name: &str,
        len: u64,
        fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), WriteError> {
        let full = format!("{}{name}", self.prefix);
        if !self.names.insert(full.clone()) {
            return Err(WriteError::DuplicateRecord(full));
        }
        let name_len = u16::try_from(full.len()).map_err(|_| WriteError::TooLong {
            what: format!("zip record name {}", full.escape_debug()),
            len: full.len() as u64,
            max: u64::from(u16::MAX),
        })?;
        let offset = self.pos;
        let big_size = len >= self.limit;
        let big_offset = offset >= self.limit;
        let zip64 = big_size || big_offset;

        let mut extra = Vec::new();
        if zip64 {
            let body_len: u16 = if big_size { 16 } else { 0 } + if big_offset { 8 } else { 0 };
            extra.extend_from_slice(&1u16.to_le_bytes());
            extra.extend_from_slice(&body_len.to_le_bytes());
            if big_size {
                extra.extend_from_slice(&len.to_le_bytes());
                extra.extend_from_slice(&len.to_le_bytes());
            }
            if big_offset {
                extra.extend_from_slice(&offset.to_le_bytes());
            }
        }
        let start = offset + 30 + u64::from(name_len) + extra.len() as u64 + 4;
        let pad = (ALIGN - start % ALIGN) % ALIGN;
        extra.extend_from_slice(b"FB");
        extra.extend_from_slice(&(pad as u16).to_le_bytes());
        extra.resize(extra.len() + pad as usize, b'Z');

        let flags = if len == 0 { FLAGS_EMPTY } else { FLAGS_DESCRIPTOR };
        let mut header = Vec::with_capacity(30 + full.len() + extra.len());
        header.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        header.extend_from_slice(&(if zip64 { VERSION_ZIP64 } else { 0 }).to_le_bytes());
        header.extend_from_slice(&flags.to_le_bytes());
        header.extend_from_slice(&[0u8; 18]); // method, time, date, crc, sizes
        header.extend_from_slice(&name_len.to_le_bytes());
        header.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        header.extend_from_slice(full.as_bytes());
        header.extend_from_slice(&extra);
        self.emit(&header, &format!("local header of {full}"))?;

        let mut tee = Tee {
            out: &mut self.out,
            crc: crc32fast::Hasher::new(),
            count: 0,
            allowed: len,
            offered: 0,
        };
        let filled = fill(&mut tee);
        let (crc, count, offered) = (tee.crc.finalize(), tee.count, tee.offered);
        self.pos += count;
        if offered != len && (filled.is_ok() || offered > len) {
            return Err(WriteError::StreamLength {
                name: full,
                expected: len,
                actual: offered,
            });
        }
        filled.map_err(|e| WriteError::io(format!("writing zip record {full}"), e))?;

        if len > 0 {
            let mut descriptor = Vec::with_capacity(24);
            descriptor.extend_from_slice(&DESCRIPTOR_SIG.to_le_bytes());
            descriptor.extend_from_slice(&crc.to_le_bytes());
            if zip64 {
                descriptor.extend_from_slice(&len.to_le_bytes());
                descriptor.extend_from_slice(&len.to_le_bytes());
            } else {
                descriptor.extend_from_slice(&(len as u32).to_le_bytes());
                descriptor.extend_from_slice(&(len as u32).to_le_bytes());
            }
            self.emit(&descriptor, &format!("data descriptor of {full}"))?;
            self.combined_crc = hash_combine(self.combined_crc, u64::from(crc));
        }
        self.written.push(Written {
            name: full,
            crc,
            len,
            offset,
        });
        Ok(())
    }

    /// A `.data/serialization_id` value for the records written so far:
    /// two zero-padded 20-digit numbers like torch's. The second is torch's
    /// own (c10 `hash_combine` over the CRC-32s of the non-empty records,
    /// in write order); the first hashes the sorted record names with
    /// blake3 where torch hashes them with `std::hash` in `unordered_set`
    /// order, so it differs from what torch would write.
    pub fn serialization_id(&self) -> String {
        let mut names: Vec<&str> = self
            .written
            .iter()
            .map(|w| w.name.strip_prefix(&self.prefix).unwrap_or(&w.name))
            .collect();
        names.sort_unstable();
        let mut hasher = blake3::Hasher::new();
        for n in names {
            hasher.update(n.as_bytes());
            hasher.update(&[0]);
        }
        let mut first = [0u8; 8];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        format!("{:020}{:020}", u64::from_le_bytes(first), self.combined_crc)
    }

    /// Write the central directory and end records; returns the output.
    pub fn finish(mut self) -> Result<W, WriteError> {
        let limit = self.limit;
        let clamp32 = |v: u64| if v >= limit { u32::MAX } else { v as u32 };
        let dir_offset = self.pos;
        let mut dir = Vec::new();
        for w in &self.written {
            let mut extra = Vec::new();
            for v in [w.len, w.len, w.offset] {
                if v >= limit {
                    extra.extend_from_slice(&v.to_le_bytes());
                }
            }
            if !extra.is_empty() {
                let body = extra.len() as u16;
                extra.splice(0..0, [1u16.to_le_bytes(), body.to_le_bytes()].concat());
            }
            let flags = if w.len == 0 { FLAGS_EMPTY } else { FLAGS_DESCRIPTOR };
            dir.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
            dir.extend_from_slice(&0u16.to_le_bytes()); // version made by
            dir.extend_from_slice(&(if extra.is_empty() { 0 } else { VERSION_ZIP64 }).to_le_bytes());
            dir.extend_from_slice(&flags.to_le_bytes());
            dir.extend_from_slice(&[0u8; 6]); // method, time, date
            dir.extend_from_slice(&w.crc.to_le_bytes());
            dir.extend_from_slice(&clamp32(w.len).to_le_bytes());
            dir.extend_from_slice(&clamp32(w.len).to_le_bytes());
            // Names were checked to fit in u16 when the record was added.
            dir.extend_from_slice(&(w.name.len() as u16).to_le_bytes());
            dir.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            dir.extend_from_slice(&[0u8; 10]); // comment length, disk, attributes
            dir.extend_from_slice(&clamp32(w.offset).to_le_bytes());
            dir.extend_from_slice(w.name.as_bytes());
            dir.extend_from_slice(&extra);
        }
        self.emit(&dir, "central directory")?;
        let dir_size = dir.len() as u64;
        let count = self.written.len() as u64;
        let zip64_end = self.pos;

        let mut end = Vec::with_capacity(56 + 20 + 22);
        end.extend_from_slice(&ZIP64_EOCD_SIG.to_le_bytes());
        end.extend_from_slice(&44u64.to_le_bytes());
        end.extend_from_slice(&0x031eu16.to_le_bytes());
        end.extend_from_slice(&VERSION_ZIP64.to_le_bytes());
        end.extend_from_slice(&[0u8; 8]); // this disk, directory disk
        for v in [count, count, dir_size, dir_offset] {
            end.extend_from_slice(&v.to_le_bytes());
        }
        end.extend_from_slice(&ZIP64_LOCATOR_SIG.to_le_bytes());
        end.extend_from_slice(&0u32.to_le_bytes());
        end.extend_from_slice(&zip64_end.to_le_bytes());
        end.extend_from_slice(&1u32.to_le_bytes());
        let count16 = u16::try_from(count).unwrap_or(u16::MAX);
        end.extend_from_slice(&EOCD_SIG.to_le_bytes());
        end.extend_from_slice(&[0u8; 4]);
        end.extend_from_slice(&count16.to_le_bytes());
        end.extend_from_slice(&count16.to_le_bytes());
        end.extend_from_slice(&clamp32(dir_size).to_le_bytes());
        end.extend_from_slice(&clamp32(dir_offset).to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        self.emit(&end, "end records")?;
        self.out
            .flush()
            .map_err(|e| WriteError::io("flushing the zip output", e))?;
        Ok(self.out)
    }
}

/// Write a whole torch checkpoint in torch 2.x record order: `data.pkl`,
/// `.format_version`, `.storage_alignment`, `byteorder`, one `data/<key>`
/// per storage (in the order given), `version`, `.data/serialization_id`.
pub fn write_checkpoint<'a, W: Write>(
    out: W,
    prefix: &str,
    pickle: &[u8],
    storages: impl IntoIterator<Item = StorageSource<'a>>,
) -> Result<W, WriteError> {
    let mut zip = TorchZipWriter::new(out, prefix);
    write_records(&mut zip, pickle, storages)?;
    zip.finish()
}

pub(crate) fn write_records<'a, W: Write>(
    zip: &mut TorchZipWriter<W>,
    pickle: &[u8],
    storages: impl IntoIterator<Item = StorageSource<'a>>,
) -> Result<(), WriteError> {
    zip.add_record("data.pkl", pickle)?;
    zip.add_record(".format_version", b"1")?;
    zip.add_record(".storage_alignment", b"64")?;
    zip.add_record("byteorder", b"little")?;
    for mut s in storages {
        zip.add_stream(&format!("data/{}", s.key), s.len, &mut *s.fill)?;
    }
    zip.add_record("version", b"3\n")?;
    let id = zip.serialization_id();
    zip.add_record(".data/serialization_id", id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reg_ckpt::zip::read_entries;

    #[test]
    fn layout_matches_torch() {
        let mut zip = TorchZipWriter::new(Vec::new(), "zoo");
        zip.add_record("data.pkl", b"\x80\x02}q\x00.").unwrap();
        zip.add_record("data/0", &[1, 2, 3]).unwrap();
        zip.add_record("data/1", &[]).unwrap();
        let f = zip.finish().unwrap();
        let entries = read_entries(&f).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["zoo/data.pkl", "zoo/data/0", "zoo/data/1"]);
        for e in &entries {
            assert_eq!(e.data.start % 64, 0, "{}", e.name);
        }
        assert_eq!(&f[entries[1].data.start as usize..][..3], &[1, 2, 3]);
        assert_eq!(entries[1].crc32, crc32fast::hash(&[1, 2, 3]));
        // Local header: version 0, flags 0x0808, zeros, FB padding.
        assert_eq!(&f[..12], b"PK\x03\x04\x00\x00\x08\x08\x00\x00\x00\x00");
        assert_eq!(&f[42..44], b"FB");
        // The empty record has no descriptor and flags 0x0800.
        let empty = entries[2].header_offset as usize;
        assert_eq!(&f[empty + 6..empty + 8], &[0x00, 0x08]);
        assert_eq!(
            entries[2].data.end,
            f.windows(4).position(|w| w == b"PK\x01\x02").unwrap() as u64
        );
        // Always a zip64 end record and locator before the end record.
        assert_eq!(&f[f.len() - 22 - 20 - 56..][..4], b"PK\x06\x06");
        assert_eq!(&f[f.len() - 22 - 20..][..4], b"PK\x06\x07");
    }

    #[test]
    fn zip64_entries_with_a_low_threshold() {
        let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut zip = TorchZipWriter::with_zip64_limit(Vec::new(), "archive/", 200);
        zip.add_record("data.pkl", b"small").unwrap(); // offset 0, size 5: plain
        zip.add_record("data/0", &data).unwrap(); // size 300: zip64 sizes, offset 128: plain
        zip.add_record("data/1", b"xy").unwrap(); // offset >= 200: zip64 offset
        let f = zip.finish().unwrap();
        let entries = read_entries(&f).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            &f[entries[1].data.start as usize..entries[1].data.end as usize],
            &data[..]
        );
        assert_eq!(&f[entries[2].data.start as usize..entries[2].data.end as usize], b"xy");
        for e in &entries {
            assert_eq!(e.data.start % 64, 0);
        }
        // Descriptors of zip64 entries have 8-byte sizes.
        let d1 = entries[1].data.end as usize;
        assert_eq!(&f[d1..d1 + 4], b"PK\x07\x08");
        assert_eq!(&f[d1 + 8..d1 + 16], &300u64.to_le_bytes());
        assert_eq!(&f[d1 + 16..d1 + 24], &300u64.to_le_bytes());
        // The local zip64 extra of data/1 holds just its offset.
        let h2 = entries[2].header_offset as usize;
        assert_eq!(&f[h2 + 30 + 14..h2 + 30 + 14 + 4], &[1, 0, 8, 0]);
        assert_eq!(&f[h2 + 34 + 14..h2 + 42 + 14], &entries[2].header_offset.to_le_bytes());
        // The end record saturates the directory offset (>= threshold).
        assert_eq!(&f[f.len() - 6..f.len() - 2], &u32::MAX.to_le_bytes());
        assert!(reg_ckpt::torchzip::read(&f).is_ok());
    }

    #[test]
    fn stream_length_is_checked() {
        let mut zip = TorchZipWriter::new(Vec::new(), "a");
        let err = zip
            .add_stream("data/0", 4, &mut |w: &mut dyn Write| w.write_all(b"abc"))
            .unwrap_err();
        assert!(
            err.to_string().contains("source wrote 3 bytes, 4 were announced"),
            "{err}"
        );
        let err = zip
            .add_stream("data/1", 2, &mut |w: &mut dyn Write| w.write_all(b"abc"))
            .unwrap_err();
        assert!(
            err.to_string().contains("source wrote 3 bytes, 2 were announced"),
            "{err}"
        );
        let err = zip.add_record("data/1", b"").unwrap_err();
        assert!(err.to_string().contains("written twice"), "{err}");
    }
}
