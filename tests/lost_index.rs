//! A registry that lost its index is damage, never an empty registry
//! (issue 29, points 1 and 2): every command says so with exit 2 and
//! names `reg verify --rebuild-index`; gc deletes nothing while the index
//! could be incomplete; a rebuild names the blobs it could not read.

use crate::common::{fixture, pulls_identical, Reg};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The mlp run's first three epochs.
const RUN: [&str; 3] = [
    "lightning/mlp/epoch=00.ckpt",
    "lightning/mlp/epoch=01.ckpt",
    "lightning/mlp/epoch=02.ckpt",
];

/// Every blob file of the registry, relative, with its bytes.
fn blob_files(reg: &Reg) -> BTreeSet<(PathBuf, Vec<u8>)> {
    let root = reg.home().join("blobs");
    let mut out = BTreeSet::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "tmp") {
                    stack.push(p);
                }
            } else {
                let bytes = std::fs::read(&p).expect("read blob");
                out.insert((p.strip_prefix(&root).expect("prefix").to_path_buf(), bytes));
            }
        }
    }
    out
}

/// A registry with the run pushed as `mlp` and its deltas made.
fn pushed() -> Reg {
    let reg = Reg::new();
    for rel in RUN {
        reg.push(rel, "mlp");
    }
    reg.settle();
    reg
}

/// `reg ARGS` exits 2 with one line naming the damage and the rebuild.
fn says_lost(reg: &Reg, args: &[&str]) {
    let r = reg.run(args);
    assert_eq!(r.code, 2, "reg {args:?}: {}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("reg: error:")).collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].contains("damaged, not empty") && lines[0].contains("reg verify --rebuild-index"),
        "reg {args:?}: {}",
        r.stderr
    );
}

