//! What `Registry::diff` reports: file metadata, hyperparameters key by
//! key, optimizer settings, tensors identical or changed by blob and view,
//! and `--stats` numbers checked against a computation of their own.

mod common;

use common::*;
use reg_ckpt::DType;
use reg_registry::diff::{Changed, Present};
use reg_registry::{Diff, DiffOptions, Only};
use reg_write::Emit;
use serde_json::{json, Value};

fn diff(s: &Scratch, a: &str, b: &str, opts: DiffOptions) -> Diff {
    s.reg
        .diff(&s.resolve(a), &s.resolve(b), opts)
        .unwrap_or_else(|e| panic!("diff {a} {b}: {e}"))
}

fn changed(path: &str, old: Value, new: Value) -> Changed {
    Changed {
        path: path.into(),
        old,
        new,
    }
}

/// Every leaf of a JSON tree as `(dotted path, value)`: objects are
/// walked key by key, lists and scalars are values.
fn leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &path, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// `(path, old, new)` for the leaves that differ, sorted by path (both
/// trees have the same keys).
fn leaf_changes(a: &Value, b: &Value, prefix: &str) -> Vec<Changed> {
    let (mut la, mut lb) = (Vec::new(), Vec::new());
    leaves(a, prefix, &mut la);
    leaves(b, prefix, &mut lb);
    assert_eq!(
        la.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        lb.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let mut out: Vec<Changed> = la
        .into_iter()
        .zip(lb)
        .filter(|((_, x), (_, y))| x != y)
        .map(|((p, x), (_, y))| changed(&p, x, y))
        .collect();
    out.sort_by(|x, y| x.path.cmp(&y.path));
    out
}

fn sorted(mut v: Vec<Changed>) -> Vec<Changed> {
    v.sort_by(|x, y| x.path.cmp(&y.path));
    v
}

fn tensor_paths(rel: &str) -> Vec<(String, String)> {
    expected(rel)["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| {
            (
                t["path"].as_str().expect("path").to_string(),
                t["sha256"].as_str().expect("sha").to_string(),
            )
        })
        .collect()
}

/// The tensors (by path, in `a`'s manifest order) whose bytes torch
/// reports the same in both fixtures.
fn same_bytes(a: &str, b: &str) -> Vec<String> {
    let tb = tensor_paths(b);
    let same: Vec<String> = tensor_paths(a)
        .into_iter()
        .filter(|t| tb.contains(t))
        .map(|(p, _)| p)
        .collect();
    // A manifest lists tensors in the order reg's reader finds them.
    let bytes = std::fs::read(fixture(a)).expect("read");
    let ckpt = reg_ckpt::inspect(&bytes).expect("inspect");
    ckpt.tensors
        .iter()
        .map(|t| t.path.clone())
        .filter(|p| same.contains(p))
        .collect()
}

#[test]
fn two_epochs_differ_in_their_trained_tensors_step_and_learning_rate() {
    let s = Scratch::new();
    s.push_all(&SERIES[..2], "mlp");
    let d = diff(&s, "mlp@v1", "mlp@v2", DiffOptions::default());
    assert_eq!((d.a.version, d.b.version), (1, 2));
    assert_eq!(d.a.id, s.resolve("mlp@v1").record.id.to_hex());
    assert_eq!(
        d.meta,
        vec![
            changed("epoch", json!(0), json!(1)),
            changed("global_step", json!(8), json!(16))
        ]
    );
    assert_eq!(d.hyper_parameters.count(), 0);
    // The tensors torch reports with the same bytes are identical; every
    // other one changed content (same dtype and shape).
    let same = same_bytes(SERIES[0], SERIES[1]);
    assert_eq!(same.len(), 3);
    assert_eq!(d.tensors.identical, same);
    let mut other: Vec<String> = tensor_paths(SERIES[0])
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !same.contains(p))
        .collect();
    other.sort();
    let mut changed_paths: Vec<String> = d.tensors.changed.iter().map(|t| t.path.clone()).collect();
    changed_paths.sort();
    assert_eq!(changed_paths, other);
    for t in &d.tensors.changed {
        assert_eq!(
            (t.change, t.dtype.0.as_str(), t.dtype.1.as_str()),
            ("content", "float32", "float32")
        );
        assert_eq!(t.shape.0, t.shape.1);
        assert!(t.stats.is_none());
    }
    assert!(d.tensors.added.is_empty() && d.tensors.removed.is_empty());
    // The optimizer: StepLR lowered the learning rate of its one group.
    let groups = |rel: &str| expected(rel)["optimizer_param_groups"][0][0].clone();
    let lr = leaf_changes(&groups(SERIES[0]), &groups(SERIES[1]), "0.param_groups.0");
    assert_eq!(lr.len(), 1);
    assert_eq!(d.optimizer, lr);
    assert!(
        d.scheduler.iter().any(|c| c.path == "0.last_epoch"),
        "{:?}",
        d.scheduler
    );
    assert!(d.checkpoint.is_empty(), "{:?}", d.checkpoint);
    assert_eq!(
        d.summary(),
        format!(
            "meta: 2 changed · optimizer: {} changed · tensors: 16 changed, 3 identical",
            d.optimizer.len() + d.scheduler.len()
        )
    );
    // A version against itself.
    let same = diff(&s, "mlp@v1", "mlp@v1", DiffOptions::default());
    assert_eq!(same.summary(), "tensors: 19 identical");
}

