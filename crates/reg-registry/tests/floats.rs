//! Property test (issue 24): checkpoint metadata with every class of float
//! (NaN of any bits, infinities, `-0.0`, subnormals, values whose decimal
//! form is long) in random nested hyperparameters and random
//! ModelCheckpoint states goes through push and comes back exactly: the
//! manifest holds the same bits, `show` presents them as docs/cli.md says,
//! `pull` is byte-identical, and `diff` finds exactly the leaves an
//! independent oracle finds.

mod common;

use common::{named, Scratch};
use proptest::prelude::*;
use reg_ckpt::exact_json;
use reg_ckpt::DType;
use reg_registry::{DiffOptions, Only};
use reg_write::{write_checkpoint, Emit, StorageSource, TensorRef};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A hyperparameter as Python holds it.
#[derive(Clone, Debug)]
enum Hp {
    Float(u64),
    Int(i64),
    Str(String),
    Bool(bool),
    None,
    List(Vec<Hp>),
    Dict(Vec<(String, Hp)>),
}

/// A score as ModelCheckpoint saves it: absent, `None`, a Python float, or
/// a one-element tensor (what `current_score` really is).
#[derive(Clone, Debug)]
enum ScoreVal {
    Absent,
    None,
    Float(u64),
    F32(u32),
    F64(u64),
}

#[derive(Clone, Debug)]
struct Callback {
    monitor: Option<String>,
    mode: &'static str,
    current: ScoreVal,
    best: ScoreVal,
    kth: ScoreVal,
}

#[derive(Clone, Debug)]
struct Meta {
    hparams: Vec<(String, Hp)>,
    callback: Option<Callback>,
}

fn float_bits() -> BoxedStrategy<u64> {
    prop_oneof![
        Just(f64::NAN.to_bits()),
        // Any NaN: all exponent bits, a nonzero mantissa, either sign.
        (any::<bool>(), 1u64..(1 << 52)).prop_map(|(s, m)| (u64::from(s) << 63) | (0x7ff << 52) | m),
        Just(f64::INFINITY.to_bits()),
        Just(f64::NEG_INFINITY.to_bits()),
        Just(0.0f64.to_bits()),
        Just((-0.0f64).to_bits()),
        // Subnormals.
        (any::<bool>(), 1u64..(1 << 52)).prop_map(|(s, m)| (u64::from(s) << 63) | m),
        // Any finite float.
        any::<u64>().prop_filter("finite", |b| f64::from_bits(*b).is_finite()),
        prop::sample::select(vec![
            0.1,
            0.1 + 0.2,
            1e-8,
            1e300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            1.0 / 3.0
        ])
        .prop_map(f64::to_bits),
    ]
    .boxed()
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "lr", "$float", "$object", "nan", "inf", "a.b", "opt", "data", "", "x"
        ])
        .prop_map(String::from),
        "[a-z_]{1,8}",
    ]
}

fn hp() -> BoxedStrategy<Hp> {
    let leaf = prop_oneof![
        4 => float_bits().prop_map(Hp::Float),
        1 => any::<i64>().prop_map(Hp::Int),
        1 => prop::sample::select(vec!["nan", "inf", "-inf", "adam", "", "NaN"]).prop_map(|s| Hp::Str(s.into())),
        1 => any::<bool>().prop_map(Hp::Bool),
        1 => Just(Hp::None),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Hp::List),
            prop::collection::vec((key(), inner), 0..5).prop_map(|kv| Hp::Dict(dedupe(kv))),
        ]
    })
    .boxed()
}

fn dedupe(kv: Vec<(String, Hp)>) -> Vec<(String, Hp)> {
    let mut seen = std::collections::HashSet::new();
    kv.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect()
}

fn score_val() -> BoxedStrategy<ScoreVal> {
    prop_oneof![
        Just(ScoreVal::Absent),
        Just(ScoreVal::None),
        float_bits().prop_map(ScoreVal::Float),
        float_bits().prop_map(|b| ScoreVal::F32((f64::from_bits(b) as f32).to_bits())),
        (any::<bool>(), 1u32..(1 << 23)).prop_map(|(s, m)| ScoreVal::F32((u32::from(s) << 31) | (0xff << 23) | m)),
        float_bits().prop_map(ScoreVal::F64),
    ]
    .boxed()
}

