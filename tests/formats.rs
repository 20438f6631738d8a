use crate::common::{expected, fixture, fixture_files, pulls_identical, Reg};
use serde_json::Value;

#[test]
fn best_refs_follow_the_monitored_score() {
    let reg = Reg::new();
    for rel in fixture_files(&["lightning/monitored"]) {
        reg.push(&rel, "mon");
    }
    let truth = expected("lightning/monitored/scores");
    let scores: Vec<(String, f64)> = truth["scores"]
        .as_object()
        .expect("scores")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().expect("score")))
        .collect();
    let epoch_of = |file: &str| file[6..8].parse::<u64>().expect("epoch");
    let best_min = scores.iter().min_by(|a, b| a.1.total_cmp(&b.1)).expect("min");
    let best_max = scores.iter().max_by(|a, b| a.1.total_cmp(&b.1)).expect("max");
    let epoch = |args: &[&str]| reg.ok(args).json()["epoch"].as_u64();
    assert_eq!(epoch(&["show", "mon@best", "--json"]), Some(epoch_of(&best_min.0)));
    assert_eq!(
        epoch(&["show", "mon@best:val_loss", "--json"]),
        Some(epoch_of(&best_min.0))
    );
    assert_eq!(
        epoch(&["show", "mon", "--by", "val_loss", "--mode", "max", "--json"]),
        Some(epoch_of(&best_max.0))
    );
    // Each version carries its own score, as Lightning reported it.
    for (file, score) in &scores {
        let shown = reg
            .ok(&["show", &format!("mon@epoch={}", epoch_of(file)), "--json"])
            .json();
        let got = shown["model_checkpoint"]["current_score"]
            .as_f64()
            .expect("current_score");
        assert!((got - score).abs() < 1e-6, "{file}: {got} vs {score}");
        assert_eq!(shown["model_checkpoint"]["monitor"], "val_loss");
        assert_eq!(shown["model_checkpoint"]["mode"], "min");
    }
    let r = reg.run(&["show", "mon@best:train_loss"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("val_loss"), "{}", r.stderr);
    let note = reg.ok(&["pull", "mon@best", "-o", "best.ckpt"]).stderr;
    assert!(note.contains("val_loss"), "{note}");
}

#[test]
fn the_same_weights_as_pt_and_safetensors_are_stored_once() {
    let reg = Reg::new();
    reg.push("torch/mlp_state_dict.pt", "pt");
    let before = reg.ok(&["stats", "--json"]).json();
    let r = reg.push("safetensors/mlp.safetensors", "st").json();
    assert_eq!(r["new_payloads"], 0, "{r}");
    assert_eq!(r["new_raw_bytes"], 0);
    let after = reg.ok(&["stats", "--json"]).json();
    // Only the new skeleton (the JSON header) and manifest are new blobs.
    assert_eq!(after["blobs"].as_u64(), before["blobs"].as_u64().map(|b| b + 2));
    // And legacy.pt holds the same tensors again.
    let legacy = reg.push("torch/legacy.pt", "legacy").json();
    assert_eq!(legacy["new_payloads"], 0, "{legacy}");
}

#[test]
fn unknown_formats_are_refused_naming_the_formats_reg_reads() {
    let reg = Reg::new();
    let path = reg.work().join("notes.txt");
    std::fs::write(&path, "just some text, not a checkpoint\n").expect("write");
    let r = reg.run(&["push", path.to_str().expect("utf8")]);
    assert_eq!(r.code, 1);
    for name in ["torch zip", "legacy", "safetensors"] {
        assert!(r.stderr.contains(name), "{}", r.stderr);
    }
}

