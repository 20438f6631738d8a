//! Round trips through the crate's own readers, on built trees and on the
//! real fixtures.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;

use super::torchzip::write_records;
use super::*;
use reg_ckpt::safety::Verdict;
use reg_ckpt::tensors::TensorInfo;
use reg_pickle::{parse, Limits, PickleGraph};

fn fixture(rel: &str) -> Vec<u8> {
    let path = format!("{}/../../tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn slice<'a>(file: &'a [u8], r: &Range<u64>) -> &'a [u8] {
    &file[r.start as usize..r.end as usize]
}

/// Storage key -> bytes of a torch zip.
fn storage_bytes(file: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let zip = reg_ckpt::torchzip::read(file).unwrap();
    zip.storages
        .iter()
        .map(|(k, r)| (k.clone(), slice(file, r).to_vec()))
        .collect()
}

fn graph_of(file: &[u8]) -> PickleGraph {
    let zip = reg_ckpt::torchzip::read(file).unwrap();
    parse(slice(file, &zip.pickle), &Limits::default()).unwrap()
}

fn tensor(key: &str, dtype: DType, numel: u64, offset: u64, shape: &[u64], stride: &[u64]) -> Emit {
    Emit::Tensor(TensorRef {
        storage_key: key.into(),
        dtype,
        storage_numel: numel,
        offset,
        shape: shape.to_vec(),
        stride: stride.to_vec(),
        requires_grad: false,
    })
}

fn s(text: &str) -> Emit {
    Emit::Str(text.into())
}

fn sources(storages: &BTreeMap<String, Vec<u8>>, keys: &[&str]) -> Vec<StorageSource<'static>> {
    keys.iter()
        .map(|k| {
            let bytes = storages[*k].clone();
            StorageSource {
                key: k.to_string(),
                len: bytes.len() as u64,
                fill: Box::new(move |w: &mut dyn Write| w.write_all(&bytes)),
            }
        })
        .collect()
}

/// Path, shape, stride, offset, storage key.
type Row<'a> = (&'a str, &'a [u64], &'a [u64], u64, &'a str);

#[test]
fn built_tree_round_trips() {
    let f32s: Vec<u8> = (0..12u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let bf16s: Vec<u8> = (0..4u16).flat_map(|i| (0x3f80u16 + i).to_le_bytes()).collect();
    let storages: BTreeMap<String, Vec<u8>> = [("0".to_string(), f32s), ("1".to_string(), bf16s)].into();
    let tree = Emit::Dict(vec![
        (
            s("state_dict"),
            Emit::OrderedDict(vec![
                (s("w"), tensor("0", DType::Float32, 12, 0, &[3, 4], &[4, 1])),
                (s("w_t"), tensor("0", DType::Float32, 12, 0, &[4, 3], &[1, 4])),
                (s("row"), tensor("0", DType::Float32, 12, 4, &[4], &[1])),
                (s("b"), tensor("1", DType::Bfloat16, 4, 1, &[], &[])),
            ]),
        ),
        (s("epoch"), Emit::Int(3)),
        (s("lr"), Emit::Float(1e-3)),
        (s("inf"), Emit::Float(f64::INFINITY)),
        (s("none"), Emit::None),
        (s("flags"), Emit::List(vec![Emit::Bool(true), Emit::Bool(false)])),
        (
            Emit::Int(-70000),
            Emit::Tuple(vec![s("x"), Emit::Dict(vec![(s("deep"), Emit::List(vec![]))])]),
        ),
    ]);
    let pickle = to_pickle(&tree).unwrap();
    let file = write_checkpoint(Vec::new(), "archive", &pickle, sources(&storages, &["0", "1"])).unwrap();

    let ckpt = reg_ckpt::inspect(&file).unwrap();
    for g in &ckpt.globals {
        assert_eq!(g.verdict, Verdict::Safe, "{}", g.global);
    }
    let got: Vec<Row> = ckpt
        .tensors
        .iter()
        .map(|t| {
            (
                t.path.as_str(),
                &t.shape[..],
                &t.stride[..],
                t.storage_offset,
                t.storage_key.as_str(),
            )
        })
        .collect();
    let want: Vec<Row> = vec![
        ("state_dict/w", &[3, 4], &[4, 1], 0, "0"),
        ("state_dict/w_t", &[4, 3], &[1, 4], 0, "0"),
        ("state_dict/row", &[4], &[1], 4, "0"),
        ("state_dict/b", &[], &[], 1, "1"),
    ];
    assert_eq!(got, want);
    assert_eq!(ckpt.tensors[3].dtype, DType::Bfloat16);
    assert_eq!(ckpt.meta.epoch, Some(3));
    assert_eq!(storage_bytes(&file), storages);

    let zip = reg_ckpt::torchzip::read(&file).unwrap();
    let names: Vec<&str> = zip.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "archive/data.pkl",
            "archive/.format_version",
            "archive/.storage_alignment",
            "archive/byteorder",
            "archive/data/0",
            "archive/data/1",
            "archive/version",
            "archive/.data/serialization_id",
        ]
    );
    let graph = graph_of(&file);
    let json = reg_ckpt::view::to_json(&graph, graph.root.unwrap(), &|_| None);
    assert_eq!(json["-70000"][1]["deep"], serde_json::json!([]));
    // Stored exactly as a float tag; shown as the string users read.
    assert_eq!(reg_ckpt::exact_json::as_f64(&json["inf"]), Some(f64::INFINITY));
    assert_eq!(reg_ckpt::exact_json::present(&json["inf"]), "inf");
}

