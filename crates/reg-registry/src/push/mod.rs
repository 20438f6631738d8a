//! `push`: store a checkpoint file as a new version.
//!
//! The file is inspected (headers and pickle only), its whole-file hash
//! taken with every core (a file identical to a version of the name ends
//! the push there), then its payloads are read, hashed and the new ones
//! encoded into pending blobs (`payloads.rs`). Nothing is stored until
//! every payload has been read and checked.
//!
//! Order of durability: payload and skeleton blobs, then the manifest blob,
//! then a directory sync, and only then the index transaction that makes
//! the version visible. A crash before the transaction leaves unreferenced
//! blobs (collected by gc), never a partial version. After it, the
//! previous version's changed tensors become deltas against this one's
//! (`crate::deltas`).

use crate::deltas::DeltaReport;
use crate::error::RegistryError;
use crate::lock::WriteGuard;
use crate::progress::{Progress, Silent};
use crate::registry::Registry;
use crate::resolve::Resolved;
use payloads::{payloads_of, NewBlob, Source};
use rayon::prelude::*;
use read::{hash_range, Hashing, Input};
use reg_ckpt::safety::Verdict;
use reg_ckpt::{Checkpoint, SegmentKind};
use reg_format::ids::{FileHash, ModelName, SourceName, VersionId};
use reg_format::manifest::{DroppedFrom, Manifest, Piece, TensorEntry, MANIFEST_SCHEMA};
use reg_store::BlobId;
use reg_store::{FileRange, ParentCheck, RawSource};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::ops::Range;

mod commit;
mod from_stream;
mod pack;
mod payloads;
mod read;
mod staged;
mod tree;
mod walk;
pub(crate) use commit::{Commit, Committed};
pub(crate) use from_stream::{Streamed, StreamedPiece};
pub(crate) use payloads::DEFER_MIN_LEN;
pub use staged::StageReport;
use std::path::Path;
pub use tree::PushedFile;

/// Options of [`Registry::push`].
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Model name (else the config's default name, else the file stem).
    pub name: Option<String>,
    /// Tag to attach to the version.
    pub tag: Option<reg_format::TagName>,
    /// Message to record.
    pub message: Option<String>,
    /// Store files whose pickle names dangerous globals.
    pub allow_unsafe: bool,
    /// Store the new float tensors as deltas against this version's
    /// (a fine-tune against its base model).
    pub parent: Option<reg_format::refs::VersionRef>,
    /// After the push, drop optimizer state from all but the newest N
    /// versions of the name (overrides the config's `keep_optimizer_last`).
    /// With background deltas this is queued with the re-encoding request
    /// and runs in [`Registry::finish_pending_deltas`] (the job the CLI
    /// starts); otherwise before the push returns.
    pub keep_optimizer_last: Option<usize>,
    /// The file name the version records (what `reg pull` writes by
    /// default) and its errors name; the model name defaults to its stem.
    /// Default: the pushed file's name. [`Registry::push_stream`] needs
    /// it or a model name.
    pub source: Option<String>,
    /// Store new tensors uncompressed and leave their compression to the
    /// background job (a save in the training loop: the push costs what
    /// hashing and writing cost). Ignored when the background work runs
    /// before the push returns ([`crate::BackgroundRunner::Inline`]): then
    /// encoding at push is the cheaper way.
    pub fast: bool,
    /// The staging session (`staging/ID`) whose `reg stage` records
    /// describe files of the pushed folder (which must be in it): those
    /// files' hashes and chunks come from the records, their chunks' blobs
    /// are adopted from the session ([`Registry::stage_stream`]).
    pub staged: Option<std::path::PathBuf>,
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
    /// New blobs stored as deltas against the `--parent` version's.
    pub deltas: usize,
    /// The previous version's blobs re-encoded as deltas against this one's.
    pub previous_deltas: DeltaReport,
    /// New blobs stored raw by a fast push, left to the background job
    /// to compress, with the element width each is compressed with.
    pub deferred: Vec<(BlobId, Option<u8>)>,
    /// Globals with an unknown verdict (stored with a warning).
    pub unknown_globals: Vec<String>,
    /// For a directory: what was done with each file (empty for a file).
    pub files: Vec<PushedFile>,
}