fn version_id(reg: &Reg, spec: &str) -> String {
    reg.ok(&["show", spec, "--json"]).json()["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn blob_path(reg: &Reg, id: &str) -> PathBuf {
    reg.home().join("blobs").join(&id[..2]).join(&id[2..])
}

#[test]
fn a_missing_index_is_damage_for_every_command_and_gc_deletes_nothing() {
    let reg = pushed();
    let before = blob_files(&reg);
    std::fs::remove_dir_all(reg.home().join("index")).expect("rm index");
    let file = fixture(RUN[0]);
    let file = file.to_str().expect("utf8");
    for args in [
        &["verify"][..],
        &["gc"],
        &["gc", "--dry-run"],
        &["ls"],
        &["log", "mlp"],
        &["show", "mlp"],
        &["pull", "mlp", "-o", "x.ckpt"],
        &["stats"],
        &["prune", "mlp", "--keep-last", "1"],
        &["push", file, "--name", "other"],
    ] {
        says_lost(&reg, args);
    }
    assert_eq!(blob_files(&reg), before, "a blob changed or went");
    // The rebuild restores every version, and then everything works.
    reg.ok(&["verify", "--rebuild-index"]);
    for (v, rel) in RUN.iter().enumerate() {
        pulls_identical(&reg, &format!("mlp@v{}", v + 1), rel);
    }
    reg.ok(&["gc"]);
    reg.ok(&["verify", "--full"]);
}

#[test]
fn an_empty_index_put_in_its_place_is_damage_too() {
    let reg = pushed();
    let before = blob_files(&reg);
    // An empty index from a new registry (what a release that silently
    // recreated a missing index left behind).
    let fresh = Reg::new();
    fresh.ok(&["ls"]);
    std::fs::remove_dir_all(reg.home().join("index")).expect("rm index");
    crate::common::copy_dir(&fresh.home().join("index"), &reg.home().join("index"));
    says_lost(&reg, &["gc"]);
    says_lost(&reg, &["verify"]);
    assert_eq!(blob_files(&reg), before);
}

#[test]
fn an_index_older_than_the_blobs_stops_gc_and_verify_names_the_lost_versions() {
    let reg = Reg::new();
    reg.push(RUN[0], "mlp");
    reg.settle();
    // An old copy of the index (a backup), then more versions.
    let old = reg.dir.path().join("old-index");
    crate::common::copy_dir(&reg.home().join("index"), &old);
    reg.push(RUN[1], "mlp");
    reg.push(RUN[2], "mlp");
    reg.settle();
    let lost = [version_id(&reg, "mlp@v2"), version_id(&reg, "mlp@v3")];
    std::fs::remove_dir_all(reg.home().join("index")).expect("rm index");
    crate::common::copy_dir(&old, &reg.home().join("index"));
    let before = blob_files(&reg);
    // gc would delete what v2 and v3 need: it stops, naming one.
    let r = reg.run(&["gc"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("the index may be incomplete"), "{}", r.stderr);
    assert!(lost.iter().any(|id| r.stderr.contains(&id[..12])), "{}", r.stderr);
    assert_eq!(reg.run(&["gc", "--dry-run"]).code, 2);
    assert_eq!(blob_files(&reg), before, "gc deleted something");
    // verify names both.
    let r = reg.run(&["verify"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    for id in &lost {
        assert!(
            r.stdout.contains(id.as_str()) && r.stdout.contains("does not list"),
            "{}",
            r.stdout
        );
    }
    reg.ok(&["verify", "--rebuild-index"]);
    for (v, rel) in RUN.iter().enumerate() {
        pulls_identical(&reg, &format!("mlp@v{}", v + 1), rel);
    }
    reg.ok(&["gc"]);
    reg.ok(&["verify", "--full"]);
}

#[test]
fn a_rebuild_that_meets_a_damaged_manifest_names_it_exits_2_and_gc_keeps_its_blobs() {
    let reg = pushed();
    let id = version_id(&reg, "mlp@v2");
    let path = blob_path(&reg, &id);
    let mut bytes = std::fs::read(&path).expect("manifest blob");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).expect("damage it");
    std::fs::remove_dir_all(reg.home().join("index")).expect("rm index");
    let r = reg.run(&["verify", "--rebuild-index"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("damaged blob {id}")), "{}", r.stdout);
    assert!(r.stderr.contains("gc deletes nothing"), "{}", r.stderr);
    // v1 and v3 are back; gc refuses to guess what v2 needed.
    let before = blob_files(&reg);
    let log = reg.ok(&["log", "mlp", "--json"]).json();
    let numbers: Vec<u64> = log
        .as_array()
        .expect("log")
        .iter()
        .map(|e| e["version"].as_u64().expect("n"))
        .collect();
    assert_eq!(numbers, vec![1, 3]);
    let r = reg.run(&["gc"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&id[..12]), "{}", r.stderr);
    assert_eq!(blob_files(&reg), before, "gc deleted something");
    pulls_identical(&reg, "mlp@v1", RUN[0]);
    pulls_identical(&reg, "mlp@v3", RUN[2]);
}

#[test]
fn blobs_without_any_manifest_are_not_versions_and_gc_removes_them() {
    // What a first push killed before it committed leaves: payload and
    // skeleton blobs, no manifest (it is named after the commit).
    let reg = Reg::new();
    reg.push(RUN[0], "mlp");
    let id = version_id(&reg, "mlp@v1");
    std::fs::remove_dir_all(reg.home().join("index")).expect("rm index");
    std::fs::remove_file(blob_path(&reg, &id)).expect("rm manifest blob");
    assert!(!blob_files(&reg).is_empty());
    let ls = reg.ok(&["ls", "--json"]).json();
    assert_eq!(ls, serde_json::json!([]));
    let gc = reg.ok(&["gc", "--json"]).json();
    assert!(gc["removed_blobs"].as_u64().expect("removed") > 0, "{gc}");
    assert!(blob_files(&reg).is_empty());
    reg.push(RUN[0], "mlp");
    pulls_identical(&reg, "mlp@v1", RUN[0]);
}

#[test]
fn a_manifest_blob_a_crash_left_unwritten_is_written_back_from_the_index() {
    // Killed after the commit, before the manifest blob took its name.
    let reg = pushed();
    let id = version_id(&reg, "mlp@v2");
    let path = blob_path(&reg, &id);
    let original = std::fs::read(&path).expect("manifest blob");
    std::fs::remove_file(&path).expect("rm manifest blob");
    let r = reg.ok(&["verify"]);
    assert!(r.stderr.contains("wrote 1 manifest blobs back"), "{}", r.stderr);
    assert_eq!(std::fs::read(&path).expect("written back"), original);
    std::fs::remove_file(&path).expect("rm manifest blob again");
    reg.ok(&["gc"]);
    assert!(path.is_file(), "gc did not write it back");
    // And the index can be rebuilt from the blobs again.
    std::fs::remove_dir_all(reg.home().join("index")).expect("rm index");
    reg.ok(&["verify", "--rebuild-index"]);
    pulls_identical(&reg, "mlp@v2", RUN[1]);
}

#[test]
fn removed_and_replaced_versions_do_not_stop_gc() {
    let reg = pushed();
    reg.ok(&["rm", "mlp@v1"]);
    reg.ok(&["prune", "mlp", "--keep-optimizer-last", "1"]);
    reg.ok(&["gc"]);
    reg.ok(&["verify", "--full"]);
    std::fs::remove_dir_all(reg.home().join("index")).expect("rm index");
    reg.ok(&["verify", "--rebuild-index"]);
    let log = reg.ok(&["log", "mlp", "--json"]).json();
    let dropped: Vec<bool> = log
        .as_array()
        .expect("log")
        .iter()
        .map(|e| e["optimizer_dropped"].as_bool().expect("flag"))
        .collect();
    assert_eq!(dropped, vec![true, false], "{log}");
}

#[test]
fn a_damaged_index_database_is_exit_2_with_the_rebuild_hint() {
    let reg = pushed();
    let db = reg.home().join("index").join("db");
    let mut bytes = std::fs::read(&db).expect("db");
    for b in bytes.iter_mut().skip(16) {
        *b ^= 0x5a;
    }
    std::fs::write(&db, &bytes).expect("damage db");
    for snap in std::fs::read_dir(reg.home().join("index")).expect("index").flatten() {
        if snap.file_name().to_string_lossy().starts_with("snap.") {
            std::fs::remove_file(snap.path()).expect("rm snapshot");
        }
    }
    let r = reg.run(&["ls"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("reg verify --rebuild-index"), "{}", r.stderr);
    assert!(!r.stderr.contains("backtrace"), "sled's debug text: {}", r.stderr);
    reg.ok(&["verify", "--rebuild-index"]);
    pulls_identical(&reg, "mlp@v3", RUN[2]);
}

/// Keep the helpers honest about what a blob file is.
#[test]
fn blob_paths_are_where_the_format_says() {
    let reg = pushed();
    let id = version_id(&reg, "mlp@v1");
    assert!(Path::new(&blob_path(&reg, &id)).is_file());
}
