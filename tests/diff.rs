use crate::common::{expected, fixture, Reg};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Independent hyperparameter comparison of two expected JSON files.
fn flatten(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(x, &p, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

#[test]
fn run_vs_finetune_lists_exactly_the_expected_changes() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=03.ckpt", "mlp");
    reg.push("lightning/mlp-finetune/epoch=01.ckpt", "mlp-finetune");
    let d = reg
        .ok(&["diff", "mlp@epoch=3", "mlp-finetune@epoch=1", "--json"])
        .json();

    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(&expected("lightning/mlp/epoch=03.ckpt")["hyper_parameters"], "", &mut a);
    flatten(
        &expected("lightning/mlp-finetune/epoch=01.ckpt")["hyper_parameters"],
        "",
        &mut b,
    );
    let mut want: Vec<Value> = a
        .iter()
        .filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v))
        .map(|(k, v)| json!({"path": k, "old": v, "new": b[k]}))
        .collect();
    let mut got: Vec<Value> = d["hyper_parameters"]["changed"].as_array().expect("changed").clone();
    let key = |v: &Value| v["path"].as_str().unwrap_or("").to_string();
    want.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got, want);
    let added: Vec<&String> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    let removed: Vec<&String> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    assert_eq!(
        d["hyper_parameters"]["added"].as_array().map(Vec::len),
        Some(added.len())
    );
    assert_eq!(
        d["hyper_parameters"]["removed"].as_array().map(Vec::len),
        Some(removed.len())
    );

    // The optimizer's learning rate, as torch reports it on both sides.
    let lr = |rel: &str| expected(rel)["optimizer_param_groups"][0][0]["lr"].clone();
    let lr_change = d["optimizer"]
        .as_array()
        .expect("optimizer")
        .iter()
        .find(|c| c["path"] == "0.param_groups.0.lr")
        .cloned();
    assert_eq!(
        lr_change,
        Some(
            json!({"path": "0.param_groups.0.lr", "old": lr("lightning/mlp/epoch=03.ckpt"), "new": lr("lightning/mlp-finetune/epoch=01.ckpt")})
        )
    );

    let identical: Vec<&str> = d["tensors"]["identical"]
        .as_array()
        .expect("identical")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(identical.contains(&"state_dict/encoder.weight") && identical.contains(&"state_dict/encoder.bias"));
    let changed: Vec<&str> = d["tensors"]["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    for head in ["head.2.weight", "head.2.bias", "head.4.weight", "head.4.bias"] {
        assert!(
            changed.contains(&format!("state_dict/{head}").as_str()),
            "{head} not changed"
        );
    }
    assert!(d["tensors"]["added"].as_array().is_some_and(Vec::is_empty));
    assert!(d["tensors"]["removed"].as_array().is_some_and(Vec::is_empty));
    // The expected files agree: a tensor is identical exactly when torch's sha256 is.
    let sha = |rel: &str| -> BTreeMap<String, String> {
        expected(rel)["tensors"]
            .as_array()
            .expect("tensors")
            .iter()
            .map(|t| {
                (
                    t["path"].as_str().unwrap_or("").to_string(),
                    t["sha256"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let (sa, sb) = (
        sha("lightning/mlp/epoch=03.ckpt"),
        sha("lightning/mlp-finetune/epoch=01.ckpt"),
    );
    for p in &identical {
        assert_eq!(sa.get(*p), sb.get(*p), "{p}");
    }
    for p in &changed {
        assert_ne!(sa.get(*p), sb.get(*p), "{p}");
    }

    let text = reg.ok(&["diff", "mlp@epoch=3", "mlp-finetune@epoch=1"]).stdout;
    let first_lines: Vec<&str> = text.lines().take(2).collect();
    assert!(
        first_lines[1].contains("hparams: 6 changed") && first_lines[1].contains("identical"),
        "{text}"
    );
    assert!(!text.contains("\x1b["), "no colour when not a terminal");
    let only = reg
        .ok(&["diff", "mlp@v1", "mlp-finetune", "--only", "hparams", "--json"])
        .json();
    assert!(only["tensors"]["identical"].as_array().is_some_and(Vec::is_empty));
}

// ---- --stats against an independent computation from raw bytes ----

fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1f) as i32;
    let frac = (bits & 0x3ff) as f64;
    if exp == 0 {
        sign * frac * 2f64.powi(-24)
    } else {
        sign * (1.0 + frac / 1024.0) * 2f64.powi(exp - 15)
    }
}

fn decode(dtype: &str, b: &[u8]) -> f64 {
    match dtype {
        "F32" => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        "F16" => f16_to_f64(u16::from_le_bytes([b[0], b[1]])),
        "BF16" => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64,
        "I64" => i64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as f64,
        other => panic!("dtype {other}"),
    }
}

fn elem_size(dtype: &str) -> usize {
    match dtype {
        "F32" => 4,
        "F16" | "BF16" => 2,
        "I64" => 8,
        other => panic!("dtype {other}"),
    }
}

#[test]
fn stats_match_an_independent_computation() {
    let original = std::fs::read(fixture("safetensors/zoo.safetensors")).expect("fixture");
    let n = u64::from_le_bytes(original[..8].try_into().expect("len")) as usize;
    let header: Value = serde_json::from_slice(&original[8..8 + n]).expect("header");
    let base = 8 + n;
    // Perturb some elements of f32, f16, bf16 and i64 tensors.
    let mut modified = original.clone();
    let targets = ["f32", "f16", "bf16", "i64", "tied_a"];
    for name in targets {
        let t = &header[name];
        let dtype = t["dtype"].as_str().expect("dtype");
        let [start, end] = [
            t["data_offsets"][0].as_u64().expect("o") as usize,
            t["data_offsets"][1].as_u64().expect("o") as usize,
        ];
        let size = elem_size(dtype);
        for (i, chunk) in modified[base + start..base + end].chunks_exact_mut(size).enumerate() {
            if i % 3 == 0 {
                chunk[size - 2] ^= 0x05; // a mantissa/low bits change, never NaN
            }
        }
    }
    let reg = Reg::new();
    let path = reg.work().join("zoo2.safetensors");
    std::fs::write(&path, &modified).expect("write");
    reg.push("safetensors/zoo.safetensors", "zoo");
    reg.ok(&["push", path.to_str().expect("utf8"), "--name", "zoo"]);
    let d = reg.ok(&["diff", "zoo@v1", "zoo@v2", "--stats", "--json"]).json();
    let changed = d["tensors"]["changed"].as_array().expect("changed");
    assert_eq!(changed.len(), targets.len(), "{changed:?}");
    for name in targets {
        let t = &header[name];
        let dtype = t["dtype"].as_str().expect("dtype");
        let [start, end] = [
            t["data_offsets"][0].as_u64().expect("o") as usize,
            t["data_offsets"][1].as_u64().expect("o") as usize,
        ];
        let size = elem_size(dtype);
        let (a, b) = (&original[base + start..base + end], &modified[base + start..base + end]);
        let (mut max, mut dsq, mut asq, mut diff, mut total) = (0f64, 0f64, 0f64, 0u64, 0u64);
        for (xa, xb) in a.chunks_exact(size).zip(b.chunks_exact(size)) {
            let (va, vb) = (decode(dtype, xa), decode(dtype, xb));
            total += 1;
            if xa != xb {
                diff += 1;
            }
            max = max.max((vb - va).abs());
            dsq += (vb - va).powi(2);
            asq += va * va;
        }
        let c = changed
            .iter()
            .find(|c| c["path"] == name)
            .unwrap_or_else(|| panic!("{name} not changed"));
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-30);
        assert!(
            close(c["max_abs_diff"].as_f64().expect("max"), max),
            "{name}: {c} vs {max}"
        );
        assert!(
            close(c["rel_l2"].as_f64().expect("rel"), dsq.sqrt() / asq.sqrt()),
            "{name}: {c}"
        );
        assert!(
            close(
                c["changed_fraction"].as_f64().expect("frac"),
                diff as f64 / total as f64
            ),
            "{name}: {c}"
        );
    }
    // Views: a transposed / narrowed view is compared element by element too.
    let same = reg.ok(&["diff", "zoo@v1", "zoo@v1", "--stats", "--json"]).json();
    assert!(same["tensors"]["changed"].as_array().is_some_and(Vec::is_empty));
}

#[test]
fn strided_views_are_compared_in_logical_order() {
    // zoo.pt's `transposed` and `narrow` view one storage; zoo.safetensors
    // holds them as contiguous copies with the same values: the stats must
    // see no difference even though the blobs differ.
    let reg = Reg::new();
    reg.push("torch/zoo.pt", "zoo");
    reg.push("safetensors/zoo.safetensors", "zoo-st");
    let d = reg.ok(&["diff", "zoo", "zoo-st", "--stats", "--json"]).json();
    for c in d["tensors"]["changed"].as_array().expect("changed") {
        if c["change"] == "content" && c.get("max_abs_diff").is_some() {
            assert_eq!(c["max_abs_diff"], 0.0, "{c}");
            assert_eq!(c["changed_fraction"], 0.0, "{c}");
        }
    }
    let changed: Vec<&str> = d["tensors"]["changed"]
        .as_array()
        .expect("c")
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert!(
        changed.contains(&"transposed") && changed.contains(&"narrow"),
        "{changed:?}"
    );
    assert!(d["tensors"]["removed"]
        .as_array()
        .is_some_and(|r| r.iter().any(|p| p == "c64")));
}

/// Paths of one side of the hyperparameter diff in `--json`.
fn hparam_paths(d: &Value, side: &str) -> Vec<String> {
    d["hyper_parameters"][side]
        .as_array()
        .expect("list")
        .iter()
        .map(|x| x["path"].as_str().expect("path").to_string())
        .collect()
}

#[test]
fn groups_present_on_one_side_are_compared_leaf_by_leaf() {
    // Issue 25: a group one side lacks was one opaque value
    // (`- data {"name":...}`); users compare leaves, as DVC does.
    let reg = Reg::new();
    reg.push("objects/hparams_cnn.pt", "cnn");
    reg.push("objects/hparams_gpt.pt", "gpt");
    let d = reg.ok(&["diff", "cnn", "gpt", "--only", "hparams", "--json"]).json();
    assert_eq!(
        hparam_paths(&d, "removed"),
        [
            "channels",
            "data.augment",
            "data.loader.pin",
            "data.loader.workers",
            "data.name",
            "head",
            "optim.lr",
            "optim.momentum"
        ]
    );
    assert_eq!(
        hparam_paths(&d, "added"),
        ["dataset", "dim", "head.kind", "head.size", "layers", "lr", "vocab"]
    );
    assert_eq!(
        d["hyper_parameters"]["changed"],
        json!([]),
        "seed is equal on both sides"
    );
    // Lists stay values.
    let augment = &d["hyper_parameters"]["removed"][1];
    assert_eq!(augment["value"], json!(["flip", "crop"]));
    // The other way round, the same leaves with the sides swapped.
    let back = reg.ok(&["diff", "gpt", "cnn", "--only", "hparams", "--json"]).json();
    assert_eq!(hparam_paths(&back, "added"), hparam_paths(&d, "removed"));
    // Text: one line per leaf.
    let text = reg.ok(&["diff", "cnn", "gpt", "--only", "hparams"]).stdout;
    for line in [
        "- data.name",
        "- data.augment",
        "- data.loader.workers",
        "- optim.lr",
        "- head ",
        "+ head.kind",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    assert!(!text.contains("{\"name\""), "a group shown whole:\n{text}");
}
