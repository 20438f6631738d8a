//! Directory versions (issue 13): every fixture directory (made by real
//! torch, Lightning and transformers; tests/fixtures/dirs/README.md)
//! pushes as one version and pulls back byte-identical; `reg show --json`
//! agrees with what the libraries reported; chunks dedupe across versions
//! and shardings; diff goes by tensor name; `--files`, exports and hostile
//! directories.

use crate::common::{fixture, fixtures, Reg};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every directory fixture with an expected JSON, relative to fixtures/.
fn fixture_dirs() -> Vec<String> {
    let root = fixtures().join("expected");
    let mut out = Vec::new();
    let mut stack = vec![root.join("dirs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("expected dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(rel) = p.strip_prefix(&root).ok().and_then(|r| r.to_str()) {
                if let Some(rel) = rel.strip_suffix(".json") {
                    out.push(rel.to_string());
                }
            }
        }
    }
    out.sort();
    assert!(out.len() >= 10, "{out:?}");
    out
}

/// Every file below `dir` with its bytes, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .expect("prefix")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

fn name_of(rel: &str) -> String {
    rel.replace(['/', '=', '.'], "-")
}

fn push_dir(reg: &Reg, rel: &str, name: &str) -> Value {
    let path = fixture(rel);
    reg.ok(&["push", path.to_str().expect("utf8"), "--name", name, "--json"])
        .json()
}

fn pull_dir(reg: &Reg, reference: &str, out: &Path) {
    reg.ok(&["pull", reference, "-o", out.to_str().expect("utf8"), "--force"]);
}

#[test]
fn every_fixture_directory_round_trips_and_shows_what_torch_reported() {
    let reg = Reg::new();
    for rel in fixture_dirs() {
        let name = name_of(&rel);
        let pushed = push_dir(&reg, &rel, &name);
        assert_eq!(pushed["created"], true, "{rel}: {pushed}");
        let out = reg.work().join(format!("out-{name}"));
        pull_dir(&reg, &name, &out);
        let (want, got) = (tree(&fixture(&rel)), tree(&out));
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>(),
            "{rel}: files"
        );
        for (path, bytes) in &want {
            assert!(got[path] == *bytes, "{rel}: {path} differs");
        }

        let show = reg.ok(&["show", &name, "--json"]).json();
        let expected = crate::common::expected(&rel);
        assert_eq!(show["kind"], "directory", "{rel}");
        assert_eq!(show["layout"], expected["layout"], "{rel}: layout");
        let files: Vec<(String, u64)> = show["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap_or("").to_string(),
                    f["size"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let want_files: Vec<(String, u64)> = expected["files"]
            .as_array()
            .expect("expected files")
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap_or("").to_string(),
                    f["size"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(files, want_files, "{rel}: files");
        let tensors: BTreeMap<&str, &Value> = show["tensors"]
            .as_array()
            .expect("tensors")
            .iter()
            .map(|t| (t["path"].as_str().unwrap_or(""), t))
            .collect();
        let want_tensors = expected["tensors"].as_array().expect("expected tensors");
        assert_eq!(tensors.len(), want_tensors.len(), "{rel}: tensor count");
        for w in want_tensors {
            let n = w["name"].as_str().expect("name");
            let t = tensors.get(n).unwrap_or_else(|| panic!("{rel}: no tensor {n}"));
            assert_eq!(t["dtype"], w["dtype"], "{rel}: {n} dtype");
            assert_eq!(t["shape"], w["shape"], "{rel}: {n} shape");
            let chunks = |v: &Value| -> BTreeSet<(String, String, String)> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| (c["file"].to_string(), c["offsets"].to_string(), c["sizes"].to_string()))
                    .collect()
            };
            assert_eq!(chunks(&t["chunks"]), chunks(&w["chunks"]), "{rel}: {n} chunks");
        }
        for key in ["global_step", "hyper_parameters"] {
            if let Some(want) = expected.get(key) {
                assert_eq!(&show[key], want, "{rel}: {key}");
            }
        }
        if let Some(want) = expected.get("epoch") {
            assert_eq!(show["epoch"].as_f64(), want.as_f64(), "{rel}: epoch");
        }
    }
    reg.ok(&["verify", "--full"]);
}

/// Stored bytes of the registry's blobs.
fn stored(reg: &Reg) -> u64 {
    reg.ok(&["stats", "--json"]).json()["stored_bytes"]
        .as_u64()
        .expect("stored")
}

