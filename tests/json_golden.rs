//! Every `--json` output stays what scripts were promised (issue 18,
//! point 1): a fixed series of commands on the fixtures prints exactly the
//! JSON kept in tests/fixtures/json-golden, which the reg before the
//! restructuring printed (push times and the version ids that hash them
//! are normalised). Documented additions are listed in `ADDED`.
//!
//! To write the goldens with another binary (the old release):
//! `REG_GOLDEN_BIN=/path/to/reg REG_GOLDEN_WRITE=1 cargo test --test tests json_golden`.

use crate::common::fixture;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Fields added or changed after the goldens were made, documented in
/// docs/cli.md: (command label, JSON pointer of the field). Retention's
/// `freed_bytes` now counts the replaced manifest blobs gc deletes; `show`
/// gained `scores` (it writes the manifest's CheckpointMeta whole).
const CHANGED: &[(&str, &str)] = &[
    ("gc-dry-run", "/kept_by_reason"),
    ("prune-optimizer", "/freed_bytes"),
    ("show-ft", "/scores"),
    ("show-legacy", "/scores"),
    ("show-mlp-2", "/scores"),
    ("show-st", "/scores"),
    ("show-zoo", "/scores"),
];

/// Byte counts that include manifest blobs, whose compressed size moves
/// with the push time they record (zstd of the JSON: up to a few dozen
/// bytes; 17 seen for a `--parent` push, whose manifest holds the time
/// twice).
const TIME_SIZED: &[&str] = &["written_bytes", "stored_bytes", "freed_bytes", "metadata_stored_bytes"];

/// How far a [`TIME_SIZED`] number may move between runs.
const TIME_SIZED_SLACK: i64 = 64;

/// Equal, except that [`TIME_SIZED`] numbers (and the byte totals per
/// codec in `stats`) may differ by a few bytes per manifest.
fn same(got: &Value, want: &Value, key: &str) -> bool {
    match (got, want) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w, k)))
        }
        (Value::Array(a), Value::Array(b)) => {
            let sized = key == "codecs-entry";
            a.len() == b.len()
                && a.iter().zip(b).enumerate().all(|(i, (x, y))| {
                    let k = if sized && i == 1 { "stored_bytes" } else { key };
                    same(x, y, k)
                })
        }
        (Value::Number(a), Value::Number(b)) if TIME_SIZED.contains(&key) => {
            let (a, b) = (a.as_i64().unwrap_or(0), b.as_i64().unwrap_or(0));
            (a - b).abs() <= TIME_SIZED_SLACK
        }
        _ => got == want,
    }
}

/// Mark the per-codec `[count, bytes]` pairs of `stats` for [`same`].
fn codec_pairs(v: &mut Value) {
    if let Some(Value::Object(codecs)) = v.get_mut("codecs") {
        let pairs = std::mem::take(codecs);
        let marked: serde_json::Map<String, Value> = pairs
            .into_iter()
            .map(|(k, v)| (k, serde_json::json!({ "codecs-entry": v })))
            .collect();
        *codecs = marked;
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/json-golden")
}

struct Session {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Session {
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = Command::new(&self.bin)
            .args(args)
            .env_remove("REG_HOME")
            .current_dir(self.work())
            .output()
            .expect("run reg");
        assert!(
            out.status.success(),
            "reg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("reg {args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }
}

/// The series: (label, arguments). Fixture paths are `@rel`.
fn series() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        (
            "push-mlp-0",
            vec!["push", "@lightning/mlp/epoch=00.ckpt", "--name", "mlp", "--json"],
        ),
        (
            "push-mlp-1",
            vec!["push", "@lightning/mlp/epoch=01.ckpt", "--name", "mlp", "--json"],
        ),
        (
            "push-mlp-2-3",
            vec![
                "push",
                "@lightning/mlp/epoch=02.ckpt",
                "@lightning/mlp/epoch=03.ckpt",
                "--name",
                "mlp",
                "--json",
            ],
        ),
        (
            "push-mlp-last",
            vec!["push", "@lightning/mlp/last.ckpt", "--name", "mlp", "--json"],
        ),
        (
            "push-finetune",
            vec![
                "push",
                "@lightning/mlp-finetune/epoch=00.ckpt",
                "--name",
                "ft",
                "--parent",
                "mlp@epoch=3",
                "--json",
            ],
        ),
        (
            "push-zoo",
            vec!["push", "@torch/zoo.pt", "--name", "zoo", "-t", "all", "--json"],
        ),
        (
            "push-st",
            vec!["push", "@safetensors/mlp.safetensors", "--name", "st", "--json"],
        ),
        (
            "push-legacy",
            vec!["push", "@torch/legacy.pt", "--name", "legacy", "--json"],
        ),
        ("deltas", vec!["deltas", "mlp", "--json"]),
        ("log-mlp", vec!["log", "mlp", "--json"]),
        ("ls", vec!["ls", "--json"]),
        ("show-mlp-2", vec!["show", "mlp@v2", "--json"]),
        ("show-ft", vec!["show", "ft", "--json"]),
        ("show-zoo", vec!["show", "zoo@all", "--json"]),
        ("show-st", vec!["show", "st", "--json"]),
        ("show-legacy", vec!["show", "legacy", "--json"]),
        ("stats", vec!["stats", "--json"]),
        ("diff", vec!["diff", "mlp@v1", "mlp@v4", "--json"]),
        ("diff-stats", vec!["diff", "mlp@v1", "mlp@v4", "--stats", "--json"]),
        ("diff-ft", vec!["diff", "mlp@v4", "ft", "--only", "hparams", "--json"]),
        ("pull", vec!["pull", "mlp@v1", "-o", "v1.ckpt", "--json"]),
        (
            "pull-st",
            vec!["pull", "mlp@v2", "--format", "safetensors", "-o", "v2.st", "--json"],
        ),
        ("verify", vec!["verify", "--json"]),
        ("verify-full", vec!["verify", "--full", "--json"]),
        (
            "prune-dry-run",
            vec!["prune", "mlp", "--keep-last", "2", "--dry-run", "--json"],
        ),
        (
            "prune-optimizer",
            vec!["prune", "mlp", "--keep-optimizer-last", "2", "--json"],
        ),
        ("gc-dry-run", vec!["gc", "--dry-run", "--json"]),
        ("gc", vec!["gc", "--json"]),
        ("log-mlp-after", vec!["log", "mlp", "--json"]),
    ]
}

/// Replace what depends on the clock or the scratch folder.
fn normalise(v: &mut Value, ids: &BTreeMap<String, String>, scratch: &str) {
    let fixtures = fixture("").to_string_lossy().into_owned();
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if matches!(k.as_str(), "created" | "when") && val.is_number() {
                    *val = Value::from(0);
                } else {
                    normalise(val, ids, scratch);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| normalise(i, ids, scratch)),
        Value::String(s) => {
            if let Some(label) = ids.get(s.as_str()) {
                *s = label.clone();
            } else if s.contains(scratch) {
                *s = s.replace(scratch, "<scratch>");
            } else if let Some(rel) = s.strip_prefix(&fixtures) {
                *s = format!("<fixtures>{rel}");
            }
        }
        _ => {}
    }
}

