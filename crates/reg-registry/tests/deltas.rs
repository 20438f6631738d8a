//! Which blob becomes whose delta (`reg_registry::deltas`): older versions
//! against the next one, tensor by tensor; `--parent` forward deltas;
//! the chain bound; and every version still pulling byte-identical.

mod common;

use common::*;
use reg_ckpt::DType;
use reg_registry::{DeltaTiming, PushOptions, Silent, VersionRef};
use reg_store::BlobId;

/// The chain length of `path`'s blob in each version of `name`, oldest first.
fn chain_lens(s: &Scratch, name: &str, path: &str) -> Vec<usize> {
    s.numbers(name)
        .iter()
        .map(|n| s.chain_len(blob_of(&s.resolve(&format!("{name}@v{n}")).manifest, path)))
        .collect()
}

#[test]
fn each_older_blob_is_a_delta_against_the_same_tensor_of_the_next_version() {
    let s = Scratch::new();
    s.push_all(&SERIES, "mlp");
    let reports = s
        .reg
        .make_deltas(&common::model("mlp"), reg_format::VersionNumber(1), &Silent)
        .expect("make_deltas");
    let rounds: Vec<(Option<u32>, Option<u32>)> = reports.iter().map(|r| (r.version, r.against)).collect();
    assert_eq!(rounds, vec![(Some(1), Some(2)), (Some(2), Some(3)), (Some(3), Some(4))]);

    let versions: Vec<_> = (1..=4).map(|n| s.resolve(&format!("mlp@v{n}"))).collect();
    for (i, v) in versions.iter().enumerate() {
        let mut deltas = std::collections::BTreeSet::new();
        for t in &v.manifest.tensors {
            let Some(parent) = s.parent(t.blob.expect("a stored tensor")) else {
                continue;
            };
            deltas.insert(t.blob.expect("a stored tensor"));
            // Only an older version's blob is a delta, and only against
            // the blob of the same tensor in the next version, which
            // holds other bytes of the same length.
            let next = versions
                .get(i + 1)
                .unwrap_or_else(|| panic!("the newest version's {} is a delta", t.path));
            assert_eq!(parent, blob_of(&next.manifest, &t.path), "v{} {}", i + 1, t.path);
            assert!(t.dtype.is_float(), "{} is {:?}", t.path, t.dtype);
            let lens = (v.manifest.payload_lens(), next.manifest.payload_lens());
            assert_eq!(
                lens.0.get(&t.blob.expect("a stored tensor")),
                lens.1.get(&parent),
                "{}",
                t.path
            );
        }
        if i < 3 {
            // The report counts exactly the blobs whose headers now name a
            // parent, and they got smaller.
            let r = &reports[i];
            assert_eq!(r.blobs, deltas.len(), "v{}", i + 1);
            assert!(r.bytes_after < r.bytes_before, "{r:?}");
            assert!(r.warnings.is_empty(), "{:?}", r.warnings);
            // The trainable layer that drifts a little is one of them.
            assert!(deltas.contains(&blob_of(&v.manifest, HEAD)), "v{} {HEAD}", i + 1);
        }
    }
    // The frozen encoder is one blob for all four versions, stored whole.
    let encoder = blob_of(&versions[0].manifest, ENCODER);
    for v in &versions {
        assert_eq!(blob_of(&v.manifest, ENCODER), encoder);
    }
    assert_eq!(s.parent(encoder), None);
    assert_eq!(chain_lens(&s, "mlp", HEAD), vec![3, 2, 1, 0]);

    for (n, rel) in SERIES.iter().enumerate() {
        s.assert_pulls(&format!("mlp@v{}", n + 1), rel);
    }
    let verified = s.reg.verify(None, true).expect("verify");
    assert!(verified.is_clean(), "{verified:?}");
}

