//! Which blobs are stored as deltas against which: the registry's policy
//! on top of `reg_store`'s delta blobs.
//!
//! **Training runs: reverse deltas.** When version N+1 of a name is
//! pushed, each float storage of version N that changed (same tensor path,
//! dtype and length, different bytes) is re-encoded as a delta against
//! N+1's, where that makes its file smaller. The newest version is always
//! self-contained, so pulling it (resuming training) reads one blob per
//! tensor; older versions read a chain. Retention and `prune --keep-last`
//! remove the oldest versions, the ends of chains, so they never force a
//! re-encoding. The re-encoding runs after N+1 is committed: the new
//! version is durable before any old blob is touched, and an interrupted
//! re-encoding leaves the old blob as it was (each one is an atomic
//! rename).
//!
//! **Fine-tunes: forward deltas.** `push --parent REF` stores the new
//! version's float storages as deltas against REF's same tensors (a
//! fine-tune against its base model).
//!
//! **Bounded chains.** No chain is made longer than `max_delta_chain`
//! links (config, default [`DEFAULT_MAX_DELTA_CHAIN`]; 0 turns deltas
//! off): a blob becomes a delta only when the links hanging below it plus
//! the new link plus its parent's own chain stay within the bound, so a
//! pull reads at most `max_delta_chain + 1` blobs per tensor.
//! **gc never breaks a chain**: see [`Registry::gc`].

use crate::registry::Registry;
use rayon::prelude::*;
use reg_format::index::{BlobRecord, Index};
use reg_format::manifest::Manifest;
use reg_format::{ModelName, VersionNumber};
use reg_store::{BlobId, ParentCheck, RawSource};
use std::collections::{BTreeSet, HashMap, HashSet};

pub use crate::config::DEFAULT_MAX_DELTA_CHAIN;

/// An older blob to re-encode against a newer one (or a new blob to store
/// against a base).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pair {
    /// The blob that becomes a delta.
    pub(crate) child: BlobId,
    /// The blob it is XORed against.
    pub(crate) parent: BlobId,
    /// Element width of the tensor.
    pub(crate) width: u8,
}

/// What a round of re-encoding did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeltaReport {
    /// The version whose blobs were re-encoded.
    pub version: Option<u32>,
    /// The version they are deltas against.
    pub against: Option<u32>,
    /// Blobs now stored as deltas.
    pub blobs: usize,
    /// Their stored bytes before.
    pub bytes_before: u64,
    /// Their stored bytes after.
    pub bytes_after: u64,
    /// Re-encodings that failed (the blob keeps its old encoding).
    pub warnings: Vec<String>,
    /// Nothing was done yet: the registry's `deltas` setting is
    /// `background`, and [`Registry::make_deltas`] is still to run.
    pub pending: bool,
}

/// Where a delta round reads a parent's raw bytes, with how to check them.
pub(crate) type ParentSource<'a> = dyn Fn(BlobId) -> Option<(Box<dyn RawSource + 'a>, ParentCheck)> + Sync + 'a;

/// How a run of the queue holds `deltas.lock`.
enum Hold {
    /// The lock a push handed over (to a child process or a thread).
    Adopted(crate::lock::LockGuard),
    /// Taken here, waiting for a running job.
    Take,
}

/// What [`Registry::finish_pending_deltas`]'s queue run did.
#[derive(Default)]
struct Finished {
    /// Each re-encoding round, by name.
    reports: Vec<(crate::ModelName, DeltaReport)>,
    /// Retention requests done (name, the value read), to forget once
    /// what they replaced is freed.
    retained: Vec<(crate::ModelName, Vec<u8>)>,
    /// The first retention that failed (its request stays queued).
    first_error: Option<crate::RegistryError>,
}

