use crate::common::{expected, fixture_files, Reg};
use serde_json::Value;

fn tensor_fields(t: &Value, fields: &[&str]) -> Value {
    Value::Object(
        fields
            .iter()
            .filter_map(|f| t.get(*f).map(|v| (f.to_string(), v.clone())))
            .collect(),
    )
}

fn check(rel: &str, shown: &Value, exp: &Value) {
    for key in ["epoch", "global_step", "hparams_name"] {
        assert_eq!(
            shown.get(key).unwrap_or(&Value::Null),
            exp.get(key).unwrap_or(&Value::Null),
            "{rel}: {key}"
        );
    }
    assert_eq!(
        shown.get("lightning_version").unwrap_or(&Value::Null),
        exp.get("pytorch-lightning_version").unwrap_or(&Value::Null),
        "{rel}: lightning version"
    );
    assert_eq!(
        shown.get("hyper_parameters").unwrap_or(&Value::Null),
        exp.get("hyper_parameters").unwrap_or(&Value::Null),
        "{rel}: hyper_parameters"
    );
    assert_eq!(shown["size"], exp["size"], "{rel}: size");
    assert_eq!(shown["format"], exp["format"], "{rel}: format");
    if let Some(keys) = exp.get("top_keys") {
        assert_eq!(&shown["top_keys"], keys, "{rel}: top keys");
    }
    let fields: &[&str] = match exp["format"].as_str() {
        Some("torch-zip") => &[
            "path",
            "dtype",
            "shape",
            "stride",
            "storage_offset",
            "storage_key",
            "requires_grad",
            "parameter",
        ],
        Some("torch-legacy") => &[
            "path",
            "dtype",
            "shape",
            "stride",
            "storage_offset",
            "requires_grad",
            "parameter",
        ],
        _ => &["path", "dtype", "shape"],
    };
    let mut got: Vec<Value> = shown["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| tensor_fields(t, fields))
        .collect();
    let mut want: Vec<Value> = exp["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| tensor_fields(t, fields))
        .collect();
    if exp["format"] == "safetensors" {
        let by_path = |v: &Value| v["path"].as_str().unwrap_or("").to_string();
        got.sort_by_key(by_path);
        want.sort_by_key(by_path);
        assert_eq!(shown["safetensors_metadata"], exp["metadata"], "{rel}: metadata");
    }
    assert_eq!(got.len(), want.len(), "{rel}: tensor count");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "{rel}: tensor differs");
    }
    // The optimizer settings torch reports, group by group (params aside).
    if let Some(groups) = exp.get("optimizer_param_groups").and_then(Value::as_array) {
        let shown_opts = shown["optimizers"].as_array().expect("optimizers");
        assert_eq!(shown_opts.len(), groups.len(), "{rel}: optimizer count");
        for (o, gs) in shown_opts.iter().zip(groups) {
            for (g, want) in o["param_groups"]
                .as_array()
                .expect("groups")
                .iter()
                .zip(gs.as_array().expect("groups"))
            {
                for (k, v) in want.as_object().expect("group") {
                    assert_eq!(&g[k], v, "{rel}: optimizer setting {k}");
                }
            }
        }
    }
}

#[test]
fn show_agrees_with_torch_on_every_fixture() {
    let reg = Reg::new();
    for (i, rel) in fixture_files(&["lightning", "torch", "safetensors"]).iter().enumerate() {
        let name = format!("m{i}");
        reg.push(rel, &name);
        let shown = reg.ok(&["show", &name, "--json"]).json();
        check(rel, &shown, &expected(rel));
        assert_eq!(shown["name"], name.as_str());
        assert_eq!(shown["version"], 1);
        assert!(shown["id"].as_str().is_some_and(|s| s.len() == 64));
        assert!(shown["blake3"].as_str().is_some_and(|s| s.len() == 64));
    }
}

#[test]
fn lightning_metadata_is_summarised() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=02.ckpt", "mlp");
    let shown = reg.ok(&["show", "mlp", "--json"]).json();
    assert_eq!(shown["optimizers"][0]["kind"], "Adam");
    assert_eq!(shown["optimizers"][0]["params_with_state"], 4);
    assert_eq!(shown["schedulers"][0]["kind"], "StepLR");
    assert_eq!(shown["schedulers"][0]["state"]["step_size"], 1);
    assert_eq!(shown["model_checkpoint"]["mode"], "min");
    assert_eq!(shown["model_checkpoint"]["monitor"], Value::Null);
    let roles: Vec<&str> = shown["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .filter_map(|t| t["role"].as_str())
        .collect();
    assert_eq!(roles.iter().filter(|r| **r == "weight").count(), 6);
    assert_eq!(roles.iter().filter(|r| **r == "optimizer").count(), 12);
    let text = reg.ok(&["show", "mlp"]).stdout;
    assert!(
        text.contains("Adam") && text.contains("StepLR") && text.contains("epoch      2"),
        "{text}"
    );
}
