//! `push` of a checkpoint directory: the whole tree is one version.
//!
//! Every file is listed ([`super::walk`]), memory-mapped and cut by its
//! own format with `reg_tree::inspect_tree` (torch zip, legacy,
//! safetensors, DCP data files by what `.metadata` locates; anything else
//! whole). Each file's payloads are read, hashed and encoded exactly as a
//! single file's are, so a tensor chunk is stored once whichever rank
//! file or shard holds it, across versions, names and re-sharding; each
//! file's other bytes are its skeleton, small ones packed together into
//! shared skeleton blobs ([`super::pack`]), larger ones a blob each (a
//! `tokenizer.json` that does not change is stored once). The version's hash is the blake3 of
//! its tree listing (`Tree::listing`: every file's path, size, hash and
//! executable bit), so a byte-identical tree adds no version.
//! The commit is the same short transaction as a file's.

use super::from_stream::Streamed;
use super::payloads::{self, payloads_in, NewBlob, Source};
use super::read::{hash_range, Hashing, Input};
use super::staged::StagedFiles;
use super::walk::walk;
use super::{cut_file, tensor_entries, writer_pool, Commit, Committed, Cut, PushOptions, PushReport};
use crate::error::{PushError, RegistryError};
use crate::lock::WriteGuard;
use crate::progress::Progress;
use crate::registry::Registry;
use rayon::prelude::*;
use reg_ckpt::{Segment, SegmentKind};
use reg_format::ids::{FileHash, ModelName, SourceName};
use reg_format::manifest::{
    listing_of, ChunkEntry, LogicalTensorEntry, Manifest, Tree, TreeFileEntry, VersionFormat, MANIFEST_SCHEMA,
};
use reg_store::{BlobId, PutOutcome};
use reg_tree::{inspect_tree, FileCheckpoint, TreeFile};
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

/// Skeleton runs longer than this (an unknown large binary, a huge text
/// file) are stored as payload blobs, streamed, rather than gathered into
/// the file's skeleton blob in memory.
const MAX_SKELETON_RUN: u64 = 16 << 20;

/// What a directory push did with one file (part of [`PushReport`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PushedFile {
    /// Its path in the directory.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// How it was read (`torch-zip`, `safetensors`, `dcp-data`, `other` ...).
    pub format: &'static str,
    /// Bytes of its payloads that were new to the registry (raw).
    pub new_bytes: u64,
}

/// Turn skeleton runs over [`MAX_SKELETON_RUN`] into payload segments.
fn split_big_runs(segments: &mut [Segment]) {
    for seg in segments.iter_mut() {
        if seg.kind == SegmentKind::Skeleton && seg.len() > MAX_SKELETON_RUN {
            seg.kind = SegmentKind::Payload {
                storage_key: format!("bytes@{}", seg.range.start),
            };
        }
    }
}

