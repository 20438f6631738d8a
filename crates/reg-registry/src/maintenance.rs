//! Keeping a registry healthy: verify, rm, gc, prune and rebuilding the
//! index from the blob store.

use crate::error::RegistryError;
use crate::lock::WriteGuard;
use crate::manifest_blobs::{kind_of, BlobKind};
use crate::ranking::{rank, ScoredVersion};
use crate::registry::Registry;
use crate::resolve::Resolved;
use reg_format::ids::VersionLabel;
use reg_format::ids::{ModelName, VersionNumber};
use reg_format::index::{BlobRecord, Index, VersionRecord};
use reg_format::manifest::{Manifest, Piece};
use reg_store::{BlobId, BlobStore, StoreError};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// One damaged version found by [`Registry::verify`].
#[derive(Clone, Debug, Serialize)]
pub struct DamagedVersion {
    /// `name@vN`.
    pub version: String,
    /// What is wrong, one line per problem.
    pub problems: Vec<String>,
}

/// What [`Registry::verify`] found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Versions checked.
    pub versions: usize,
    /// Distinct blobs checked.
    pub blobs: usize,
    /// Blobs that are missing or whose bytes do not match their id.
    pub damaged_blobs: Vec<String>,
    /// Versions that cannot be pulled intact.
    pub damaged_versions: Vec<DamagedVersion>,
    /// Manifest blobs a crash left unwritten, written back from the
    /// index's copies (not damage: the index held them).
    #[serde(skip_serializing_if = "is_zero")]
    pub manifests_written_back: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl VerifyReport {
    /// True when nothing is damaged.
    pub fn is_clean(&self) -> bool {
        self.damaged_blobs.is_empty() && self.damaged_versions.is_empty()
    }
}

/// Rules for [`Registry::prune`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PruneRules {
    /// Keep the newest N versions.
    pub keep_last: usize,
    /// Keep the N versions with the best monitored score.
    pub keep_best: usize,
    /// Keep every tagged version.
    pub keep_tagged: bool,
    /// Drop optimizer and scheduler state from all but the newest N
    /// versions (they keep their weights and pull as weights-only files).
    pub keep_optimizer_last: Option<usize>,
    /// Only report.
    pub dry_run: bool,
}

/// What [`Registry::prune`] removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    /// Versions removed (or that would be).
    pub removed: Vec<u32>,
    /// Versions kept.
    pub kept: Vec<u32>,
    /// Versions whose optimizer state was dropped (or would be).
    pub optimizer_dropped: Vec<u32>,
    /// Blob bytes freed by the gc that follows (0 in a dry run).
    pub freed_bytes: u64,
}