#[test]
fn new_dtypes_use_rebuild_tensor_v3() {
    let storages: BTreeMap<String, Vec<u8>> = [("u".to_string(), vec![1, 0, 2, 0, 3, 0])].into();
    let tree = Emit::List(vec![
        tensor("u", DType::Uint16, 3, 0, &[3], &[1]),
        tensor("u", DType::Uint16, 3, 2, &[1], &[1]),
    ]);
    let pickle = to_pickle(&tree).unwrap();
    let file = write_checkpoint(Vec::new(), "a", &pickle, sources(&storages, &["u"])).unwrap();
    let ckpt = reg_ckpt::inspect(&file).unwrap();
    assert_eq!(ckpt.tensors.len(), 2);
    assert!(ckpt.tensors.iter().all(|t| t.dtype == DType::Uint16));
    let globals: Vec<&str> = ckpt.globals.iter().map(|g| g.global.as_str()).collect();
    assert_eq!(
        globals,
        [
            "torch._utils._rebuild_tensor_v3",
            "torch.storage.UntypedStorage",
            "collections.OrderedDict",
            "torch.uint16"
        ]
    );
    let storage = reg_ckpt::tensors::storages(&graph_of(&file)).unwrap();
    assert_eq!((storage["u"].dtype, storage["u"].numel), (DType::Uint8, 6));
}

#[test]
fn zip64_checkpoint_is_readable() {
    let storages: BTreeMap<String, Vec<u8>> = [("0".to_string(), vec![7u8; 4096])].into();
    let tree = Emit::Dict(vec![(s("t"), tensor("0", DType::Uint8, 4096, 0, &[64, 64], &[64, 1]))]);
    let pickle = to_pickle(&tree).unwrap();
    let mut zip = TorchZipWriter::with_zip64_limit(Vec::new(), "archive", 1000);
    write_records(&mut zip, &pickle, sources(&storages, &["0"])).unwrap();
    let file = zip.finish().unwrap();
    let ckpt = reg_ckpt::inspect(&file).unwrap();
    assert_eq!(ckpt.tensors.len(), 1);
    assert_eq!(storage_bytes(&file), storages);
    if let Ok(dir) = std::env::var("REG_WRITE_TEST_OUT") {
        std::fs::write(format!("{dir}/zip64.pt"), &file).unwrap();
    }
}

/// What a tensor must keep through weights-only.
fn essence(t: &TensorInfo) -> (String, DType, Vec<u64>, Vec<u64>, u64, String) {
    (
        t.path.clone(),
        t.dtype,
        t.shape.clone(),
        t.stride.clone(),
        t.storage_offset,
        t.storage_key.clone(),
    )
}

