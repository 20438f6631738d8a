//! One file of a tree read by its own format: torch zip, torch legacy,
//! safetensors, or stored whole; and the object pickle of a torch file read
//! again for the layout readers.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::Value;

use super::{FileCheckpoint, FileFormat, TreeError};
use reg_ckpt::describe_tensor;
use reg_ckpt::segment::{Segment, SegmentKind};
use reg_ckpt::{inspect_deferred, legacy, safetensors, torchzip, view, Checkpoint, InspectError};
use reg_pickle::{NodeId, PickleGraph};

/// A file read by its own format: what the tree records, and the single-file
/// [`Checkpoint`] when it is one.
pub(super) struct Read {
    /// What [`super::TreeCheckpoint::files`] holds for it.
    pub file: FileCheckpoint,
    /// The full single-file reading (torch and safetensors files).
    pub ckpt: Option<Checkpoint>,
}

/// Read `bytes` (the file at `path`) as a torch zip, torch legacy or
/// safetensors file when its content says it is one; any other content is
/// stored whole. A file that is one of those formats but broken is an error.
pub(super) fn read(path: &str, bytes: &[u8]) -> Result<Read, TreeError> {
    let looks_like_checkpoint = torchzip::is_zip(bytes) || safetensors::looks_like(bytes) || legacy::looks_like(bytes);
    if !looks_like_checkpoint {
        return Ok(whole(path, bytes));
    }
    match inspect_deferred(bytes) {
        Ok(ckpt) => Ok(Read {
            file: FileCheckpoint {
                path: path.to_owned(),
                size: bytes.len() as u64,
                format: FileFormat::from(ckpt.format),
                segments: ckpt.segments.clone(),
                tensors: ckpt.tensors.clone(),
                deferred_crcs: ckpt.deferred_crcs.clone(),
                pickle: ckpt.pickle.clone(),
                globals: ckpt.globals.clone(),
            },
            ckpt: Some(ckpt),
        }),
        // An ordinary zip archive (no data.pkl): not a checkpoint.
        Err(InspectError::Zip(torchzip::TorchZipError::NoPickle)) => Ok(whole(path, bytes)),
        Err(source) => Err(TreeError::File {
            path: path.to_owned(),
            source,
        }),
    }
}

/// A file kept as one skeleton segment.
pub(super) fn whole(path: &str, bytes: &[u8]) -> Read {
    Read {
        file: FileCheckpoint::whole(path, bytes.len() as u64),
        ckpt: None,
    }
}

impl FileCheckpoint {
    /// A file stored whole: one skeleton segment (none when it is empty).
    pub(super) fn whole(path: &str, size: u64) -> FileCheckpoint {
        FileCheckpoint {
            path: path.to_owned(),
            size,
            format: FileFormat::Other,
            segments: reg_ckpt::cover(size, Vec::new()),
            tensors: Vec::new(),
            deferred_crcs: Vec::new(),
            pickle: None,
            globals: Vec::new(),
        }
    }
}

/// The payload ranges of a file, by storage key.
pub(super) fn payload_ranges(segments: &[Segment]) -> BTreeMap<String, Range<u64>> {
    segments
        .iter()
        .filter_map(|s| match &s.kind {
            SegmentKind::Payload { storage_key } => Some((storage_key.clone(), s.range.clone())),
            SegmentKind::Skeleton => None,
        })
        .collect()
}

/// The object pickle of a torch file, parsed again, with its storages: what
/// the layout readers need to read values (trainer state, optimizer
/// settings, DCP bytes items) beyond the single-file [`Checkpoint`].
pub(super) struct TorchObject<'f> {
    /// The object graph.
    pub graph: PickleGraph,
    records: BTreeMap<String, Range<u64>>,
    bytes: &'f [u8],
}

impl<'f> TorchObject<'f> {
    /// The object of a torch file `bytes` that `ckpt` describes; `None` for
    /// safetensors (no pickle).
    pub fn open(bytes: &'f [u8], ckpt: &Checkpoint) -> Result<Option<Self>, reg_pickle::PickleError> {
        let Some(range) = &ckpt.pickle else {
            return Ok(None);
        };
        let pickle_bytes = slice(bytes, range);
        let graph = reg_pickle::parse(pickle_bytes, &reg_pickle::Limits::default())?;
        Ok(Some(TorchObject {
            graph,
            records: payload_ranges(&ckpt.segments),
            bytes,
        }))
    }

    /// The root value.
    pub fn root(&self) -> Option<NodeId> {
        self.graph.root
    }

    /// The value at a path of string keys from the root.
    pub fn at(&self, keys: &[&str]) -> Option<NodeId> {
        keys.iter()
            .try_fold(self.graph.root?, |id, key| view::get(&self.graph, id, key))
    }

    /// A value as JSON, one-element tensors as their number.
    pub fn json(&self, id: NodeId) -> Value {
        let describe = |n: NodeId| describe_tensor(&self.graph, n, &self.records, self.bytes);
        view::to_json(&self.graph, id, &describe)
    }

    /// True when the root is an optimizer `state_dict()`.
    pub fn is_optimizer_state(&self) -> bool {
        self.at(&["param_groups"]).is_some() && self.at(&["state"]).is_some()
    }
}

/// `file[range]`, empty when the range lies outside.
pub(super) fn slice<'f>(file: &'f [u8], range: &Range<u64>) -> &'f [u8] {
    usize::try_from(range.start)
        .ok()
        .zip(usize::try_from(range.end).ok())
        .and_then(|(s, e)| file.get(s..e))
        .unwrap_or(&[])
}
