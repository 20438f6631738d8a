//! A run that diverges (issue 24): ModelCheckpoint's `current_score` goes
//! NaN, hyperparameters hold infinities, `-0.0` and subnormals. Every
//! version stays readable, every float reads back exactly, `@best` and
//! `prune --keep-best` rank the same way with NaN never best, and a
//! registry the last release wrote with a NaN score reads again.

use crate::common::{copy_dir, expected, fixture, pulls_identical, Reg};
use serde_json::Value;

/// The diverged run (tests/fixtures/tools/make_diverged.py): val_loss
/// 0.5, nan, 0.3, 0.3, 0.4.
const RUN: [&str; 5] = [
    "lightning/diverged/epoch=00.ckpt",
    "lightning/diverged/epoch=01.ckpt",
    "lightning/diverged/epoch=02.ckpt",
    "lightning/diverged/epoch=03.ckpt",
    "lightning/diverged/epoch=04.ckpt",
];

/// The note `@best` prints, e.g. `best val_loss (min) = 0.3 at v4`.
fn best_of(reg: &Reg, spec: &str) -> (u64, String) {
    let r = reg.ok(&["show", spec, "--json"]);
    let version = r.json()["version"].as_u64().expect("version");
    (version, r.stderr.trim().to_string())
}

#[test]
fn a_nan_score_is_stored_readable_and_never_best() {
    let reg = Reg::new();
    for (i, rel) in RUN.iter().enumerate() {
        let pushed = reg.push(rel, "run").json();
        assert_eq!(pushed["version"], i as u64 + 1, "{rel}");
    }
    reg.settle();
    for (i, rel) in RUN.iter().enumerate() {
        pulls_identical(&reg, &format!("run@v{}", i + 1), rel);
    }
    // The NaN version shows its score, its callback state and its
    // hyperparameters as torch reports them (expected/ is torch's view).
    let v2 = reg.ok(&["show", "run@v2", "--json"]).json();
    assert_eq!(v2["scores"]["val_loss"]["value"], "nan");
    let mc = &v2["model_checkpoint"];
    assert_eq!(
        (&mc["current_score"], &mc["best_model_score"]),
        (&"nan".into(), &Value::from(0.5))
    );
    assert_eq!(mc["state"]["kth_value"], "inf");
    let truth = expected("lightning/diverged/epoch=01.ckpt");
    assert_eq!(v2["hyper_parameters"], truth["hyper_parameters"]);
    // -0.0 and the subnormal keep their exact bits in the JSON text.
    let text = reg.ok(&["show", "run@v2", "--json"]).stdout;
    assert!(
        text.contains("\"eps\": -0.0") && text.contains("\"tiny\": 5e-324"),
        "{text}"
    );

    // v3 and v4 tie at 0.3: the newer wins, and the NaN is never best.
    let (v, note) = best_of(&reg, "run@best");
    assert_eq!(v, 4, "{note}");
    assert!(
        note.contains("best val_loss (min) = 0.30000001192092896 at v4"),
        "{note}"
    );
    assert_eq!(best_of(&reg, "run@best:val_loss").0, 4);
    // Turned around, the highest real score is best, never the NaN.
    let max = reg
        .ok(&["show", "run", "--by", "val_loss", "--mode", "max", "--json"])
        .json();
    assert_eq!(max["version"], 1);
    // prune --keep-best keeps what @best names.
    let dry = reg
        .ok(&["prune", "run", "--keep-best", "1", "--dry-run", "--json"])
        .json();
    assert_eq!(dry["kept"], serde_json::json!([4]), "{dry}");
    let dry = reg
        .ok(&["prune", "run", "--keep-best", "2", "--dry-run", "--json"])
        .json();
    assert_eq!(dry["kept"], serde_json::json!([3, 4]), "{dry}");

    // Diffs read the exact values: the NaN is a float, not the string.
    let diff = reg.ok(&["diff", "run@v1", "run@v2", "--json"]).json();
    let changed = |section: &str, path: &str| -> Option<(Value, Value)> {
        let list = diff[section]
            .as_array()
            .or_else(|| diff[section]["changed"].as_array())?;
        list.iter()
            .find(|c| c["path"] == path)
            .map(|c| (c["old"].clone(), c["new"].clone()))
    };
    assert_eq!(changed("checkpoint", "current_score"), Some((0.5.into(), "nan".into())));
    assert_eq!(
        changed("hyper_parameters", "guard.warmup"),
        Some((0.30000000000000004.into(), "nan".into()))
    );
    assert!(
        changed("hyper_parameters", "guard.clip").is_none(),
        "inf did not change: {diff}"
    );
    let text = reg.ok(&["diff", "run@v1", "run@v2", "--only", "hparams"]).stdout;
    assert!(text.contains("guard.warmup  0.30000000000000004  ->  nan"), "{text}");
    let same = reg.ok(&["diff", "run@v2", "run@v2", "--json"]).json();
    assert_eq!(same["hyper_parameters"]["changed"], serde_json::json!([]), "{same}");

    // The same bytes under another name read too; the registry is clean.
    reg.push(RUN[1], "other");
    pulls_identical(&reg, "other@v1", RUN[1]);
    reg.ok(&["verify", "--full"]);
    assert!(!reg.home().join("deltas.failed").exists());
}