/// Transform a fixture, write it with storages streamed from the original,
/// and check the result against the original.
fn weights_only_fixture(rel: &str, prefix: &str) -> (reg_ckpt::Checkpoint, reg_ckpt::Checkpoint, Vec<u8>) {
    let original = fixture(rel);
    let before = reg_ckpt::inspect(&original).unwrap();
    let graph = graph_of(&original);
    let wo = weights_only(&graph).unwrap();
    let zip = reg_ckpt::torchzip::read(&original).unwrap();
    let records: BTreeMap<String, Range<u64>> = zip.storages.iter().cloned().collect();
    let file = wo
        .write_torch(Vec::new(), prefix, &mut |key, w| {
            w.write_all(slice(&original, &records[key]))
        })
        .unwrap();
    let after = reg_ckpt::inspect(&file).unwrap();
    for g in &after.globals {
        assert_eq!(g.verdict, Verdict::Safe, "{rel}: {}", g.global);
    }
    let new_bytes = storage_bytes(&file);
    for t in &after.tensors {
        assert_eq!(
            new_bytes[&t.storage_key],
            slice(&original, &records[&t.storage_key]),
            "{rel}: {}",
            t.path
        );
    }
    let keys: Vec<&str> = wo.storages.iter().map(|(k, _, _)| k.as_str()).collect();
    let mut first_use: Vec<&str> = Vec::new();
    for t in &after.tensors {
        if !first_use.contains(&t.storage_key.as_str()) {
            first_use.push(&t.storage_key);
        }
    }
    assert_eq!(keys, first_use, "{rel}");
    assert_eq!(new_bytes.len(), keys.len(), "{rel}");
    (before, after, file)
}

#[test]
fn lightning_checkpoint_keeps_weights_and_hparams() {
    let (before, after, file) = weights_only_fixture("lightning/mlp/epoch=02.ckpt", "archive");
    let kept: Vec<_> = before
        .tensors
        .iter()
        .filter(|t| weights_only::KEPT_KEYS.contains(&t.path.split('/').next().unwrap_or("")))
        .map(essence)
        .collect();
    assert_eq!(kept.len(), 6);
    assert_eq!(after.tensors.iter().map(essence).collect::<Vec<_>>(), kept);
    assert_eq!(
        after.meta.top_keys,
        [
            "epoch",
            "global_step",
            "pytorch-lightning_version",
            "state_dict",
            "loops",
            "hparams_name",
            "hyper_parameters"
        ]
    );
    assert!(after.meta.optimizers.is_empty() && after.meta.schedulers.is_empty());
    assert!(after.meta.model_checkpoint.is_none());
    assert!(before.meta.hyper_parameters.is_some());
    assert_eq!(after.meta.hyper_parameters, before.meta.hyper_parameters);
    assert_eq!(after.meta.epoch, before.meta.epoch);
    assert_eq!(after.meta.global_step, before.meta.global_step);
    assert_eq!(after.meta.lightning_version, before.meta.lightning_version);
    let g_before = graph_of(&fixture("lightning/mlp/epoch=02.ckpt"));
    let g_after = graph_of(&file);
    let loops = |g: &PickleGraph| {
        let l = reg_ckpt::view::get(g, g.root.unwrap(), "loops").unwrap();
        reg_ckpt::view::to_json(g, l, &|_| None)
    };
    assert_eq!(loops(&g_after), loops(&g_before));
    if let Ok(dir) = std::env::var("REG_WRITE_TEST_OUT") {
        std::fs::write(format!("{dir}/weights_only.ckpt"), &file).unwrap();
    }
}

#[test]
fn plain_checkpoints_are_kept_whole() {
    for (rel, prefix) in [("torch/zoo.pt", "zoo"), ("torch/nested.pt", "nested")] {
        let (before, after, file) = weights_only_fixture(rel, prefix);
        assert_eq!(
            after.tensors.iter().map(essence).collect::<Vec<_>>(),
            before.tensors.iter().map(essence).collect::<Vec<_>>(),
            "{rel}"
        );
        assert!(after.tensors.iter().all(|t| !t.parameter));
        let json = |g: &PickleGraph| reg_ckpt::view::to_json(g, g.root.unwrap(), &|id| describe(g, id));
        let (g_before, g_after) = (graph_of(&fixture(rel)), graph_of(&file));
        assert_eq!(json(&g_after), json(&g_before), "{rel}");
        if let Ok(dir) = std::env::var("REG_WRITE_TEST_OUT") {
            std::fs::write(format!("{dir}/{prefix}.pt"), &file).unwrap();
        }
    }
}

