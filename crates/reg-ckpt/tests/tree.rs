//! Directory checkpoints against what torch, Lightning and transformers
//! report about them (`tests/fixtures/expected/dirs/**.json`), and the
//! hostile directories of `tests/fixtures/bad/dirs/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reg_ckpt::segment::SegmentKind;
use reg_ckpt::tree::{inspect_tree, runs, Chunk, Layout, LogicalTensor, TreeCheckpoint, TreeFile};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Every file under `root`, by relative `/` path.
fn load_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_str().unwrap().replace('\\', "/");
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn inspect(files: &BTreeMap<String, Vec<u8>>) -> Result<TreeCheckpoint, reg_ckpt::tree::TreeError> {
    let list: Vec<TreeFile> = files.iter().map(|(p, b)| TreeFile { path: p, bytes: b }).collect();
    inspect_tree(&list)
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every fixture directory with its expected JSON, by relative name.
fn fixture_dirs() -> Vec<(String, PathBuf, Value)> {
    let expected_root = fixtures().join("expected/dirs");
    let mut out = Vec::new();
    let mut todo = vec![expected_root.clone()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if let Some(rel) = path
                .strip_prefix(&expected_root)
                .unwrap()
                .to_str()
                .unwrap()
                .strip_suffix(".json")
            {
                let expected: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                out.push((rel.to_owned(), fixtures().join("dirs").join(rel), expected));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 11, "fixtures missing: {}", out.len());
    out
}

/// A chunk's bytes in row-major order, read from its file's payload through
/// its storage offset and strides with the copy plan `runs` gives.
fn chunk_bytes(tree: &TreeCheckpoint, files: &BTreeMap<String, Vec<u8>>, t: &LogicalTensor, c: &Chunk) -> Vec<u8> {
    let file = &tree.files[c.file];
    let bytes = &files[&file.path];
    let payload = file
        .segments
        .iter()
        .find(|s| matches!(&s.kind, SegmentKind::Payload { storage_key } if *storage_key == c.storage_key))
        .unwrap_or_else(|| panic!("{}: no payload {}", file.path, c.storage_key));
    let storage = &bytes[payload.range.start as usize..payload.range.end as usize];
    let size = t.dtype.size();
    let local = Chunk {
        offsets: vec![0; c.sizes.len()],
        ..c.clone()
    };
    let mut out = vec![0u8; c.numel() as usize * size];
    for r in runs(&c.sizes, &local).unwrap() {
        let (d, s, n) = (
            r.dst_elem as usize * size,
            r.src_elem as usize * size,
            r.len as usize * size,
        );
        out[d..d + n].copy_from_slice(&storage[s..s + n]);
    }
    out
}

fn layout_name(l: Layout) -> String {
    serde_json::to_value(l).unwrap().as_str().unwrap().to_owned()
}

#[test]
fn every_fixture_directory_agrees_with_torch() {
    for (name, dir, expected) in fixture_dirs() {
        let files = load_tree(&dir);
        let tree = inspect(&files).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(layout_name(tree.layout), expected["layout"], "{name}: layout");
        assert_eq!(tree.layout.name(), expected["layout"], "{name}: layout name");
        // Files: the same set, each cut exactly.
        let paths: Vec<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
        let want: Vec<&str> = expected["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, want, "{name}: files");
        for f in &tree.files {
            let bytes = &files[&f.path];
            assert_eq!(f.size, bytes.len() as u64);
            let mut at = 0;
            let mut keys = BTreeSet::new();
            for s in &f.segments {
                assert_eq!(s.range.start, at, "{name}/{}: segments leave a gap or overlap", f.path);
                at = s.range.end;
                if let SegmentKind::Payload { storage_key } = &s.kind {
                    assert!(
                        keys.insert(storage_key.clone()),
                        "{name}/{}: key {storage_key} twice",
                        f.path
                    );
                }
            }
            assert_eq!(at, bytes.len() as u64, "{name}/{}: segments end early", f.path);
            for (r, crc) in &f.deferred_crcs {
                assert_eq!(
                    crc32fast::hash(&bytes[r.start as usize..r.end as usize]),
                    *crc,
                    "{name}/{}",
                    f.path
                );
            }
        }
        // Tensors: names, dtypes, shapes, chunks and their bytes.
        let got: Vec<&str> = tree.tensors.iter().map(|t| t.name.as_str()).collect();
        let want: Vec<&str> = expected["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{name}: tensor names");
        for (t, e) in tree.tensors.iter().zip(expected["tensors"].as_array().unwrap()) {
            assert_eq!(t.dtype.to_string(), e["dtype"], "{name}: {} dtype", t.name);
            assert_eq!(
                serde_json::to_value(&t.shape).unwrap(),
                e["shape"],
                "{name}: {} shape",
                t.name
            );
            t.check_tiling().unwrap();
            let want_chunks = e["chunks"].as_array().unwrap();
            assert_eq!(t.chunks.len(), want_chunks.len(), "{name}: {} chunks", t.name);
            for (c, ec) in t.chunks.iter().zip(want_chunks) {
                assert_eq!(
                    serde_json::to_value(&c.offsets).unwrap(),
                    ec["offsets"],
                    "{name}: {}",
                    t.name
                );
                assert_eq!(
                    serde_json::to_value(&c.sizes).unwrap(),
                    ec["sizes"],
                    "{name}: {}",
                    t.name
                );
                assert_eq!(tree.files[c.file].path, ec["file"], "{name}: {}", t.name);
                assert_eq!(
                    sha256(&chunk_bytes(&tree, &files, t, c)),
                    ec["sha256"],
                    "{name}: {} bytes",
                    t.name
                );
            }
        }
        // Training metadata.
        match expected.get("epoch") {
            Some(e) => assert_eq!(tree.epoch, e.as_f64(), "{name}: epoch"),
            None => assert_eq!(tree.epoch, None, "{name}: epoch"),
        }
        assert_eq!(
            tree.meta.global_step,
            expected.get("global_step").and_then(Value::as_i64),
            "{name}: step"
        );
        assert_eq!(
            tree.meta.hyper_parameters.as_ref(),
            expected.get("hyper_parameters"),
            "{name}: hparams"
        );
    }
}