impl Registry {
    /// Push the directory `dir` as one version (see the module docs).
    pub(crate) fn push_tree(
        &self,
        _guard: &WriteGuard,
        dir: &Path,
        opts: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<PushReport, RegistryError> {
        if opts.parent.is_some() {
            return Err(PushError::ParentOfDirectory { dir: dir.to_path_buf() }.into());
        }
        let name = match opts.name.as_deref().or(self.config.default_name.as_deref()) {
            Some(n) => ModelName::new(n)?,
            None => ModelName::sanitized(&dir.file_name().map(|s| s.to_string_lossy()).unwrap_or_default()),
        };
        let walked = walk(dir)?;
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::after_walk(dir);
        let inputs: Vec<Input> = walked.iter().map(Input::open_listed).collect::<Result<_, _>>()?;
        // What `reg stage` streamed: hashes and chunks from its records.
        let mut staged_inputs: Vec<Option<Streamed<'_>>> = match &opts.staged {
            Some(session) => {
                let mut staged = StagedFiles::of(self, session, dir)?;
                walked
                    .iter()
                    .zip(&inputs)
                    .map(|(w, i)| staged.take(&self.store, w.rel.as_str(), i.bytes().len() as u64))
                    .collect::<Result<_, _>>()?
            }
            None => walked.iter().map(|_| None).collect(),
        };
        let files: Vec<TreeFile<'_>> = walked
            .iter()
            .zip(&inputs)
            .map(|(w, i)| TreeFile {
                path: w.rel.as_str(),
                bytes: i.bytes(),
            })
            .collect();
        let mut tree = inspect_tree(&files).map_err(|source| RegistryError::InspectTree {
            dir: dir.to_path_buf(),
            source: Box::new(source),
        })?;
        let unknown_globals = self.judge(dir, &tree.globals, opts)?;
        for f in &mut tree.files {
            split_big_runs(&mut f.segments);
        }
        let (existing, known_lens) = self.with_index(&format!("reg push of {name} to plan"), |idx| {
            let lens: HashSet<u64> = idx.blob_records()?.into_iter().map(|(_, r)| r.raw_len).collect();
            Ok((idx.versions(&name)?, lens))
        })?;

        // Every file's hash first: a tree identical to a version of the
        // name costs only that.
        let total: u64 = inputs.iter().map(|i| i.bytes().len() as u64).sum();
        progress.phase("hashing", total);
        let mut hashes = Vec::with_capacity(inputs.len());
        for ((w, i), staged) in walked.iter().zip(&inputs).zip(&staged_inputs) {
            let len = i.bytes().len() as u64;
            if let Some(s) = staged {
                hashes.push(FileHash(*s.file_hash.as_bytes()));
                progress.advance(len);
                continue;
            }
            let (id, _) = hash_range(&i.file, &(0..len), Hashing::Wide, progress)
                .map_err(RegistryError::io("reading", &w.abs))?;
            hashes.push(FileHash::from(id));
        }
        let rows = walked
            .iter()
            .zip(&inputs)
            .zip(&hashes)
            .map(|((w, i), h)| (w.rel.as_str(), *h, i.executable, i.bytes().len() as u64));
        let listing = listing_of(rows);
        let tree_hash = FileHash::from(BlobId::of(&listing));
        let payload_count: usize = tree
            .files
            .iter()
            .map(|f| {
                f.segments
                    .iter()
                    .filter(|s| matches!(s.kind, SegmentKind::Payload { .. }))
                    .count()
            })
            .sum();
        let counts = super::InputCounts {
            tensors: tree.tensors.len(),
            payloads: payload_count,
            logical_bytes: total,
        };
        let unchanged = |number: u32, id: crate::VersionId| {
            PushReport::unchanged(&name, number, id, counts, unknown_globals.clone())
        };
        if let Some(same) = existing.iter().find(|v| v.blake3 == tree_hash && v.size == total) {
            if let Some(tag) = &opts.tag {
                self.with_index(&format!("reg push of {name} to tag"), |idx| {
                    Ok(idx.set_tag(&name, tag, same.number)?)
                })?;
            }
            return Ok(unchanged(same.number.get(), same.id));
        }

        // Payloads, file by file, each read as few times as possible.
        let pool = writer_pool()?;
        let no_base = |_: &str, _: BlobId, _: u64| None;
        let mut ids: Vec<Vec<Option<BlobId>>> = Vec::with_capacity(tree.files.len());
        let mut new: Vec<(usize, NewBlob<'_>)> = Vec::new();
        let mut elsewhere = Vec::new();
        for (i, f) in tree.files.iter().enumerate() {
            let payloads = payloads_in(&f.segments, &f.tensors, &f.deferred_crcs);
            let src = Source {
                path: &walked[i].abs,
                file: &inputs[i].file,
                segments: f.segments.len(),
                defer_compression: self.defers_compression(opts),
            };
            let read = match staged_inputs[i].as_mut() {
                // The big chunks are blobs already; the rest is in the file.
                Some(s) => self.read_streamed_payloads(
                    &src,
                    s,
                    payloads,
                    &known_lens,
                    &no_base,
                    &pool,
                    progress,
                    &walked[i].abs,
                    &mut elsewhere,
                )?,
                None => self.read_payloads(&src, &payloads, &known_lens, &no_base, &pool, progress)?,
            };
            ids.push(read.ids);
            new.extend(read.new.into_iter().map(|n| (i, n)));
        }
        // A chunk stored by two files of the tree is one blob.
        let mut kept = HashSet::new();
        new.retain(|(_, n)| kept.insert(n.id));
        // A staged chunk found stored when it was staged must still be.
        if let Some(gone) = elsewhere
            .iter()
            .find(|id| !kept.contains(*id) && !self.store.contains(**id))
        {
            return Err(PushError::StagedChunkGone {
                dir: dir.to_path_buf(),
                chunk: gone.to_hex(),
            }
            .into());
        }

        let mut cuts: Vec<Cut<'_>> = tree
            .files
            .iter()
            .zip(&ids)
            .zip(&inputs)
            .map(|((f, ids), i)| cut_file(&f.segments, ids, i.bytes()))
            .collect();
        let skeletons = super::pack::pack(&mut cuts);
        let manifest = self.tree_manifest(
            dir,
            &name,
            opts,
            &tree.files,
            &cuts,
            &skeletons.of_file,
            &walked,
            &inputs,
            &hashes,
            &tree,
        )?;
        let manifest = Manifest {
            size: total,
            blake3: tree_hash,
            skeleton: BlobId::of(&listing),
            ..manifest
        };
        // Before any blob takes its name: a manifest that would not read
        // back leaves the registry exactly as it was.
        manifest.encode().map_err(|source| RegistryError::Unreadable {
            name: name.to_string(),
            source,
        })?;

        // Store: the new payload blobs take their names, then each file's
        // skeleton blob and the listing.
        let new_bytes_of: Vec<u64> = {
            let mut per = vec![0u64; tree.files.len()];
            for (i, n) in &new {
                per[*i] += n.raw_len;
            }
            per
        };
        let deferred = payloads::deferred_of(new.iter().map(|(_, n)| n));
        let outcomes: Vec<(BlobId, PutOutcome, u64)> = pool.install(|| {
            new.into_par_iter()
                .map(|(_, n)| n.pending.commit(n.id).map(|o| (n.id, o, n.raw_len)))
                .collect::<Result<_, reg_store::StoreError>>()
        })?;
        let mut blobs: Vec<(BlobId, u64, Option<PutOutcome>)> = Vec::new();
        let listing_put = self.store.put(manifest.skeleton, &listing)?;
        blobs.push((manifest.skeleton, listing.len() as u64, Some(listing_put)));
        let mut skeleton_puts = Vec::new();
        for (id, bytes) in &skeletons.blobs {
            if *id == manifest.skeleton {
                continue;
            }
            let put = self.store.put(*id, bytes)?;
            skeleton_puts.push(put);
            blobs.push((*id, bytes.len() as u64, Some(put)));
        }
        for (id, len) in manifest.payload_lens() {
            let put = outcomes.iter().find(|(n, _, _)| *n == id).map(|(_, o, _)| *o);
            blobs.push((id, len, put));
        }
        self.store.sync()?;
        let deferred = payloads::deferred_written(&deferred, &outcomes);
        let committed = self.commit(Commit {
            manifest,
            tag: opts.tag.as_ref(),
            replaces: None,
            blobs,
            deferred: deferred.clone(),
            delta_edges: Vec::new(),
            defer_deltas: self.deltas_in_background(),
            retain: self.retention(opts),
        })?;
        let (record, manifest, manifest_put, previous) = match committed {
            Committed::New {
                record,
                manifest,
                manifest_put,
                previous,
            } => (record, manifest, manifest_put, previous),
            Committed::Same(same) => return Ok(unchanged(same.number.get(), same.id)),
        };
        let number = manifest.number;
        let previous_deltas = self.deltas_after_push(previous.as_deref(), &manifest, None, progress)?;
        let written = |o: &PutOutcome| if o.written { o.stored_len } else { 0 };
        let tree_files = manifest.tree.as_ref().map(|t| t.files.as_slice()).unwrap_or(&[]);
        Ok(PushReport {
            name: name.to_string(),
            number,
            id: record.id,
            created: true,
            tensors: tree.tensors.len(),
            payloads: payload_count,
            new_payloads: outcomes.iter().filter(|(_, o, _)| o.written).count(),
            logical_bytes: total,
            new_raw_bytes: outcomes
                .iter()
                .filter(|(_, o, _)| o.written)
                .map(|(_, _, raw)| raw)
                .sum(),
            written_bytes: outcomes.iter().map(|(_, o, _)| written(o)).sum::<u64>()
                + skeleton_puts.iter().map(written).sum::<u64>()
                + written(&listing_put)
                + written(&manifest_put),
            deltas: 0,
            previous_deltas,
            deferred,
            unknown_globals,
            files: tree_files
                .iter()
                .zip(&new_bytes_of)
                .map(|(f, new)| PushedFile {
                    path: f.path.to_string(),
                    size: f.size,
                    format: f.format.name(),
                    new_bytes: *new,
                })
                .collect(),
        })
    }

    /// The manifest of a directory version (size, hash and listing blob
    /// are filled in by the caller).
    #[allow(clippy::too_many_arguments)]
    fn tree_manifest(
        &self,
        dir: &Path,
        name: &ModelName,
        opts: &PushOptions,
        files: &[FileCheckpoint],
        cuts: &[Cut<'_>],
        skeleton_of: &[BlobId],
        walked: &[super::walk::WalkedFile],
        inputs: &[Input],
        hashes: &[FileHash],
        tree: &reg_tree::TreeCheckpoint,
    ) -> Result<Manifest, RegistryError> {
        let mut entries = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            entries.push(TreeFileEntry {
                path: walked[i].rel.clone(),
                size: inputs[i].bytes().len() as u64,
                blake3: hashes[i],
                executable: inputs[i].executable,
                format: f.format,
                skeleton: skeleton_of[i],
                pieces: cuts[i].pieces.clone(),
                tensors: tensor_entries(&f.tensors, &cuts[i].key_blobs, &walked[i].abs)?,
                pickle: f.pickle.as_ref().map(|r| (r.start, r.end)),
            });
        }
        let key_blob = |file: usize, key: &str| -> Result<BlobId, RegistryError> {
            cuts.get(file)
                .and_then(|c| c.key_blobs.get(key).copied())
                .ok_or_else(|| {
                    RegistryError::Internal(format!(
                        "{}: a chunk names storage {key} of file {file}, which is not one of its payloads",
                        dir.display()
                    ))
                })
        };
        let tensors = tree
            .tensors
            .iter()
            .map(|t| {
                let chunks = t
                    .chunks
                    .iter()
                    .map(|c| {
                        Ok(ChunkEntry {
                            file: u32::try_from(c.file)
                                .map_err(|_| RegistryError::Internal("too many files".into()))?,
                            offsets: c.offsets.clone(),
                            sizes: c.sizes.clone(),
                            blob: key_blob(c.file, &c.storage_key)?,
                            storage_offset: c.storage_offset,
                            stride: c.stride.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>, RegistryError>>()?;
                Ok(LogicalTensorEntry {
                    name: t.name.clone(),
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    role: t.role,
                    chunks,
                    meta: t.meta,
                })
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        Ok(Manifest {
            schema: MANIFEST_SCHEMA,
            name: name.clone(),
            number: 0,
            created: super::now_secs(),
            source: SourceName::of_path(dir),
            message: opts.message.clone(),
            format: VersionFormat::Directory,
            size: 0,
            blake3: FileHash([0; 32]),
            skeleton: BlobId([0; 32]),
            pieces: Vec::new(),
            tensors: Vec::new(),
            meta: tree.meta.clone(),
            globals: tree.globals.clone(),
            pickle: None,
            optimizer_dropped: None,
            executable: false,
            tree: Some(Tree {
                layout: tree.layout,
                files: entries,
                tensors,
                epoch: tree.epoch.filter(|e| e.fract() != 0.0),
                model_config: tree.model_config.clone(),
            }),
        })
    }
}