#[test]
fn only_floats_of_one_path_dtype_and_length_become_deltas() {
    let s = Scratch::new();
    let n = 8192;
    let epoch = |e: u32| {
        let drifting = |seed: u64, dtype: DType, n: usize| encode(&weights(seed, n, e, 1e-4), dtype);
        let mut tensors = vec![
            Tensor::new("w", DType::Float32, &[64, 128], drifting(1, DType::Float32, n)),
            Tensor::new("w16", DType::Bfloat16, &[n as u64], drifting(2, DType::Bfloat16, n)),
            Tensor::new(
                "frozen",
                DType::Float32,
                &[n as u64],
                encode(&weights(3, n, 0, 0.0), DType::Float32),
            ),
            Tensor::new("ids", DType::Int64, &[n as u64], drifting(4, DType::Int64, n)),
        ];
        // Same bytes per storage, another dtype; one more element; another name.
        tensors.push(if e == 0 {
            Tensor::new("retyped", DType::Float32, &[n as u64], drifting(5, DType::Float32, n))
        } else {
            Tensor::new(
                "retyped",
                DType::Float64,
                &[n as u64 / 2],
                drifting(5, DType::Float64, n / 2),
            )
        });
        let grown = n + e as usize;
        tensors.push(Tensor::new(
            "grew",
            DType::Float32,
            &[grown as u64],
            drifting(6, DType::Float32, grown),
        ));
        let name = if e == 0 { "before" } else { "after" };
        tensors.push(Tensor::new(
            name,
            DType::Float32,
            &[n as u64],
            drifting(7, DType::Float32, n),
        ));
        tensors
    };
    let files: Vec<_> = (0..2)
        .map(|e| {
            let path = s.work().join(format!("epoch={e}.ckpt"));
            write_ckpt(&path, i64::from(e), i64::from(e + 1) * 10, &epoch(e), Vec::new());
            s.push(&path, "rules");
            path
        })
        .collect();
    s.reg
        .make_deltas(&common::model("rules"), reg_format::VersionNumber(1), &Silent)
        .expect("make_deltas");
    let (v1, v2) = (s.resolve("rules@v1").manifest, s.resolve("rules@v2").manifest);
    let parent_of = |path: &str| s.parent(blob_of(&v1, &format!("state_dict/{path}")));
    let new_blob = |path: &str| Some(blob_of(&v2, &format!("state_dict/{path}")));
    assert_eq!(parent_of("w"), new_blob("w"));
    assert_eq!(parent_of("w16"), new_blob("w16"));
    for whole in ["frozen", "ids", "retyped", "grew", "before"] {
        assert_eq!(parent_of(whole), None, "{whole} became a delta");
    }
    assert_eq!(blob_of(&v1, "state_dict/frozen"), blob_of(&v2, "state_dict/frozen"));
    assert!(
        v2.tensors
            .iter()
            .all(|t| s.parent(t.blob.expect("a stored tensor")).is_none()),
        "the newest version has deltas"
    );
    for (v, file) in files.iter().enumerate() {
        let pulled = s.pulled(&s.resolve(&format!("rules@v{}", v + 1)));
        assert!(pulled == std::fs::read(file).expect("read"), "v{} changed", v + 1);
    }
}