#[test]
fn the_same_weights_sharded_another_way_add_no_tensor_bytes() {
    let reg = Reg::new();
    let first = push_dir(&reg, "dirs/hf/tiny-bert/shards-100KB", "bert");
    assert!(first["new_raw_bytes"].as_u64().unwrap_or(0) > 100_000, "{first}");
    for other in ["dirs/hf/tiny-bert/shards-40KB", "dirs/hf/tiny-bert/single"] {
        let again = push_dir(&reg, other, "bert");
        assert_eq!(again["created"], true);
        assert_eq!(again["new_raw_bytes"], 0, "{other}: {again}");
        assert_eq!(again["new_payloads"], 0, "{other}: {again}");
    }
    // And diff by name: moved to another shard, still identical.
    let d = reg.ok(&["diff", "bert@v1", "bert@v2", "--json"]).json();
    assert!(d["tensors"]["changed"].as_array().is_some_and(Vec::is_empty), "{d}");
    assert_eq!(d["tensors"]["identical"].as_array().map(Vec::len), Some(41));
    assert!(!d["files"]["added"].as_array().expect("added").is_empty());
}

#[test]
fn a_run_stores_each_distinct_chunk_once() {
    let reg = Reg::new();
    let steps = ["dirs/dcp/fsdp2-2rank/step=1", "dirs/dcp/fsdp2-2rank/step=2"];
    for s in steps {
        push_dir(&reg, s, "fsdp");
    }
    reg.settle();
    // Distinct chunk bytes (by sha256 of the chunk, as torch reported)
    // plus every byte that is not tensor data.
    let mut chunks: BTreeMap<String, u64> = BTreeMap::new();
    let mut other = 0u64;
    for s in steps {
        let e = crate::common::expected(s);
        let mut tensor_bytes = 0u64;
        for t in e["tensors"].as_array().expect("tensors") {
            let size: u64 = match t["dtype"].as_str() {
                Some("float32") | Some("int32") => 4,
                Some("float64") | Some("int64") => 8,
                _ => 2,
            };
            for c in t["chunks"].as_array().expect("chunks") {
                let n: u64 = c["sizes"]
                    .as_array()
                    .expect("sizes")
                    .iter()
                    .filter_map(Value::as_u64)
                    .product();
                tensor_bytes += n * size;
                chunks.insert(c["sha256"].as_str().expect("sha").to_string(), n * size);
            }
        }
        let total: u64 = e["files"]
            .as_array()
            .expect("files")
            .iter()
            .filter_map(|f| f["size"].as_u64())
            .sum();
        other += total - tensor_bytes;
    }
    let bound = chunks.values().sum::<u64>() + other;
    let got = stored(&reg);
    assert!(got <= bound, "stored {got} > distinct chunks + skeleton {bound}");

    // reg diff of the two steps: the frozen first layer is identical, the
    // trained tensors and their Adam state changed, by state-dict key.
    let d = reg.ok(&["diff", "fsdp@v1", "fsdp@v2", "--json"]).json();
    let identical: BTreeSet<&str> = d["tensors"]["identical"]
        .as_array()
        .expect("identical")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(identical, BTreeSet::from(["model.0.bias", "model.0.weight"]), "{d}");
    let changed: BTreeSet<&str> = d["tensors"]["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    for key in [
        "model.2.weight",
        "model.4.bias",
        "optimizer.state.2.weight.exp_avg",
        "optimizer.state.4.weight.exp_avg_sq",
    ] {
        assert!(changed.contains(key), "{key} not changed: {changed:?}");
    }
    // --stats works on chunked tensors.
    let s = reg.ok(&["diff", "fsdp@v1", "fsdp@v2", "--stats", "--json"]).json();
    let w = s["tensors"]["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .find(|c| c["path"] == "model.2.weight")
        .expect("model.2.weight");
    assert!(w["rel_l2"].as_f64().is_some_and(|r| r > 0.0 && r < 1.0), "{w}");
    assert!(w["changed_fraction"].as_f64().is_some_and(|f| f > 0.5), "{w}");
    // Older versions became deltas against the newer, and pull back whole.
    let show = reg.ok(&["show", "fsdp@v1", "--json"]).json();
    assert!(show["stored"]["deltas"].as_u64().unwrap_or(0) > 0, "{}", show["stored"]);
    let out = reg.work().join("v1");
    pull_dir(&reg, "fsdp@v1", &out);
    assert_eq!(tree(&out), tree(&fixture(steps[0])));
}

#[test]
fn files_globs_write_exactly_the_matching_files() {
    let reg = Reg::new();
    push_dir(&reg, "dirs/hf-trainer/tiny-bert/checkpoint-8", "tr");
    let out = reg.work().join("some");
    reg.ok(&[
        "pull",
        "tr",
        "-o",
        out.to_str().expect("utf8"),
        "--files",
        "*.json",
        "--files",
        "model.safetensors",
    ]);
    let got: Vec<String> = tree(&out).into_keys().collect();
    assert_eq!(got, vec!["config.json", "model.safetensors", "trainer_state.json"]);
    let full = tree(&fixture("dirs/hf-trainer/tiny-bert/checkpoint-8"));
    for (p, b) in tree(&out) {
        assert!(full[&p] == b, "{p}");
    }
    let none = reg.run(&["pull", "tr", "-o", "x", "--files", "*.nothing"]);
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert!(none.stderr.contains("matches no file"), "{}", none.stderr);
    assert!(!reg.work().join("x").exists());
}

#[test]
fn a_directory_streams_as_tar_and_exports_whole_tensors() {
    let reg = Reg::new();
    push_dir(&reg, "dirs/dcp/fsdp2-2rank/step=2", "fsdp");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reg"))
        .args(["pull", "fsdp", "-o", "-"])
        .env("REG_HOME", reg.home())
        .output()
        .expect("run");
    assert!(out.status.success());
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    let mut got = BTreeMap::new();
    for e in archive.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut bytes).expect("read");
        got.insert(path, bytes);
    }
    assert_eq!(got, tree(&fixture("dirs/dcp/fsdp2-2rank/step=2")));

    let st = reg.work().join("all.safetensors");
    reg.ok(&[
        "pull",
        "fsdp",
        "--format",
        "safetensors",
        "-o",
        st.to_str().expect("utf8"),
    ]);
    let bytes = std::fs::read(&st).expect("export");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("len")) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).expect("header");
    let expected = crate::common::expected("dirs/dcp/fsdp2-2rank/step=2");
    for t in expected["tensors"].as_array().expect("tensors") {
        let n = t["name"].as_str().expect("name");
        assert_eq!(header[n]["shape"], t["shape"], "{n}");
    }
}