impl DeltaReport {
    /// A re-encoding of `version` against `against` left to the
    /// background job.
    pub(crate) fn queued(version: u32, against: u32) -> DeltaReport {
        DeltaReport {
            version: Some(version),
            against: Some(against),
            pending: true,
            ..DeltaReport::default()
        }
    }
}

/// A stored tensor (or tensor chunk) of a version, by what identifies it
/// across versions: a file's tensor path, or a directory's logical tensor
/// name with the chunk's global offsets.
struct Stored {
    key: String,
    dtype: reg_ckpt::DType,
    blob: BlobId,
}

/// The tensors of a version whose storages can pair with another
/// version's, in manifest order (meta tensors have none).
fn stored_tensors(m: &Manifest) -> Vec<Stored> {
    match &m.tree {
        None => m
            .tensors
            .iter()
            .filter_map(|t| {
                Some(Stored {
                    key: t.path.clone(),
                    dtype: t.dtype,
                    blob: t.blob?,
                })
            })
            .collect(),
        Some(tree) => tree
            .tensors
            .iter()
            .flat_map(|t| {
                t.chunks.iter().map(move |c| Stored {
                    key: format!("{}@{:?}", t.name, c.offsets),
                    dtype: t.dtype,
                    blob: c.blob,
                })
            })
            .collect(),
    }
}

/// Pairs of storages that hold the same float tensor in `from` and `to`
/// (same path — for a directory, the same logical tensor and chunk —,
/// dtype and length) but different bytes: `from`'s blob is the child,
/// `to`'s the parent. Each storage is matched by its first tensor in
/// manifest order, and each child blob appears once.
pub(crate) fn changed_pairs(from: &Manifest, to: &Manifest) -> Vec<Pair> {
    let (from_lens, to_lens) = (from.payload_lens(), to.payload_lens());
    let old_tensors = stored_tensors(from);
    let mut by_key = HashMap::new();
    for t in &old_tensors {
        by_key.entry(t.key.as_str()).or_insert(t);
    }
    let mut seen_parent = HashSet::new();
    let mut seen_child = HashSet::new();
    let mut out = Vec::new();
    for t in stored_tensors(to) {
        if !t.dtype.is_float() || !seen_parent.insert(t.blob) {
            continue;
        }
        let Some(old) = by_key.get(t.key.as_str()) else {
            continue;
        };
        let (Some(new_len), Some(old_len)) = (to_lens.get(&t.blob), from_lens.get(&old.blob)) else {
            continue;
        };
        if old.dtype != t.dtype || old.blob == t.blob || new_len != old_len || *new_len == 0 {
            continue;
        }
        if seen_child.insert(old.blob) {
            out.push(Pair {
                child: old.blob,
                parent: t.blob,
                width: t.dtype.size() as u8,
            });
        }
    }
    out
}

impl Registry {
    /// Re-encode the versions of `name` from number `from` on as deltas
    /// against the version after each (what a push leaves to do when
    /// `deltas = "background"`): each consecutive pair, oldest first, for
    /// the tensors that changed between them. Blobs that are deltas
    /// already, and pairs the chain bound forbids, are left alone, so
    /// running it again does no harm. Returns one report per pair.
    ///
    /// Locks (see [`crate::lock`]): `gc.lock` shared and `deltas.lock`
    /// for the whole run (gc and other re-encodings wait; pushes and
    /// readers do not); the index only briefly, to plan and to record
    /// what was re-encoded.
    pub fn make_deltas(
        &self,
        name: &ModelName,
        from: VersionNumber,
        progress: &dyn crate::Progress,
    ) -> Result<Vec<DeltaReport>, crate::RegistryError> {
        if !self.deltas_enabled() {
            return Ok(Vec::new());
        }
        let _writer = self.writer()?;
        let _one_at_a_time = self.locks.deltas(&format!("reg deltas of {name}"))?;
        self.make_deltas_locked(name, from, progress)
    }

