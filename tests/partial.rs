//! Partial loads: `reg pull REF --format safetensors --tensors GLOB` writes
//! only the chosen tensors and reads only their blobs; `--header-only`
//! reads none (issue 27, point 4).

use crate::common::{expected, fixture, Reg};
use serde_json::Value;
use std::collections::BTreeMap;

/// One tensor of a safetensors file: dtype, shape, bytes.
type StTensor = (String, Value, Vec<u8>);

/// A safetensors file's tensors by name, and its header's `__metadata__`.
fn parse_safetensors(bytes: &[u8]) -> (BTreeMap<String, StTensor>, Value) {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("length")) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header JSON");
    let data = &bytes[8 + n..];
    let mut out = BTreeMap::new();
    for (name, info) in header.as_object().expect("object") {
        if name == "__metadata__" {
            continue;
        }
        let off = info["data_offsets"].as_array().expect("offsets");
        let (a, b) = (
            off[0].as_u64().expect("a") as usize,
            off[1].as_u64().expect("b") as usize,
        );
        out.insert(
            name.clone(),
            (
                info["dtype"].as_str().expect("dtype").to_string(),
                info["shape"].clone(),
                data[a..b].to_vec(),
            ),
        );
    }
    (out, header["__metadata__"].clone())
}

fn export(reg: &Reg, version: &str, extra: &[&str]) -> Vec<u8> {
    let out = reg.work().join("x.safetensors");
    let mut args = vec![
        "pull",
        version,
        "--format",
        "safetensors",
        "-o",
        "x.safetensors",
        "--force",
    ];
    args.extend_from_slice(extra);
    reg.ok(&args);
    std::fs::read(out).expect("export")
}

fn blob_path(reg: &Reg, hex: &str) -> std::path::PathBuf {
    reg.home().join("blobs").join(&hex[..2]).join(&hex[2..])
}

