//! What gc keeps and deletes (`reg_registry::gc`): every blob a version
//! names and every blob their delta chains decode through; a live delta
//! whose parent no version needs is made whole first; any blob it cannot
//! read stops it before it deletes anything.

mod common;

use common::*;
use reg_registry::gc::KEPT_NAMED;
use reg_registry::RegistryError;
use reg_store::BlobId;
use std::collections::{BTreeMap, BTreeSet};

/// The blobs versions name, manifest blobs included, from their manifests.
fn named_by(s: &Scratch, specs: &[&str]) -> BTreeSet<BlobId> {
    let mut out = BTreeSet::new();
    for spec in specs {
        let v = s.resolve(spec);
        out.extend(v.manifest.blobs());
        out.insert(v.record.id.blob());
    }
    out
}

/// The blob of `path` in `spec`.
fn tensor(s: &Scratch, spec: &str, path: &str) -> BlobId {
    blob_of(&s.resolve(spec).manifest, path)
}

fn remove(s: &Scratch, spec: &str) {
    let v = s.resolve(spec);
    s.reg.remove(v).unwrap_or_else(|e| panic!("rm {spec}: {e}"));
}

/// `(parent, child)` for every blob in `blobs` whose header names a parent.
fn header_edges(s: &Scratch, blobs: &BTreeSet<BlobId>) -> BTreeSet<(BlobId, BlobId)> {
    blobs.iter().filter_map(|b| s.parent(*b).map(|p| (p, *b))).collect()
}

fn index_edges(s: &Scratch) -> BTreeSet<(BlobId, BlobId)> {
    let edges = s.reg.with_index("test", |idx| Ok(idx.deltas()?)).expect("deltas");
    edges.into_iter().collect()
}