#[test]
fn a_registry_the_last_release_wrote_with_a_nan_score_reads_again() {
    // Written by reg at c8e52be (before the fix): diverged@v1 (0.5),
    // diverged@v2 (NaN, stored as null), same-bytes@v1 (v2's file), and
    // the background re-encoding that failed on v2 still queued.
    let reg = Reg::new();
    copy_dir(&fixture("registry-nan-score"), &reg.home());
    assert!(reg.home().join("deltas.failed").exists());
    pulls_identical(&reg, "diverged@v1", RUN[0]);
    pulls_identical(&reg, "diverged@v2", RUN[1]);
    pulls_identical(&reg, "same-bytes@v1", RUN[1]);
    // The null the old release wrote reads as the NaN it was.
    let v2 = reg.ok(&["show", "diverged@v2", "--json"]).json();
    assert_eq!(v2["scores"]["val_loss"]["value"], "nan");
    assert_eq!(best_of(&reg, "diverged@best").0, 1);
    // The model takes new pushes; the queued work runs.
    let pushed = reg.push(RUN[2], "diverged").json();
    assert_eq!(pushed["version"], 3);
    reg.ok(&["deltas", "--queued"]);
    assert!(!reg.home().join("deltas.failed").exists(), "the retried job succeeded");
    assert_eq!(best_of(&reg, "diverged@best").0, 3);
    for (v, rel) in [
        ("diverged@v1", RUN[0]),
        ("diverged@v2", RUN[1]),
        ("diverged@v3", RUN[2]),
    ] {
        pulls_identical(&reg, v, rel);
    }
    reg.ok(&["verify", "--full"]);
    // And it rebuilds from its blobs alone.
    std::fs::remove_dir_all(reg.home().join("index")).expect("rm index");
    reg.ok(&["verify", "--rebuild-index"]);
    pulls_identical(&reg, "diverged@v2", RUN[1]);
}

#[test]
fn a_trainer_checkpoint_whose_state_python_wrote_with_nan_pushes_and_reads() {
    // transformers writes trainer_state.json with json.dumps, whose NaN
    // and Infinity tokens standard JSON lacks: a diverged run's log.
    let reg = Reg::new();
    let dir = reg.work().join("checkpoint-20");
    copy_dir(&fixture("dirs/hf-trainer/sgd/checkpoint-20"), &dir);
    let state = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&state).expect("state");
    let text = text
        .replace("\"eval_loss\": 1.098091959953308", "\"eval_loss\": NaN")
        .replace("\"grad_norm\": 0.267598032951355", "\"grad_norm\": Infinity")
        .replace("\"best_metric\": 1.0979633331298828", "\"best_metric\": -Infinity");
    assert_eq!(
        text.matches("NaN").count() + text.matches("Infinity").count(),
        3,
        "{text}"
    );
    std::fs::write(&state, &text).expect("write state");
    let pushed = reg
        .ok(&["push", dir.to_str().expect("utf8"), "--name", "trainer", "--json"])
        .json();
    assert_eq!(pushed["version"], 1);
    let shown = reg.ok(&["show", "trainer", "--json"]).json();
    assert_eq!(shown["layout"], "hf-trainer", "{shown}");
    assert_eq!(shown["scores"]["eval_loss"]["value"], "nan", "{shown}");
    assert_eq!(shown["model_checkpoint"]["best_model_score"], "-inf", "{shown}");
    let out = reg.work().join("pulled");
    reg.ok(&["pull", "trainer", "-o", out.to_str().expect("utf8")]);
    assert_eq!(
        std::fs::read(out.join("trainer_state.json")).expect("pulled state"),
        text.as_bytes()
    );
    reg.ok(&["verify", "--full"]);
}