    /// Take `deltas.lock` for a push's background re-encoding (see
    /// [`crate::lock::DeltasHandOff`]); `None` when a re-encoding runs
    /// already, which will see the push's request in the index before it
    /// ends (see [`Registry::finish_pending_deltas`]).
    pub fn hand_off_deltas(&self) -> Result<Option<crate::lock::DeltasHandOff>, crate::RegistryError> {
        Ok(self
            .locks
            .try_deltas("reg deltas (background, starting)")?
            .map(crate::lock::DeltasHandOff::new))
    }

    /// Do every re-encoding a push left in the index (its `pending`
    /// tree), holding `deltas.lock` (`adopted_fd`: the descriptor a push
    /// handed over, else the lock is taken, waiting for a running job).
    /// Requests that arrive meanwhile are done too: the lock is let go
    /// inside the index transaction that finds the queue empty, so a push
    /// committing after it finds the lock free (and starts a job), and one
    /// committing before it is seen: no request is left behind. Returns
    /// what each round did.
    ///
    /// Retention a push queued with its request (`keep_optimizer_last`)
    /// runs in the same job once the re-encodings are done, still under
    /// its writer's hold of `gc.lock` and `deltas.lock`: no push waits for
    /// it. Freeing what it replaced needs `gc.lock` to itself: the
    /// background job (`adopted_fd` given) runs that gc only if no writer
    /// holds `gc.lock` now, else leaves the request queued for the next
    /// job; otherwise (`reg deltas` run by hand) it waits, so when it
    /// returns everything pushes left is done.
    pub fn finish_pending_deltas(
        &self,
        adopted_fd: Option<i32>,
        progress: &dyn crate::Progress,
    ) -> Result<Vec<(crate::ModelName, DeltaReport)>, crate::RegistryError> {
        let hold = match adopted_fd {
            #[cfg(unix)]
            Some(fd) => Hold::Adopted(self.locks.adopt_deltas(fd)?),
            _ => Hold::Take,
        };
        self.finish_pending(hold, progress)
    }

    /// [`Registry::finish_pending_deltas`] for a job in this process that
    /// holds the `deltas.lock` a push handed it (a background thread).
    pub(crate) fn finish_pending_deltas_holding(
        &self,
        held: crate::lock::LockGuard,
        progress: &dyn crate::Progress,
    ) -> Result<Vec<(crate::ModelName, DeltaReport)>, crate::RegistryError> {
        self.finish_pending(Hold::Adopted(held), progress)
    }

    fn finish_pending(
        &self,
        hold: Hold,
        progress: &dyn crate::Progress,
    ) -> Result<Vec<(crate::ModelName, DeltaReport)>, crate::RegistryError> {
        // A job a push started never waits for gc.lock to itself.
        let background = matches!(hold, Hold::Adopted(_));
        let finished = self.finish_queue(hold, progress)?;
        if !finished.retained.is_empty() {
            let doing = "reg deltas freeing what retention replaced";
            let guard = if background {
                self.locks.try_maintenance(doing)?
            } else {
                Some(self.maintenance(doing)?)
            };
            if let Some(guard) = guard {
                self.gc_locked(&guard, false)?;
                drop(guard);
                self.with_index("reg deltas updating its retention queue", |idx| {
                    for (name, token) in &finished.retained {
                        idx.remove_retention(name, token)?;
                    }
                    Ok(())
                })?;
            }
        }
        match finished.first_error {
            Some(e) => Err(e),
            None => Ok(finished.reports),
        }
    }