/// What a push read of its input, for its [`PushReport`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct InputCounts {
    /// Tensors in it.
    pub(crate) tensors: usize,
    /// Storage payloads in it.
    pub(crate) payloads: usize,
    /// Its bytes.
    pub(crate) logical_bytes: u64,
}

impl PushReport {
    /// The report of a push that added no version: its file (or tree) is
    /// byte-identical to version `number` (`id`) of `name`.
    pub(crate) fn unchanged(
        name: &ModelName,
        number: u32,
        id: VersionId,
        counts: InputCounts,
        unknown_globals: Vec<String>,
    ) -> PushReport {
        PushReport {
            name: name.to_string(),
            number,
            id,
            created: false,
            tensors: counts.tensors,
            payloads: counts.payloads,
            new_payloads: 0,
            logical_bytes: counts.logical_bytes,
            new_raw_bytes: 0,
            written_bytes: 0,
            deltas: 0,
            previous_deltas: DeltaReport::default(),
            deferred: Vec::new(),
            unknown_globals,
            files: Vec::new(),
        }
    }
}

fn slice<'f>(file: &'f [u8], r: &Range<u64>) -> &'f [u8] {
    file.get(r.start as usize..r.end as usize).unwrap_or(&[])
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Registry {
    /// Push `path` as a new version (see module docs for the order of
    /// writes). Nothing is written when the file is refused.
    pub fn push(&self, path: &Path, opts: &PushOptions) -> Result<PushReport, RegistryError> {
        self.push_with(path, opts, &Silent)
    }

    /// [`Registry::push`] with progress reporting.
    pub fn push_with(
        &self,
        path: &Path,
        opts: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<PushReport, RegistryError> {
        let result = self.writer().and_then(|guard| {
            if path.is_dir() {
                self.push_tree(&guard, path, opts, progress)
            } else {
                self.push_inner(&guard, path, opts, progress, None, None)
            }
        });
        progress.finish();
        self.after_push(result?, opts)
    }

    /// What follows a push once its writer guard is let go (retention's
    /// gc needs gc.lock to itself): start the background job it queued,
    /// or run retention now.
    pub(crate) fn after_push(&self, report: PushReport, opts: &PushOptions) -> Result<PushReport, RegistryError> {
        // With a background re-encoding queued, retention was queued with
        // it (the job runs it after): the push starts the job and waits
        // for neither (crate::background).
        let queued = report.previous_deltas.pending;
        if queued || !report.deferred.is_empty() {
            self.start_background()?;
        }
        if let (Some(n), true, false) = (self.retention(opts), report.created, queued) {
            let rules = crate::maintenance::PruneRules {
                keep_optimizer_last: Some(n),
                ..Default::default()
            };
            self.prune(&report.name, rules)?;
        }
        Ok(report)
    }

    /// True when a push with `opts` stores its new payloads raw, for the
    /// background job to compress.
    pub(crate) fn defers_compression(&self, opts: &PushOptions) -> bool {
        (opts.fast || self.config.keep_newest_raw) && self.background != crate::BackgroundRunner::Inline
    }

    /// The retention a push asks for: its option, else the config's.
    pub(crate) fn retention(&self, opts: &PushOptions) -> Option<usize> {
        opts.keep_optimizer_last.or(self.config.keep_optimizer_last)
    }

    /// Replace version `old` by the checkpoint in `spool` whose big
    /// storages are `streamed`'s pieces, already in the store (what
    /// retention makes of a version, see `crate::retention`): same name,
    /// number, source and creation time, committed in place of `old`.
    pub(crate) fn replace_version(
        &self,
        guard: &WriteGuard,
        old: &Resolved,
        spool: &Path,
        streamed: Streamed<'_>,
    ) -> Result<PushReport, RegistryError> {
        let opts = PushOptions {
            name: Some(old.manifest.name.to_string()),
            source: Some(old.manifest.source.to_string()),
            message: old.manifest.message.clone(),
            ..PushOptions::default()
        };
        self.push_inner(guard, spool, &opts, &Silent, Some(old), Some(streamed))
    }

    /// The push itself; `_guard` proves the caller holds `gc.lock`, so
    /// nothing this push relies on is deleted under it.
    pub(crate) fn push_inner(
        &self,
        _guard: &WriteGuard,
        path: &Path,
        opts: &PushOptions,
        progress: &dyn Progress,
        replaces: Option<&Resolved>,
        streamed: Option<from_stream::Streamed<'_>>,
    ) -> Result<PushReport, RegistryError> {
        // The file as the version records it and errors name it.
        let shown: &Path = opts.source.as_deref().map(Path::new).unwrap_or(path);
        let name = match opts.name.as_deref().or(self.config.default_name.as_deref()) {
            Some(n) => ModelName::new(n)?,
            None => ModelName::sanitized(&shown.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default()),
        };
        let input = Input::open(path)?;
        let bytes = input.bytes();
        let inspect_err = |source| RegistryError::Inspect {
            file: shown.to_path_buf(),
            source,
        };
        // Only headers, directories and pickles are read here; payload
        // bytes are streamed below, where their CRCs are checked.
        let ckpt = reg_ckpt::inspect_deferred(bytes).map_err(inspect_err)?;
        let unknown_globals = self.judge_globals(shown, &ckpt, opts)?;
        let base = match &opts.parent {
            Some(r) => Some(self.resolve(r)?),
            None => None,
        };

        let file = &input.file;
        let len = bytes.len() as u64;
        let payloads = payloads_of(&ckpt);
        // One short look at the index: the name's versions (for an
        // identical file) and the lengths of stored blobs (what may be
        // stored already).
        let (existing, known_lens) = self.with_index(&format!("reg push of {name} to plan"), |idx| {
            let lens: HashSet<u64> = idx.blob_records()?.into_iter().map(|(_, r)| r.raw_len).collect();
            Ok((idx.versions(&name)?, lens))
        })?;
        let bases = base.as_ref().map(|b| crate::deltas::Bases::new(&b.manifest, &ckpt));
        let max_chain = self.config.max_delta_chain;
        let pair_with_base = |key: &str, id: BlobId, len: u64| {
            let pair = bases.as_ref()?.pair(key, id, len)?;
            let above = self.store.chain(pair.parent).ok()?.len();
            (above < max_chain).then_some(pair)
        };
        let pool = writer_pool()?;
        let src = Source {
            path,
            file,
            segments: ckpt.segments.len(),
            defer_compression: replaces.is_none() && self.defers_compression(opts),
        };
        // The whole-file hash first, with every core: a file identical to
        // a version of the name (last.ckpt beside the newest epoch, a push
        // run twice) costs only that. The work is the same either way on
        // a machine whose cores are all busy.
        let mut streamed = streamed;
        let file_hash = match &streamed {
            Some(s) => BlobId(*s.file_hash.as_bytes()),
            None => {
                progress.phase("hashing", len);
                hash_range(file, &(0..len), Hashing::Wide, progress)
                    .map_err(|e| RegistryError::io("reading", path)(e))?
                    .0
            }
        };
        let file_hash = FileHash::from(file_hash);
        let same = existing.iter().find(|v| v.blake3 == file_hash && v.size == len);
        if let (Some(same), None) = (same, replaces) {
            // Byte-identical to a version: its blobs are all stored.
            if let Some(tag) = &opts.tag {
                self.with_index(&format!("reg push of {name} to tag"), |idx| {
                    Ok(idx.set_tag(&name, tag, same.number)?)
                })?;
            }
            let counts = InputCounts {
                tensors: ckpt.tensors.len(),
                payloads: payloads.len(),
                logical_bytes: len,
            };
            return Ok(PushReport::unchanged(
                &name,
                same.number.get(),
                same.id,
                counts,
                unknown_globals,
            ));
        }
        let read = match streamed.as_mut() {
            // The big storages came as blobs; the rest is in the spool.
            Some(s) => self.read_streamed_payloads(
                &src,
                s,
                payloads,
                &known_lens,
                &pair_with_base,
                &pool,
                progress,
                shown,
                &mut Vec::new(),
            )?,
            None => self.read_payloads(&src, &payloads, &known_lens, &pair_with_base, &pool, progress)?,
        };
        let (ids, new) = (read.ids, read.new);
        let version = NewVersion {
            replaces,
            path: shown,
            file,
            bytes,
            ckpt: &ckpt,
            ids: &ids,
            name: &name,
            file_hash,
            executable: replaces.map(|o| o.manifest.executable).unwrap_or(input.executable),
            payloads_in_file: streamed.is_none(),
        };
        self.store_version(&version, new, &pool, opts, unknown_globals, progress)
    }

    /// Refuse dangerous globals (and unknown ones under the strict policy);
    /// return the non-safe ones for a warning.
    fn judge_globals(&self, path: &Path, ckpt: &Checkpoint, opts: &PushOptions) -> Result<Vec<String>, RegistryError> {
        self.judge(path, &ckpt.globals, opts)
    }

    /// [`Registry::judge_globals`] for the globals of a file or a tree.
    pub(crate) fn judge(
        &self,
        path: &Path,
        globals: &[reg_ckpt::safety::GlobalVerdict],
        opts: &PushOptions,
    ) -> Result<Vec<String>, RegistryError> {
        let named = |v: Verdict| reg_ckpt::safety::with_verdict(globals, v).collect::<Vec<_>>();
        let dangerous = named(Verdict::Dangerous);
        if !dangerous.is_empty() && !opts.allow_unsafe {
            return Err(RegistryError::Unsafe {
                file: path.to_path_buf(),
                globals: dangerous.join(", "),
            });
        }
        let unknown = named(Verdict::Unknown);
        if self.config.strict_pickles && !unknown.is_empty() && !opts.allow_unsafe {
            return Err(RegistryError::Unsafe {
                file: path.to_path_buf(),
                globals: format!("{} (unknown; pickle_policy is strict)", unknown.join(", ")),
            });
        }
        Ok(reg_ckpt::safety::not_safe(globals).map(|g| g.global.clone()).collect())
    }

    fn store_version(
        &self,
        v: &NewVersion<'_>,
        new: Vec<NewBlob<'_>>,
        pool: &rayon::ThreadPool,
        opts: &PushOptions,
        unknown_globals: Vec<String>,
        progress: &dyn Progress,
    ) -> Result<PushReport, RegistryError> {
        let ckpt = v.ckpt;
        let (manifest, skeleton) = self.build_manifest(v, opts)?;
        // Before any blob takes its name: a manifest that would not read
        // back leaves the registry exactly as it was.
        manifest.encode().map_err(|source| RegistryError::Unreadable {
            name: v.name.to_string(),
            source,
        })?;

        // The new payload blobs (encoded and checked while the file was
        // read) take their names; each fsync overlaps the others.
        let deferred = payloads::deferred_of(&new);
        let outcomes: Vec<(BlobId, reg_store::PutOutcome, u64)> = pool.install(|| {
            new.into_par_iter()
                .map(|n| n.pending.commit(n.id).map(|o| (n.id, o, n.raw_len)))
                .collect::<Result<_, reg_store::StoreError>>()
        })?;
        // Every distinct payload blob, with its range and zip CRC.
        let mut distinct: BTreeMap<BlobId, (Range<u64>, Option<u32>)> = BTreeMap::new();
        for p in payloads_of(ckpt) {
            if let Some(id) = v.ids[p.index] {
                distinct.entry(id).or_insert_with(|| (p.seg.range.clone(), p.crc));
            }
        }
        let skeleton_put = self.store.put(manifest.skeleton, &skeleton)?;
        self.store.sync()?;

        let mut blobs: Vec<(BlobId, u64, Option<reg_store::PutOutcome>)> =
            vec![(manifest.skeleton, skeleton.len() as u64, Some(skeleton_put))];
        for (id, (range, _)) in &distinct {
            let put = outcomes.iter().find(|(n, _, _)| n == id).map(|(_, o, _)| *o);
            blobs.push((*id, range.end - range.start, put));
        }
        // The parent the stored file names (a blob stored meanwhile keeps
        // its own encoding).
        let deltas: Vec<(BlobId, BlobId)> = outcomes
            .iter()
            .filter(|(_, o, _)| o.written)
            .filter_map(|(id, o, _)| Some((o.parent?, *id)))
            .collect();
        let deferred = payloads::deferred_written(&deferred, &outcomes);
        let committed = self.commit(Commit {
            manifest,
            tag: opts.tag.as_ref(),
            replaces: v.replaces,
            blobs,
            deferred: deferred.clone(),
            delta_edges: deltas.clone(),
            defer_deltas: v.replaces.is_none() && self.deltas_in_background(),
            retain: self.retention(opts),
        })?;
        let (record, manifest, manifest_put, previous) = match committed {
            Committed::New {
                record,
                manifest,
                manifest_put,
                previous,
            } => (record, manifest, manifest_put, previous),
            Committed::Same(same) => {
                // An identical file was pushed meanwhile: its version
                // stands, and the blobs written here are the same blobs.
                let counts = InputCounts {
                    tensors: ckpt.tensors.len(),
                    payloads: count_payloads(ckpt),
                    logical_bytes: v.bytes.len() as u64,
                };
                return Ok(PushReport::unchanged(
                    v.name,
                    same.number.get(),
                    same.id,
                    counts,
                    unknown_globals,
                ));
            }
        };
        let number = manifest.number;

        // The version is durable: now the previous one's changed tensors
        // become deltas against this one's (see crate::deltas).
        // The new bytes come from the file (checked by the zip CRC where
        // there is one: the file may have changed since).
        let from_file = |id: BlobId| -> Option<(Box<dyn RawSource + '_>, ParentCheck)> {
            distinct.get(&id).map(|(range, crc)| {
                let check = match crc {
                    Some(crc) => ParentCheck::Crc32(*crc),
                    None => ParentCheck::Id,
                };
                let source = Box::new(FileRange {
                    file: v.file,
                    start: range.start,
                    len: range.end - range.start,
                }) as Box<dyn RawSource>;
                (source, check)
            })
        };
        let parents_in_file = v
            .payloads_in_file
            .then_some(&from_file as &crate::deltas::ParentSource<'_>);
        let previous_deltas =
            pool.install(|| self.deltas_after_push(previous.as_deref(), &manifest, parents_in_file, progress))?;

        let written = |o: &reg_store::PutOutcome| if o.written { o.stored_len } else { 0 };
        Ok(PushReport {
            name: v.name.to_string(),
            number,
            id: record.id,
            created: true,
            tensors: manifest.tensors.len(),
            payloads: count_payloads(ckpt),
            new_payloads: outcomes.iter().filter(|(_, o, _)| o.written).count(),
            logical_bytes: manifest.size,
            new_raw_bytes: outcomes
                .iter()
                .filter(|(_, o, _)| o.written)
                .map(|(_, _, raw)| raw)
                .sum(),
            written_bytes: outcomes.iter().map(|(_, o, _)| written(o)).sum::<u64>()
                + written(&skeleton_put)
                + written(&manifest_put),
            deltas: deltas.len(),
            previous_deltas,
            deferred,
            unknown_globals,
            files: Vec::new(),
        })
    }

    /// The manifest of the version being pushed and its skeleton bytes
    /// (every non-payload byte, concatenated); nothing is written.
    fn build_manifest(&self, v: &NewVersion<'_>, opts: &PushOptions) -> Result<(Manifest, Vec<u8>), RegistryError> {
        let ckpt = v.ckpt;
        let cut = cut_file(&ckpt.segments, v.ids, v.bytes);
        let skeleton = cut.skeleton;
        let pieces = cut.pieces;
        let skeleton_id = BlobId::of(&skeleton);
        let tensors = tensor_entries(&ckpt.tensors, &cut.key_blobs, v.path)?;
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA,
            name: v.name.clone(),
            number: 0,
            created: v.replaces.map(|o| o.manifest.created).unwrap_or_else(now_secs),
            source: v
                .replaces
                .map(|o| o.manifest.source.clone())
                .unwrap_or_else(|| SourceName::of_path(v.path)),
            message: opts.message.clone(),
            format: ckpt.format.into(),
            size: v.bytes.len() as u64,
            blake3: v.file_hash,
            skeleton: skeleton_id,
            pieces,
            tensors,
            meta: ckpt.meta.clone(),
            globals: ckpt.globals.clone(),
            pickle: ckpt.pickle.as_ref().map(|r| (r.start, r.end)),
            executable: v.executable,
            tree: None,
            optimizer_dropped: v.replaces.map(|o| {
                o.manifest.optimizer_dropped.clone().unwrap_or(DroppedFrom {
                    size: o.manifest.size,
                    blake3: o.manifest.blake3,
                    when: now_secs(),
                })
            }),
        };
        Ok((manifest, skeleton))
    }
}

/// One file cut into a skeleton blob's bytes and pieces.
pub(crate) struct Cut<'k> {
    /// Every non-payload byte, concatenated.
    pub(crate) skeleton: Vec<u8>,
    /// The file as pieces, in order.
    pub(crate) pieces: Vec<Piece>,
    /// The blob of each payload's storage key.
    pub(crate) key_blobs: HashMap<&'k str, BlobId>,
}