#[test]
fn a_fine_tune_pushed_with_a_parent_is_stored_against_its_base() {
    let s = Scratch::new();
    s.push_all(&SERIES, "mlp");
    let opts = PushOptions {
        parent: Some(VersionRef::parse("mlp@v4").expect("ref")),
        ..named("ft")
    };
    let report = s.push_opts(&fixture(FINETUNE[0]), &opts);
    let (base, ft) = (s.resolve("mlp@v4").manifest, s.resolve("ft@v1").manifest);
    let mut deltas = 0;
    for t in &ft.tensors {
        if let Some(parent) = s.parent(t.blob.expect("a stored tensor")) {
            deltas += 1;
            assert_eq!(parent, blob_of(&base, &t.path), "{}", t.path);
            assert!(t.dtype.is_float());
        }
    }
    // Tensors of one storage count once (the optimizer step counters).
    let distinct: std::collections::BTreeSet<BlobId> = ft
        .tensors
        .iter()
        .filter(|t| s.parent(t.blob.expect("a stored tensor")).is_some())
        .map(|t| t.blob.expect("a stored tensor"))
        .collect();
    assert_eq!(report.deltas, distinct.len());
    assert!(deltas > 0 && s.parent(blob_of(&ft, HEAD)) == Some(blob_of(&base, HEAD)));
    // The frozen encoder is the base's own blob; the base stays whole.
    assert_eq!(blob_of(&ft, ENCODER), blob_of(&base, ENCODER));
    assert!(base
        .tensors
        .iter()
        .all(|t| s.parent(t.blob.expect("a stored tensor")).is_none()));
    s.assert_pulls("ft@v1", FINETUNE[0]);

    // The base goes away: gc makes the fine-tune whole and it still pulls.
    for n in 1..=4 {
        s.reg.remove(s.resolve(&format!("mlp@v{n}"))).expect("rm");
    }
    let gc = s.reg.gc(false).expect("gc");
    assert_eq!(gc.reencoded_blobs, report.deltas);
    assert!(s
        .resolve("ft@v1")
        .manifest
        .tensors
        .iter()
        .all(|t| s.parent(t.blob.expect("a stored tensor")).is_none()));
    s.assert_pulls("ft@v1", FINETUNE[0]);
}

#[test]
fn a_forward_delta_against_a_base_at_the_chain_bound_is_not_made() {
    // The fine-tune's head against mlp@v3's and against mlp@v4's, each in
    // a registry of its own (a blob stored once keeps its encoding).
    let fine_tune_head_parent = |base: &str| {
        let s = Scratch::with(|c| c.max_delta_chain = 1);
        s.push_series_with_deltas("mlp");
        // mlp@v3's head is a delta of v4's: one link, the bound.
        assert_eq!(chain_lens(&s, "mlp", HEAD), vec![1, 0, 1, 0]);
        let opts = PushOptions {
            parent: Some(VersionRef::parse(base).expect("ref")),
            ..named("ft")
        };
        s.push_opts(&fixture(FINETUNE[0]), &opts);
        s.assert_pulls("ft@v1", FINETUNE[0]);
        let head = |spec: &str| blob_of(&s.resolve(spec).manifest, HEAD);
        (s.parent(head("ft@v1")), head("mlp@v4"))
    };
    assert_eq!(fine_tune_head_parent("mlp@v3").0, None);
    let (parent, v4_head) = fine_tune_head_parent("mlp@v4");
    assert_eq!(parent, Some(v4_head));
}

#[test]
fn chains_stay_within_max_delta_chain_however_deltas_are_made() {
    // One run of make_deltas over the whole series, and one per push
    // (inline), give the same bounded chains.
    // (The default bound: a_long_run_reaches_the_default_bound_...)
    for (max, want) in [(1, vec![1, 0, 1, 0]), (2, vec![2, 1, 0, 0])] {
        let batch = Scratch::with(|c| c.max_delta_chain = max);
        batch.push_series_with_deltas("mlp");
        assert_eq!(chain_lens(&batch, "mlp", HEAD), want, "max_delta_chain {max}, one run");
        let inline = Scratch::with(|c| {
            c.max_delta_chain = max;
            c.deltas = DeltaTiming::Inline;
        });
        inline.push_all(&SERIES, "mlp");
        assert_eq!(chain_lens(&inline, "mlp", HEAD), want, "max_delta_chain {max}, inline");
        for (n, rel) in SERIES.iter().enumerate() {
            batch.assert_pulls(&format!("mlp@v{}", n + 1), rel);
        }
    }
}

