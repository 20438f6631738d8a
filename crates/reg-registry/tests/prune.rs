//! Retention (`Registry::prune`): which versions keep-last, keep-best and
//! keep-tagged keep, what keep-optimizer-last leaves of a version, dry
//! runs, and a damaged registry stopping it.

mod common;

use common::*;
use reg_registry::maintenance::{PruneReport, PruneRules};
use reg_registry::{ExportFormat, RegistryError};
use reg_store::BlobId;
use std::collections::BTreeSet;

fn prune(s: &Scratch, name: &str, rules: PruneRules) -> PruneReport {
    s.reg.prune(name, rules).unwrap_or_else(|e| panic!("prune {name}: {e}"))
}

/// `(removed, kept, optimizer_dropped)` of a report.
fn lists(r: &PruneReport) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    (r.removed.clone(), r.kept.clone(), r.optimizer_dropped.clone())
}

fn blobs_of(s: &Scratch, spec: &str) -> BTreeSet<BlobId> {
    s.resolve(spec).manifest.blobs().into_iter().collect()
}

#[test]
fn keep_last_removes_the_oldest_versions_and_their_blobs() {
    let s = Scratch::new();
    s.push_series_with_deltas("mlp");
    let kept: BTreeSet<BlobId> = blobs_of(&s, "mlp@v3").union(&blobs_of(&s, "mlp@v4")).copied().collect();
    let only_old: BTreeSet<BlobId> = blobs_of(&s, "mlp@v1")
        .union(&blobs_of(&s, "mlp@v2"))
        .copied()
        .filter(|b| !kept.contains(b))
        .collect();
    let freed: u64 = only_old
        .iter()
        .map(|b| s.reg.store().stored_len(*b).expect("stored_len"))
        .sum();
    let head3 = blob_of(&s.resolve("mlp@v3").manifest, HEAD);
    let r = prune(
        &s,
        "mlp",
        PruneRules {
            keep_last: 2,
            ..PruneRules::default()
        },
    );
    assert_eq!(lists(&r), (vec![1, 2], vec![3, 4], vec![]));
    assert_eq!(r.freed_bytes, freed);
    assert_eq!(s.numbers("mlp"), vec![3, 4]);
    assert!(s.blobs_on_disk().is_disjoint(&only_old));
    // The oldest versions end the chains: nothing newer was re-encoded.
    assert_eq!(s.parent(head3), Some(blob_of(&s.resolve("mlp@v4").manifest, HEAD)));
    s.assert_pulls("mlp@v3", SERIES[2]);
    s.assert_pulls("mlp@v4", SERIES[3]);
    let gc = s.reg.gc(false).expect("gc");
    assert_eq!((gc.removed_blobs, gc.reencoded_blobs), (0, 0));
    // More to keep than there are: nothing goes.
    let r = prune(
        &s,
        "mlp",
        PruneRules {
            keep_last: 5,
            ..PruneRules::default()
        },
    );
    assert_eq!(lists(&r), (vec![], vec![3, 4], vec![]));
}

#[test]
fn keep_best_ranks_by_the_monitored_score_and_its_mode() {
    let s = Scratch::new();
    // Out of order: v1 is the best epoch (val_loss 0.345), v2 the worst.
    s.push_all(&[MONITORED[3], MONITORED[0], MONITORED[1], MONITORED[2]], "mon");
    let dry = |rules: PruneRules| lists(&prune(&s, "mon", PruneRules { dry_run: true, ..rules }));
    let best = |n| PruneRules {
        keep_best: n,
        ..PruneRules::default()
    };
    assert_eq!(dry(best(1)), (vec![2, 3, 4], vec![1], vec![]));
    assert_eq!(dry(best(2)), (vec![2, 3], vec![1, 4], vec![]));
    assert_eq!(dry(best(3)), (vec![2], vec![1, 3, 4], vec![]));
    assert_eq!(
        dry(PruneRules {
            keep_last: 1,
            ..best(1)
        }),
        (vec![2, 3], vec![1, 4], vec![])
    );
    assert_eq!(s.numbers("mon"), vec![1, 2, 3, 4]);
    let r = prune(
        &s,
        "mon",
        PruneRules {
            keep_last: 1,
            ..best(1)
        },
    );
    assert_eq!(lists(&r), (vec![2, 3], vec![1, 4], vec![]));
    assert_eq!(s.numbers("mon"), vec![1, 4]);
    s.assert_pulls("mon@v1", MONITORED[3]);
    s.assert_pulls("mon@v4", MONITORED[2]);
}

