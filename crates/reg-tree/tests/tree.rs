//! Directory checkpoints against what torch, Lightning and transformers
//! report about them (`tests/fixtures/expected/dirs/**.json`), and the
//! hostile directories of `tests/fixtures/bad/dirs/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reg_ckpt::safety::Verdict;
use reg_ckpt::segment::SegmentKind;
use reg_ckpt::tensors::Role;
use reg_ckpt::DType;
use reg_tree::{inspect_tree, runs, Chunk, FileFormat, Layout, LogicalTensor, TreeCheckpoint, TreeError, TreeFile};
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

fn inspect(files: &BTreeMap<String, Vec<u8>>) -> Result<TreeCheckpoint, reg_tree::TreeError> {
    let list: Vec<TreeFile> = files.iter().map(|(p, b)| TreeFile { path: p, bytes: b }).collect();
    inspect_tree(&list)
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every fixture directory under `root` (`dirs/`, `expected/dirs/`) with
/// its expected JSON, by relative name.
fn fixture_dirs(root: &Path) -> Vec<(String, PathBuf, Value)> {
    let expected_root = root.join("expected/dirs");
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
                out.push((rel.to_owned(), root.join("dirs").join(rel), expected));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
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
    let dirs = fixture_dirs(&fixtures());
    assert!(dirs.len() >= 11, "fixtures missing: {}", dirs.len());
    agree(dirs);
}

/// The directories a run of `make_dir_fixtures.py ROOT --variant hidden` or
/// `make_more_dirs.py ROOT` wrote: `REG_TREE_FIXTURES=ROOT cargo test -p
/// reg-ckpt --test tree -- --ignored`.
#[test]
#[ignore = "needs REG_TREE_FIXTURES=ROOT, a folder of generated directories"]
fn more_directories_agree_with_torch() {
    let root = std::env::var_os("REG_TREE_FIXTURES").expect("set REG_TREE_FIXTURES to a generated fixture root");
    let dirs = fixture_dirs(Path::new(&root));
    assert!(
        !dirs.is_empty(),
        "no expected/dirs under {}",
        Path::new(&root).display()
    );
    agree(dirs);
}

fn agree(dirs: Vec<(String, PathBuf, Value)>) {
    for (name, dir, expected) in dirs {
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

/// Each hostile directory (made by `tests/fixtures/tools/make_bad_dirs.py`)
/// and the one error it must give.
const BAD: &[(&str, &str)] = &[
    (
        "dcp-missing-file",
        ".metadata names __1_0.distcp (holding optimizer.param_groups.0.lr), which is not in the directory",
    ),
    ("dcp-past-end", ".metadata: optimizer.state.4.bias.exp_avg_sq lies at bytes 28693..30270 of __0_0.distcp, past its end (30170 bytes)"),
    ("dcp-overlap", "tensor model.2.weight: chunks 0 (at [0, 0], size [16, 32]) and 1 (at [8, 0], size [16, 32]) overlap (chunks in __0_0.distcp, __1_0.distcp)"),
    ("dcp-gap", "tensor model.0.weight: its chunks hold 256 of its 512 elements; element [16, 0] is in none (chunks in __0_0.distcp)"),
    ("dcp-truncated-item", "__0_0.distcp: item model.2.weight at byte 4242: "),
    ("dcp-item-not-zip", "__0_0.distcp: item model.2.weight at byte 4342: is not a torch.save zip"),
    ("dcp-shape-mismatch", "__0_0.distcp: item model.0.bias at byte 2601: holds a tensor of shape [16], .metadata says [24]"),
    ("dcp-not-metadata", ".metadata: not a torch.distributed.checkpoint metadata pickle: the pickle holds dict"),
    ("hf-missing-shard", "model.safetensors.index.json: names model-00004-of-00004.safetensors, which is not in the directory"),
    ("trainer-bad-crc", "scheduler.pt: zip entry scheduler/data.pkl: crc mismatch"),
];

#[test]
fn every_hostile_directory_is_refused_with_its_error() {
    let root = fixtures().join("bad/dirs");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = BAD.iter().map(|(d, _)| d.to_string()).collect();
    assert_eq!(on_disk, listed, "every bad directory has its expected error");
    for (dir, message) in BAD {
        let err = inspect(&load_tree(&root.join(dir)))
            .map(|t| t.layout)
            .unwrap_err()
            .to_string();
        println!("{dir}: {err}");
        assert!(err.starts_with(message), "{dir}: {err}");
        assert!(!err.contains('\n'), "{dir}: one line");
    }
}

fn fixture(rel: &str) -> (BTreeMap<String, Vec<u8>>, TreeCheckpoint) {
    let files = load_tree(&fixtures().join("dirs").join(rel));
    let tree = inspect(&files).unwrap_or_else(|e| panic!("{rel}: {e}"));
    (files, tree)
}

fn verdict_of(tree: &TreeCheckpoint, global: &str) -> Option<Verdict> {
    tree.globals.iter().find(|g| g.global == global).map(|g| g.verdict)
}

#[test]
fn dcp_items_give_the_optimizer_and_roles() {
    let (_, tree) = fixture("dcp/mlp/step=1");
    let [opt] = tree.meta.optimizers.as_slice() else {
        panic!("{:?}", tree.meta.optimizers)
    };
    assert_eq!(opt.kind, "AdamW");
    assert_eq!(opt.param_groups[0]["lr"], 0.01);
    assert_eq!(opt.param_groups[0]["params"], 4);
    assert_eq!(opt.params_with_state, 4);
    assert_eq!(opt.state_keys, ["exp_avg", "exp_avg_sq", "step"]);
    assert_eq!(tree.tensor("model.0.weight").unwrap().role, Role::Weight);
    assert_eq!(
        tree.tensor("optimizer.state.2.bias.exp_avg").unwrap().role,
        Role::Optimizer
    );
    assert_eq!(
        verdict_of(&tree, "torch.distributed.checkpoint.metadata.Metadata"),
        Some(Verdict::Safe)
    );
    assert!(
        tree.globals.iter().all(|g| g.verdict == Verdict::Safe),
        "{:?}",
        tree.globals
    );
    let metadata = &tree.files[0];
    assert_eq!(
        (metadata.path.as_str(), metadata.format),
        (".metadata", FileFormat::Other)
    );
    assert_eq!(tree.files[1].format, FileFormat::DcpData);

    let (_, tree) = fixture("dcp/fsdp2-8rank/step=2");
    assert_eq!(
        tree.files.iter().filter(|f| f.format == FileFormat::DcpData).count(),
        16
    );
    assert_eq!(tree.meta.optimizers[0].kind, "Adagrad");
    let w = tree.tensor("model.2.weight").unwrap();
    assert_eq!((w.dtype, w.chunks.len()), (DType::Bfloat16, 8));
}

#[test]
fn strided_chunks_counters_and_hparams_of_a_dcp() {
    let (_, tree) = fixture("dcp/odd/step=7");
    // Saved as they were: a transposed tensor and a channels-last weight.
    assert_eq!(tree.tensor("extra.transposed").unwrap().chunks[0].stride, [1, 4]);
    assert!(!tree.tensor("model.conv.weight").unwrap().chunks[0].is_contiguous());
    assert_eq!(tree.tensor("extra.view").unwrap().chunks[0].storage_offset, 0);
    assert_eq!(tree.tensor("extra.ids").unwrap().role, Role::Other);
    assert_eq!(tree.tensor("model.embed.weight").unwrap().role, Role::Weight);
    assert_eq!((tree.meta.epoch, tree.meta.global_step), (Some(2), Some(7)));
}

#[test]
fn lightning_meta_comes_from_meta_pt_and_the_dcp() {
    let (_, tree) = fixture("lightning-sharded/net/epoch=1-step=8.ckpt");
    assert_eq!(tree.meta.optimizers[0].kind, "AdamW");
    assert_eq!(tree.meta.optimizers[0].param_groups[0]["initial_lr"], 0.003);
    assert_eq!(tree.meta.schedulers[0].kind, "StepLR");
    assert_eq!(tree.meta.scores["val_loss"].mode, "min");
    assert_eq!(
        tree.meta.model_checkpoint.as_ref().unwrap().monitor.as_deref(),
        Some("val_loss")
    );
    assert_eq!(tree.meta.lightning_version.as_deref(), Some("2.6.6"));
    // meta.pt's tensors (callback metrics) are metadata, not logical tensors.
    assert!(tree.tensors.iter().all(|t| !t.name.starts_with("meta.pt:")));
    let meta_pt = tree.files.iter().find(|f| f.path == "meta.pt").unwrap();
    assert!(!meta_pt.tensors.is_empty());
}

#[test]
fn trainer_state_arguments_optimizer_and_scheduler() {
    let (_, tree) = fixture("hf-trainer/tiny-bert/checkpoint-8");
    let trainer = tree.trainer.as_ref().unwrap();
    assert_eq!(
        (trainer.epoch, trainer.global_step, tree.meta.epoch),
        (Some(0.5), Some(8), Some(0))
    );
    assert_eq!(trainer.log_history.len(), 2);
    assert_eq!(trainer.training_args.as_ref().unwrap()["learning_rate"], 0.0005);
    assert_eq!(tree.meta.optimizers[0].kind, "AdamW");
    assert_eq!(tree.meta.schedulers[0].kind, "LambdaLR");
    assert_eq!(tree.model_config.as_ref().unwrap()["model_type"], "bert");
    assert_eq!(
        verdict_of(&tree, "transformers.training_args.TrainingArguments"),
        Some(Verdict::Unknown)
    );
    assert_eq!(
        tree.tensor("optimizer.pt:state/0/exp_avg").unwrap().role,
        Role::Optimizer
    );
    assert_eq!(tree.tensor("rng_state.pth:cpu").unwrap().role, Role::Other);
    assert_eq!(tree.tensor("classifier.weight").unwrap().role, Role::Weight);

    let (files, tree) = fixture("hf-trainer/sgd/checkpoint-20");
    assert_eq!(tree.meta.optimizers[0].kind, "SGD");
    let state: Value = serde_json::from_slice(&files["trainer_state.json"]).unwrap();
    let eval_loss = state["log_history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == 20 && r.get("eval_loss").is_some())
        .unwrap()["eval_loss"]
        .as_f64();
    assert_eq!(tree.meta.scores["eval_loss"].value, eval_loss.unwrap());
    assert_eq!(tree.meta.scores["eval_loss"].mode, "min");
    let mc = tree.meta.model_checkpoint.as_ref().unwrap();
    assert_eq!(mc.best_model_score, state["best_metric"].as_f64());
}

#[test]
fn deepspeed_counters_and_optimizer() {
    let (_, tree) = fixture("deepspeed/zero2-2rank");
    assert_eq!(tree.meta.optimizers[0].kind, "Adam");
    assert_eq!(tree.meta.schedulers[0].kind, "StepLR");
    let name =
        "global_step8/zero_pp_rank_1_mp_rank_00_optim_states.pt:optimizer_state_dict/single_partition_of_fp32_groups/0";
    assert_eq!(tree.tensor(name).unwrap().role, Role::Optimizer);
    let module = tree
        .tensor("global_step8/mp_rank_00_model_states.pt:module/2.weight")
        .unwrap();
    assert_eq!((module.role, module.dtype), (Role::Weight, DType::Bfloat16));
    assert_eq!(
        verdict_of(&tree, "deepspeed.runtime.fp16.loss_scaler.LossScaler"),
        Some(Verdict::Unknown)
    );
}

#[test]
fn plain_folders_and_stray_data_files() {
    // Two model folders side by side: no single checkpoint, names by folder.
    let (_, tree) = fixture("nested/two-models");
    assert_eq!(tree.layout, Layout::Files);
    assert!(tree.tensor("unet:classifier.weight").is_some());
    assert!(tree.tensor("text_encoder:classifier.weight").is_some());

    // A folder with one training checkpoint, a note and an unknown binary.
    let ckpt = std::fs::read(fixtures().join("lightning/mlp/epoch=02.ckpt")).unwrap();
    let files: BTreeMap<String, Vec<u8>> = [
        ("run/epoch=02.ckpt".to_string(), ckpt),
        ("run/notes.txt".to_string(), b"lr sweep, best so far\n".to_vec()),
        ("blob.bin".to_string(), vec![7u8; 100]),
        ("empty".to_string(), Vec::new()),
    ]
    .into_iter()
    .collect();
    let tree = inspect(&files).unwrap();
    assert_eq!(tree.layout, Layout::Files);
    assert_eq!(tree.meta.epoch, Some(2));
    assert!(tree.tensor("run/epoch=02.ckpt:state_dict/encoder.weight").is_some());
    let formats: Vec<FileFormat> = tree.files.iter().map(|f| f.format).collect();
    assert_eq!(
        formats,
        [
            FileFormat::Other,
            FileFormat::Other,
            FileFormat::TorchZip,
            FileFormat::Other
        ]
    );
    assert!(tree.files[1].segments.is_empty());

    // DCP data files without their .metadata are kept whole, with a note.
    let (mut files, _) = fixture("dcp/mlp/step=1");
    files.remove(".metadata");
    let tree = inspect(&files).unwrap();
    assert_eq!((tree.layout, tree.files[0].format), (Layout::Files, FileFormat::Other));
    assert!(
        tree.notes[0].contains("no DCP .metadata names this data file"),
        "{:?}",
        tree.notes
    );
}

#[test]
fn a_broken_trainer_state_is_refused() {
    let (mut files, _) = fixture("hf-trainer/tiny-bert/checkpoint-8");
    files.insert("trainer_state.json".into(), b"{\"global_step\": 8,".to_vec());
    let err = inspect(&files).unwrap_err().to_string();
    assert!(err.starts_with("trainer_state.json: not valid JSON: "), "{err}");
}

#[test]
fn paths_must_be_relative_and_unique() {
    for bad in ["/abs", "a/../b", "a//b", ""] {
        let err = inspect_tree(&[TreeFile { path: bad, bytes: b"x" }]).unwrap_err();
        assert!(matches!(err, TreeError::Path { .. }), "{bad}: {err}");
    }
    let twice = [TreeFile { path: "a", bytes: b"x" }, TreeFile { path: "a", bytes: b"y" }];
    assert!(inspect_tree(&twice)
        .unwrap_err()
        .to_string()
        .starts_with("a: listed twice"));
    assert!(matches!(inspect_tree(&[]), Err(TreeError::Empty)));
}

/// Damaged `.metadata` and data files give errors (or a reading), never a
/// panic or a hang.
#[test]
fn damage_anywhere_is_an_error_not_a_panic() {
    let (good, _) = fixture("dcp/fsdp2-2rank/step=1");
    let start = std::time::Instant::now();
    for name in [".metadata", "__1_0.distcp"] {
        let len = good[name].len();
        let step = if name == ".metadata" { 7 } else { 61 };
        for at in (0..len).step_by(step) {
            let mut files = good.clone();
            files.get_mut(name).unwrap()[at] ^= 0x41;
            let _ = inspect(&files);
        }
        for cut in (0..len).step_by(len / 50 + 1) {
            let mut files = good.clone();
            files.get_mut(name).unwrap().truncate(cut);
            let result = inspect(&files);
            if name == ".metadata" {
                assert!(result.is_err(), "{name} cut at {cut}");
            }
        }
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
}