    /// The queue part of [`Registry::finish_pending_deltas`]: re-encodings,
    /// then retention, until both queues are empty.
    fn finish_queue(&self, hold: Hold, progress: &dyn crate::Progress) -> Result<Finished, crate::RegistryError> {
        let writer = self.writer()?;
        let mut lock = Some(match hold {
            Hold::Adopted(guard) => guard,
            Hold::Take => self.locks.deltas("reg deltas")?,
        });
        let mut finished = Finished::default();
        // Retention requests this run has tried, by value: a request a
        // push renews meanwhile has a new value and is tried again.
        let mut tried: BTreeSet<(crate::ModelName, Vec<u8>)> = BTreeSet::new();
        loop {
            let (pending, deferred, retention) = self.with_index("reg deltas reading its queue", |idx| {
                let pending = idx.pending()?;
                let mut deferred = idx.deferred()?;
                if self.config.keep_newest_raw && !deferred.is_empty() {
                    // The newest version of each name stays raw: its blobs
                    // wait until a newer version replaces it.
                    let newest = crate::deferred::newest_blobs(idx)?;
                    deferred.retain(|(id, _)| !newest.contains(id));
                }
                let retention: Vec<_> = idx
                    .retention_queue()?
                    .into_iter()
                    .filter(|(name, _, token)| !tried.contains(&(name.clone(), token.clone())))
                    .collect();
                if pending.is_empty() && deferred.is_empty() && retention.is_empty() {
                    lock.take();
                }
                Ok((pending, deferred, retention))
            })?;
            if pending.is_empty() && deferred.is_empty() && retention.is_empty() {
                return Ok(finished);
            }
            for (name, from, retain) in pending {
                let rounds = if self.deltas_enabled() {
                    match self.make_deltas_locked(&name, from, progress) {
                        Ok(r) => r,
                        // A name removed since: nothing left to do.
                        Err(crate::RegistryError::NoSuchName { .. }) => Vec::new(),
                        Err(e) => return Err(e),
                    }
                } else {
                    Vec::new()
                };
                self.with_index("reg deltas updating its queue", |idx| {
                    Ok(idx.remove_pending(&name, from, retain)?)
                })?;
                finished.reports.extend(rounds.into_iter().map(|r| (name.clone(), r)));
            }
            // After the delta rounds: a raw blob they made a delta is
            // not compressed twice.
            if !deferred.is_empty() {
                let done = self.compress_deferred(&deferred)?;
                if let Some(id) = done.damaged.first() {
                    finished.first_error.get_or_insert(crate::RegistryError::Store(reg_store::StoreError::Corrupt {
                        id: *id,
                        reason: format!(
                            "does not match its id, so it was left uncompressed ({} damaged blob(s); reg verify names their versions)",
                            done.damaged.len()
                        ),
                    }));
                }
            }
            // One name's failure (a damaged version) neither stops the
            // others nor loses its request: it stays queued, and the first
            // error is returned once every name had its turn.
            for (name, n, token) in retention {
                let keep = usize::try_from(n).unwrap_or(usize::MAX);
                match self.retain_optimizer_state(&writer, &name, keep) {
                    Ok(_) | Err(crate::RegistryError::NoSuchName { .. }) => {
                        finished.retained.push((name.clone(), token.clone()));
                    }
                    Err(e) => {
                        finished.first_error.get_or_insert(e);
                    }
                }
                tried.insert((name, token));
            }
        }
    }

    /// Record why a background job failed (it has no terminal), so that
    /// the next push can say so. Best effort: a registry that cannot
    /// take the note has worse problems, which the next command reports.
    pub fn record_background_failure(&self, error: &crate::RegistryError) {
        let when = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let line = format!("{when} {}\n", error.to_string().replace('\n', " "));
        let _ = std::fs::write(self.layout().background_failure_file(), line);
    }

    /// Forget a recorded background failure (a later run did the work).
    pub fn clear_background_failure(&self) {
        let _ = std::fs::remove_file(self.layout().background_failure_file());
    }

    /// The last background failure: when (Unix seconds) and the error's
    /// one-line message; `None` when the last run succeeded.
    pub fn background_failure(&self) -> Option<(u64, String)> {
        let text = std::fs::read_to_string(self.layout().background_failure_file()).ok()?;
        let line = text.lines().next()?;
        let (when, message) = line.split_once(' ')?;
        Some((when.parse().ok()?, message.chars().take(500).collect()))
    }

