//! Reading the payloads of the file being pushed, each as few times as
//! possible, and encoding the new ones.
//!
//! 1. A payload whose length some stored blob has may be stored already:
//!    it is hashed first (with its zip CRC), in parallel.
//! 2. Every payload not stored yet is encoded into a pending blob (a temp
//!    file of the store), hashed again as it is read: for one of step 1,
//!    the hash must come out the same (else the file changed while it was
//!    being pushed); one of a length no stored blob has cannot be stored
//!    already, so it skips step 1 and is read once, its id taken from this
//!    read. CRCs are checked here too.
//!
//! A fast push (`PushOptions::fast`) writes each new payload raw instead
//! of encoding it in step 2, and its version lists them for the
//! background job to compress (`reg_store`'s deferred compression): the
//! push costs what hashing and writing cost.
//!
//! Nothing is committed to the store here: a bad CRC or a changed file
//! anywhere drops every pending blob, and the registry is as it was.

use super::read::{hash_range, Digesting, Hashing};
use crate::deltas::Pair;
use crate::error::{PushError, RegistryError};
use crate::progress::Progress;
use crate::registry::Registry;
use rayon::prelude::*;
use reg_ckpt::{Segment, SegmentKind};
use reg_store::{BlobId, FileRange, PendingBlob};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;

/// One payload segment of the file.
#[derive(Clone, Copy)]
pub(crate) struct Payload<'c> {
    /// Index of the segment in the checkpoint's segment list.
    pub(crate) index: usize,
    pub(crate) seg: &'c Segment,
    /// Element width when the storage holds floats (byte planes).
    pub(crate) width: Option<u8>,
    /// The zip CRC-32 recorded for it, when one is to be checked.
    pub(crate) crc: Option<u32>,
}

impl Payload<'_> {
    fn len(&self) -> u64 {
        self.seg.range.end - self.seg.range.start
    }

    fn key(&self) -> &str {
        match &self.seg.kind {
            SegmentKind::Payload { storage_key } => storage_key,
            SegmentKind::Skeleton => "",
        }
    }
}

/// A new blob, encoded and checked, waiting to be committed.
pub(crate) struct NewBlob<'s> {
    pub(crate) id: BlobId,
    pub(crate) pending: PendingBlob<'s>,
    pub(crate) raw_len: u64,
    /// Stored raw, its compression left to the background job, which
    /// needs its element width (planes for a float storage).
    pub(crate) deferred: Option<Option<u8>>,
}

/// Payloads smaller than this are encoded at push even when it is fast:
/// they cost little, and each deferred one is a queue entry. The same
/// bound says which storages of a stream go straight into blobs (the
/// rest are read from its spool as a file's are).
pub(crate) const DEFER_MIN_LEN: u64 = 64 << 10;

/// The blobs of `new` stored raw for the background job, among those the
/// push wrote (`outcomes`; one stored meanwhile keeps its own encoding).
pub(crate) fn deferred_written(
    deferred: &[(BlobId, Option<u8>)],
    outcomes: &[(BlobId, reg_store::PutOutcome, u64)],
) -> Vec<(BlobId, Option<u8>)> {
    let raw: HashSet<BlobId> = outcomes
        .iter()
        .filter(|(_, o, _)| o.written && o.codec == reg_store::Codec::Raw)
        .map(|(id, _, _)| *id)
        .collect();
    deferred.iter().filter(|(id, _)| raw.contains(id)).copied().collect()
}

/// The `(id, width)` of every deferred blob of `new`.
pub(crate) fn deferred_of<'a, 's: 'a>(new: impl IntoIterator<Item = &'a NewBlob<'s>>) -> Vec<(BlobId, Option<u8>)> {
    new.into_iter().filter_map(|n| Some((n.id, n.deferred?))).collect()
}

/// What [`Registry::read_payloads`] found.
pub(crate) struct Payloads<'s> {
    /// The blob id of each segment (`None` for skeleton segments).
    pub(crate) ids: Vec<Option<BlobId>>,
    /// The blobs to commit, one per new id.
    pub(crate) new: Vec<NewBlob<'s>>,
}

/// How to reach the bytes of the file being pushed.
pub(crate) struct Source<'a> {
    pub(crate) path: &'a Path,
    pub(crate) file: &'a File,
    pub(crate) segments: usize,
    /// Store new payloads raw, for the background job to compress.
    pub(crate) defer_compression: bool,
}

pub(crate) fn crc_error(path: &Path, p: &Payload<'_>, stored: u32, computed: u32) -> RegistryError {
    RegistryError::Inspect {
        file: path.to_path_buf(),
        source: reg_ckpt::InspectError::Zip(reg_ckpt::torchzip::TorchZipError::Crc {
            name: format!("data/{}", p.key()),
            stored,
            computed,
        }),
    }
}

impl Registry {
    /// Hash what may be stored, encode what is new (see the module docs).
    /// `bases` maps a storage key to the blob its new bytes should be a
    /// delta against (`--parent`), for keys whose id step 1 finds.
    pub(crate) fn read_payloads<'s>(
        &'s self,
        src: &Source<'_>,
        payloads: &[Payload<'_>],
        known_lens: &HashSet<u64>,
        bases: &(dyn Fn(&str, BlobId, u64) -> Option<Pair> + Sync),
        pool: &rayon::ThreadPool,
        progress: &dyn Progress,
    ) -> Result<Payloads<'s>, RegistryError> {
        let read_err = |e| RegistryError::io("reading", src.path)(e);
        let (maybe, novel): (Vec<&Payload<'_>>, Vec<&Payload<'_>>) =
            payloads.iter().partition(|p| known_lens.contains(&p.len()));

