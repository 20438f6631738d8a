//! Reading a zip archive's central directory, without copying any data.
//!
//! Only what a torch checkpoint needs: the end-of-central-directory record
//! (and its zip64 form, which torch always writes), the central directory
//! entries, and each entry's local header to find where its data starts.
//! Sizes and CRCs come from the central directory, since torch's writer sets
//! the data-descriptor flag and leaves them zero in the local headers.
//! Every offset and length read from the file is checked against the file
//! before it is used; nothing here panics on hostile input.

use std::ops::Range;

/// Most entries a zip may have before we refuse it.
pub const MAX_ENTRIES: u64 = 1_000_000;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_EOCD_LEN: usize = 56;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const CENTRAL_LEN: usize = 46;
const LOCAL_SIG: u32 = 0x0403_4b50;
const LOCAL_LEN: usize = 30;
/// The end record sits within its own length plus a 65535-byte comment.
const MAX_EOCD_SCAN: usize = EOCD_LEN + 65_535;

/// Why a file could not be read as a zip archive.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    /// No end-of-central-directory record in the last 64 KiB.
    #[error("not a zip: no end of central directory record")]
    NoEndRecord,
    /// A structure runs past the end of the file.
    #[error("zip {what} at offset {offset} runs past the end of the file ({file_len} bytes)")]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// The file length.
        file_len: u64,
    },
    /// A structure does not start with its signature.
    #[error("zip {what} at offset {offset}: bad signature 0x{found:08x}")]
    BadSignature {
        /// Which structure.
        what: &'static str,
        /// Where it was expected.
        offset: u64,
        /// The four bytes found there.
        found: u32,
    },
    /// The archive spans several disks.
    #[error("zip archive spans several disks, which is not supported")]
    MultiDisk,
    /// The zip64 end records are missing or disagree with the plain ones.
    #[error("zip end records: {0}")]
    EndRecord(String),
    /// More entries than [`MAX_ENTRIES`] or than the directory can hold.
    #[error("zip central directory claims {count} entries in {size} bytes, too many")]
    TooManyEntries {
        /// The claimed entry count.
        count: u64,
        /// The central directory size.
        size: u64,
    },
    /// The central directory does not fit between the data and the end records.
    #[error("zip central directory {start}..{end} does not fit before the end records at {limit}")]
    DirectoryOutOfBounds {
        /// Directory start.
        start: u64,
        /// Directory end.
        end: u64,
        /// Where the end records start.
        limit: u64,
    },
    /// The directory's entries do not fill it exactly.
    #[error("zip central directory: {count} entries end at offset {at}, directory ends at {end}")]
    DirectorySize {
        /// Entries read.
        count: u64,
        /// Where the last entry ended.
        at: u64,
        /// Where the directory ends.
        end: u64,
    },
    /// Something is wrong with one entry.
    #[error("zip entry {}: {reason}", .name.escape_debug())]
    Entry {
        /// The entry name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Two entries share bytes.
    #[error("zip entries {} and {} overlap", .first.escape_debug(), .second.escape_debug())]
    Overlap {
        /// The earlier entry.
        first: String,
        /// The entry that starts inside it.
        second: String,
    },
}

/// One file of a zip archive, located but not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipEntry {
    /// The entry name (UTF-8, lossily decoded if it is not).
    pub name: String,
    /// Compression method (0 = stored, 8 = deflate).
    pub method: u16,
    /// The CRC-32 the central directory records for the uncompressed data.
    pub crc32: u32,
    /// Where the (possibly compressed) data lies in the file.
    pub data: Range<u64>,
    /// Offset of the entry's local file header.
    pub header_offset: u64,
}