    /// [`Registry::make_deltas`] for a caller holding `gc.lock` and
    /// `deltas.lock`.
    fn make_deltas_locked(
        &self,
        name: &ModelName,
        from: VersionNumber,
        progress: &dyn crate::Progress,
    ) -> Result<Vec<DeltaReport>, crate::RegistryError> {
        let rounds = self.with_index(&format!("reg deltas of {name} to plan"), |idx| {
            let versions = crate::registry::versions_of(idx, name)?;
            let mut rounds = Vec::new();
            for pair in versions.windows(2) {
                let (older, newer) = (&pair[0], &pair[1]);
                if older.number < from {
                    continue;
                }
                if let (Some(old_m), Some(new_m)) = (idx.manifest(older.id)?, idx.manifest(newer.id)?) {
                    rounds.push((older.number.get(), old_m, new_m));
                }
            }
            Ok(rounds)
        })?;
        let source = |id: BlobId| -> Option<(Box<dyn RawSource + '_>, ParentCheck)> {
            let s = self.store.unchecked_source(id).ok()?;
            Some((Box::new(s) as Box<dyn RawSource>, ParentCheck::Id))
        };
        rounds
            .iter()
            .map(|(older, old_m, new_m)| self.delta_round(*older, old_m, new_m, &source, progress))
            .collect()
    }

