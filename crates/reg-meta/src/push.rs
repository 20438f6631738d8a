//! `push`: store a checkpoint file as a new version.
//!
//! Order of durability: payload and skeleton blobs, then the manifest blob,
//! then a directory sync, and only then the index transaction that makes
//! the version visible. A crash before the transaction leaves unreferenced
//! blobs (collected by gc), never a partial version.

use crate::error::RegistryError;
use crate::ids::{ModelName, VersionId};
use crate::index::{BlobRecord, VersionRecord};
use crate::manifest::{Manifest, Piece, TensorEntry, MANIFEST_SCHEMA};
use crate::refs::check_tag;
use crate::registry::Registry;
use rayon::prelude::*;
use reg_ckpt::safety::Verdict;
use reg_ckpt::{Checkpoint, SegmentKind};
use reg_store::BlobId;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Options of [`Registry::push`].
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Model name (else the config's default name, else the file stem).
    pub name: Option<String>,
    /// Tag to attach to the version.
    pub tag: Option<String>,
    /// Message to record.
    pub message: Option<String>,
    /// Store files whose pickle names dangerous globals.
    pub allow_unsafe: bool,
}

/// What [`Registry::push`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct PushReport {
    /// Model name.
    pub name: String,
    /// The version number (new, or the identical existing one).
    pub number: u32,
    /// Version id.
    pub id: VersionId,
    /// False when the file was byte-identical to an existing version.
    pub created: bool,
    /// Number of tensors in the file.
    pub tensors: usize,
    /// Storage payloads in the file.
    pub payloads: usize,
    /// Payloads whose blob was new.
    pub new_payloads: usize,
    /// File size.
    pub logical_bytes: u64,
    /// Bytes of payload data that were new (raw).
    pub new_raw_bytes: u64,
    /// Bytes written to blob files (compressed, headers included).
    pub written_bytes: u64,
    /// Globals with an unknown verdict (stored with a warning).
    pub unknown_globals: Vec<String>,
}

/// A memory map of an input file, or nothing for an empty file.
pub(crate) struct Input {
    map: Option<memmap2::Mmap>,
}