/// Cut a file of `bytes` into skeleton bytes and pieces, given the blob
/// id of each payload segment (`ids`, `None` for skeleton segments).
pub(crate) fn cut_file<'k>(segments: &'k [reg_ckpt::Segment], ids: &[Option<BlobId>], bytes: &[u8]) -> Cut<'k> {
    let mut skeleton = Vec::new();
    let mut pieces = Vec::with_capacity(segments.len());
    let mut key_blobs: HashMap<&str, BlobId> = HashMap::new();
    for (seg, id) in segments.iter().zip(ids) {
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
                skeleton.extend_from_slice(slice(bytes, &seg.range));
                match pieces.last_mut() {
                    Some(Piece::Skeleton { len, .. }) => *len += seg.len(),
                    _ => pieces.push(Piece::Skeleton { offset, len: seg.len() }),
                }
            }
        }
    }
    Cut {
        skeleton,
        pieces,
        key_blobs,
    }
}

/// The manifest entries of a file's tensors, each naming its storage's blob.
pub(crate) fn tensor_entries(
    tensors: &[reg_ckpt::tensors::TensorInfo],
    key_blobs: &HashMap<&str, BlobId>,
    path: &Path,
) -> Result<Vec<TensorEntry>, RegistryError> {
    tensors
        .iter()
        .map(|t| {
            // inspect checks that every tensor's storage is a payload of
            // the file; one without is a reader bug, never stored. A meta
            // tensor has no storage.
            let blob = if t.meta {
                None
            } else {
                Some(key_blobs.get(t.storage_key.as_str()).copied().ok_or_else(|| {
                    RegistryError::Internal(format!(
                        "{}: tensor {} names storage {}, which is not a payload of the file",
                        path.display(),
                        t.path,
                        t.storage_key
                    ))
                })?)
            };
            Ok(TensorEntry {
                path: t.path.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                stride: t.stride.clone(),
                storage_offset: t.storage_offset,
                storage_key: t.storage_key.clone(),
                blob,
                role: t.role,
                requires_grad: t.requires_grad,
                parameter: t.parameter,
                meta: t.meta,
            })
        })
        .collect()
}