/// Blob files and the listing of a registry, for "nothing changed".
pub(crate) fn snapshot(reg: &Reg) -> (String, String, BTreeSet<PathBuf>) {
    let blobs = tree(&reg.home().join("blobs")).into_keys().map(PathBuf::from).collect();
    (
        reg.ok(&["ls", "--json"]).stdout,
        reg.ok(&["stats", "--json"]).stdout,
        blobs,
    )
}

#[test]
fn hostile_directories_are_refused_in_one_line_and_change_nothing() {
    let reg = Reg::new();
    push_dir(&reg, "dirs/dcp/mlp/step=1", "mlp");
    reg.settle();
    let before = snapshot(&reg);
    let bad = fixtures().join("bad/dirs");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&bad)
        .expect("bad dirs")
        .flatten()
        .map(|e| e.path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "{cases:?}");
    // A symlink leaving the tree, a FIFO, and a name that is not UTF-8,
    // made here (git cannot hold them).
    let made = reg.dir.path().join("made");
    #[cfg(unix)]
    {
        let escape = made.join("escape");
        std::fs::create_dir_all(&escape).expect("mkdir");
        std::fs::write(escape.join("config.json"), b"{}").expect("write");
        std::os::unix::fs::symlink("/etc/hostname", escape.join("leak")).expect("symlink");
        cases.push(escape);
        let fifo = made.join("fifo");
        std::fs::create_dir_all(&fifo).expect("mkdir");
        std::fs::write(fifo.join("config.json"), b"{}").expect("write");
        let path = std::ffi::CString::new(fifo.join("pipe").to_string_lossy().as_bytes()).expect("cstr");
        // SAFETY: mkfifo on a NUL-terminated path this test owns.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
        cases.push(fifo);
        use std::os::unix::ffi::OsStrExt;
        let bad_name = made.join("bad-name");
        std::fs::create_dir_all(&bad_name).expect("mkdir");
        std::fs::write(bad_name.join(std::ffi::OsStr::from_bytes(b"w\xffx.pt")), b"x").expect("write");
        cases.push(bad_name);
    }
    for case in &cases {
        let r = reg.run(&["push", case.to_str().expect("utf8"), "--name", "mlp"]);
        assert_eq!(r.code, 1, "{}: {}{}", case.display(), r.stdout, r.stderr);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{}: {}", case.display(), r.stderr);
        assert!(lines[0].starts_with("reg: error: "), "{}", r.stderr);
        assert_eq!(snapshot(&reg), before, "{} changed the registry", case.display());
    }
}