    /// One round: version `older`'s changed float tensors (its manifest
    /// `old`) re-encoded as deltas against `newer`'s, within the chain
    /// bound. `parent_raw` gives a parent's raw bytes (from the file being
    /// pushed, checked by its CRC, or from the store). The caller holds
    /// `deltas.lock`. The one way deltas of a version are made: after a
    /// push (inline), by `reg deltas` and by the background job.
    pub(crate) fn delta_round<'a>(
        &self,
        older: u32,
        old: &Manifest,
        newer: &Manifest,
        parent_raw: &ParentSource<'a>,
        progress: &dyn crate::Progress,
    ) -> Result<DeltaReport, crate::RegistryError> {
        let pairs = changed_pairs(old, newer);
        let lens = newer.payload_lens();
        progress.phase("deltas", pairs.iter().filter_map(|p| lens.get(&p.parent)).sum());
        // The links below each child as earlier rounds left them (planned
        // up front, a run over a whole series would make chains longer
        // than the bound).
        let planned = self.with_index(
            &format!(
                "reg deltas of {} to plan",
                reg_format::VersionLabel::new(&old.name, older)
            ),
            |idx| plan_pairs(idx, &pairs),
        )?;
        let mut r = self.encode_deltas(&planned, parent_raw, progress);
        r.version = Some(older);
        r.against = Some(newer.number);
        Ok(r)
    }

    /// What a push does about the version before it, as `deltas` says:
    /// a round now (inline, holding `deltas.lock`; `parent_raw` as for
    /// [`Registry::delta_round`], `None`: from the store), a request the
    /// background job takes (queued in the commit), or nothing.
    pub(crate) fn deltas_after_push<'a>(
        &self,
        previous: Option<&crate::Resolved>,
        newer: &Manifest,
        parent_raw: Option<&ParentSource<'a>>,
        progress: &dyn crate::Progress,
    ) -> Result<DeltaReport, crate::RegistryError> {
        let Some(prev) = previous.filter(|_| self.deltas_enabled()) else {
            return Ok(DeltaReport::default());
        };
        if self.config.deltas != crate::DeltaTiming::Inline {
            return Ok(DeltaReport::queued(prev.record.number.get(), newer.number));
        }
        let _one_at_a_time = self
            .locks
            .deltas(&format!("reg push of {} (inline deltas)", newer.name))?;
        match parent_raw {
            Some(source) => self.delta_round(prev.record.number.get(), &prev.manifest, newer, source, progress),
            None => {
                let from_store = |id: BlobId| -> Option<(Box<dyn RawSource + '_>, ParentCheck)> {
                    let s = self.store.unchecked_source(id).ok()?;
                    Some((Box::new(s) as Box<dyn RawSource>, ParentCheck::Id))
                };
                self.delta_round(prev.record.number.get(), &prev.manifest, newer, &from_store, progress)
            }
        }
    }

    /// True when this registry makes delta blobs at all.
    pub(crate) fn deltas_enabled(&self) -> bool {
        self.config.max_delta_chain > 0 && self.config.deltas != crate::DeltaTiming::Off
    }

    /// True when a push leaves the previous version's re-encoding to the
    /// background job (queued in the index with its commit).
    pub(crate) fn deltas_in_background(&self) -> bool {
        self.deltas_enabled() && self.config.deltas == crate::DeltaTiming::Background
    }

    /// True when making `pair.child` (with `below` links of deltas hanging
    /// below it) a delta against `pair.parent` keeps every chain within
    /// `max_delta_chain`. Reads the parent's chain from blob headers.
    fn chain_allows(&self, pair: &Pair, below: usize) -> Result<bool, crate::RegistryError> {
        let max = self.config.max_delta_chain;
        if max == 0 {
            return Ok(false);
        }
        let above = self.store.chain(pair.parent)?.len();
        Ok(above.saturating_add(1) <= max && below + 1 + above <= max)
    }

    /// Re-encode each pair's child (a stored, self-contained blob) as a
    /// delta against its parent, whose raw bytes `parent_raw` gives (with
    /// how to check them), where the chain bound allows it and it makes
    /// the file smaller; then record the new encodings in one short index
    /// transaction. Failures are warnings: the blob keeps its old encoding.
    pub(crate) fn encode_deltas<'a>(
        &self,
        pairs: &[Planned],
        parent_raw: &(dyn Fn(BlobId) -> Option<(Box<dyn RawSource + 'a>, ParentCheck)> + Sync),
        progress: &dyn crate::Progress,
    ) -> DeltaReport {
        type Done = (Pair, u64, BlobRecord);
        let outcomes: Vec<Result<Option<Done>, String>> = pairs
            .par_iter()
            .map(|planned| {
                let pair = &planned.pair;
                let fail = |e: &dyn std::fmt::Display| format!("blob {} kept as it was: {e}", pair.child);
                let info = self.store.describe(pair.child).map_err(|e| fail(&e))?;
                if info.parent.is_some() || !self.chain_allows(pair, planned.below).map_err(|e| fail(&e))? {
                    return Ok(None);
                }
                let Some((source, check)) = parent_raw(pair.parent) else {
                    return Ok(None);
                };
                progress.advance(source.len());
                let before = self.store.stored_len(pair.child).map_err(|e| fail(&e))?;
                let Some(out) = self
                    .store
                    .encode_as_delta(pair.child, pair.width, pair.parent, source.as_ref(), check)
                    .map_err(|e| fail(&e))?
                else {
                    return Ok(None);
                };
                Ok(Some((
                    *pair,
                    before,
                    BlobRecord::new(info.raw_len, out.stored_len, out.codec),
                )))
            })
            .collect();
        let mut report = DeltaReport::default();
        let mut done: Vec<Done> = Vec::new();
        for o in outcomes {
            match o {
                Ok(Some(d)) => done.push(d),
                Ok(None) => {}
                Err(w) => report.warnings.push(w),
            }
        }
        if done.is_empty() {
            return report;
        }
        if let Err(e) = self.store.sync() {
            report.warnings.push(format!("syncing re-encoded blobs: {e}"));
        }
        // The headers are the truth (gc reads them); the index learns the
        // new edges for chain bounds and the new sizes for stats.
        let recorded = self.with_index("reg deltas to record", |idx| {
            for (pair, _, record) in &done {
                idx.add_delta(pair.parent, pair.child)?;
                idx.set_blob_record(pair.child, record)?;
            }
            Ok(())
        });
        if let Err(e) = recorded {
            report
                .warnings
                .push(format!("recording re-encoded blobs in the index: {e}"));
        }
        for (_, before, record) in done {
            report.blobs += 1;
            report.bytes_before += before;
            report.bytes_after += record.stored_len;
        }
        report
    }
}