/// Writer threads for blob files: twice as many as cores, so that fsync
/// waits overlap with compression.
fn writer_pool() -> Result<rayon::ThreadPool, RegistryError> {
    // Capped: each writer holds a few frames (about 45 MiB with deltas).
    let writers = std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(4)
        .min(8);
    rayon::ThreadPoolBuilder::new()
        .num_threads(writers)
        .build()
        .map_err(|e| RegistryError::Internal(format!("cannot start writer threads: {e}")))
}

/// What `store_version` needs to know about the file being pushed.
struct NewVersion<'a> {
    /// The version this one takes the place of (retention).
    replaces: Option<&'a Resolved>,
    path: &'a Path,
    file: &'a File,
    bytes: &'a [u8],
    ckpt: &'a Checkpoint,
    /// The blob id of each segment (`None` for skeleton segments).
    ids: &'a [Option<BlobId>],
    name: &'a ModelName,
    file_hash: FileHash,
    /// The input file's owner executable bit.
    executable: bool,
    /// Every payload's bytes are in `file` (not so for a stream, whose
    /// big storages went into blobs as they arrived).
    payloads_in_file: bool,
}

fn count_payloads(ckpt: &Checkpoint) -> usize {
    ckpt.segments
        .iter()
        .filter(|s| matches!(s.kind, SegmentKind::Payload { .. }))
        .count()
}