fn le<const N: usize>(file: &[u8], at: usize) -> Option<[u8; N]> {
    file.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(file: &[u8], at: usize) -> Option<u16> {
    le(file, at).map(u16::from_le_bytes)
}

fn u32_at(file: &[u8], at: usize) -> Option<u32> {
    le(file, at).map(u32::from_le_bytes)
}

fn u64_at(file: &[u8], at: usize) -> Option<u64> {
    le(file, at).map(u64::from_le_bytes)
}

/// A structure of `len` bytes at `at` with signature `sig`, checked.
fn structure(file: &[u8], at: u64, len: usize, sig: u32, what: &'static str) -> Result<usize, ZipError> {
    let start = usize::try_from(at)
        .ok()
        .filter(|s| s.checked_add(len).is_some_and(|end| end <= file.len()))
        .ok_or(ZipError::Truncated {
            what,
            offset: at,
            file_len: file.len() as u64,
        })?;
    let found = u32_at(file, start).unwrap_or(0);
    if found != sig {
        return Err(ZipError::BadSignature {
            what,
            offset: at,
            found,
        });
    }
    Ok(start)
}

/// Where the central directory is, from the end records.
struct Directory {
    offset: u64,
    size: u64,
    count: u64,
    /// Start of the end records (zip64 record if present, else the plain one).
    end_records: u64,
}

fn find_eocd(file: &[u8]) -> Result<usize, ZipError> {
    if file.len() < EOCD_LEN {
        return Err(ZipError::NoEndRecord);
    }
    let last = file.len() - EOCD_LEN;
    let first = file.len().saturating_sub(MAX_EOCD_SCAN);
    // Last match wins; its comment must run exactly to the end of the file.
    (first..=last)
        .rev()
        .find(|&at| {
            u32_at(file, at) == Some(EOCD_SIG)
                && u16_at(file, at + 20).is_some_and(|c| at + EOCD_LEN + usize::from(c) == file.len())
        })
        .ok_or(ZipError::NoEndRecord)
}

fn read_directory(file: &[u8]) -> Result<Directory, ZipError> {
    let eocd = find_eocd(file)?;
    let field16 = |off: usize| u16_at(file, eocd + off).unwrap_or(0);
    let field32 = |off: usize| u32_at(file, eocd + off).unwrap_or(0);
    if field16(4) != 0 || field16(6) != 0 || field16(8) != field16(10) {
        return Err(ZipError::MultiDisk);
    }
    let count16 = field16(10);
    let size32 = field32(12);
    let offset32 = field32(16);

    let has_locator = eocd >= ZIP64_LOCATOR_LEN && u32_at(file, eocd - ZIP64_LOCATOR_LEN) == Some(ZIP64_LOCATOR_SIG);
    if !has_locator {
        if count16 == 0xFFFF || size32 == u32::MAX || offset32 == u32::MAX {
            return Err(ZipError::EndRecord(
                "end record needs zip64 values but there is no zip64 locator".into(),
            ));
        }
        return Ok(Directory {
            offset: offset32.into(),
            size: size32.into(),
            count: count16.into(),
            end_records: eocd as u64,
        });
    }
    let loc = eocd - ZIP64_LOCATOR_LEN;
    let loc_disk = u32_at(file, loc + 4).unwrap_or(1);
    let rec_off = u64_at(file, loc + 8).unwrap_or(u64::MAX);
    let disks = u32_at(file, loc + 16).unwrap_or(0);
    if loc_disk != 0 || disks > 1 {
        return Err(ZipError::MultiDisk);
    }
    if rec_off.checked_add(ZIP64_EOCD_LEN as u64) > Some(loc as u64) {
        return Err(ZipError::EndRecord(format!(
            "zip64 end record at {rec_off} does not fit before its locator at {loc}"
        )));
    }
    let rec = structure(file, rec_off, ZIP64_EOCD_LEN, ZIP64_EOCD_SIG, "zip64 end record")?;
    let f32_ = |off: usize| u32_at(file, rec + off).unwrap_or(u32::MAX);
    let f64_ = |off: usize| u64_at(file, rec + off).unwrap_or(u64::MAX);
    // The record's own size field counts the bytes after it (44 minimum) and
    // must end exactly where the locator starts.
    let rec_end = f64_(4).checked_add(rec_off).and_then(|v| v.checked_add(12));
    if f64_(4) < 44 || rec_end != Some(loc as u64) {
        return Err(ZipError::EndRecord(format!(
            "zip64 end record at {rec_off} has size {} that does not reach its locator at {loc}",
            f64_(4)
        )));
    }
    if f32_(16) != 0 || f32_(20) != 0 || f64_(24) != f64_(32) {
        return Err(ZipError::MultiDisk);
    }
    let (count, size, offset) = (f64_(32), f64_(40), f64_(48));
    let agree = (count16 == 0xFFFF || u64::from(count16) == count)
        && (size32 == u32::MAX || u64::from(size32) == size)
        && (offset32 == u32::MAX || u64::from(offset32) == offset);
    if !agree {
        return Err(ZipError::EndRecord(format!(
            "zip64 end record ({count} entries, directory {size} bytes at {offset}) disagrees \
             with the end record ({count16} entries, {size32} bytes at {offset32})"
        )));
    }
    Ok(Directory {
        offset,
        size,
        count,
        end_records: rec_off,
    })
}

/// The zip64 extra field values that replace saturated header fields.
fn zip64_extra(extra: &[u8], name: &str, need: [bool; 3]) -> Result<[Option<u64>; 3], ZipError> {
    let mut out = [None; 3];
    if !need.iter().any(|n| *n) {
        return Ok(out);
    }
    let mut at = 0usize;
    while at + 4 <= extra.len() {
        let id = u16_at(extra, at).unwrap_or(0);
        let len = usize::from(u16_at(extra, at + 2).unwrap_or(0));
        let body = extra.get(at + 4..at + 4 + len).ok_or_else(|| ZipError::Entry {
            name: name.to_owned(),
            reason: "extra field runs past its header".into(),
        })?;
        if id == 0x0001 {
            let mut pos = 0usize;
            for (slot, needed) in out.iter_mut().zip(need) {
                if needed {
                    *slot = u64_at(body, pos);
                    pos += 8;
                }
            }
            break;
        }
        at += 4 + len;
    }
    if out.iter().zip(need).any(|(v, n)| n && v.is_none()) {
        return Err(ZipError::Entry {
            name: name.to_owned(),
            reason: "sizes or offset need a zip64 extra field that is missing or short".into(),
        });
    }
    Ok(out)
}

/// Read every entry of the zip archive `file`, in central directory order.
///
/// Data ranges are checked to lie inside the file, before the central
/// directory, and not to overlap another entry's local header or data.
pub fn read_entries(file: &[u8]) -> Result<Vec<ZipEntry>, ZipError> {
    let dir = read_directory(file)?;
    let dir_end = dir.offset.checked_add(dir.size);
    if dir_end.is_none_or(|end| end > dir.end_records) {
        return Err(ZipError::DirectoryOutOfBounds {
            start: dir.offset,
            end: dir_end.unwrap_or(u64::MAX),
            limit: dir.end_records,
        });
    }
    let dir_end = dir.offset + dir.size;
    if dir.count > MAX_ENTRIES || dir.count > dir.size / CENTRAL_LEN as u64 {
        return Err(ZipError::TooManyEntries {
            count: dir.count,
            size: dir.size,
        });
    }
    // The count is bounded above, so this allocation is bounded too.
    let mut entries = Vec::with_capacity(dir.count as usize);
    let mut at = dir.offset;
    for index in 0..dir.count {
        let (entry, next) = read_central(file, at, dir_end, dir.offset).map_err(|e| match e {
            ZipError::DirectorySize { at, end, .. } => ZipError::DirectorySize {
                count: index + 1,
                at,
                end,
            },
            e => e,
        })?;
        entries.push(entry);
        at = next;
    }
    if at != dir_end {
        return Err(ZipError::DirectorySize {
            count: dir.count,
            at,
            end: dir_end,
        });
    }
    check_overlap(&entries)?;
    Ok(entries)
}

/// One central directory header at `at`; returns it and where the next starts.
fn read_central(file: &[u8], at: u64, dir_end: u64, data_limit: u64) -> Result<(ZipEntry, u64), ZipError> {
    let c = structure(file, at, CENTRAL_LEN, CENTRAL_SIG, "central directory entry")?;
    let h16 = |off: usize| u16_at(file, c + off).unwrap_or(0);
    let h32 = |off: usize| u32_at(file, c + off).unwrap_or(0);
    let (flags, method, crc32) = (h16(8), h16(10), h32(16));
    let (csize, usize_, offset) = (h32(20), h32(24), h32(42));
    let (name_len, extra_len, comment_len) = (h16(28), h16(30), h16(32));
    let var_len = usize::from(name_len) + usize::from(extra_len) + usize::from(comment_len);
    let end = at + (CENTRAL_LEN + var_len) as u64;
    if end > dir_end {
        return Err(ZipError::DirectorySize {
            count: 0,
            at: end,
            end: dir_end,
        });
    }
    // In bounds: end <= dir_end <= file length.
    let name_start = c + CENTRAL_LEN;
    let name_bytes = file.get(name_start..name_start + usize::from(name_len)).unwrap_or(&[]);
    let name = String::from_utf8_lossy(name_bytes).into_owned();
    let extra_start = name_start + usize::from(name_len);
    let extra = file
        .get(extra_start..extra_start + usize::from(extra_len))
        .unwrap_or(&[]);
    let err = |reason: String| ZipError::Entry {
        name: name.clone(),
        reason,
    };
    if flags & 1 != 0 {
        return Err(err("encrypted entries are not supported".into()));
    }
    if h16(34) != 0 && h16(34) != 0xFFFF {
        return Err(ZipError::MultiDisk);
    }
    let need = [usize_ == u32::MAX, csize == u32::MAX, offset == u32::MAX];
    let z = zip64_extra(extra, &name, need)?;
    let uncompressed = z[0].unwrap_or(usize_.into());
    let compressed = z[1].unwrap_or(csize.into());
    let header_offset = z[2].unwrap_or(offset.into());
    if method == 0 && compressed != uncompressed {
        return Err(err(format!(
            "stored entry has compressed size {compressed} but uncompressed size {uncompressed}"
        )));
    }

    let l = structure(file, header_offset, LOCAL_LEN, LOCAL_SIG, "local file header").map_err(|e| match e {
        ZipError::BadSignature { found, .. } => err(format!(
            "local header at offset {header_offset}: bad signature 0x{found:08x}"
        )),
        _ => err(format!(
            "local header at offset {header_offset} runs past the end of the file"
        )),
    })?;
    let local_method = u16_at(file, l + 8).unwrap_or(0);
    let local_name_len = u16_at(file, l + 26).unwrap_or(0);
    let local_extra_len = u16_at(file, l + 28).unwrap_or(0);
    let local_name = file.get(l + LOCAL_LEN..l + LOCAL_LEN + usize::from(local_name_len));
    if local_name != Some(name_bytes) {
        return Err(err(format!("local header at {header_offset} names a different entry")));
    }
    if local_method != method {
        return Err(err(format!(
            "local header method {local_method} differs from central directory method {method}"
        )));
    }
    let data_start = header_offset + (LOCAL_LEN + usize::from(local_name_len) + usize::from(local_extra_len)) as u64;
    let data_end = data_start.checked_add(compressed);
    if data_end.is_none_or(|e| e > data_limit) {
        return Err(err(format!(
            "data at {data_start} of {compressed} bytes runs past the central directory at {data_limit}"
        )));
    }
    let entry = ZipEntry {
        name,
        method,
        crc32,
        data: data_start..data_start + compressed,
        header_offset,
    };
    Ok((entry, end))
}

fn check_overlap(entries: &[ZipEntry]) -> Result<(), ZipError> {
    let mut order: Vec<&ZipEntry> = entries.iter().collect();
    order.sort_by_key(|e| e.header_offset);
    for pair in order.windows(2) {
        if let [a, b] = pair {
            if b.header_offset < a.data.end {
                return Err(ZipError::Overlap {
                    first: a.name.clone(),
                    second: b.name.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal stored zip with one entry, optionally with zip64 extras.
    fn tiny_zip(zip64: bool) -> Vec<u8> {
        let data = b"hello";
        let crc = crc32fast::hash(data);
        let mut f = Vec::new();
        f.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        f.extend_from_slice(&[20, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&[0; 12]);
        f.extend_from_slice(&1u16.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        f.push(b'a');
        f.extend_from_slice(data);
        let cd = f.len();
        f.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        f.extend_from_slice(&[20, 0, 20, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&crc.to_le_bytes());
        let (sz, off) = if zip64 { (u32::MAX, u32::MAX) } else { (5, 0) };
        f.extend_from_slice(&sz.to_le_bytes());
        f.extend_from_slice(&sz.to_le_bytes());
        f.extend_from_slice(&1u16.to_le_bytes());
        f.extend_from_slice(&(if zip64 { 28u16 } else { 0 }).to_le_bytes());
        f.extend_from_slice(&[0; 10]);
        f.extend_from_slice(&off.to_le_bytes());
        f.push(b'a');
        if zip64 {
            f.extend_from_slice(&1u16.to_le_bytes());
            f.extend_from_slice(&24u16.to_le_bytes());
            f.extend_from_slice(&5u64.to_le_bytes());
            f.extend_from_slice(&5u64.to_le_bytes());
            f.extend_from_slice(&0u64.to_le_bytes());
        }
        let cd_size = (f.len() - cd) as u32;
        f.extend_from_slice(&EOCD_SIG.to_le_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
        f.extend_from_slice(&cd_size.to_le_bytes());
        f.extend_from_slice(&(cd as u32).to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        f
    }

    #[test]
    fn reads_plain_and_zip64_extra() {
        for zip64 in [false, true] {
            let f = tiny_zip(zip64);
            let e = read_entries(&f).unwrap();
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].name, "a");
            assert_eq!(e[0].data, 31..36);
            assert_eq!(e[0].crc32, crc32fast::hash(b"hello"));
        }
    }

    #[test]
    fn every_truncation_and_flip_is_handled() {
        let f = tiny_zip(true);
        for n in 0..f.len() {
            assert!(read_entries(&f[..n]).is_err());
        }
        for i in 0..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[i] ^= 1 << bit;
                let _ = read_entries(&g);
            }
        }
    }

    #[test]
    fn messages() {
        let e = read_entries(b"not a zip at all, just some text").unwrap_err();
        assert_eq!(e.to_string(), "not a zip: no end of central directory record");
    }
}