#[test]
fn a_long_run_reaches_the_default_bound_and_never_passes_it() {
    let s = Scratch::new();
    let epochs = 12;
    let mut files = Vec::new();
    for e in 0..epochs {
        let path = s.work().join(format!("epoch={e}.ckpt"));
        let w = Tensor::new(
            "w",
            DType::Float32,
            &[4096],
            encode(&weights(9, 4096, e, 1e-4), DType::Float32),
        );
        write_ckpt(&path, i64::from(e), i64::from(e), &[w], Vec::new());
        s.push(&path, "long");
        files.push(path);
    }
    s.reg
        .make_deltas(&common::model("long"), reg_format::VersionNumber(1), &Silent)
        .expect("make_deltas");
    let max = reg_registry::deltas::DEFAULT_MAX_DELTA_CHAIN;
    assert_eq!(max, 8);
    // v1..v9 chain up to the bound; v10 cannot join (v1 would need 9
    // links) and starts a new chain.
    assert_eq!(
        chain_lens(&s, "long", "state_dict/w"),
        vec![8, 7, 6, 5, 4, 3, 2, 1, 0, 2, 1, 0]
    );
    for (v, file) in files.iter().enumerate() {
        let pulled = s.pulled(&s.resolve(&format!("long@v{}", v + 1)));
        assert!(pulled == std::fs::read(file).expect("read"), "v{} changed", v + 1);
    }
}

#[test]
fn making_deltas_a_second_time_changes_nothing() {
    let s = Scratch::new();
    s.push_series_with_deltas("mlp");
    let before = s.store_snapshot();
    let again = s
        .reg
        .make_deltas(&common::model("mlp"), reg_format::VersionNumber(1), &Silent)
        .expect("make_deltas");
    assert_eq!(again.len(), 3);
    for r in &again {
        assert_eq!((r.blobs, r.bytes_before, r.bytes_after), (0, 0, 0), "{r:?}");
        assert!(r.warnings.is_empty() && !r.pending, "{r:?}");
    }
    assert!(s.store_snapshot() == before, "a second run rewrote blobs");
    // From a later version on: only the rounds from there.
    let later = s
        .reg
        .make_deltas(&common::model("mlp"), reg_format::VersionNumber(3), &Silent)
        .expect("make_deltas");
    assert_eq!(later.iter().map(|r| r.version).collect::<Vec<_>>(), vec![Some(3)]);
}

#[test]
fn a_push_leaves_its_deltas_pending_makes_them_inline_or_not_at_all() {
    let pending = Scratch::new();
    pending.push_fixture(SERIES[0], "mlp");
    let r = pending.push_fixture(SERIES[1], "mlp").previous_deltas;
    assert!(
        r.pending && r.blobs == 0 && r.version == Some(1) && r.against == Some(2),
        "{r:?}"
    );
    assert_eq!(pending.parent(blob_of(&pending.resolve("mlp@v1").manifest, HEAD)), None);

    let inline = Scratch::with(|c| c.deltas = DeltaTiming::Inline);
    inline.push_fixture(SERIES[0], "mlp");
    let r = inline.push_fixture(SERIES[1], "mlp").previous_deltas;
    assert!(
        !r.pending && r.blobs > 0 && r.version == Some(1) && r.against == Some(2),
        "{r:?}"
    );
    let head = |s: &Scratch, v: u32| blob_of(&s.resolve(&format!("mlp@v{v}")).manifest, HEAD);
    assert_eq!(inline.parent(head(&inline, 1)), Some(head(&inline, 2)));

    let off = [
        Scratch::with(|c| c.deltas = DeltaTiming::Off),
        Scratch::with(|c| c.max_delta_chain = 0),
    ];
    for s in &off {
        s.push_all(&SERIES[..2], "mlp");
        assert_eq!(
            s.reg
                .make_deltas(&common::model("mlp"), reg_format::VersionNumber(1), &Silent)
                .expect("make_deltas"),
            Vec::new()
        );
        let all: Vec<BlobId> = s.blobs_on_disk().into_iter().collect();
        assert!(all.iter().all(|b| s.parent(*b).is_none()), "a delta was made");
    }
}