/// A writer that only hashes.
struct HashSink(blake3::Hasher, u64);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Rebuild a version's file in memory-free fashion and compare its hash.
fn reassembles(reg: &Registry, m: &Manifest) -> Result<bool, StoreError> {
    let store = &reg.store;
    if m.check_shape().is_err() {
        return Ok(false);
    }
    for f in m.files() {
        let skeleton = reg.skeleton(f.skeleton)?;
        let mut sink = HashSink(blake3::Hasher::new(), 0);
        for p in f.pieces {
            match p {
                Piece::Skeleton { offset, len } => {
                    let bytes = skeleton
                        .get(*offset as usize..offset.saturating_add(*len) as usize)
                        .unwrap_or(&[]);
                    sink.0.update(bytes);
                    sink.1 += bytes.len() as u64;
                }
                Piece::Payload { blob, .. } => {
                    store.copy_to(*blob, &mut sink)?;
                }
            }
        }
        if reg_format::ids::FileHash::from(BlobId::from(sink.0.finalize())) != f.blake3 || sink.1 != f.size {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Registry {
    /// Check versions (all, or one): every blob they need exists, with
    /// the delta parents it is encoded against; with `full`, every blob's
    /// bytes (decoded through its chain) hash to its id and every version
    /// re-assembles to its recorded whole-file hash.
    pub fn verify(&self, only: Option<&Resolved>, full: bool) -> Result<VerifyReport, RegistryError> {
        // A reader: gc does not delete what it checks meanwhile.
        let _reading = self.reader()?;
        let mut versions: Vec<(ModelName, VersionRecord, Option<Manifest>)> = Vec::new();
        let mut removed: BTreeSet<BlobId> = BTreeSet::new();
        let mut unwritten = Vec::new();
        self.with_index("reg verify", |idx| {
            match only {
                Some(r) => versions.push((r.manifest.name.clone(), r.record.clone(), Some(r.manifest.clone()))),
                None => {
                    for (name, rec) in idx.all_versions()? {
                        let m = idx.manifest(rec.id)?;
                        versions.push((name, rec, m));
                    }
                    removed = idx.removed()?.into_iter().map(|(id, _, _)| id.blob()).collect();
                }
            }
            for (_, rec, _) in &versions {
                if !self.store.contains(rec.id.blob()) {
                    if let Some(json) = idx.manifest_json(rec.id)? {
                        unwritten.push((rec.id, json));
                    }
                }
            }
            Ok(())
        })?;
        let mut report = VerifyReport {
            versions: versions.len(),
            // A content-addressed blob written from bytes that hash to its
            // id: safe beside any reader or writer.
            manifests_written_back: self.write_back_manifests(&unwritten)?,
            ..VerifyReport::default()
        };
        let mut blob_state: BTreeMap<BlobId, Option<String>> = BTreeMap::new();
        for (name, rec, manifest) in &versions {
            let label = VersionLabel::new(name, rec.number).to_string();
            let Some(m) = manifest else {
                report.damaged_versions.push(DamagedVersion {
                    version: label,
                    problems: vec![format!("manifest {} missing from the index", rec.id.short())],
                });
                continue;
            };
            let mut problems = Vec::new();
            let mut needed = m.blobs();
            needed.push(BlobId(rec.id.0));
            for id in needed {
                let state = blob_state.entry(id).or_insert_with(|| {
                    // A delta needs its whole chain of parents: the full
                    // check decodes through it, the quick one reads headers.
                    let checked = if full {
                        self.store.verify(id)
                    } else {
                        self.store.chain(id).map(|_| ())
                    };
                    checked.err().map(|e| e.to_string())
                });
                if let Some(problem) = state {
                    problems.push(problem.clone());
                }
            }
            if full && problems.is_empty() {
                match reassembles(self, m) {
                    Ok(true) => {}
                    Ok(false) => problems.push("re-assembled file does not match its recorded hash".into()),
                    Err(e) => problems.push(e.to_string()),
                }
            }
            if !problems.is_empty() {
                report.damaged_versions.push(DamagedVersion {
                    version: label,
                    problems,
                });
            }
        }
        report.blobs = blob_state.len();
        report.damaged_blobs = blob_state
            .iter()
            .filter_map(|(id, p)| p.as_ref().map(|p| format!("{id}: {p}")))
            .collect();
        if only.is_none() {
            // Manifest blobs of versions the index does not list: it lost
            // them (crate::manifest_blobs). A push that committed since the
            // index was read names its manifest blob after its commit, so
            // what looks unlisted is checked against the index once more.
            let mut unlisted: Vec<(BlobId, String)> = Vec::new();
            for id in self.store.list()? {
                if blob_state.contains_key(&id) || removed.contains(&id) {
                    continue;
                }
                let problem = match kind_of(&self.store, id) {
                    Ok(BlobKind::Other) => continue,
                    Ok(BlobKind::Manifest(m)) => format!(
                        "the manifest of {}, which the index does not list (the index may be incomplete)",
                        reg_format::VersionLabel::new(&m.name, m.number)
                    ),
                    Ok(BlobKind::ManifestLike) => {
                        "a manifest this reg cannot read, of a version the index does not list".into()
                    }
                    Err(e) => format!("{e} (no version names it; it could be a manifest the index lost)"),
                };
                unlisted.push((id, problem));
            }
            if !unlisted.is_empty() {
                let known: BTreeSet<BlobId> = self.with_index("reg verify", |idx| {
                    let mut known: BTreeSet<BlobId> = idx.removed()?.into_iter().map(|(id, _, _)| id.blob()).collect();
                    known.extend(idx.all_versions()?.into_iter().map(|(_, r)| r.id.blob()));
                    Ok(known)
                })?;
                for (id, problem) in unlisted {
                    if !known.contains(&id) && self.store.contains(id) {
                        report.damaged_blobs.push(format!("{id}: {problem}"));
                    }
                }
            }
        }
        Ok(report)
    }

    /// Remove a version from the index, and its manifest blob. Its other
    /// blobs stay until [`Registry::gc`]. Holds `gc.lock` exclusively
    /// (no push or gc runs meanwhile), and waits for readers that may
    /// still open the manifest blob (verify checks it, sync uploads it)
    /// before deleting it (past `--wait-timeout`, or while this thread
    /// holds other resolved versions, gc deletes it later).
    ///
    /// It takes the version by value: its reader pin is let go first.
    pub fn remove(&self, v: Resolved) -> Result<(), RegistryError> {
        let (name, number, id) = (v.manifest.name.clone(), v.manifest.number, v.record.id);
        drop(v);
        let guard = self.maintenance(&format!("reg rm of {}", reg_format::VersionLabel::new(&name, number)))?;
        self.remove_locked(&guard, &name, number, id)
    }

    /// [`Registry::remove`] under a held `gc.lock`.
    fn remove_locked(
        &self,
        _guard: &WriteGuard,
        name: &ModelName,
        number: u32,
        id: crate::VersionId,
    ) -> Result<(), RegistryError> {
        self.with_index(
            &format!("reg rm of {}", reg_format::VersionLabel::new(name, number)),
            |idx| {
                idx.remove_version(name, VersionNumber(number), id)?;
                Ok(idx.remove_blob_records(&[id.blob()])?)
            },
        )?;
        // Readers that resolved it before the transaction may still open
        // its manifest blob; later ones cannot see it. When this thread is
        // one of them (it would wait for itself), or past --wait-timeout,
        // the file is left to gc: it is no version's any more.
        if self.locks.own_readers_held() {
            return Ok(());
        }
        match self.locks.drain_readers() {
            Ok(()) => self.store.remove(id.blob())?,
            Err(RegistryError::Locked { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Remove old versions of `name` by the rules, then gc. Holds
    /// `gc.lock` exclusively throughout.
    pub fn prune(&self, name: &str, rules: PruneRules) -> Result<PruneReport, RegistryError> {
        let model = ModelName::new(name)?;
        let guard = self.maintenance(&format!("reg prune of {name}"))?;
        let (versions, tags, manifests) = self.versions_to_judge(&model, "reg prune")?;
        let mut keep: BTreeSet<u32> = BTreeSet::new();
        keep.extend(versions.iter().rev().take(rules.keep_last).map(|v| v.number.get()));
        if rules.keep_tagged {
            keep.extend(tags.into_iter().map(|(_, n)| n.get()));
        }
        if rules.keep_best > 0 {
            // The rule `@best` follows (crate::ranking): NaN never kept by
            // it, ties to the newer version.
            let scored: Vec<ScoredVersion> = versions
                .iter()
                .filter_map(|v| Some(ScoredVersion::of(v.number.get(), &manifests.get(&v.number.get())?.meta)))
                .collect();
            if let Some(ranking) = rank(&scored, None, None) {
                keep.extend(ranking.numbers().into_iter().take(rules.keep_best));
            }
        }
        let mut report = PruneReport::default();
        let removes_versions = rules.keep_last > 0 || rules.keep_best > 0 || rules.keep_tagged;
        for v in &versions {
            if keep.contains(&v.number.get()) || !removes_versions {
                report.kept.push(v.number.get());
            } else {
                report.removed.push(v.number.get());
            }
        }
        if let Some(n) = rules.keep_optimizer_last {
            report.optimizer_dropped =
                self.drop_optimizer_state(&guard, &versions, &manifests, n, &report.removed, rules.dry_run)?;
        }
        if rules.dry_run {
            return Ok(report);
        }
        for v in versions.iter().filter(|v| report.removed.contains(&v.number.get())) {
            self.remove_locked(&guard, &model, v.number.get(), v.id)?;
        }
        report.freed_bytes = self.gc_locked(&guard, false)?.freed_bytes;
        Ok(report)
    }
}

impl Registry {
    /// Rebuild a lost or corrupt index from the manifest blobs in the
    /// store (the old index directory is moved aside). Holds `gc.lock`
    /// and the index lock throughout: every other command waits. Blobs
    /// that cannot be read are named in the report (one could be a lost
    /// version's manifest; gc then refuses to delete anything until it is
    /// dealt with).
    pub fn rebuild_index(&self) -> Result<RebuildReport, RegistryError> {
        let _guard = self.maintenance("reg verify --rebuild-index")?;
        let _index = self.locks.index("reg verify --rebuild-index")?;
        let report = rebuild_index(&self.store, &self.layout.index_dir());
        // As after any index session: sled lets go of its own lock a
        // moment after the database is dropped.
        crate::lock::wait_until_unlocked(&self.layout.index_dir().join("db"));
        report
    }
}

/// What [`Registry::rebuild_index`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RebuildReport {
    /// Versions restored from their manifest blobs.
    pub restored: usize,
    /// Blobs that could not be read, each with why: a damaged header, or
    /// (for blobs stored `raw` or `zstd`, as manifests are) content that
    /// does not match its id. Any of them could be a lost manifest.
    pub damaged_blobs: Vec<String>,
    /// Manifests not restored because another manifest of the same
    /// version number was (the replacement retention made of it, or the
    /// newer of two), each with why.
    pub superseded: Vec<String>,
}

impl RebuildReport {
    /// True when every blob could be read.
    pub fn is_clean(&self) -> bool {
        self.damaged_blobs.is_empty()
    }
}

/// Rebuild a lost or corrupt index from the manifest blobs in the store.
/// The old index directory is moved aside (`index.broken-<unix time>`).
/// Tags are not kept in blobs and are lost. Of two manifests with the same
/// name and number (retention replaced a version, and gc has not deleted
/// the old manifest yet) the replacement is restored and the other noted
/// as removed, so gc deletes it.
fn rebuild_index(store: &BlobStore, index_dir: &std::path::Path) -> Result<RebuildReport, RegistryError> {
    if index_dir.exists() {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = index_dir.with_file_name(format!("index.broken-{secs}"));
        std::fs::rename(index_dir, &aside).map_err(RegistryError::io("moving aside", index_dir))?;
    }
    let index = Index::open(index_dir)?;
    let mut report = RebuildReport::default();
    let ids = store.list()?;
    let mut records: Vec<(BlobId, BlobRecord)> = Vec::new();
    let mut manifests: BTreeMap<(String, u32), (BlobId, Vec<u8>, Manifest)> = BTreeMap::new();
    let mut retired: Vec<(BlobId, Manifest)> = Vec::new();
    let mut deltas: Vec<(BlobId, BlobId)> = Vec::new();
    for id in ids {
        let reg_store::BlobInfo { raw_len, codec, parent } = match store.describe(id) {
            Ok(d) => d,
            Err(e) => {
                report.damaged_blobs.push(format!("{id}: {e}"));
                continue;
            }
        };
        if let Some(p) = parent {
            deltas.push((p, id));
        }
        records.push((id, BlobRecord::new(raw_len, store.stored_len(id).unwrap_or(0), codec)));
        let m = match kind_of(store, id) {
            Ok(BlobKind::Manifest(m)) => *m,
            Ok(BlobKind::Other) => continue,
            Ok(BlobKind::ManifestLike) => {
                report
                    .damaged_blobs
                    .push(format!("{id}: a manifest this reg cannot read (made by a newer reg?)"));
                continue;
            }
            Err(e) => {
                report.damaged_blobs.push(format!("{id}: {e}"));
                continue;
            }
        };
        let Ok(bytes) = store.read(id) else { continue };
        let key = (m.name.to_string(), m.number);
        match manifests.remove(&key) {
            None => {
                manifests.insert(key, (id, bytes, m));
            }
            Some(other) => {
                let (keep, drop) = if supersedes(&m, &other.2) {
                    ((id, bytes, m), other)
                } else {
                    (other, (id, bytes, m))
                };
                report.superseded.push(format!(
                    "{}: the manifest of {}, in place of which {} was restored",
                    drop.0,
                    reg_format::VersionLabel::new(&drop.2.name, drop.2.number),
                    &keep.0.to_hex()[..12]
                ));
                retired.push((drop.0, drop.2));
                manifests.insert(key, keep);
            }
        }
    }
    for (id, bytes, m) in manifests.values() {
        let record = VersionRecord::from_manifest(reg_format::ids::VersionId(id.0), m);
        index.commit_version(&record, bytes, &m.name, None, &[], &[])?;
        report.restored += 1;
    }
    for (id, m) in &retired {
        index.retire_manifest(reg_format::ids::VersionId(id.0), &m.name, m.version_number())?;
    }
    index.insert_blob_records(&records)?;
    index.set_deltas(&deltas)?;
    Ok(report)
}

/// Of two manifests of the same version number, whether `a` took the
/// place of `b`: the replacement retention made (weights only, recording
/// the original it was made from) wins, else the newer push.
fn supersedes(a: &Manifest, b: &Manifest) -> bool {
    let replaces = |x: &Manifest, y: &Manifest| {
        x.optimizer_dropped
            .as_ref()
            .is_some_and(|d| d.blake3 == y.optimizer_dropped.as_ref().map(|e| e.blake3).unwrap_or(y.blake3))
            && x.blake3 != y.blake3
    };
    if replaces(a, b) {
        return true;
    }
    if replaces(b, a) {
        return false;
    }
    (a.created, a.blake3.to_string()) > (b.created, b.blake3.to_string())
}