#[test]
fn a_pickled_whole_module_is_accepted_with_a_warning_and_refused_when_strict() {
    let reg = Reg::new();
    let file = fixture("objects/whole_module.pt");
    let r = reg.ok(&["push", file.to_str().expect("utf8"), "-n", "whole"]);
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("__main__.Net"),
        "{}",
        r.stderr
    );
    let shown = reg.ok(&["show", "whole", "--json"]).json();
    let verdict = |g: &str| {
        shown["globals"]
            .as_array()
            .expect("globals")
            .iter()
            .find(|x| x["global"] == g)
            .map(|x| x["verdict"].clone())
    };
    assert_eq!(verdict("__main__.Net"), Some(Value::from("unknown")));
    assert_eq!(verdict("torch._utils._rebuild_parameter"), Some(Value::from("safe")));
    // Its parameters are listed under the module's attributes.
    let paths: Vec<&str> = shown["tensors"]
        .as_array()
        .expect("t")
        .iter()
        .filter_map(|t| t["path"].as_str())
        .collect();
    assert!(paths.iter().any(|p| p.ends_with("weight")), "{paths:?}");
    let pulled = reg.ok(&["pull", "whole", "-o", "w.pt"]);
    assert!(
        pulled.stderr.contains("__main__.Net"),
        "pull must warn: {}",
        pulled.stderr
    );
    assert_eq!(std::fs::read(reg.work().join("w.pt")).ok(), std::fs::read(&file).ok());

    std::fs::write(
        reg.work().join("registry.toml"),
        format!(
            "[registry]\npath = {:?}\npickle_policy = \"strict\"\n",
            reg.dir.path().join("strict")
        ),
    )
    .expect("toml");
    let out = reg.run_with_toml(&["push", file.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("__main__.Net") && err.contains("strict"), "{err}");
}

#[test]
fn files_saved_without_crc32_are_accepted() {
    // torch.utils.serialization.config.save.compute_crc32 = False writes CRC 0.
    let reg = Reg::new();
    let file = fixture("objects/no_crc32.pt");
    reg.ok(&["push", file.to_str().expect("utf8"), "-n", "nocrc"]);
    reg.ok(&["pull", "nocrc", "-o", "back.pt"]);
    assert_eq!(
        std::fs::read(reg.work().join("back.pt")).ok(),
        std::fs::read(&file).ok()
    );
    let shown = reg.ok(&["show", "nocrc", "--json"]).json();
    assert_eq!(shown["tensors"].as_array().map(Vec::len), Some(2));
}