#[test]
fn directory_versions_work_with_every_other_command() {
    let reg = Reg::new();
    let run = "dirs/hf-trainer/tiny-bert";
    for step in [8, 16] {
        push_dir(&reg, &format!("{run}/checkpoint-{step}"), "tr");
    }
    reg.settle();
    // Refs on what the layout records.
    let by_step = reg.ok(&["show", "tr@step=8", "--json"]).json();
    assert_eq!(by_step["version"], 1);
    assert_eq!(reg.ok(&["show", "tr@epoch=1", "--json"]).json()["version"], 2);
    let log = reg.ok(&["log", "tr", "--json"]).json();
    assert_eq!(log[1]["global_step"], 16);
    reg.ok(&["tag", "tr@step=16", "final"]);
    assert_eq!(reg.ok(&["show", "tr@final", "--json"]).json()["version"], 2);
    assert_eq!(reg.ok(&["ls", "--json"]).json()[0]["versions"], 2);

    // A file:// remote carries a directory version to another registry.
    let shared = reg.dir.path().join("shared");
    let url = format!("file://{}", shared.display());
    reg.ok(&["sync", "push", &url]);
    let other = Reg::new();
    let out = other.work().join("ck16");
    other.ok(&["pull", "tr@v2", "--remote", &url, "-o", out.to_str().expect("utf8")]);
    assert_eq!(tree(&out), tree(&fixture(&format!("{run}/checkpoint-16"))));
    other.ok(&["verify", "--full"]);

    // Retention drops the older version's training-state files only.
    reg.ok(&["prune", "tr", "--keep-optimizer-last", "1"]);
    let v1 = reg.ok(&["show", "tr@v1", "--json"]).json();
    let files: BTreeSet<&str> = v1["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(
        files.contains("model.safetensors") && !files.contains("optimizer.pt"),
        "{files:?}"
    );
    assert!(!v1["optimizer_dropped"].is_null());
    let kept = reg.work().join("ck8");
    pull_dir(&reg, "tr@v1", &kept);
    let original = tree(&fixture(&format!("{run}/checkpoint-8")));
    for (path, bytes) in tree(&kept) {
        assert!(original[&path] == bytes, "{path} changed by retention");
    }
    let v2 = reg.work().join("ck16");
    pull_dir(&reg, "tr@v2", &v2);
    assert_eq!(tree(&v2), tree(&fixture(&format!("{run}/checkpoint-16"))));

    // rm and gc free what only the removed version held; the rest pulls.
    let before = stored(&reg);
    reg.ok(&["rm", "tr@v2"]);
    reg.ok(&["gc"]);
    assert!(stored(&reg) < before);
    pull_dir(&reg, "tr@v1", &kept);
    reg.ok(&["verify", "--full"]);
    let stats = reg.ok(&["stats", "--json"]).json();
    assert_eq!(stats["versions"], 1);
}

/// Bytes of every file below `dir` (what the registry takes on disk,
/// in 4 KiB blocks as ext4 gives them, so many small files show).
fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len().div_ceil(4096) * 4096;
            }
        }
    }
    total
}

#[test]
fn ten_thousand_small_files_pack_into_a_few_blobs_and_work_everywhere() {
    // Issue 29: one blob file per tiny file made a 10,000-file folder of
    // 97 KiB take 42 MB. Small skeletons are packed (docs/format.md).
    let reg = Reg::new();
    let dir = reg.work().join("many");
    for i in 0..10_000 {
        let sub = dir.join(format!("part{:02}", i % 50));
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(sub.join(format!("f{i:05}.txt")), format!("value {i}\n")).expect("write");
    }
    let pushed = reg
        .ok(&["push", dir.to_str().expect("utf8"), "--name", "many", "--json"])
        .json();
    assert_eq!(pushed["files"].as_array().map(Vec::len), Some(10_000));
    let blobs = reg.ok(&["stats", "--json"]).json()["blobs"].as_u64().expect("blobs");
    assert!(blobs <= 4, "{blobs} blobs for 10,000 small files");
    let on_disk = disk_bytes(&reg.home());
    assert!(on_disk <= 4 << 20, "{on_disk} bytes on disk");
    // Pull, tar, verify, a second version, rm and gc, a remote.
    let out = reg.work().join("back");
    pull_dir(&reg, "many", &out);
    assert_eq!(tree(&out), tree(&dir));
    let tar = reg.run(&["pull", "many", "-o", "-"]);
    assert_eq!(tar.code, 0, "{}", tar.stderr);
    reg.ok(&["verify", "--full"]);
    std::fs::write(dir.join("part07/f00007.txt"), b"changed\n").expect("change one");
    reg.ok(&["push", dir.to_str().expect("utf8"), "--name", "many"]);
    let shared = reg.dir.path().join("shared");
    let url = format!("file://{}", shared.display());
    reg.ok(&["sync", "push", &url]);
    reg.ok(&["rm", "many@v1"]);
    reg.ok(&["gc"]);
    pull_dir(&reg, "many@v2", &out);
    assert_eq!(tree(&out), tree(&dir));
    let other = Reg::new();
    let far = other.work().join("far");
    other.ok(&["pull", "many@v1", "--remote", &url, "-o", far.to_str().expect("utf8")]);
    assert!(far.join("part07/f00007.txt").exists());
    assert_eq!(
        std::fs::read(far.join("part07/f00007.txt")).expect("v1 file"),
        b"value 7\n"
    );
    other.ok(&["verify", "--full"]);
}