/// A pair to re-encode, with the delta links hanging below its child (from
/// the index's delta table, read when the pair was planned).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planned {
    pub(crate) pair: Pair,
    pub(crate) below: usize,
}

/// `pairs` with the links below each child, from an open index.
pub(crate) fn plan_pairs(idx: &Index, pairs: &[Pair]) -> Result<Vec<Planned>, crate::RegistryError> {
    pairs
        .iter()
        .map(|p| {
            Ok(Planned {
                pair: *p,
                below: links_below(idx, p.child, 0)?,
            })
        })
        .collect()
}

/// The longest chain of deltas hanging below `id` (0 when no blob is a
/// delta against it), from the index's delta table.
fn links_below(idx: &Index, id: BlobId, depth: usize) -> Result<usize, crate::RegistryError> {
    if depth > reg_store::MAX_CHAIN {
        return Ok(depth);
    }
    let mut most = 0;
    for child in idx.delta_children(id)? {
        most = most.max(1 + links_below(idx, child, depth + 1)?);
    }
    Ok(most)
}

/// The tensors of a base version (`push --parent`), to find the blob each
/// new storage should be a delta against.
pub(crate) struct Bases {
    /// Tensor path -> (dtype, blob, stored length) in the base.
    by_path: HashMap<String, (reg_ckpt::DType, BlobId, u64)>,
    /// Storage key of the new file -> its first tensor's path and dtype.
    key_path: HashMap<String, (String, reg_ckpt::DType)>,
}

impl Bases {
    /// Pair the storages of `ckpt` with the same tensors of `base`.
    pub(crate) fn new(base: &Manifest, ckpt: &reg_ckpt::Checkpoint) -> Bases {
        let lens = base.payload_lens();
        let mut by_path = HashMap::new();
        for t in &base.tensors {
            if let Some((blob, len)) = t.blob.and_then(|b| lens.get(&b).map(|len| (b, len))) {
                by_path.entry(t.path.clone()).or_insert((t.dtype, blob, *len));
            }
        }
        let mut key_path = HashMap::new();
        for t in &ckpt.tensors {
            key_path
                .entry(t.storage_key.clone())
                .or_insert((t.path.clone(), t.dtype));
        }
        Bases { by_path, key_path }
    }