#[test]
fn sparse_tensors_are_listed_by_their_parts_and_never_dropped_silently() {
    let reg = Reg::new();
    reg.push("objects/sparse.pt", "sp");
    let shown = reg.ok(&["show", "sp", "--json"]).json();
    let paths: Vec<&str> = shown["tensors"]
        .as_array()
        .expect("t")
        .iter()
        .filter_map(|t| t["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"sp/indices") && paths.contains(&"sp/values"),
        "{paths:?}"
    );
    // A weights-only file cannot hold it yet: a clear error, not a lossy file.
    let r = reg.run(&["pull", "sp", "--weights-only", "-o", "w.pt"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("sparse"), "{}", r.stderr);
    assert!(!reg.work().join("w.pt").exists());
    // Nor can safetensors (the official writer refuses them too): its parts
    // are not written as if they were tensors of their own.
    export_refused(&reg, "sp", "sp", "sparse_coo tensor");
}

#[test]
fn hyperparameters_of_many_python_types_become_plain_json() {
    let reg = Reg::new();
    reg.push("objects/hparam_types.pt", "hp");
    let h = reg.ok(&["show", "hp", "--json"]).json()["hyper_parameters"].clone();
    assert_eq!(h["path"], "/data/set/x.csv");
    assert_eq!(h["f"], 0.5);
    assert_eq!(h["i"], -7);
    assert_eq!(h["h"], 1.5);
    assert_eq!(h["b"], true);
    assert_eq!(h["raw"], "<3 bytes>");
}

/// Tensors of `reg show --json` by path.
fn shown_tensors(shown: &Value) -> std::collections::BTreeMap<String, Value> {
    shown["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| (t["path"].as_str().expect("path").to_string(), t.clone()))
        .collect()
}

/// Every tensor torch reports (expected/objects/STEM.json) is shown with
/// its dtype, shape, stride, offset and flags.
fn shows_what_torch_reports(shown: &Value, stem: &str) {
    let truth = expected(&format!("objects/{stem}"));
    let got = shown_tensors(shown);
    let want = truth["tensors"].as_array().expect("tensors");
    assert_eq!(got.len(), want.len(), "{got:?}");
    for t in want {
        let path = t["path"].as_str().expect("path");
        let g = got
            .get(path)
            .unwrap_or_else(|| panic!("{stem}: {path} not shown: {got:?}"));
        for field in [
            "dtype",
            "shape",
            "stride",
            "storage_offset",
            "requires_grad",
            "parameter",
        ] {
            assert_eq!(g[field], t[field], "{stem}: {path}.{field}");
        }
        let meta = t["device"] == "meta";
        assert_eq!(g["meta"].as_bool().unwrap_or(false), meta, "{stem}: {path}: {g}");
        // A meta tensor has no storage, so no blob.
        assert_eq!(g.get("blob").is_none(), meta, "{stem}: {path}: {g}");
    }
}

/// The export is refused in one line naming `tensor`, exit 1, no file left.
fn export_refused(reg: &Reg, version: &str, tensor: &str, why: &str) {
    let r = reg.run(&["pull", version, "--format", "safetensors", "-o", "x.safetensors"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "one line: {}", r.stderr);
    assert!(
        r.stderr.contains(&format!("tensor {tensor}:")) && r.stderr.contains(why),
        "{}",
        r.stderr
    );
    let left: Vec<_> = std::fs::read_dir(reg.work())
        .expect("work")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn meta_tensors_are_pushed_shown_and_pulled_byte_exact() {
    let reg = Reg::new();
    let pushed = reg.push("objects/meta.pt", "meta").json();
    assert_eq!(pushed["tensors"], 4, "{pushed}");
    let shown = reg.ok(&["show", "meta", "--json"]).json();
    shows_what_torch_reports(&shown, "meta");
    // Only the real tensor has a storage.
    assert_eq!(shown["storages"], 1, "{shown}");
    let text = reg.ok(&["show", "meta"]).stdout;
    assert!(
        text.lines()
            .any(|l| l.contains("mt") && l.contains("[6, 4]") && l.contains("meta (no storage)")),
        "{text}"
    );
    pulls_identical(&reg, "meta", "objects/meta.pt");
    std::fs::remove_file(reg.work().join("pulled-meta")).expect("rm");
    export_refused(&reg, "meta", "m", "meta tensor");
    // A weights-only file keeps them as meta tensors (torch's own form,
    // which torch.load(weights_only=True) reads: tests/sweep), and reg
    // reads its own export back the same.
    reg.ok(&["pull", "meta", "--weights-only", "-o", "w.pt"]);
    let w = reg.work().join("w.pt");
    reg.ok(&["push", w.to_str().expect("utf8"), "-n", "meta-wo"]);
    let again = reg.ok(&["show", "meta-wo", "--json"]).json();
    let (a, b) = (shown_tensors(&shown), shown_tensors(&again));
    for (path, t) in &a {
        for field in ["dtype", "shape", "stride", "requires_grad", "meta"] {
            assert_eq!(b[path].get(field), t.get(field), "{path}.{field}");
        }
    }
}

#[test]
fn bcomplex32_tensors_are_pushed_shown_and_pulled_byte_exact() {
    let reg = Reg::new();
    reg.push("objects/bcomplex32.pt", "bc");
    let shown = reg.ok(&["show", "bc", "--json"]).json();
    shows_what_torch_reports(&shown, "bcomplex32");
    pulls_identical(&reg, "bc", "objects/bcomplex32.pt");
    std::fs::remove_file(reg.work().join("pulled-bc")).expect("rm");
    export_refused(&reg, "bc", "z", "dtype bcomplex32 cannot be written to safetensors");
    reg.ok(&["pull", "bc", "--weights-only", "-o", "w.pt"]);
    let w = reg.work().join("w.pt");
    reg.ok(&["push", w.to_str().expect("utf8"), "-n", "bc-wo"]);
    let again = shown_tensors(&reg.ok(&["show", "bc-wo", "--json"]).json());
    assert_eq!(again["zt"]["dtype"], "bcomplex32");
    assert_eq!(again["zt"]["stride"], serde_json::json!([1, 3]));
}

#[test]
fn numpy_arrays_and_complex_numbers_in_hparams_are_shown_as_python_reports_them() {
    let reg = Reg::new();
    reg.push("objects/numpy_values.pt", "np");
    let shown = reg.ok(&["show", "np", "--json"]).json();
    let h = &shown["hyper_parameters"];
    let truth = expected("objects/numpy_values");
    for (key, want) in truth["hyper_parameters"].as_object().expect("hparams") {
        assert_eq!(&h[key], want, "{key}: {h}");
    }
    // A large array is data, not a setting: it keeps the object form.
    assert_eq!(h["big"]["__class__"], "numpy._core.multiarray._reconstruct", "{h}");
}