#[test]
fn a_fine_tune_differs_from_its_base_in_these_hyperparameters() {
    let s = Scratch::new();
    s.push_fixture(SERIES[3], "mlp");
    s.push_fixture(FINETUNE[0], "ft");
    let d = diff(&s, "mlp", "ft", DiffOptions::default());
    let hp = |rel: &str| expected(rel)["hyper_parameters"].clone();
    let want = leaf_changes(&hp(SERIES[3]), &hp(FINETUNE[0]), "");
    let paths: Vec<&str> = want.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["dropout", "lr", "note", "schedule.gamma", "schedule.step_size", "tags"]
    );
    assert_eq!(sorted(d.hyper_parameters.changed.clone()), want);
    assert!(d.hyper_parameters.added.is_empty() && d.hyper_parameters.removed.is_empty());
    // The frozen encoder (and the callback's unchanged state) is one blob
    // under both names.
    assert_eq!(d.tensors.identical, same_bytes(SERIES[3], FINETUNE[0]));
    assert!(d.tensors.identical.contains(&ENCODER.to_string()));
    // One section only.
    let only = s
        .reg
        .diff(
            &s.resolve("mlp"),
            &s.resolve("ft"),
            DiffOptions {
                only: Only::Hparams,
                stats: false,
            },
        )
        .expect("diff");
    assert_eq!(only.hyper_parameters, d.hyper_parameters);
    assert!(only.meta.is_empty() && only.optimizer.is_empty() && only.scheduler.is_empty());
    assert_eq!(only.tensors, Default::default());
    let tensors = diff(
        &s,
        "mlp",
        "ft",
        DiffOptions {
            only: Only::Tensors,
            stats: false,
        },
    );
    assert_eq!(tensors.tensors, d.tensors);
    assert_eq!(
        tensors.hyper_parameters.count() + tensors.meta.len() + tensors.optimizer.len(),
        0
    );
}