    /// The pair for the new storage `key` holding the blob `id` of `len`
    /// bytes: a float tensor that the base has too, with other bytes.
    pub(crate) fn pair(&self, key: &str, id: BlobId, len: u64) -> Option<Pair> {
        let (path, dtype) = self.key_path.get(key)?;
        let (base_dtype, blob, base_len) = self.by_path.get(path)?;
        (dtype.is_float() && dtype == base_dtype && *base_len == len && *blob != id && len > 0).then(|| Pair {
            child: id,
            parent: *blob,
            width: dtype.size() as u8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reg_ckpt::DType;
    use reg_format::ids::{FileHash, ModelName, SourceName};
    use reg_format::manifest::{Piece, TensorEntry};

    /// A manifest whose tensors are `(path, dtype, blob, bytes)`, each
    /// tensor a 1-d view of its whole storage.
    fn manifest(tensors: &[(&str, DType, u8, u64)]) -> Manifest {
        let mut pieces = Vec::new();
        let entries = tensors
            .iter()
            .enumerate()
            .map(|(key, (path, dtype, blob, len))| {
                let blob = BlobId([*blob; 32]);
                if !pieces.contains(&Piece::Payload { blob, len: *len }) {
                    pieces.push(Piece::Payload { blob, len: *len });
                }
                TensorEntry {
                    path: path.to_string(),
                    dtype: *dtype,
                    shape: vec![len / dtype.size() as u64],
                    stride: vec![1],
                    storage_offset: 0,
                    storage_key: key.to_string(),
                    blob: Some(blob),
                    role: reg_ckpt::tensors::Role::Weight,
                    requires_grad: false,
                    parameter: false,
                    meta: false,
                }
            })
            .collect();
        Manifest {
            schema: reg_format::manifest::MANIFEST_SCHEMA,
            name: ModelName::sanitized("m"),
            number: 1,
            created: 0,
            source: SourceName::of_path(std::path::Path::new("m.ckpt")),
            message: None,
            format: reg_format::manifest::VersionFormat::TorchZip,
            size: pieces.iter().map(Piece::len).sum(),
            blake3: FileHash([0; 32]),
            skeleton: BlobId([0; 32]),
            pieces,
            tensors: entries,
            meta: Default::default(),
            globals: Vec::new(),
            pickle: None,
            optimizer_dropped: None,
            executable: false,
            tree: None,
        }
    }

    fn pair(child: u8, parent: u8, width: u8) -> Pair {
        Pair {
            child: BlobId([child; 32]),
            parent: BlobId([parent; 32]),
            width,
        }
    }

    #[test]
    fn changed_floats_of_one_path_dtype_and_length_pair_older_with_newer() {
        use DType::*;
        let older = manifest(&[
            ("w", Float32, 1, 400),
            ("half", Bfloat16, 2, 200),
            ("frozen", Float32, 3, 400),
            ("ids", Int64, 4, 800),
            ("retyped", Float32, 5, 800),
            ("grew", Float32, 6, 400),
            ("renamed", Float32, 7, 400),
            ("empty", Float32, 8, 0),
        ]);
        let newer = manifest(&[
            ("grew", Float32, 16, 404),
            ("w", Float32, 11, 400),
            ("half", Bfloat16, 12, 200),
            ("frozen", Float32, 3, 400),
            ("ids", Int64, 14, 800),
            ("retyped", Float64, 15, 800),
            ("renamed-now", Float32, 17, 400),
            ("empty", Float32, 18, 0),
        ]);
        // Older against newer, element width of the dtype; the unchanged,
        // integer, retyped, resized, renamed and empty tensors pair with
        // nothing.
        assert_eq!(changed_pairs(&older, &newer), vec![pair(1, 11, 4), pair(2, 12, 2)]);
        // The other way round, newer against older.
        assert_eq!(changed_pairs(&newer, &older), vec![pair(11, 1, 4), pair(12, 2, 2)]);
        assert_eq!(changed_pairs(&older, &older), Vec::new());
    }

    #[test]
    fn a_storage_pairs_once_by_its_first_tensor() {
        use DType::Float32;
        // Two names for one storage (tied weights) in both versions: one pair.
        let older = manifest(&[("emb", Float32, 1, 400), ("tied", Float32, 1, 400)]);
        let newer = manifest(&[("emb", Float32, 11, 400), ("tied", Float32, 11, 400)]);
        assert_eq!(changed_pairs(&older, &newer), vec![pair(1, 11, 4)]);
        // An older storage two new storages could be XORed against: the
        // first one in manifest order; a blob is never the child of two pairs.
        let untied = manifest(&[("emb", Float32, 11, 400), ("tied", Float32, 12, 400)]);
        assert_eq!(changed_pairs(&older, &untied), vec![pair(1, 11, 4)]);
        // A path listed twice in the older version: its first tensor.
        let twice = manifest(&[("emb", Float32, 1, 400), ("emb", Float32, 2, 400)]);
        assert_eq!(changed_pairs(&twice, &newer), vec![pair(1, 11, 4)]);
    }
}