#[test]
fn keep_best_of_a_max_metric_keeps_the_highest_and_never_an_unscored_version() {
    let s = Scratch::new();
    for (e, acc) in [Some(0.5), Some(0.9), None, Some(0.7)].into_iter().enumerate() {
        let path = s.work().join(format!("epoch={e}.ckpt"));
        let w = Tensor::new(
            "w",
            reg_ckpt::DType::Float32,
            &[2],
            encode(&[e as f64, 1.0], reg_ckpt::DType::Float32),
        );
        let callback = acc.map(|a| model_checkpoint("acc", "max", a)).into_iter().collect();
        write_ckpt(&path, e as i64, e as i64, &[w], callback);
        s.push(&path, "clf");
    }
    let dry = |n| {
        let rules = PruneRules {
            keep_best: n,
            dry_run: true,
            ..PruneRules::default()
        };
        lists(&prune(&s, "clf", rules))
    };
    assert_eq!(dry(1), (vec![1, 3, 4], vec![2], vec![]));
    assert_eq!(dry(2), (vec![1, 3], vec![2, 4], vec![]));
    // v3 has no score: only three versions can be among the best.
    assert_eq!(dry(4), (vec![3], vec![1, 2, 4], vec![]));
}

#[test]
fn keep_tagged_keeps_every_tagged_version() {
    let s = Scratch::new();
    s.push_all(&SERIES, "mlp");
    let v2 = s.resolve("mlp@v2");
    s.reg.tag(&v2, &common::tag("prod"), false).expect("tag");
    drop(v2);
    let tagged = PruneRules {
        keep_tagged: true,
        ..PruneRules::default()
    };
    let dry = prune(
        &s,
        "mlp",
        PruneRules {
            dry_run: true,
            ..tagged
        },
    );
    assert_eq!(lists(&dry), (vec![1, 3, 4], vec![2], vec![]));
    let r = prune(&s, "mlp", PruneRules { keep_last: 1, ..tagged });
    assert_eq!(lists(&r), (vec![1, 3], vec![2, 4], vec![]));
    assert_eq!(
        s.reg.tags(&common::model("mlp")).expect("tags"),
        vec![(tag("prod"), reg_format::VersionNumber(2))]
    );
    s.assert_pulls("mlp@prod", SERIES[1]);
    // No rule at all removes nothing.
    let none = prune(&s, "mlp", PruneRules::default());
    assert_eq!(lists(&none), (vec![], vec![2, 4], vec![]));
}

/// Bytes of each storage of a torch file, by the path of its first tensor.
fn storages(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let ckpt = reg_ckpt::inspect(bytes).expect("inspect");
    let mut out = Vec::new();
    for t in &ckpt.tensors {
        let seg = ckpt
            .segments
            .iter()
            .find(
                |s| matches!(&s.kind, reg_ckpt::SegmentKind::Payload { storage_key } if *storage_key == t.storage_key),
            )
            .expect("storage of a tensor");
        out.push((
            t.path.clone(),
            bytes[seg.range.start as usize..seg.range.end as usize].to_vec(),
        ));
    }
    out
}

#[test]
fn keep_optimizer_last_leaves_weights_only_files() {
    let s = Scratch::new();
    s.push_series_with_deltas("mlp");
    let originals: Vec<_> = (1..=4).map(|v| s.resolve(&format!("mlp@v{v}")).manifest).collect();
    // What a weights-only export of v1 was before.
    let exported = s.work().join("v1.weights.ckpt");
    s.reg
        .export(&s.resolve("mlp@v1"), ExportFormat::WeightsOnly, &exported, false)
        .expect("export");
    let rules = PruneRules {
        keep_optimizer_last: Some(1),
        ..PruneRules::default()
    };
    let r = prune(&s, "mlp", rules);
    assert_eq!(lists(&r), (vec![], vec![1, 2, 3, 4], vec![1, 2, 3]));
    assert!(r.freed_bytes > 0);
    let dropped: Vec<bool> = s
        .reg
        .versions(&common::model("mlp"))
        .expect("versions")
        .iter()
        .map(|v| v.optimizer_dropped)
        .collect();
    assert_eq!(dropped, vec![true, true, true, false]);
    s.assert_pulls("mlp@v4", SERIES[3]);

    let v1 = s.resolve("mlp@v1");
    let pulled = s.pulled(&v1);
    assert!(
        pulled == std::fs::read(&exported).expect("read"),
        "v1 does not pull as its weights-only export"
    );
    let dropped_from = v1.manifest.optimizer_dropped.clone().expect("optimizer_dropped");
    let original = std::fs::read(fixture(SERIES[0])).expect("read");
    assert_eq!(dropped_from.size, original.len() as u64);
    assert_eq!(dropped_from.blake3, originals[0].blake3);
    assert_eq!(
        (v1.manifest.number, v1.record.epoch, v1.record.global_step),
        (1, Some(0), Some(8))
    );
    // The file: the original's keys that a weights-only save keeps, in
    // order, and the state dict's bytes as they were.
    let torch = expected(SERIES[0]);
    let keys: Vec<&str> = torch["top_keys"]
        .as_array()
        .expect("top_keys")
        .iter()
        .filter_map(|k| k.as_str())
        .filter(|k| reg_write::weights_only::KEPT_KEYS.contains(k))
        .collect();
    let ckpt = reg_ckpt::inspect(&pulled).expect("inspect");
    assert_eq!(ckpt.meta.top_keys, keys);
    assert!(ckpt.meta.optimizers.is_empty() && ckpt.meta.schedulers.is_empty());
    let weights: Vec<(String, Vec<u8>)> = storages(&original)
        .into_iter()
        .filter(|(p, _)| p.starts_with("state_dict/"))
        .collect();
    assert_eq!(storages(&pulled), weights);
    drop(v1);

    // The optimizer state of v1..v3 is gone from the store.
    let kept_by_v4: BTreeSet<BlobId> = originals[3].blobs().into_iter().collect();
    let on_disk = s.blobs_on_disk();
    for m in &originals[..3] {
        for t in m.tensors.iter().filter(|t| t.path.starts_with("optimizer_states/")) {
            assert!(
                kept_by_v4.contains(&t.blob.expect("a stored tensor"))
                    || !on_disk.contains(&t.blob.expect("a stored tensor")),
                "v{} {}",
                m.number,
                t.path
            );
        }
    }
    for v in 1..=3 {
        let m = s.resolve(&format!("mlp@v{v}")).manifest;
        assert!(m.tensors.iter().all(|t| t.path.starts_with("state_dict/")), "v{v}");
    }
    let verified = s.reg.verify(None, true).expect("verify");
    assert!(verified.is_clean(), "{verified:?}");
    // Dropped once: a second run has nothing to drop.
    assert_eq!(prune(&s, "mlp", rules).optimizer_dropped, Vec::<u32>::new());
}