fn meta() -> BoxedStrategy<Meta> {
    let callback = (
        prop::option::of(prop::sample::select(vec!["val_loss", "acc", "nan"]).prop_map(String::from)),
        prop::sample::select(vec!["min", "max"]),
        score_val(),
        score_val(),
        score_val(),
    )
        .prop_map(|(monitor, mode, current, best, kth)| Callback {
            monitor,
            mode,
            current,
            best,
            kth,
        });
    (
        prop::collection::vec((key(), hp()), 0..6).prop_map(dedupe),
        prop::option::of(callback.boxed()),
    )
        .prop_map(|(hparams, callback)| Meta { hparams, callback })
        .boxed()
}

/// `m` with some of its floats replaced by ones that compare equal in
/// Python or print alike (`0.0` for `-0.0`, a NaN of other bits, the
/// float of an int's value) and some dicts reordered: what a diff must
/// tell apart exactly, or not at all.
fn mutate(m: &Meta, seed: u64) -> Meta {
    fn next(x: &mut u64) -> u64 {
        *x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *x >> 33
    }
    fn go(h: &Hp, x: &mut u64) -> Hp {
        match h {
            Hp::Float(b) => Hp::Float(match next(x) % 4 {
                0 => b ^ (1 << 63),
                1 if f64::from_bits(*b).is_nan() => b ^ 1,
                1 => f64::NAN.to_bits(),
                _ => *b,
            }),
            Hp::Int(i) if next(x).is_multiple_of(3) => Hp::Float((*i as f64).to_bits()),
            Hp::List(items) => Hp::List(items.iter().map(|i| go(i, x)).collect()),
            Hp::Dict(kv) => {
                let mut kv: Vec<(String, Hp)> = kv.iter().map(|(k, v)| (k.clone(), go(v, x))).collect();
                if next(x).is_multiple_of(2) {
                    kv.reverse();
                }
                Hp::Dict(kv)
            }
            other => other.clone(),
        }
    }
    let mut x = seed;
    Meta {
        hparams: m.hparams.iter().map(|(k, v)| (k.clone(), go(v, &mut x))).collect(),
        callback: m.callback.clone(),
    }
}

/// Two versions' metadata: unrelated, or the second a [`mutate`] of the first.
fn pair() -> BoxedStrategy<(Meta, Meta)> {
    prop_oneof![
        (meta(), meta()),
        (meta(), any::<u64>()).prop_map(|(a, seed)| {
            let b = mutate(&a, seed);
            (a, b)
        }),
    ]
    .boxed()
}

// ------------------------------------------------------------- writing

fn emit_hp(h: &Hp) -> Emit {
    match h {
        Hp::Float(b) => Emit::Float(f64::from_bits(*b)),
        Hp::Int(i) => Emit::Int(*i),
        Hp::Str(s) => Emit::Str(s.clone()),
        Hp::Bool(b) => Emit::Bool(*b),
        Hp::None => Emit::None,
        Hp::List(items) => Emit::List(items.iter().map(emit_hp).collect()),
        Hp::Dict(kv) => Emit::Dict(kv.iter().map(|(k, v)| (Emit::Str(k.clone()), emit_hp(v))).collect()),
    }
}

/// Write a Lightning-shaped checkpoint with this metadata.
fn write(path: &Path, m: &Meta, epoch: i64) {
    let mut storages: Vec<(String, Vec<u8>)> = vec![("0".into(), 1.5f32.to_le_bytes().to_vec())];
    let tensor = |key: &str, dtype: DType| {
        Emit::Tensor(TensorRef {
            storage_key: key.into(),
            dtype,
            storage_numel: 1,
            offset: 0,
            shape: Vec::new(),
            stride: Vec::new(),
            requires_grad: false,
        })
    };
    let mut score = |v: &ScoreVal| -> Option<Emit> {
        let key = storages.len().to_string();
        Some(match v {
            ScoreVal::Absent => return None,
            ScoreVal::None => Emit::None,
            ScoreVal::Float(b) => Emit::Float(f64::from_bits(*b)),
            ScoreVal::F32(b) => {
                storages.push((key.clone(), b.to_le_bytes().to_vec()));
                tensor(&key, DType::Float32)
            }
            ScoreVal::F64(b) => {
                storages.push((key.clone(), b.to_le_bytes().to_vec()));
                tensor(&key, DType::Float64)
            }
        })
    };
    let s = |t: &str| Emit::Str(t.into());
    let mut root = vec![
        (s("epoch"), Emit::Int(epoch)),
        (s("global_step"), Emit::Int(epoch * 10)),
        (
            s("state_dict"),
            Emit::OrderedDict(vec![(s("w"), tensor("0", DType::Float32))]),
        ),
    ];
    if let Some(cb) = &m.callback {
        let mut state = vec![(s("mode"), s(cb.mode))];
        state.push((s("monitor"), cb.monitor.as_deref().map(s).unwrap_or(Emit::None)));
        for (name, v) in [
            ("current_score", &cb.current),
            ("best_model_score", &cb.best),
            ("kth_value", &cb.kth),
        ] {
            if let Some(e) = score(v) {
                state.push((s(name), e));
            }
        }
        let key = format!("ModelCheckpoint{{'monitor': {:?}, 'mode': '{}'}}", cb.monitor, cb.mode);
        root.push((s("callbacks"), Emit::Dict(vec![(s(&key), Emit::Dict(state))])));
    }
    root.push((s("hparams_name"), s("kwargs")));
    root.push((
        s("hyper_parameters"),
        Emit::Dict(m.hparams.iter().map(|(k, v)| (s(k), emit_hp(v))).collect()),
    ));
    let pickle = reg_write::to_pickle(&Emit::Dict(root)).expect("pickle");
    let sources: Vec<StorageSource<'_>> = storages
        .iter()
        .map(|(key, bytes)| StorageSource {
            key: key.clone(),
            len: bytes.len() as u64,
            fill: Box::new(move |w: &mut dyn std::io::Write| w.write_all(bytes)),
        })
        .collect();
    let file = std::fs::File::create(path).expect("create");
    write_checkpoint(std::io::BufWriter::new(file), "archive", &pickle, sources).expect("write");
}

