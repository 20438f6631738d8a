//! Byte ranges of one file of a version (`reg cat REF FILE --range
//! START:LEN`): only the pieces a range overlaps are read, each blob
//! checked against its id. What a reader of one rank's DCP chunks needs,
//! without pulling the files whole.

use crate::error::{ReadError, RegistryError};
use crate::pull::{damage_of, label_of, plan, Job};
use crate::registry::Registry;
use crate::resolve::Resolved;
use reg_format::manifest::FileLayout;
use reg_store::BlobId;
use std::io::Write;

/// A byte range of a file: `start..start + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Length.
    pub len: u64,
}

impl std::str::FromStr for ByteRange {
    type Err = String;

    /// `START:LEN`, both decimal.
    fn from_str(s: &str) -> Result<ByteRange, String> {
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| format!("range {s:?} is not START:LEN"))?;
        let num = |x: &str| {
            x.parse::<u64>()
                .map_err(|_| format!("range {s:?}: {x:?} is not a byte count"))
        };
        Ok(ByteRange {
            start: num(a)?,
            len: num(b)?,
        })
    }
}

impl Registry {
    /// Write the bytes of `ranges` of file `path` of `version` (`None`: the
    /// file of a file version) to `w`, one after the other; returns the
    /// bytes written. A range past the end of the file, or a path the
    /// version does not have, is refused before anything is written.
    pub fn read_ranges(
        &self,
        version: &Resolved,
        path: Option<&str>,
        ranges: &[ByteRange],
        w: &mut dyn Write,
    ) -> Result<u64, RegistryError> {
        let label = label_of(version);
        let files = version.manifest.files();
        let file: &FileLayout<'_> = match (path, version.manifest.is_directory()) {
            (Some(p), true) => files
                .iter()
                .find(|f| f.path.is_some_and(|fp| fp.as_str() == p))
                .ok_or_else(|| ReadError::NoSuchFile {
                    version: label.to_string(),
                    path: p.to_string(),
                })?,
            (None, true) => {
                return Err(ReadError::FileNotNamed {
                    version: label.to_string(),
                }
                .into())
            }
            (Some(p), false) if p != version.manifest.source.as_str() => {
                return Err(ReadError::NotADirectory {
                    version: label.to_string(),
                    source_name: version.manifest.source.as_str().to_string(),
                    path: p.to_string(),
                }
                .into())
            }
            (_, false) => &files[0],
        };
        let whole = [ByteRange {
            start: 0,
            len: file.size,
        }];
        let ranges = if ranges.is_empty() { &whole[..] } else { ranges };
        for r in ranges {
            if r.start.checked_add(r.len).is_none_or(|end| end > file.size) {
                return Err(ReadError::RangePastEnd {
                    version: label.to_string(),
                    file: path.unwrap_or(version.manifest.source.as_str()).to_string(),
                    start: r.start,
                    len: r.len,
                    size: file.size,
                }
                .into());
            }
        }
        let damaged = damage_of(&label);
        let write_err = |e| RegistryError::io("writing", "the output")(e);
        let skeleton = self.store.read(file.skeleton).map_err(&damaged)?;
        let jobs = plan(file, &skeleton).map_err(&damaged)?;
        // The last payload decoded: ranges of one chunk in a row share it.
        let mut decoded: Option<(BlobId, Vec<u8>)> = None;
        let mut written = 0u64;
        for r in ranges {
            let end = r.start + r.len;
            for job in &jobs {
                let (at, len) = match job {
                    Job::Skeleton { at, bytes } => (*at, bytes.len() as u64),
                    Job::Payload { at, len, .. } => (*at, *len),
                };
                if at + len <= r.start || at >= end || len == 0 {
                    continue;
                }
                let from = r.start.max(at) - at;
                let to = end.min(at + len) - at;
                let bytes: &[u8] = match job {
                    Job::Skeleton { bytes, .. } => bytes,
                    Job::Payload { blob, .. } => {
                        if decoded.as_ref().is_none_or(|(id, _)| id != blob) {
                            decoded = Some((*blob, self.store.read(*blob).map_err(&damaged)?));
                        }
                        decoded.as_ref().map(|(_, b)| b.as_slice()).unwrap_or(&[])
                    }
                };
                let slice = usize::try_from(from)
                    .ok()
                    .zip(usize::try_from(to).ok())
                    .and_then(|(a, b)| bytes.get(a..b))
                    .ok_or_else(|| {
                        RegistryError::from(ReadError::ShortPiece {
                            version: label.to_string(),
                        })
                    })?;
                w.write_all(slice).map_err(write_err)?;
                written += slice.len() as u64;
            }
        }
        w.flush().map_err(write_err)?;
        Ok(written)
    }
}