/// A tensor node as a JSON string of what weights-only must keep.
fn describe(g: &PickleGraph, id: reg_pickle::NodeId) -> Option<serde_json::Value> {
    let t = reg_ckpt::tensors::tensor_at(g, id, "").ok().flatten()?;
    let text = format!(
        "{} {:?} {:?} {} {}",
        t.dtype, t.shape, t.stride, t.storage_offset, t.storage_key
    );
    Some(serde_json::Value::String(text))
}

/// The bytes of a view, one element at a time.
fn naive_gather(t: &ExportTensor, storage: &[u8]) -> Vec<u8> {
    let size = t.dtype.size();
    let numel: u64 = t.shape.iter().product();
    let mut out = Vec::new();
    for flat in 0..numel {
        let (mut rest, mut at) = (flat, t.offset);
        for (n, s) in t.shape.iter().zip(&t.stride).rev() {
            at += (rest % n) * s;
            rest /= n;
        }
        out.extend_from_slice(&storage[at as usize * size..][..size]);
    }
    out
}

#[test]
fn safetensors_of_zoo() {
    let file = fixture("torch/zoo.pt");
    let ckpt = reg_ckpt::inspect(&file).unwrap();
    let storages = storage_bytes(&file);
    let tensors: Vec<ExportTensor> = ckpt
        .tensors
        .iter()
        .filter(|t| t.dtype.safetensors_name().is_some())
        .map(ExportTensor::from)
        .collect();
    assert!(tensors.len() >= 15, "views, tied, scalar, empty, bf16, f16 ...");
    let metadata: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let mut reads = 0usize;
    let out = write_safetensors(Vec::new(), &tensors, &metadata, &mut |k| {
        reads += 1;
        Ok(storages[k].clone())
    })
    .unwrap();
    let st = reg_ckpt::safetensors::read(&out).unwrap();
    assert_eq!(st.metadata, Some(metadata));
    assert_eq!(st.tensors.len(), tensors.len());
    for t in &tensors {
        let got = st.tensors.iter().find(|x| x.name == t.name).unwrap();
        assert_eq!((got.dtype, &got.shape), (t.dtype, &t.shape), "{}", t.name);
        assert_eq!(
            slice(&out, &got.data),
            naive_gather(t, &storages[&t.storage_key]),
            "{}",
            t.name
        );
    }
    // complex64 is a safetensors dtype (C64) too: the whole zoo exports.
    let all: Vec<ExportTensor> = ckpt.tensors.iter().map(ExportTensor::from).collect();
    let whole = write_safetensors(Vec::new(), &all, &BTreeMap::new(), &mut |k| Ok(storages[k].clone())).unwrap();
    let back = reg_ckpt::safetensors::read(&whole).unwrap();
    assert!(back
        .tensors
        .iter()
        .any(|t| t.name == "c64" && t.dtype == DType::Complex64));
    if let Ok(dir) = std::env::var("REG_WRITE_TEST_OUT") {
        std::fs::write(format!("{dir}/zoo.safetensors"), &out).unwrap();
    }
}

#[test]
fn deep_and_cyclic_trees_are_refused() {
    // A list containing itself: [[...]] via memo.
    let cyclic = b"\x80\x02]q\x00h\x00a.";
    let graph = parse(cyclic, &Limits::default()).unwrap();
    let err = weights_only(&graph).unwrap_err();
    assert!(err.to_string().contains("deeper than 200"), "{err}");
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', 150));
    deep.extend(std::iter::repeat_n(b'a', 149));
    deep.push(b'.');
    let graph = parse(&deep, &Limits::default()).unwrap();
    assert!(weights_only(&graph).is_ok());
}

#[test]
fn crc_half_of_the_serialization_id_is_torchs() {
    // zoo.pt's id ends in c10::hash_combine over its non-empty records'
    // CRC-32s; fold the same CRCs the same way.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/torch/zoo.pt");
    let f = std::fs::read(path).unwrap();
    let entries = reg_ckpt::zip::read_entries(&f).unwrap();
    let (id_entry, records) = entries.split_last().unwrap();
    let id = &f[id_entry.data.start as usize..id_entry.data.end as usize];
    let mut combined = 0u64;
    for e in records.iter().filter(|e| !e.data.is_empty()) {
        combined = super::torchzip::hash_combine(combined, u64::from(e.crc32));
    }
    assert_eq!(&id[20..], format!("{combined:020}").as_bytes());
}