        progress.phase("hashing", maybe.iter().map(|p| p.len()).sum());
        let hashed: Vec<(BlobId, Option<u32>)> = pool
            .install(|| {
                maybe
                    .par_iter()
                    .map(|p| {
                        hash_range(
                            src.file,
                            &p.seg.range,
                            Hashing::Alone { crc: p.crc.is_some() },
                            progress,
                        )
                    })
                    .collect::<Result<_, _>>()
            })
            .map_err(read_err)?;
        let mut ids: Vec<Option<BlobId>> = vec![None; src.segments];
        for (p, (id, crc)) in maybe.iter().zip(&hashed) {
            if let (Some(want), Some(got)) = (p.crc, crc) {
                if want != *got {
                    return Err(crc_error(src.path, p, want, *got));
                }
            }
            ids[p.index] = Some(*id);
        }

        // What to encode: each id not stored yet once, and every payload
        // whose id is not known yet.
        let mut seen = HashSet::new();
        let mut todo: Vec<(&Payload<'_>, Option<BlobId>)> = Vec::new();
        for (p, (id, _)) in maybe.iter().zip(&hashed) {
            if !self.store.contains(*id) && seen.insert(*id) {
                todo.push((p, Some(*id)));
            }
        }
        todo.extend(novel.iter().map(|p| (*p, None)));
        // Largest first, so that no writer is left with one big blob at the end.
        todo.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));

        progress.phase("storing", todo.iter().map(|(p, _)| p.len()).sum());
        let new: Vec<NewBlob<'s>> = pool.install(|| {
            todo.par_iter()
                .with_max_len(1)
                .map(|(p, known)| self.encode_new(src, p, *known, bases, progress))
                .collect::<Result<_, _>>()
        })?;
        for (p, n) in todo.iter().zip(&new) {
            ids[p.0.index] = Some(n.id);
        }
        // Payloads whose id only the read told (a storage repeated within
        // the file) were encoded once each: keep one pending blob per id,
        // so each new blob is committed and counted once.
        let mut kept = HashSet::new();
        let new = new.into_iter().filter(|n| kept.insert(n.id)).collect();
        Ok(Payloads { ids, new })
    }

    /// Encode one payload into a pending blob, checking what was read.
    fn encode_new<'s>(
        &'s self,
        src: &Source<'_>,
        p: &Payload<'_>,
        known: Option<BlobId>,
        bases: &(dyn Fn(&str, BlobId, u64) -> Option<Pair> + Sync),
        progress: &dyn Progress,
    ) -> Result<NewBlob<'s>, RegistryError> {
        // A payload hashed in step 1 with a zip CRC is checked by its CRC
        // (far cheaper than blake3 again); others by their blake3.
        let by_crc = known.is_some() && p.crc.is_some();
        let source = Digesting::new(
            FileRange {
                file: src.file,
                start: p.seg.range.start,
                len: p.len(),
            },
            !by_crc,
            p.crc.is_some(),
        );
        let base = known.and_then(|id| bases(p.key(), id, p.len()));
        let delta = match (base, p.width) {
            (Some(pair), Some(w)) => self.store.encode_pending_delta(&source, w, pair.parent)?,
            _ => None,
        };
        let defer = delta.is_none() && src.defer_compression && p.len() >= DEFER_MIN_LEN;
        let pending = match delta {
            Some(b) => b,
            None if defer => self.store.encode_pending_raw(&source)?,
            None => self.store.encode_pending(&source, p.width)?,
        };
        let changed = || {
            RegistryError::from(PushError::ChangedWhilePushed {
                path: src.path.to_path_buf(),
                storage: p.key().to_string(),
            })
        };
        let digest = source.digest().ok_or_else(changed)?;
        if let (Some(want), Some(got)) = (p.crc, digest.crc) {
            if want != got {
                return Err(match known {
                    Some(_) => changed(),
                    None => crc_error(src.path, p, want, got),
                });
            }
        }
        let id = match known {
            Some(id) if by_crc => id,
            Some(id) if id != digest.id => return Err(changed()),
            _ => digest.id,
        };
        progress.advance(p.len());
        Ok(NewBlob {
            id,
            pending,
            raw_len: p.len(),
            deferred: defer.then_some(p.width),
        })
    }
}

/// The payload segments of a checkpoint, with the element width of the
/// float storages and the CRCs to check.
pub(crate) fn payloads_of(ckpt: &reg_ckpt::Checkpoint) -> Vec<Payload<'_>> {
    payloads_in(&ckpt.segments, &ckpt.tensors, &ckpt.deferred_crcs)
}

/// The payload segments among `segments` (of one file), with the element
/// width of its float storages (from `tensors`) and the CRCs to check.
pub(crate) fn payloads_in<'c>(
    segments: &'c [Segment],
    tensors: &[reg_ckpt::tensors::TensorInfo],
    deferred_crcs: &[(std::ops::Range<u64>, u32)],
) -> Vec<Payload<'c>> {
    let crcs: HashMap<u64, u32> = deferred_crcs.iter().map(|(r, c)| (r.start, *c)).collect();
    let float_keys: HashMap<&str, u8> = tensors
        .iter()
        .filter(|t| t.dtype.is_float())
        .map(|t| (t.storage_key.as_str(), t.dtype.size() as u8))
        .collect();
    // Segments are keyed by index: an empty payload can share its start
    // with the next one.
    segments
        .iter()
        .enumerate()
        .filter_map(|(index, seg)| match &seg.kind {
            SegmentKind::Payload { storage_key } => Some(Payload {
                index,
                seg,
                width: float_keys.get(storage_key.as_str()).copied(),
                crc: crcs.get(&seg.range.start).copied(),
            }),
            SegmentKind::Skeleton => None,
        })
        .collect()
}