/// A JSON value as the pickle of a checkpoint holds it.
fn emit(v: &Value) -> Emit {
    match v {
        Value::Null => Emit::None,
        Value::Bool(b) => Emit::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(Emit::Int)
            .unwrap_or_else(|| Emit::Float(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => Emit::Str(s.clone()),
        Value::Array(a) => Emit::List(a.iter().map(emit).collect()),
        Value::Object(m) => Emit::Dict(m.iter().map(|(k, v)| (Emit::Str(k.clone()), emit(v))).collect()),
    }
}

fn f32s(values: &[f64]) -> Vec<u8> {
    encode(values, DType::Float32)
}

/// Two versions of a small checkpoint with one of each kind of change.
fn pair_of_versions(s: &Scratch) {
    let grid: Vec<f64> = (1..=16).map(f64::from).collect();
    let mut moved = grid.clone();
    moved[0] = 1.5;
    moved[5] = -6.0;
    // A transposed view of storage elements 1..=10: (i, j) at 1 + i + 4j.
    let mut outside = grid.clone();
    outside[6] = 7.5;
    outside[15] = 0.0;
    let view = |bytes| Tensor::view("view", DType::Float32, &[2, 3], &[1, 4], 1, bytes);
    let a = vec![
        Tensor::new("w", DType::Float32, &[4, 4], f32s(&grid)),
        Tensor::new("gone", DType::Float32, &[2], f32s(&[1.0, 2.0])),
        Tensor::new("retyped", DType::Float32, &[4], f32s(&grid[..4])),
        Tensor::new("reshaped", DType::Float32, &[2, 8], f32s(&grid)),
        view(f32s(&grid)),
        Tensor::new("same", DType::Float32, &[3], f32s(&[7.0, 8.0, 9.0])),
        Tensor::new("both", DType::Float32, &[4], f32s(&grid[..4])),
        // The same storage bytes (one blob) in both, viewed elsewhere.
        Tensor::view("moved", DType::Float32, &[4], &[1], 0, f32s(&grid)),
    ];
    let b = vec![
        Tensor::new("w", DType::Float32, &[4, 4], f32s(&moved)),
        Tensor::new("retyped", DType::Float64, &[4], encode(&grid[..4], DType::Float64)),
        Tensor::new("reshaped", DType::Float32, &[8, 2], f32s(&grid)),
        view(f32s(&outside)),
        Tensor::new("same", DType::Float32, &[3], f32s(&[7.0, 8.0, 9.0])),
        Tensor::new("new", DType::Float32, &[3], f32s(&[1.0, 2.0, 3.0])),
        Tensor::new("both", DType::Float64, &[2], encode(&grid[..2], DType::Float64)),
        Tensor::view("moved", DType::Float32, &[4], &[1], 2, f32s(&grid)),
    ];
    let hp = |v: Value| vec![(Emit::Str("hyper_parameters".into()), emit(&v))];
    let (pa, pb) = (s.work().join("a.ckpt"), s.work().join("b.ckpt"));
    write_ckpt(&pa, 0, 10, &a, hp(json!({"a": 1, "b": {"c": 2}, "keep": [1, 2]})));
    write_ckpt(
        &pb,
        1,
        20,
        &b,
        hp(json!({"b": {"c": 3, "d": 4}, "e": [1, 2], "keep": [1, 2]})),
    );
    s.push(&pa, "small");
    s.push(&pb, "small");
}

#[test]
fn added_removed_and_changed_keys_and_tensors() {
    let s = Scratch::new();
    pair_of_versions(&s);
    let d = diff(&s, "small@v1", "small@v2", DiffOptions::default());
    let h = &d.hyper_parameters;
    let present = |path: &str, value: Value| Present {
        path: path.into(),
        value,
    };
    assert_eq!(h.removed, vec![present("a", json!(1))]);
    assert_eq!(h.added, vec![present("b.d", json!(4)), present("e", json!([1, 2]))]);
    assert_eq!(h.changed, vec![changed("b.c", json!(2), json!(3))]);
    let t = &d.tensors;
    assert_eq!(t.removed, vec!["state_dict/gone"]);
    assert_eq!(t.added, vec!["state_dict/new"]);
    assert_eq!(t.identical, vec!["state_dict/same"]);
    /// Path, kind of change, dtypes and shapes.
    type Kind<'d> = (&'d str, &'d str, (&'d str, &'d str), (Vec<u64>, Vec<u64>));
    let kinds: Vec<Kind> = t
        .changed
        .iter()
        .map(|c| {
            (
                c.path.as_str(),
                c.change,
                (c.dtype.0.as_str(), c.dtype.1.as_str()),
                c.shape.clone(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                "state_dict/w",
                "content",
                ("float32", "float32"),
                (vec![4, 4], vec![4, 4])
            ),
            (
                "state_dict/retyped",
                "dtype",
                ("float32", "float64"),
                (vec![4], vec![4])
            ),
            (
                "state_dict/reshaped",
                "shape",
                ("float32", "float32"),
                (vec![2, 8], vec![8, 2])
            ),
            (
                "state_dict/view",
                "content",
                ("float32", "float32"),
                (vec![2, 3], vec![2, 3])
            ),
            // dtype is named first when the shape changed too.
            ("state_dict/both", "dtype", ("float32", "float64"), (vec![4], vec![2])),
            (
                "state_dict/moved",
                "content",
                ("float32", "float32"),
                (vec![4], vec![4])
            ),
        ]
    );
    let blob = |spec: &str| blob_of(&s.resolve(spec).manifest, "state_dict/moved");
    assert_eq!(blob("small@v1"), blob("small@v2"));
    assert_eq!(
        d.meta[..2],
        [
            changed("epoch", json!(0), json!(1)),
            changed("global_step", json!(10), json!(20))
        ]
    );
    assert!(d.meta[2..].iter().all(|c| c.path == "size"), "{:?}", d.meta);
    assert!(
        d.summary().contains("hparams: 1 changed, 2 added, 1 removed"),
        "{}",
        d.summary()
    );
    assert!(
        d.summary()
            .ends_with("tensors: 6 changed, 1 added, 1 removed, 1 identical"),
        "{}",
        d.summary()
    );
}

#[test]
fn stats_of_small_tensors_are_exact() {
    let s = Scratch::new();
    pair_of_versions(&s);
    let d = diff(
        &s,
        "small@v1",
        "small@v2",
        DiffOptions {
            stats: true,
            only: Only::Tensors,
        },
    );
    let stats = |path: &str| {
        d.tensors
            .changed
            .iter()
            .find(|c| c.path == format!("state_dict/{path}"))
            .unwrap_or_else(|| panic!("{path} did not change"))
            .stats
    };
    // w: 1 -> 1.5 and 6 -> -6 of 1..=16.
    let norm: f64 = (1..=16).map(|i| f64::from(i * i)).sum::<f64>().sqrt();
    let w = stats("w").expect("stats of w");
    assert_eq!(w.max_abs_diff, 12.0);
    assert_eq!(w.changed_fraction, 2.0 / 16.0);
    assert!(
        (w.rel_l2.expect("rel_l2") - (0.25f64 + 144.0).sqrt() / norm).abs() < 1e-15,
        "{w:?}"
    );
    // The view sees storage elements 2, 6, 10, 3, 7, 11 (1-based values);
    // 7 -> 7.5 is one of them, the change at element 16 is not.
    let v = stats("view").expect("stats of the view");
    let seen: f64 = [2.0f64, 6.0, 10.0, 3.0, 7.0, 11.0].iter().map(|x| x * x).sum();
    assert_eq!((v.max_abs_diff, v.changed_fraction), (0.5, 1.0 / 6.0));
    assert!((v.rel_l2.expect("rel_l2") - 0.5 / seen.sqrt()).abs() < 1e-15, "{v:?}");
    // One storage, the view moved by two elements: 1..=4 -> 3..=6.
    let m = stats("moved").expect("stats of the moved view");
    assert_eq!((m.max_abs_diff, m.changed_fraction), (2.0, 1.0));
    assert!((m.rel_l2.expect("rel_l2") - 4.0 / 30f64.sqrt()).abs() < 1e-15, "{m:?}");
    // No numbers across dtypes or shapes.
    assert_eq!((stats("retyped"), stats("reshaped"), stats("both")), (None, None, None));
}

/// Elements of each tensor of a torch file as f64, by path (contiguous
/// float32 views, as all of the mlp run's are).
fn float32_tensors(rel: &str) -> Vec<(String, Vec<f64>, Vec<[u8; 4]>)> {
    let bytes = std::fs::read(fixture(rel)).expect("read");
    let ckpt = reg_ckpt::inspect(&bytes).expect("inspect");
    ckpt.tensors
        .iter()
        .map(|t| {
            assert_eq!(t.dtype, DType::Float32, "{}", t.path);
            let seg = ckpt
                .segments
                .iter()
                .find(|s| matches!(&s.kind, reg_ckpt::SegmentKind::Payload { storage_key } if *storage_key == t.storage_key))
                .expect("storage");
            let numel: u64 = t.shape.iter().product();
            let start = seg.range.start as usize + t.storage_offset as usize * 4;
            let raw: Vec<[u8; 4]> = bytes[start..start + numel as usize * 4]
                .chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect();
            let values = raw.iter().map(|b| f64::from(f32::from_le_bytes(*b))).collect();
            (t.path.clone(), values, raw)
        })
        .collect()
}

#[test]
fn stats_of_two_epochs_match_a_computation_of_their_own() {
    let s = Scratch::new();
    s.push_series_with_deltas("mlp");
    // v1 and v3: both stored as deltas, read through their chains.
    let d = diff(
        &s,
        "mlp@v1",
        "mlp@v3",
        DiffOptions {
            stats: true,
            only: Only::Tensors,
        },
    );
    let (a, b) = (float32_tensors(SERIES[0]), float32_tensors(SERIES[2]));
    assert_eq!(d.tensors.changed.len(), 16);
    for c in &d.tensors.changed {
        let (_, va, ra) = a.iter().find(|(p, _, _)| *p == c.path).expect("in v1");
        let (_, vb, rb) = b.iter().find(|(p, _, _)| *p == c.path).expect("in v3");
        let (mut max, mut diff_sq, mut a_sq, mut n_changed) = (0f64, 0f64, 0f64, 0usize);
        for i in 0..va.len() {
            a_sq += va[i] * va[i];
            if ra[i] != rb[i] {
                n_changed += 1;
                max = max.max((vb[i] - va[i]).abs());
                diff_sq += (vb[i] - va[i]).powi(2);
            }
        }
        let got = c.stats.unwrap_or_else(|| panic!("no stats for {}", c.path));
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * y.abs().max(1e-300);
        assert_eq!(got.max_abs_diff, max, "{}", c.path);
        assert_eq!(got.changed_fraction, n_changed as f64 / va.len() as f64, "{}", c.path);
        let rel = diff_sq.sqrt() / a_sq.sqrt();
        assert!(close(got.rel_l2.expect("rel_l2"), rel), "{}: {got:?} vs {rel}", c.path);
        assert!(n_changed > 0, "{}", c.path);
    }
}