fn all(n: u32) -> Vec<String> {
    (1..=n).map(|v| format!("mlp@v{v}")).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The mlp run with its deltas, plus blobs no version needs: those of a
/// removed version of another model and one stored by hand. Returns
/// the blobs the run needs and the dead ones.
fn run_with_garbage(s: &Scratch) -> (BTreeSet<BlobId>, BTreeSet<BlobId>) {
    s.push_series_with_deltas("mlp");
    let needed = s.blobs_on_disk();
    assert_eq!(
        needed,
        named_by(s, &strs(&all(4))),
        "a push stored a blob no version names"
    );
    s.push_fixture("torch/zoo.pt", "zoo");
    remove(s, "zoo");
    let stray = b"a blob no version names";
    s.reg.store().put(BlobId::of(stray), stray).expect("put");
    let dead: BTreeSet<BlobId> = s.blobs_on_disk().difference(&needed).copied().collect();
    assert!(dead.contains(&BlobId::of(stray)) && dead.len() > 3, "{}", dead.len());
    (needed, dead)
}

#[test]
fn gc_keeps_every_blob_a_version_names_and_deletes_the_rest() {
    let s = Scratch::new();
    let (needed, dead) = run_with_garbage(&s);
    let freed: u64 = dead
        .iter()
        .map(|b| s.reg.store().stored_len(*b).expect("stored_len"))
        .sum();
    let r = s.reg.gc(false).expect("gc");
    assert_eq!(
        (
            r.kept_blobs,
            r.removed_blobs,
            r.freed_bytes,
            r.reencoded_blobs,
            r.dry_run
        ),
        (needed.len(), dead.len(), freed, 0, false)
    );
    assert!(r.kept_by_reason.is_empty(), "{:?}", r.kept_by_reason);
    assert_eq!(s.blobs_on_disk(), needed);
    let recorded = s
        .reg
        .with_index("test", |idx| Ok(idx.blob_records()?))
        .expect("records");
    assert_eq!(recorded.into_iter().map(|(id, _)| id).collect::<BTreeSet<_>>(), needed);
    // The chains of the live versions are whole: every parent is kept.
    assert_eq!(
        (1..=4)
            .map(|v| s.chain_len(tensor(&s, &format!("mlp@v{v}"), HEAD)))
            .collect::<Vec<_>>(),
        vec![3, 2, 1, 0]
    );
    assert_eq!(index_edges(&s), header_edges(&s, &needed));
    for (n, rel) in SERIES.iter().enumerate() {
        s.assert_pulls(&format!("mlp@v{}", n + 1), rel);
    }
    let again = s.reg.gc(false).expect("gc");
    assert_eq!((again.removed_blobs, again.kept_blobs), (0, needed.len()));
}

#[test]
fn gc_makes_a_live_delta_whole_before_deleting_its_parent() {
    let s = Scratch::new();
    s.push_series_with_deltas("mlp");
    let older = named_by(&s, &strs(&all(3)));
    let v3 = named_by(&s, &["mlp@v3"]);
    let v4_manifest = s.resolve("mlp@v4").record.id.blob();
    let only_v4: BTreeSet<BlobId> = named_by(&s, &["mlp@v4"]).difference(&older).copied().collect();
    // v3's blobs that are deltas against blobs only v4 names.
    let stranded: BTreeSet<BlobId> = v3
        .iter()
        .copied()
        .filter(|b| s.parent(*b).is_some_and(|p| only_v4.contains(&p)))
        .collect();
    let head3 = tensor(&s, "mlp@v3", HEAD);
    assert!(stranded.contains(&head3));
    remove(&s, "mlp@v4");
    let dead: BTreeSet<BlobId> = only_v4.iter().copied().filter(|b| *b != v4_manifest).collect();

    // A dry run says what gc will do and touches nothing.
    let before = s.store_snapshot();
    let dry = s.reg.gc(true).expect("gc --dry-run");
    assert!(dry.dry_run);
    assert_eq!(
        (dry.kept_blobs, dry.removed_blobs, dry.reencoded_blobs, dry.temp_files),
        (older.len(), dead.len(), stranded.len(), 0)
    );
    assert_eq!(
        dry.kept_by_reason,
        BTreeMap::from([(KEPT_NAMED.to_string(), older.len())])
    );
    assert!(s.store_snapshot() == before, "a dry run changed the store");

    let r = s.reg.gc(false).expect("gc");
    assert_eq!(
        (r.kept_blobs, r.removed_blobs, r.reencoded_blobs, r.freed_bytes),
        (older.len(), dead.len(), stranded.len(), dry.freed_bytes)
    );
    assert_eq!(s.blobs_on_disk(), older);
    // Same ids, now whole.
    for b in &stranded {
        assert_eq!(s.parent(*b), None, "{b} still names its parent");
    }
    assert_eq!(index_edges(&s), header_edges(&s, &older));
    for (n, rel) in SERIES.iter().enumerate().take(3) {
        s.assert_pulls(&format!("mlp@v{}", n + 1), rel);
    }
    let verified = s.reg.verify(None, true).expect("verify");
    assert!(verified.is_clean(), "{verified:?}");
    let again = s.reg.gc(false).expect("gc");
    assert_eq!((again.removed_blobs, again.reencoded_blobs), (0, 0));
}

#[test]
fn a_chain_that_cannot_be_made_whole_keeps_every_parent_it_decodes_through() {
    let s = Scratch::new();
    s.push_series_with_deltas("mlp");
    let heads: Vec<BlobId> = (1..=4).map(|v| tensor(&s, &format!("mlp@v{v}"), HEAD)).collect();
    let live = named_by(&s, &["mlp@v1", "mlp@v4"]);
    let middle = named_by(&s, &["mlp@v2", "mlp@v3"]);
    let stranded = live
        .iter()
        .filter(|b| s.parent(**b).is_some_and(|p| !live.contains(&p)))
        .count();
    let manifests: BTreeSet<BlobId> = ["mlp@v2", "mlp@v3"]
        .iter()
        .map(|v| s.resolve(v).record.id.blob())
        .collect();
    remove(&s, "mlp@v2");
    remove(&s, "mlp@v3");
    // v1's head decodes through v2's and v3's; v3's is damaged (its
    // header still reads), so v1's head cannot be re-encoded.
    let path = s.reg.store().path_of(heads[2]);
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");

    let r = s.reg.gc(false).expect("gc");
    let kept_chain = BTreeSet::from([heads[1], heads[2]]);
    let mut want: BTreeSet<BlobId> = live.union(&kept_chain).copied().collect();
    assert_eq!(s.blobs_on_disk(), want);
    let dead: BTreeSet<&BlobId> = middle
        .iter()
        .filter(|b| !want.contains(b) && !manifests.contains(b))
        .collect();
    assert_eq!(
        (r.removed_blobs, r.reencoded_blobs, r.kept_blobs),
        (dead.len(), stranded - 1, want.len())
    );
    assert_eq!(s.parent(heads[0]), Some(heads[1]));
    assert_eq!(s.parent(heads[1]), Some(heads[2]));
    s.assert_pulls("mlp@v4", SERIES[3]);
    let verified = s.reg.verify(None, true).expect("verify");
    let damaged: Vec<&str> = verified.damaged_versions.iter().map(|d| d.version.as_str()).collect();
    assert_eq!(damaged, vec!["mlp@v1"]);

    // Once the parent is good again, the next gc makes v1 whole and lets
    // the chain go.
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    let r = s.reg.gc(false).expect("gc");
    assert_eq!((r.reencoded_blobs, r.removed_blobs), (1, 2));
    want.retain(|b| !kept_chain.contains(b));
    assert_eq!(s.blobs_on_disk(), want);
    s.assert_pulls("mlp@v1", SERIES[0]);
}

/// gc (dry or not) on a registry that `damage` broke: it stops with
/// nothing deleted. Returns the error of the real run.
fn gc_on_damaged(damage: impl Fn(&Scratch) -> Option<BlobId>) -> RegistryError {
    let s = Scratch::new();
    let (_, dead) = run_with_garbage(&s);
    let damaged = damage(&s);
    let before: Vec<(BlobId, Vec<u8>)> = s.store_snapshot();
    for dry_run in [true, false] {
        let e = s.reg.gc(dry_run).expect_err("gc ran on a damaged registry");
        assert!(e.is_damage(), "{e}");
        match (&e, damaged) {
            (RegistryError::GcStopped { blob, .. }, Some(d)) => assert_eq!(*blob, d, "{e}"),
            (RegistryError::Damaged { .. }, None) => {}
            _ => panic!("unexpected error: {e}"),
        }
        assert!(s.store_snapshot() == before, "gc deleted or changed a blob: {e}");
    }
    assert!(s.blobs_on_disk().is_superset(&dead), "a dead blob was deleted");
    s.reg.gc(false).expect_err("gc")
}

#[test]
fn gc_stops_with_nothing_deleted_when_a_header_cannot_be_read() {
    // A live blob's header cut short.
    let e = gc_on_damaged(|s| {
        let head = tensor(s, "mlp@v2", HEAD);
        let path = s.reg.store().path_of(head);
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..10]).expect("write");
        Some(head)
    });
    assert!(
        e.to_string().starts_with("gc stopped before deleting anything: blob "),
        "{e}"
    );
    // A live blob's file gone.
    gc_on_damaged(|s| {
        let head = tensor(s, "mlp@v3", HEAD);
        std::fs::remove_file(s.reg.store().path_of(head)).expect("rm");
        Some(head)
    });
    // The file of a parent no version names, that a live blob decodes
    // through, gone.
    gc_on_damaged(|s| {
        let head = tensor(s, "mlp@v2", HEAD);
        remove(s, "mlp@v2");
        std::fs::remove_file(s.reg.store().path_of(head)).expect("rm");
        Some(head)
    });
    // A version whose manifest is gone from the index.
    let e = gc_on_damaged(|s| {
        let id = s.resolve("mlp@v2").record.id;
        s.reg
            .with_index("test", |idx| {
                Ok(idx.retire_manifest(id, &model("mlp"), reg_format::VersionNumber(2))?)
            })
            .expect("remove manifest");
        None
    });
    assert!(e.to_string().contains("mlp@v2"), "{e}");
}

#[test]
fn gc_removes_leftover_temp_files_and_a_dry_run_leaves_them() {
    let s = Scratch::new();
    s.push_fixture(SERIES[0], "mlp");
    let tmp = s.reg.layout().tmp_dir();
    for n in 0..3 {
        std::fs::write(tmp.join(format!("pending-{n}")), b"a crashed writer's bytes").expect("write");
    }
    let dry = s.reg.gc(true).expect("gc --dry-run");
    assert_eq!(dry.temp_files, 0);
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 3);
    let r = s.reg.gc(false).expect("gc");
    assert_eq!((r.temp_files, r.removed_blobs), (3, 0));
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0);
    s.assert_pulls("mlp@v1", SERIES[0]);
}