#[test]
fn chosen_tensors_of_a_file_version_equal_the_full_export_and_other_blobs_are_not_read() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=02.ckpt", "mlp");
    reg.settle();
    let (full, full_meta) = parse_safetensors(&export(&reg, "mlp", &[]));
    let (some, meta) = parse_safetensors(&export(
        &reg,
        "mlp",
        &["--tensors", "encoder.*", "--tensors", "head.2.bias"],
    ));
    let want: Vec<&String> = full
        .keys()
        .filter(|k| k.starts_with("encoder.") || *k == "head.2.bias")
        .collect();
    assert_eq!(some.keys().collect::<Vec<_>>(), want);
    for (name, t) in &some {
        assert_eq!(&full[name], t, "{name}");
    }
    assert_eq!(meta, full_meta, "the metadata is the version's, whatever is chosen");
    // Damage the blob of a tensor not chosen: the partial export does not
    // read it, so it still succeeds; the full export names the damage.
    let shown = reg.ok(&["show", "mlp", "--json"]).json();
    let other = shown["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .find(|t| t["path"] == "state_dict/head.2.weight")
        .expect("head.2.weight");
    let path = blob_path(&reg, other["blob"].as_str().expect("blob"));
    let mut bytes = std::fs::read(&path).expect("blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).expect("damage");
    let (again, _) = parse_safetensors(&export(&reg, "mlp", &["--tensors", "encoder.*"]));
    assert_eq!(again.len(), 2);
    let r = reg.run(&["pull", "mlp", "--format", "safetensors", "-o", "all.safetensors"]);
    assert_eq!(r.code, 2, "the full export reads the damaged blob: {}", r.stderr);
}

#[test]
fn chosen_tensors_of_a_sharded_directory_version_are_assembled_from_their_chunks() {
    let reg = Reg::new();
    let dir = fixture("dirs/dcp/fsdp2-2rank/step=2");
    reg.ok(&["push", dir.to_str().expect("utf8"), "-n", "dcp"]);
    let (full, _) = parse_safetensors(&export(&reg, "dcp", &[]));
    let truth = expected("dirs/dcp/fsdp2-2rank/step=2");
    let first = truth["tensors"][0]["name"].as_str().expect("name").to_string();
    // An exact name, escaped as a glob would need it.
    let escaped: String = first
        .chars()
        .flat_map(|c| match c {
            '*' | '?' | '[' | ']' | '{' | '}' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let (one, _) = parse_safetensors(&export(&reg, "dcp", &["--tensors", &escaped]));
    assert_eq!(one.keys().collect::<Vec<_>>(), vec![&first]);
    assert_eq!(one[&first], full[&first]);
    assert_eq!(one[&first].1, truth["tensors"][0]["shape"]);
}

#[test]
fn the_header_alone_lists_every_tensor_and_reads_no_blob() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=02.ckpt", "mlp");
    reg.settle();
    let full = export(&reg, "mlp", &[]);
    // Every payload blob gone: the header needs none of them.
    let shown = reg.ok(&["show", "mlp", "--json"]).json();
    for t in shown["tensors"].as_array().expect("tensors") {
        let _ = std::fs::remove_file(blob_path(&reg, t["blob"].as_str().expect("blob")));
    }
    let header = export(&reg, "mlp", &["--header-only"]);
    let n = u64::from_le_bytes(header[..8].try_into().expect("len")) as usize;
    assert_eq!(header.len(), 8 + n, "only the header");
    assert_eq!(&header[..], &full[..8 + n], "the whole file's header, offsets included");
}

#[test]
fn a_pattern_that_matches_nothing_or_a_non_safetensors_export_is_refused_in_one_line() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=02.ckpt", "mlp");
    for (args, says) in [
        (
            vec![
                "pull",
                "mlp",
                "--format",
                "safetensors",
                "--tensors",
                "encoder.*",
                "--tensors",
                "decoder.*",
                "-o",
                "o",
            ],
            "tensor pattern \"decoder.*\" matches no tensor of mlp@v1",
        ),
        (
            vec!["pull", "mlp", "--format", "safetensors", "--tensors", "[", "-o", "o"],
            "is not a glob",
        ),
    ] {
        let r = reg.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(says), "{}", r.stderr);
        assert!(!reg.work().join("o").exists());
    }
    // Without --format: a usage error naming what is missing.
    let r = reg.run(&["pull", "mlp", "--tensors", "encoder.*"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("--format"), "{}", r.stderr);
}

#[test]
fn cat_writes_byte_ranges_of_one_file_and_refuses_what_is_not_there() {
    let reg = Reg::new();
    let dir = fixture("dirs/dcp/fsdp2-2rank/step=2");
    reg.ok(&["push", dir.to_str().expect("utf8"), "-n", "dcp"]);
    let shard = std::fs::read(dir.join("__1_0.distcp")).expect("shard");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reg"))
        .args(["cat", "dcp", "__1_0.distcp", "--range", "100:50", "--range", "0:10"])
        .env("REG_HOME", reg.home())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, [&shard[100..150], &shard[..10]].concat());
    let whole = std::process::Command::new(env!("CARGO_BIN_EXE_reg"))
        .args(["cat", "dcp", ".metadata"])
        .env("REG_HOME", reg.home())
        .output()
        .expect("run");
    assert_eq!(whole.stdout, std::fs::read(dir.join(".metadata")).expect("metadata"));
    let len = shard.len().to_string();
    for (args, says) in [
        (vec!["cat", "dcp", "nope.distcp"], "has no file \"nope.distcp\""),
        (
            vec!["cat", "dcp", "__1_0.distcp", "--range", &format!("{len}:1")],
            "past its end",
        ),
        (vec!["cat", "dcp"], "name one of its files"),
        (vec!["cat", "dcp", "__1_0.distcp", "--range", "5"], "not START:LEN"),
    ] {
        let r = reg.run(&args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stdout.is_empty(), "{args:?}: wrote {}", r.stdout.len());
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn gc_removes_a_staging_session_only_once_its_lock_is_free() {
    let reg = Reg::new();
    let staging: Value = reg.ok(&["init", "--json"]).json();
    let staging = std::path::PathBuf::from(staging["staging"].as_str().expect("staging"));
    let session = staging.join("dcp-test");
    std::fs::create_dir_all(session.join("run")).expect("session");
    std::fs::write(session.join("run/__0_0.distcp"), b"shard bytes").expect("shard");
    let lock = std::fs::File::create(session.join(".lock")).expect("lock");
    lock.lock().expect("flock");
    reg.ok(&["gc"]);
    assert!(session.join("run/__0_0.distcp").exists(), "gc removed a live session");
    lock.unlock().expect("unlock");
    drop(lock);
    reg.ok(&["gc"]);
    assert!(!session.exists(), "gc kept an abandoned session");
}

/// `reg locate`: with `keep_newest_raw` the newest version's tensors are
/// mapped from raw blob files (the bytes at each offset are the tensor's,
/// as the safetensors export holds them); once a newer version arrives the
/// older one's are encoded and listed for export instead. Without the
/// setting, a pushed version's blobs are encoded and nothing maps.
#[test]
fn locate_maps_the_newest_raw_version_and_exports_the_rest() {
    let reg = Reg::new();
    std::fs::write(reg.work().join("registry.toml"), "[registry]\nkeep_newest_raw = true\n").expect("toml");
    for epoch in 0..2 {
        let src = reg.work().join(format!("gen-{epoch}.ckpt"));
        let s = src.to_str().expect("utf8");
        reg.ok(&["bench", "generate", s, "--size", "6M", "--epoch", &epoch.to_string()]);
        reg.ok(&["push", s, "-n", "run"]);
        reg.settle();
        let located = reg.ok(&["locate", "run@latest", "--json"]).json();
        let mapped = located["mapped"].as_array().expect("mapped");
        assert!(!mapped.is_empty(), "{located}");
        // The export, to compare bytes with.
        let out = reg.work().join("export.safetensors");
        let o = out.to_str().expect("utf8");
        reg.ok(&["pull", "run@latest", "--format", "safetensors", "-o", o, "--force"]);
        let export = std::fs::read(&out).expect("export");
        let header_len = u64::from_le_bytes(export[..8].try_into().expect("8 bytes")) as usize;
        let header: serde_json::Value = serde_json::from_slice(&export[8..8 + header_len]).expect("header");
        for t in mapped {
            let name = t["name"].as_str().expect("name");
            let range = header[name]["data_offsets"].as_array().expect("offsets");
            let (a, b) = (
                range[0].as_u64().expect("a") as usize,
                range[1].as_u64().expect("b") as usize,
            );
            let want = &export[8 + header_len + a..8 + header_len + b];
            let file = std::fs::read(t["file"].as_str().expect("file")).expect("blob file");
            assert_eq!(file.len() as u64, t["file_len"].as_u64().expect("file_len"));
            let at = t["offset"].as_u64().expect("offset") as usize;
            assert!(
                &file[at..at + want.len()] == want,
                "{name}: mapped bytes differ from the export"
            );
            assert_eq!(t["len"].as_u64(), Some(want.len() as u64));
        }
    }
    // v1's changed tensors are encoded now; the ones it shares with v2
    // (unchanged layers) are v2's blobs, raw as the newest version's.
    let older = reg.ok(&["locate", "run@v1", "--json"]).json();
    let newest = reg.ok(&["locate", "run@v2", "--json"]).json();
    let newest_files: Vec<&str> = newest["mapped"]
        .as_array()
        .expect("mapped")
        .iter()
        .filter_map(|t| t["file"].as_str())
        .collect();
    for t in older["mapped"].as_array().expect("mapped") {
        assert!(newest_files.contains(&t["file"].as_str().expect("file")), "{older}");
    }
    assert!(!older["exported"].as_array().expect("exported").is_empty(), "{older}");
    reg.ok(&["verify"]);

    // The default: pushed blobs are encoded; a glob that matches nothing
    // is an error naming it.
    let plain = Reg::new();
    plain.push("lightning/mlp/epoch=00.ckpt", "mlp");
    plain.settle();
    let located = plain.ok(&["locate", "mlp", "--json"]).json();
    assert!(
        !located["exported"].as_array().expect("exported").is_empty(),
        "{located}"
    );
    let r = plain.run(&["locate", "mlp", "--tensors", "no.such.*"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no.such.*"), "{}", r.stderr);
}