// ------------------------------------------------------------- the oracle

/// The stored JSON of a hyperparameter, by docs/format.md's rules.
fn stored(h: &Hp) -> Value {
    match h {
        Hp::Float(b) => exact_json::float(f64::from_bits(*b)),
        Hp::Int(i) => Value::from(*i),
        Hp::Str(s) => Value::String(s.clone()),
        Hp::Bool(b) => Value::Bool(*b),
        Hp::None => Value::Null,
        Hp::List(items) => Value::Array(items.iter().map(stored).collect()),
        Hp::Dict(kv) => exact_json::object(kv.iter().map(|(k, v)| (k.clone(), stored(v))).collect()),
    }
}

/// The value a score has in the manifest, as f64 bits (tensors widened).
fn score_bits(v: &ScoreVal) -> Option<u64> {
    match v {
        ScoreVal::Absent | ScoreVal::None => None,
        ScoreVal::Float(b) | ScoreVal::F64(b) => Some(*b),
        ScoreVal::F32(b) => Some(f64::from(f32::from_bits(*b)).to_bits()),
    }
}

/// Leaves of a hyperparameter tree by key path: groups (non-empty dicts)
/// walked into, everything else a value, as an exact text.
fn leaves(kv: &[(String, Hp)], path: &[String], out: &mut BTreeMap<Vec<String>, String>) {
    for (k, v) in kv {
        let mut p = path.to_vec();
        p.push(k.clone());
        match v {
            Hp::Dict(inner) if !inner.is_empty() => leaves(inner, &p, out),
            other => {
                out.insert(p, exact_text(other));
            }
        }
    }
}

/// An exact text of a value: floats by their bits (so `-0.0` is not
/// `0.0` and NaNs of other bits differ), the rest by shape.
fn exact_text(h: &Hp) -> String {
    match h {
        Hp::Float(b) => format!("f{b:016x}"),
        Hp::Int(i) => format!("i{i}"),
        Hp::Str(s) => format!("s{s:?}"),
        Hp::Bool(b) => format!("b{b}"),
        Hp::None => "none".into(),
        Hp::List(items) => format!("[{}]", items.iter().map(exact_text).collect::<Vec<_>>().join(",")),
        // A dict is the same whatever the order of its keys, as in Python.
        Hp::Dict(kv) => {
            let mut items: Vec<String> = kv.iter().map(|(k, v)| format!("{k:?}:{}", exact_text(v))).collect();
            items.sort();
            format!("{{{}}}", items.join(","))
        }
    }
}

fn text(v: &Value) -> String {
    serde_json::to_string(v).expect("json")
}