impl Input {
    pub(crate) fn open(path: &Path) -> Result<Input, RegistryError> {
        let file = File::open(path).map_err(RegistryError::io("opening", path))?;
        let len = file.metadata().map_err(RegistryError::io("reading", path))?.len();
        if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(RegistryError::Invalid(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        if len == 0 {
            return Ok(Input { map: None });
        }
        // SAFETY: the map is read-only; reg documents that a file must not
        // be truncated while it is being pushed (the whole-file hash and the
        // checks on pull catch a file that changed).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(RegistryError::io("mapping", path))?;
        Ok(Input { map: Some(map) })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

fn slice<'f>(file: &'f [u8], r: &Range<u64>) -> &'f [u8] {
    file.get(r.start as usize..r.end as usize).unwrap_or(&[])
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Registry {
    /// Push `path` as a new version (see module docs for the order of
    /// writes). Nothing is written when the file is refused.
    pub fn push(&self, path: &Path, opts: &PushOptions) -> Result<PushReport, RegistryError> {
        if let Some(tag) = &opts.tag {
            check_tag(tag)?;
        }
        let name = match opts.name.as_deref().or(self.config.default_name.as_deref()) {
            Some(n) => ModelName::new(n)?,
            None => ModelName::sanitized(&path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default()),
        };
        let input = Input::open(path)?;
        let file = input.bytes();
        let ckpt = reg_ckpt::inspect(file).map_err(|source| RegistryError::Inspect {
            file: path.to_path_buf(),
            source,
        })?;
        let dangerous: Vec<&str> = ckpt
            .globals
            .iter()
            .filter(|g| g.verdict == Verdict::Dangerous)
            .map(|g| g.global.as_str())
            .collect();
        if !dangerous.is_empty() && !opts.allow_unsafe {
            return Err(RegistryError::Unsafe {
                file: path.to_path_buf(),
                globals: dangerous.join(", "),
            });
        }
        let unknown: Vec<&str> = ckpt
            .globals
            .iter()
            .filter(|g| g.verdict == Verdict::Unknown)
            .map(|g| g.global.as_str())
            .collect();
        if self.config.strict_pickles && !unknown.is_empty() && !opts.allow_unsafe {
            return Err(RegistryError::Unsafe {
                file: path.to_path_buf(),
                globals: format!("{} (unknown; pickle_policy is strict)", unknown.join(", ")),
            });
        }
        let unknown_globals = ckpt
            .globals
            .iter()
            .filter(|g| g.verdict != Verdict::Safe)
            .map(|g| g.global.clone())
            .collect();
        let file_hash = BlobId::of_large(file).to_hex();
        let existing = self.index.versions(name.as_str())?;
        if let Some(same) = existing
            .iter()
            .find(|v| v.blake3 == file_hash && v.size == file.len() as u64)
        {
            if let Some(tag) = &opts.tag {
                self.index.set_tag(name.as_str(), tag, same.number)?;
                self.index.flush()?;
            }
            return Ok(PushReport {
                name: name.to_string(),
                number: same.number,
                id: same.id,
                created: false,
                tensors: ckpt.tensors.len(),
                payloads: count_payloads(&ckpt),
                new_payloads: 0,
                logical_bytes: file.len() as u64,
                new_raw_bytes: 0,
                written_bytes: 0,
                unknown_globals,
            });
        }
        let number = existing.last().map(|v| v.number + 1).unwrap_or(1);
        self.store_version(path, file, &ckpt, &name, number, file_hash, opts, unknown_globals)
    }

    #[allow(clippy::too_many_arguments)]
    fn store_version(
        &self,
        path: &Path,
        file: &[u8],
        ckpt: &Checkpoint,
        name: &ModelName,
        number: u32,
        file_hash: String,
        opts: &PushOptions,
        unknown_globals: Vec<String>,
    ) -> Result<PushReport, RegistryError> {
        // Hash every payload (in parallel), then store each distinct one once.
        let payload_ids: Vec<Option<BlobId>> = ckpt
            .segments
            .par_iter()
            .map(|s| match s.kind {
                SegmentKind::Payload { .. } => Some(BlobId::of_large(slice(file, &s.range))),
                SegmentKind::Skeleton => None,
            })
            .collect();
        let mut distinct: BTreeMap<BlobId, Range<u64>> = BTreeMap::new();
        for (seg, id) in ckpt.segments.iter().zip(&payload_ids) {
            if let Some(id) = id {
                distinct.entry(*id).or_insert_with(|| seg.range.clone());
            }
        }
        let outcomes: Vec<(BlobId, reg_store::PutOutcome, u64)> = distinct
            .par_iter()
            .map(|(id, range)| {
                let bytes = slice(file, range);
                self.store.put(*id, bytes).map(|o| (*id, o, bytes.len() as u64))
            })
            .collect::<Result<_, _>>()?;

        // The skeleton: every non-payload byte, concatenated.
        let mut skeleton = Vec::new();
        let mut pieces = Vec::with_capacity(ckpt.segments.len());
        let mut key_blobs: HashMap<&str, BlobId> = HashMap::new();
        for (seg, id) in ckpt.segments.iter().zip(&payload_ids) {
            match (&seg.kind, id) {
                (SegmentKind::Payload { storage_key }, Some(id)) => {
                    key_blobs.insert(storage_key.as_str(), *id);
                    pieces.push(Piece::Payload {
                        blob: *id,
                        len: seg.len(),
                    });
                }
                _ => {
                    let offset = skeleton.len() as u64;
                    skeleton.extend_from_slice(slice(file, &seg.range));
                    match pieces.last_mut() {
                        Some(Piece::Skeleton { len, .. }) => *len += seg.len(),
                        _ => pieces.push(Piece::Skeleton { offset, len: seg.len() }),
                    }
                }
            }
        }
        let skeleton_id = BlobId::of(&skeleton);
        let skeleton_put = self.store.put(skeleton_id, &skeleton)?;

        let tensors = ckpt
            .tensors
            .iter()
            .map(|t| TensorEntry {
                path: t.path.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                stride: t.stride.clone(),
                storage_offset: t.storage_offset,
                storage_key: t.storage_key.clone(),
                blob: key_blobs.get(t.storage_key.as_str()).copied().unwrap_or(skeleton_id),
                role: t.role,
                requires_grad: t.requires_grad,
                parameter: t.parameter,
            })
            .collect();
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA,
            name: name.to_string(),
            number,
            created: now_secs(),
            source: source_name(path),
            message: opts.message.clone(),
            format: ckpt.format,
            size: file.len() as u64,
            blake3: file_hash.clone(),
            skeleton: skeleton_id,
            pieces,
            tensors,
            meta: ckpt.meta.clone(),
            globals: ckpt.globals.clone(),
            pickle: ckpt.pickle.as_ref().map(|r| (r.start, r.end)),
        };
        let json = manifest
            .to_json()
            .map_err(|e| RegistryError::Invalid(format!("cannot encode manifest: {e}")))?;
        let manifest_id = BlobId::of(&json);
        let manifest_put = self.store.put(manifest_id, &json)?;
        self.store.sync()?;

        // Blob records for every blob this version needs that the index
        // does not list yet (including blobs left by an interrupted push).
        let mut new_records = Vec::new();
        let all = outcomes.iter().map(|(id, o, raw)| (*id, *o, *raw)).chain([
            (skeleton_id, skeleton_put, skeleton.len() as u64),
            (manifest_id, manifest_put, json.len() as u64),
        ]);
        for (id, o, raw) in all {
            if !self.index.has_blob(id)? {
                new_records.push((id, BlobRecord::new(raw, o.stored_len, o.codec)));
            }
        }
        let record = VersionRecord {
            number,
            id: VersionId(manifest_id.0),
            created: manifest.created,
            size: manifest.size,
            blake3: file_hash,
            source: manifest.source.clone(),
            epoch: manifest.meta.epoch,
            global_step: manifest.meta.global_step,
            message: manifest.message.clone(),
            tensor_count: manifest.tensors.len() as u64,
        };
        self.index
            .commit_version(&record, &json, name.as_str(), opts.tag.as_deref(), &new_records)?;

        let new_payloads: Vec<_> = outcomes.iter().filter(|(_, o, _)| o.written).collect();
        Ok(PushReport {
            name: name.to_string(),
            number,
            id: record.id,
            created: true,
            tensors: manifest.tensors.len(),
            payloads: count_payloads(ckpt),
            new_payloads: new_payloads.len(),
            logical_bytes: manifest.size,
            new_raw_bytes: new_payloads.iter().map(|(_, _, raw)| raw).sum(),
            written_bytes: outcomes
                .iter()
                .filter(|(_, o, _)| o.written)
                .map(|(_, o, _)| o.stored_len)
                .sum::<u64>()
                + [skeleton_put, manifest_put]
                    .iter()
                    .filter(|o| o.written)
                    .map(|o| o.stored_len)
                    .sum::<u64>(),
            unknown_globals,
        })
    }
}

fn count_payloads(ckpt: &Checkpoint) -> usize {
    ckpt.segments
        .iter()
        .filter(|s| matches!(s.kind, SegmentKind::Payload { .. }))
        .count()
}

fn source_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| PathBuf::from(path).display().to_string())
}
