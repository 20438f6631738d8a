use crate::common::{fixture, Reg};
use std::process::Command;

#[test]
fn registry_toml_in_a_parent_directory_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("registry.toml"),
        "[registry]\npath = \"store\"\ndefault_name = \"mnist\"\n",
    )
    .expect("toml");
    let sub = dir.path().join("deep/er");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let out = Command::new(env!("CARGO_BIN_EXE_reg"))
        .args([
            "push",
            fixture("torch/mlp_state_dict.pt").to_str().expect("utf8"),
            "--json",
        ])
        .env_remove("REG_HOME")
        .current_dir(&sub)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["name"], "mnist");
    assert!(dir.path().join("store/index").is_dir());
    // --registry wins over registry.toml
    let other = dir.path().join("other");
    let out = Command::new(env!("CARGO_BIN_EXE_reg"))
        .args(["--registry", other.to_str().expect("utf8"), "init"])
        .env_remove("REG_HOME")
        .current_dir(&sub)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(other.join("FORMAT").is_file());
}

#[test]
fn name_defaults_to_file_stem_and_versions_count_up() {
    let reg = Reg::new();
    for f in ["lightning/mlp/epoch=00.ckpt", "lightning/mlp/epoch=01.ckpt"] {
        reg.ok(&[
            "push",
            fixture(f).to_str().expect("utf8"),
            "-n",
            "run1",
            "-m",
            "nightly",
        ]);
    }
    let r = reg
        .ok(&["push", fixture("torch/zoo.pt").to_str().expect("utf8"), "--json"])
        .json();
    assert_eq!(r["name"], "zoo");
    let ls = reg.ok(&["ls", "--json"]).json();
    assert_eq!(ls[0]["name"], "run1");
    assert_eq!(ls[0]["versions"], 2);
    assert_eq!(ls[1]["name"], "zoo");
    let log = reg.ok(&["log", "run1", "--json"]).json();
    assert_eq!(log[0]["epoch"], 0);
    assert_eq!(log[1]["epoch"], 1);
    assert_eq!(log[1]["message"], "nightly");
    assert!(reg.ok(&["log", "run1"]).stdout.contains("v2"));
}

#[test]
fn tags_and_refs() {
    let reg = Reg::new();
    for f in [
        "lightning/mlp/epoch=00.ckpt",
        "lightning/mlp/epoch=01.ckpt",
        "lightning/mlp/epoch=02.ckpt",
    ] {
        reg.push(f, "mlp");
    }
    reg.ok(&[
        "push",
        fixture("lightning/mlp/epoch=03.ckpt").to_str().expect("utf8"),
        "-n",
        "mlp",
        "-t",
        "final",
    ]);
    let version_of = |r: &str| reg.ok(&["show", r, "--json"]).json()["version"].as_u64();
    assert_eq!(version_of("mlp"), Some(4));
    assert_eq!(version_of("mlp@latest"), Some(4));
    assert_eq!(version_of("mlp@v2"), Some(2));
    assert_eq!(version_of("mlp@epoch=1"), Some(2));
    assert_eq!(version_of("mlp@step=24"), Some(3));
    assert_eq!(version_of("mlp@final"), Some(4));
    let id = reg.ok(&["show", "mlp@v3", "--json"]).json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(version_of(&format!("mlp@{}", &id[..8])), Some(3));
    reg.ok(&["tag", "mlp@v1", "baseline"]);
    assert_eq!(version_of("mlp@baseline"), Some(1));
    let clash = reg.run(&["tag", "mlp@v2", "baseline"]);
    assert_eq!(clash.code, 1);
    assert!(clash.stderr.contains("--force"), "{}", clash.stderr);
    reg.ok(&["tag", "mlp@v2", "baseline", "--force"]);
    assert_eq!(version_of("mlp@baseline"), Some(2));
    reg.ok(&["tag", "-d", "mlp@baseline"]);
    let gone = reg.run(&["show", "mlp@baseline"]);
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr.contains("final"),
        "error should list the tags: {}",
        gone.stderr
    );
    let epoch = reg.run(&["show", "mlp@epoch=9"]);
    assert!(epoch.stderr.contains("0, 1, 2, 3"), "{}", epoch.stderr);
    let name = reg.run(&["show", "mpl@v1"]);
    assert!(name.stderr.contains("mlp"), "{}", name.stderr);
    let best = reg.run(&["show", "mlp@best"]);
    assert_eq!(best.code, 1);
    assert!(best.stderr.contains("monitor"), "{}", best.stderr);
}

#[test]
fn stats_add_up_and_unique_never_exceeds_logical() {
    // Issue 25: six small versions printed `logical 505.8 KiB`, `unique
    // 611.9 KiB` (manifests counted as content).
    let reg = Reg::new();
    for rel in [
        "lightning/mlp/epoch=00.ckpt",
        "lightning/mlp/epoch=01.ckpt",
        "lightning/mlp/epoch=02.ckpt",
        "lightning/mlp/epoch=03.ckpt",
        "lightning/mlp-finetune/epoch=00.ckpt",
        "lightning/mlp-finetune/epoch=01.ckpt",
    ] {
        reg.push(rel, "m");
    }
    reg.settle();
    let check = |reg: &Reg| -> serde_json::Value {
        let s = reg.ok(&["stats", "--json"]).json();
        let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k}: {s}"));
        assert!(n("content_bytes") <= n("logical_bytes"), "{s}");
        assert_eq!(
            n("content_stored_bytes") + n("metadata_stored_bytes") + n("unreferenced_stored_bytes"),
            n("stored_bytes"),
            "{s}"
        );
        let ratio = s["dedupe_ratio"].as_f64().expect("ratio");
        assert!((ratio - n("logical_bytes") as f64 / n("content_bytes") as f64).abs() < 1e-9);
        s
    };
    let s = check(&reg);
    assert_eq!(s["unreferenced_blobs"], 0);
    let text = reg.ok(&["stats"]).stdout;
    for line in ["logical", "unique", "stored", "dedupe", "compression"] {
        assert!(text.contains(line), "{line}: {text}");
    }
    // A removed version's blobs stay until gc, and say so.
    reg.ok(&["rm", "m@v6"]);
    let s = check(&reg);
    assert!(s["unreferenced_blobs"].as_u64().expect("n") > 0, "{s}");
    reg.ok(&["gc"]);
    assert_eq!(check(&reg)["unreferenced_blobs"], 0);
}