static CASE: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn metadata_round_trips_through_push_show_pull_and_diff((a, b) in pair()) {
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        let s = Scratch::new();
        let name = format!("p{case}");
        let (pa, pb) = (s.work().join("a.ckpt"), s.work().join("b.ckpt"));
        write(&pa, &a, 1);
        write(&pb, &b, 2);
        s.reg.push(&pa, &named(&name)).expect("push a");
        s.reg.push(&pb, &named(&name)).expect("push b");
        let va = s.resolve(&format!("{name}@v1"));
        let vb = s.resolve(&format!("{name}@v2"));

        // The manifest holds the exact values.
        for (v, m) in [(&va, &a), (&vb, &b)] {
            let want = exact_json::object(m.hparams.iter().map(|(k, h)| (k.clone(), stored(h))).collect());
            let got = v.manifest.meta.hyper_parameters.clone().unwrap_or(Value::Null);
            prop_assert_eq!(text(&got), text(&want));
            let cb = m.callback.as_ref();
            let mc = v.manifest.meta.model_checkpoint.as_ref();
            prop_assert_eq!(mc.is_some(), cb.is_some());
            if let (Some(cb), Some(mc)) = (cb, mc) {
                prop_assert_eq!(mc.current_score.map(f64::to_bits), score_bits(&cb.current));
                prop_assert_eq!(mc.best_model_score.map(f64::to_bits), score_bits(&cb.best));
                let kth = mc.state.get("kth_value").map(|k| exact_json::as_f64(k).map(f64::to_bits));
                match &cb.kth {
                    ScoreVal::Absent => prop_assert!(kth.is_none()),
                    ScoreVal::None => prop_assert_eq!(kth, Some(None)),
                    other => prop_assert_eq!(kth, Some(score_bits(other))),
                }
                let score = cb.monitor.as_ref().and_then(|m| v.manifest.meta.scores.get(m));
                let expect = score_bits(&cb.current).filter(|_| cb.monitor.is_some());
                prop_assert_eq!(score.map(|s| s.value.to_bits()), expect);
            }
            // show presents them as docs/cli.md says.
            let shown: Value = serde_json::from_str(&reg_registry::report::to_json_text(&s.reg.show_view(v).expect("show")).expect("json")).expect("parse");
            prop_assert_eq!(text(&shown["hyper_parameters"]), text(&exact_json::present(&want)));
            // pull gives the pushed bytes.
            let original = std::fs::read(if std::ptr::eq(m, &a) { &pa } else { &pb }).expect("read");
            prop_assert!(s.pulled(v) == original);
        }

        // diff finds the leaves the oracle finds.
        let d = s.reg.diff(&va, &vb, DiffOptions { stats: false, only: Only::Hparams }).expect("diff");
        let (mut la, mut lb) = (BTreeMap::new(), BTreeMap::new());
        leaves(&a.hparams, &[], &mut la);
        leaves(&b.hparams, &[], &mut lb);
        let (mut changed, mut removed, mut added) = (Vec::new(), Vec::new(), Vec::new());
        for (p, xa) in &la {
            match lb.get(p) {
                Some(xb) if xa == xb => {}
                Some(_) => changed.push(p.join(".")),
                None => removed.push(p.join(".")),
            }
        }
        added.extend(lb.keys().filter(|p| !la.contains_key(*p)).map(|p| p.join(".")));
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let h = &d.hyper_parameters;
        prop_assert_eq!(sorted(h.removed.iter().map(|x| x.path.clone()).collect()), sorted(removed));
        prop_assert_eq!(sorted(h.added.iter().map(|x| x.path.clone()).collect()), sorted(added));
        prop_assert_eq!(sorted(h.changed.iter().map(|x| x.path.clone()).collect()), sorted(changed));
        let same = s.reg.diff(&va, &va, DiffOptions::default()).expect("diff self");
        prop_assert_eq!(same.hyper_parameters.count() + same.checkpoint.len(), 0);
    }
}

/// Copy a folder tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

#[test]
fn the_null_score_the_last_release_wrote_reads_as_nan_and_would_not_be_stored_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("reg");
    copy_dir(&common::fixture("registry-nan-score"), &home);
    let reg = reg_registry::Registry::open(reg_registry::Config::at(&home)).expect("open");
    let record = reg
        .versions(&common::model("diverged"))
        .expect("versions")
        .into_iter()
        .find(|v| v.number == 2)
        .expect("v2");
    let json = reg.manifest_json("diverged", &record).expect("manifest blob");
    let text = String::from_utf8_lossy(&json);
    assert!(text.contains(r#""val_loss":{"value":null"#), "the old form: {text}");
    // It reads (null is the NaN it was) ...
    let m = reg_registry::Manifest::from_json(&json).expect("decodes");
    assert!(m.meta.scores["val_loss"].value.is_nan());
    // ... but is not what this release writes, so the check a push makes
    // before storing a manifest sees the difference.
    assert!(matches!(
        reg_registry::Manifest::check_decodes(&json),
        Err(reg_format::manifest::ManifestError::Differs { .. })
    ));
    let again = m.encode().expect("encodes exactly now");
    assert!(String::from_utf8_lossy(&again).contains(r#""val_loss":{"value":{"$float":"nan"}"#));
    assert_eq!(
        reg_registry::Manifest::check_decodes(&again)
            .expect("round trip")
            .to_json()
            .expect("json"),
        again
    );
}
