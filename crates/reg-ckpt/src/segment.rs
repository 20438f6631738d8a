//! How a checkpoint file is cut: skeleton bytes and tensor payloads.

use std::ops::Range;

/// The file formats `reg` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `torch.save` zip format (torch >= 1.6, Lightning `.ckpt`).
    TorchZip,
    /// `torch.save(..., _use_new_zipfile_serialization=False)`.
    TorchLegacy,
    /// Hugging Face safetensors.
    Safetensors,
}

impl Format {
    /// The name used in JSON output and docs (`torch-zip`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Format::TorchZip => "torch-zip",
            Format::TorchLegacy => "torch-legacy",
            Format::Safetensors => "safetensors",
        }
    }
}

/// What a run of bytes in the file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// Container bytes: headers, pickles, small records, directories.
    Skeleton,
    /// The raw bytes of one tensor storage, named by its storage key (zip
    /// and legacy) or tensor name (safetensors).
    Payload {
        /// The storage key (`"0"`, `"17"`) or safetensors tensor name.
        storage_key: String,
    },
}

/// A byte range of the input file and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Byte range in the file.
    pub range: Range<u64>,
    /// Skeleton or payload.
    pub kind: SegmentKind,
}

impl Segment {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.range.end - self.range.start
    }

    /// True for a zero-length segment.
    pub fn is_empty(&self) -> bool {
        self.range.start == self.range.end
    }
}

/// Build a segment list that covers `0..file_len` exactly: the given payload
/// ranges (sorted, non-overlapping, inside the file) become payload segments
/// and every gap a skeleton segment. Empty payloads are kept (an empty
/// tensor still has a storage), empty skeleton gaps are dropped.
pub fn cover(file_len: u64, mut payloads: Vec<(Range<u64>, String)>) -> Vec<Segment> {
    payloads.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = Vec::with_capacity(payloads.len() * 2 + 1);
    let mut at = 0u64;
    for (range, key) in payloads {
        if range.start > at {
            out.push(Segment {
                range: at..range.start,
                kind: SegmentKind::Skeleton,
            });
        }
        at = at.max(range.end);
        out.push(Segment {
            range,
            kind: SegmentKind::Payload { storage_key: key },
        });
    }
    if at < file_len {
        out.push(Segment {
            range: at..file_len,
            kind: SegmentKind::Skeleton,
        });
    }
    out
}