#[test]
fn json_golden_every_json_output_is_unchanged() {
    let bin = std::env::var_os("REG_GOLDEN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_reg")));
    let s = Session {
        dir: tempfile::tempdir().expect("tempdir"),
        bin,
    };
    std::fs::create_dir_all(s.work()).expect("work");
    // Inline deltas: what a push re-encodes is part of its output, and
    // does not depend on when a background job runs.
    std::fs::write(
        s.work().join("registry.toml"),
        "[registry]\npath = \"../registry\"\ndeltas = \"inline\"\n",
    )
    .expect("registry.toml");
    let mut outputs: Vec<(&str, Value)> = Vec::new();
    for (label, args) in series() {
        let args: Vec<String> = args
            .iter()
            .map(|a| match a.strip_prefix('@') {
                Some(rel) => fixture(rel).to_string_lossy().into_owned(),
                None => a.to_string(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        outputs.push((label, s.json(&args)));
    }
    // Version ids hash the push time: name them by name and number. The
    // replaced ids of retention are named by their place in the log.
    let mut ids = BTreeMap::new();
    for (label, out) in &outputs {
        if label.starts_with("log-") {
            for e in out.as_array().into_iter().flatten() {
                if let (Some(id), Some(n)) = (e["id"].as_str(), e["version"].as_u64()) {
                    ids.insert(id.to_string(), format!("<version v{n} {label}>"));
                }
            }
        }
    }
    for name in ["ft", "zoo", "st", "legacy"] {
        for e in s.json(&["log", name, "--json"]).as_array().into_iter().flatten() {
            if let (Some(id), Some(n)) = (e["id"].as_str(), e["version"].as_u64()) {
                ids.insert(id.to_string(), format!("<version {name}@v{n}>"));
            }
        }
    }
    let scratch = s.dir.path().to_string_lossy().into_owned();
    let write = std::env::var_os("REG_GOLDEN_WRITE").is_some();
    let mut diffs = Vec::new();
    for (label, mut out) in outputs {
        normalise(&mut out, &ids, &scratch);
        let path = golden_dir().join(format!("{label}.json"));
        if write {
            std::fs::create_dir_all(golden_dir()).expect("golden dir");
            let text = serde_json::to_string_pretty(&out).expect("encode") + "\n";
            std::fs::write(&path, text).expect("write golden");
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut want: Value = serde_json::from_str(&text).expect("golden JSON");
        for (l, pointer) in CHANGED {
            if *l == label {
                let (parent, key) = pointer.rsplit_once('/').expect("pointer");
                for v in [&mut out, &mut want] {
                    if let Some(Value::Object(m)) = v.pointer_mut(parent) {
                        m.remove(key);
                    }
                }
            }
        }
        codec_pairs(&mut out);
        codec_pairs(&mut want);
        if !same(&out, &want, "") {
            diffs.push(format!(
                "{label}: got\n{}\nwant\n{}",
                serde_json::to_string_pretty(&out).unwrap_or_default(),
                text
            ));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n\n"));
}