#[test]
fn keep_optimizer_last_in_the_config_runs_after_each_push() {
    let s = Scratch::with(|c| c.keep_optimizer_last = Some(2));
    s.push_all(&SERIES, "mlp");
    // With background deltas each push queued its retention with its
    // re-encoding: nothing ran yet.
    let before: Vec<bool> = s
        .reg
        .versions(&common::model("mlp"))
        .expect("versions")
        .iter()
        .map(|v| v.optimizer_dropped)
        .collect();
    assert_eq!(before, vec![false; 4]);
    // What the CLI's background job does.
    s.reg
        .finish_pending_deltas(None, &reg_registry::Silent)
        .expect("background work");
    let dropped: Vec<bool> = s
        .reg
        .versions(&common::model("mlp"))
        .expect("versions")
        .iter()
        .map(|v| v.optimizer_dropped)
        .collect();
    assert_eq!(dropped, vec![true, true, false, false]);
    s.assert_pulls("mlp@v3", SERIES[2]);
    s.assert_pulls("mlp@v4", SERIES[3]);
}

#[test]
fn a_dry_run_reports_what_prune_would_do_and_changes_nothing() {
    let s = Scratch::new();
    s.push_series_with_deltas("mlp");
    let rules = PruneRules {
        keep_last: 2,
        keep_optimizer_last: Some(1),
        ..PruneRules::default()
    };
    let before = (
        s.store_snapshot(),
        s.reg.versions(&common::model("mlp")).expect("versions"),
    );
    let dry = prune(&s, "mlp", PruneRules { dry_run: true, ..rules });
    assert_eq!(lists(&dry), (vec![1, 2], vec![3, 4], vec![3]));
    assert_eq!(dry.freed_bytes, 0);
    assert!(
        (
            s.store_snapshot(),
            s.reg.versions(&common::model("mlp")).expect("versions")
        ) == before,
        "a dry run changed the registry"
    );
    let r = prune(&s, "mlp", rules);
    assert_eq!(lists(&r), lists(&dry));
    assert!(r.freed_bytes > 0);
    assert_eq!(s.numbers("mlp"), vec![3, 4]);
}

#[test]
fn a_version_whose_manifest_is_missing_stops_prune() {
    let s = Scratch::new();
    s.push_all(&SERIES, "mlp");
    let id = s.resolve("mlp@v2").record.id;
    s.reg
        .with_index("test", |idx| {
            Ok(idx.retire_manifest(id, &model("mlp"), reg_format::VersionNumber(2))?)
        })
        .expect("remove manifest");
    let before = s.store_snapshot();
    for rules in [
        PruneRules {
            keep_last: 1,
            ..PruneRules::default()
        },
        PruneRules {
            keep_optimizer_last: Some(1),
            ..PruneRules::default()
        },
        PruneRules {
            keep_best: 1,
            dry_run: true,
            ..PruneRules::default()
        },
    ] {
        let e = s.reg.prune("mlp", rules).expect_err("prune of a damaged name");
        assert!(e.is_damage(), "{e}");
        assert!(
            matches!(&e, RegistryError::Damaged { version, .. } if version == "mlp@v2"),
            "{e}"
        );
        assert_eq!(s.reg.versions(&common::model("mlp")).expect("versions").len(), 4);
        assert!(s.store_snapshot() == before, "prune changed the store");
    }
    // Names are checked first.
    let rules = PruneRules {
        keep_last: 1,
        ..PruneRules::default()
    };
    assert!(matches!(
        s.reg.prune("nosuch", rules),
        Err(RegistryError::NoSuchName { .. })
    ));
    assert!(matches!(s.reg.prune("a/b", rules), Err(RegistryError::BadName(_))));
}
