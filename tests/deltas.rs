use crate::common::{copy_dir, fixture, fixture_files, pulls_identical, Reg};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The blob file of `id` (64 hex digits) in a registry (docs/format.md).
fn blob_path(home: &Path, id: &str) -> PathBuf {
    home.join("blobs").join(&id[..2]).join(&id[2..])
}

/// Codec tag and parent of a blob file, read from its header.
fn header(home: &Path, id: &str) -> (u8, Option<String>) {
    let bytes = std::fs::read(blob_path(home, id)).expect("blob file");
    let parent = (bytes[5] == 3).then(|| bytes[16..48].iter().map(|b| format!("{b:02x}")).collect());
    (bytes[5], parent)
}

/// The number of links from a blob to the self-contained blob its chain
/// ends in.
fn chain_len(home: &Path, id: &str) -> usize {
    let mut n = 0;
    let mut at = id.to_string();
    while let (_, Some(p)) = header(home, &at) {
        n += 1;
        at = p;
        assert!(n < 100, "cyclic chain");
    }
    n
}

/// The blob id of a tensor of a version.
fn tensor_blob(reg: &Reg, version: &str, path: &str) -> String {
    let shown = reg.ok(&["show", version, "--json"]).json();
    shown["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .find(|t| t["path"] == path)
        .and_then(|t| t["blob"].as_str())
        .unwrap_or_else(|| panic!("{version} has no tensor {path}"))
        .to_string()
}

fn push_run(reg: &Reg) -> Vec<String> {
    let files = fixture_files(&["lightning/mlp"]);
    let files: Vec<String> = files.into_iter().filter(|f| !f.ends_with("last.ckpt")).collect();
    for rel in &files {
        reg.push(rel, "mlp");
    }
    // The re-encodings run in the background: let them finish.
    reg.settle();
    files
}

fn stored(reg: &Reg) -> Value {
    reg.ok(&["stats", "--json"]).json()
}

const HEAD: &str = "state_dict/head.2.weight";

#[test]
fn a_run_keeps_older_versions_as_deltas_against_newer_ones() {
    let reg = Reg::new();
    let files = push_run(&reg);
    let home = reg.home();
    // The newest version is self-contained; each older head.weight is a
    // delta against the next version's.
    let blobs: Vec<String> = (1..=4).map(|v| tensor_blob(&reg, &format!("mlp@v{v}"), HEAD)).collect();
    assert_eq!(
        header(&home, &blobs[3]).1,
        None,
        "newest version must be self-contained"
    );
    for v in 0..3 {
        assert_eq!(header(&home, &blobs[v]), (3, Some(blobs[v + 1].clone())), "v{}", v + 1);
    }
    assert_eq!(chain_len(&home, &blobs[0]), 3);
    // show says so.
    let v1 = reg.ok(&["show", "mlp@v1", "--json"]).json();
    assert!(v1["stored"]["deltas"].as_u64() >= Some(1), "{}", v1["stored"]);
    assert_eq!(v1["stored"]["longest_chain"], 3);
    let v4 = reg.ok(&["show", "mlp@v4", "--json"]).json();
    assert_eq!(v4["stored"]["deltas"], 0);
    assert!(reg
        .ok(&["show", "mlp@v1"])
        .stdout
        .contains("as deltas (longest chain 3 links)"));
    for (v, rel) in files.iter().enumerate() {
        pulls_identical(&reg, &format!("mlp@v{}", v + 1), rel);
    }
    reg.ok(&["verify", "--full"]);
    let stats = stored(&reg);
    assert!(stats["codecs"]["delta"][0].as_u64() >= Some(3), "{}", stats["codecs"]);

    // The same run without deltas takes more space.
    let plain = Reg::new();
    std::fs::write(plain.work().join("registry.toml"), "[registry]\nmax_delta_chain = 0\n").expect("toml");
    push_run(&plain);
    let without = stored(&plain);
    assert!(without["codecs"].get("delta").is_none(), "{}", without["codecs"]);
    assert!(
        stats["stored_bytes"].as_u64() < without["stored_bytes"].as_u64(),
        "deltas {} vs none {}",
        stats["stored_bytes"],
        without["stored_bytes"]
    );
}

#[test]
fn chains_are_bounded_by_max_delta_chain() {
    let reg = Reg::new();
    std::fs::write(reg.work().join("registry.toml"), "[registry]\nmax_delta_chain = 1\n").expect("toml");
    let files = push_run(&reg);
    let home = reg.home();
    let blobs: Vec<String> = (1..=4).map(|v| tensor_blob(&reg, &format!("mlp@v{v}"), HEAD)).collect();
    let lens: Vec<usize> = blobs.iter().map(|b| chain_len(&home, b)).collect();
    // v1 -> v2 (one link); v2 cannot also become a delta (v1 would need
    // two links), so it stays whole and v3 -> v4 starts a new chain.
    assert_eq!(lens, vec![1, 0, 1, 0]);
    for (v, rel) in files.iter().enumerate() {
        pulls_identical(&reg, &format!("mlp@v{}", v + 1), rel);
    }
}

#[test]
fn removing_the_parent_version_and_gc_keep_every_chain_whole() {
    let reg = Reg::new();
    let files = push_run(&reg);
    let home = reg.home();
    let v4 = tensor_blob(&reg, "mlp@v4", HEAD);
    // v4 is the parent of v3's delta: removing it must not break v3.
    reg.ok(&["rm", "mlp@v4"]);
    let dry = reg.ok(&["gc", "--dry-run", "--json"]).json();
    assert!(dry["reencoded_blobs"].as_u64() >= Some(1), "{dry}");
    assert!(blob_path(&home, &v4).exists(), "dry run deleted a blob");
    let gc = reg.ok(&["gc", "--json"]).json();
    assert!(gc["reencoded_blobs"].as_u64() >= Some(1), "{gc}");
    assert!(!blob_path(&home, &v4).exists(), "the parent no version needs was kept");
    let v3 = tensor_blob(&reg, "mlp@v3", HEAD);
    assert_eq!(header(&home, &v3).1, None, "v3 must be self-contained now");
    for (v, rel) in files.iter().enumerate().take(3) {
        pulls_identical(&reg, &format!("mlp@v{}", v + 1), rel);
    }
    reg.ok(&["verify", "--full"]);

    // A version in the middle of a chain: v1 -> v2 -> v3.
    reg.ok(&["rm", "mlp@v2"]);
    reg.ok(&["gc"]);
    pulls_identical(&reg, "mlp@v1", &files[0]);
    pulls_identical(&reg, "mlp@v3", &files[2]);
    reg.ok(&["verify", "--full"]);
    // Nothing left that no version needs.
    let again = reg.ok(&["gc", "--json"]).json();
    assert_eq!(again["removed_blobs"], 0, "{again}");
    assert_eq!(again["reencoded_blobs"], 0, "{again}");
}

#[test]
fn a_fine_tune_is_stored_against_its_base_with_parent() {
    let reg = Reg::new();
    push_run(&reg);
    let ft = "lightning/mlp-finetune/epoch=00.ckpt";
    let path = fixture(ft);
    let r = reg
        .ok(&[
            "push",
            path.to_str().expect("utf8"),
            "-n",
            "ft",
            "--parent",
            "mlp@v4",
            "--json",
        ])
        .json();
    assert!(r["deltas"].as_u64() >= Some(1), "{r}");
    let head = tensor_blob(&reg, "ft@v1", HEAD);
    assert_eq!(header(&reg.home(), &head).1, Some(tensor_blob(&reg, "mlp@v4", HEAD)));
    pulls_identical(&reg, "ft@v1", ft);
    // The base goes away: the fine-tune still pulls.
    for v in 1..=4 {
        reg.ok(&["rm", &format!("mlp@v{v}")]);
    }
    reg.ok(&["gc"]);
    pulls_identical(&reg, "ft@v1", ft);
    reg.ok(&["verify", "--full"]);
}

#[test]
fn a_bad_parent_ref_is_refused_and_changes_nothing() {
    let reg = Reg::new();
    push_run(&reg);
    let before = stored(&reg);
    let path = fixture("lightning/mlp-finetune/epoch=00.ckpt");
    for bad in ["nosuch@v1", "mlp@v9", "mlp@@"] {
        let r = reg.run(&["push", path.to_str().expect("utf8"), "-n", "ft", "--parent", bad]);
        assert_eq!(r.code, 1, "{bad}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{bad}: {}", r.stderr);
        assert_eq!(stored(&reg), before, "{bad} changed the registry");
    }
}

#[test]
fn a_damaged_parent_fails_the_delta_version_and_verify_names_both() {
    let reg = Reg::new();
    push_run(&reg);
    let home = reg.home();
    let v2 = tensor_blob(&reg, "mlp@v2", HEAD);
    let path = blob_path(&home, &v2);
    let mut bytes = std::fs::read(&path).expect("blob");
    let at = bytes.len() - 100;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    // v1 is a delta against v2's blob: both are damaged, v3 and v4 are not.
    for v in ["mlp@v1", "mlp@v2"] {
        let r = reg.run(&["pull", v, "-o", "x.ckpt", "--force"]);
        assert_eq!(r.code, 2, "{v}: {}", r.stderr);
        assert!(r.stderr.contains(v), "{}", r.stderr);
        assert!(!reg.work().join("x.ckpt").exists());
    }
    reg.ok(&["pull", "mlp@v3", "-o", "v3.ckpt"]);
    let r = reg.run(&["verify", "--full", "--json"]);
    assert_eq!(r.code, 2);
    let damaged: Vec<String> = r.json()["damaged_versions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|d| d["version"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(damaged, vec!["mlp@v1", "mlp@v2"]);

    // The parent file gone: the quick verify finds it from headers alone.
    std::fs::remove_file(&path).expect("rm");
    let r = reg.run(&["verify", "--json"]);
    assert_eq!(r.code, 2);
    let text = r.stdout;
    assert!(text.contains("mlp@v1") && text.contains("mlp@v2"), "{text}");
    assert!(text.contains("which is missing"), "{text}");
}

#[test]
fn a_format_1_registry_opens_pulls_and_takes_deltas() {
    let reg = Reg::new();
    copy_dir(&fixture("registry-format1"), &reg.home());
    let marker = || std::fs::read_to_string(reg.home().join("FORMAT")).expect("FORMAT");
    assert!(marker().starts_with("reg registry format 1"));
    let ls = reg.ok(&["ls", "--json"]).json();
    assert_eq!(ls.as_array().map(Vec::len), Some(3), "{ls}");
    assert!(
        marker().starts_with("reg registry format 2"),
        "not upgraded: {}",
        marker()
    );
    for (v, rel) in [
        ("mlp@v1", "lightning/mlp/epoch=00.ckpt"),
        ("mlp@v2", "lightning/mlp/epoch=01.ckpt"),
        ("ft@base", "lightning/mlp-finetune/epoch=00.ckpt"),
        ("zoo@v1", "torch/zoo.pt"),
    ] {
        pulls_identical(&reg, v, rel);
    }
    // New versions go in as deltas; old and new pull back.
    reg.push("lightning/mlp/epoch=02.ckpt", "mlp");
    reg.settle();
    let home = reg.home();
    let v2 = tensor_blob(&reg, "mlp@v2", HEAD);
    assert_eq!(header(&home, &v2).0, 3, "v2 should now be a delta against v3");
    pulls_identical(&reg, "mlp@v2", "lightning/mlp/epoch=01.ckpt");
    pulls_identical(&reg, "mlp@v3", "lightning/mlp/epoch=02.ckpt");
    reg.ok(&["verify", "--full"]);
}

#[test]
fn a_rebuilt_index_keeps_the_chains() {
    let reg = Reg::new();
    let files = push_run(&reg);
    reg.settle();
    std::fs::remove_dir_all(reg.home().join("index")).expect("rm index");
    reg.ok(&["verify", "--rebuild-index"]);
    // gc after a rebuild must not drop a parent the rebuilt index forgot.
    reg.ok(&["gc"]);
    for (v, rel) in files.iter().enumerate() {
        pulls_identical(&reg, &format!("mlp@v{}", v + 1), rel);
    }
    reg.ok(&["verify", "--full"]);
}

#[test]
fn delta_encoding_killed_at_random_moments_never_damages_a_version() {
    let reg = Reg::new();
    let toml = reg.work().join("registry.toml");
    std::fs::write(&toml, "[registry]\ndeltas = \"off\"\n").expect("toml");
    let files = push_run(&reg);
    reg.push("lightning/mlp-finetune/epoch=00.ckpt", "mlp");
    reg.push("lightning/mlp-finetune/epoch=01.ckpt", "mlp");
    let before = stored(&reg);
    assert!(before["codecs"].get("delta").is_none(), "{}", before["codecs"]);
    std::fs::write(&toml, "[registry]\ndeltas = \"inline\"\n").expect("toml");
    let mut seed = 0x51_7CC1_B727_220Au64;
    for round in 0..12 {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_reg"));
        c.env("REG_HOME", reg.home())
            .current_dir(reg.work())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.args(["deltas", "mlp"]).spawn().expect("spawn");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_micros(seed % 60_000));
        let _ = child.kill();
        let _ = child.wait();
        let v = reg.run(&["verify", "--full"]);
        assert_eq!(v.code, 0, "round {round}: {}{}", v.stdout, v.stderr);
    }
    reg.ok(&["deltas", "mlp"]);
    for (v, rel) in files.iter().enumerate() {
        pulls_identical(&reg, &format!("mlp@v{}", v + 1), rel);
    }
    pulls_identical(&reg, "mlp@v5", "lightning/mlp-finetune/epoch=00.ckpt");
    let after = stored(&reg);
    assert!(after["codecs"]["delta"][0].as_u64() >= Some(3), "{}", after["codecs"]);
    reg.ok(&["gc"]);
    reg.ok(&["verify", "--full"]);
}

#[test]
fn fast_durability_and_inline_deltas_store_the_same_run() {
    let fast = Reg::new();
    std::fs::write(
        fast.work().join("registry.toml"),
        "[registry]\ndurability = \"fast\"\ndeltas = \"inline\"\n",
    )
    .expect("toml");
    let files = push_run(&fast);
    let r = fast.ok(&["stats", "--json"]).json();
    let default = Reg::new();
    push_run(&default);
    let d = default.ok(&["stats", "--json"]).json();
    // The same payload blobs, encoded the same way, whenever the deltas
    // are made (manifests hold push times, so zstd blobs may differ by a
    // byte).
    for codec in ["delta", "planes", "raw"] {
        assert_eq!(r["codecs"][codec], d["codecs"][codec], "{codec}");
    }
    for (v, rel) in files.iter().enumerate() {
        pulls_identical(&fast, &format!("mlp@v{}", v + 1), rel);
    }
    fast.ok(&["verify", "--full"]);
    // Bad settings are one-line errors.
    for bad in [
        "durability = \"sometimes\"",
        "deltas = \"later\"",
        "max_delta_chain = -1",
    ] {
        std::fs::write(fast.work().join("registry.toml"), format!("[registry]\n{bad}\n")).expect("toml");
        let out = fast.run(&["ls"]);
        assert_eq!(out.code, 1, "{bad}: {}", out.stderr);
        assert_eq!(out.stderr.trim().lines().count(), 1, "{bad}: {}", out.stderr);
    }
}
