//! What the library-level tests share: a scratch registry, the fixtures of
//! `tests/fixtures/` (see its README.md), small checkpoints written with
//! `reg_write` for shapes the fixtures lack, and looks at blob
//! headers through the store's own API.
//!
//! Each test binary uses part of this module.
#![allow(dead_code)]

use reg_ckpt::DType;
use reg_registry::{Config, Manifest, PushOptions, PushReport, Registry, Resolved, VersionRef};
use reg_store::BlobId;
use reg_write::{write_checkpoint, Emit, StorageSource, TensorRef};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The Lightning run of the fixtures, oldest first (`last.ckpt` is
/// byte-identical to `epoch=03.ckpt`).
pub const SERIES: [&str; 4] = [
    "lightning/mlp/epoch=00.ckpt",
    "lightning/mlp/epoch=01.ckpt",
    "lightning/mlp/epoch=02.ckpt",
    "lightning/mlp/epoch=03.ckpt",
];

/// The fine-tune started from epoch 3 (same frozen encoder).
pub const FINETUNE: [&str; 2] = [
    "lightning/mlp-finetune/epoch=00.ckpt",
    "lightning/mlp-finetune/epoch=01.ckpt",
];

/// The run whose ModelCheckpoint monitors `val_loss` (mode min).
pub const MONITORED: [&str; 4] = [
    "lightning/monitored/epoch=00.ckpt",
    "lightning/monitored/epoch=01.ckpt",
    "lightning/monitored/epoch=02.ckpt",
    "lightning/monitored/epoch=03.ckpt",
];

/// The trainable layer of the mlp run that changes every epoch.
pub const HEAD: &str = "state_dict/head.2.weight";
/// The frozen layer of the mlp run (identical every epoch).
pub const ENCODER: &str = "state_dict/encoder.weight";

/// A fixture file by its path under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

/// The JSON torch itself wrote about a fixture (`expected/<rel>.json`).
pub fn expected(rel: &str) -> serde_json::Value {
    let path = fixture(&format!("expected/{rel}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A registry in a temp folder, with a work folder beside it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub reg: Registry,
}

impl Scratch {
    /// A registry with the library defaults, but the work pushes leave
    /// only queued (`BackgroundRunner::Queue`): tests run
    /// [`Registry::make_deltas`] themselves.
    pub fn new() -> Scratch {
        Scratch::with(|_| {})
    }

    /// A registry whose settings `tweak` changes.
    pub fn with(tweak: impl FnOnce(&mut Config)) -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::at(dir.path().join("reg"));
        config.durability = reg_store::Durability::Fast;
        tweak(&mut config);
        let reg = Registry::open(config)
            .expect("open registry")
            .with_background(reg_registry::BackgroundRunner::Queue);
        std::fs::create_dir_all(dir.path().join("work")).expect("work dir");
        Scratch { dir, reg }
    }

    /// The work folder (inputs written by tests, pulled files).
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Push a file as `name`.
    pub fn push(&self, path: &Path, name: &str) -> PushReport {
        self.push_opts(path, &named(name))
    }

    /// Push a file with options.
    pub fn push_opts(&self, path: &Path, opts: &PushOptions) -> PushReport {
        self.reg
            .push(path, opts)
            .unwrap_or_else(|e| panic!("push {}: {e}", path.display()))
    }

    /// Push a fixture as `name`.
    pub fn push_fixture(&self, rel: &str, name: &str) -> PushReport {
        self.push(&fixture(rel), name)
    }

    /// Push fixtures in order as `name`; each must make a new version.
    pub fn push_all(&self, rels: &[&str], name: &str) {
        for rel in rels {
            assert!(self.push_fixture(rel, name).created, "{rel} made no version");
        }
    }

    /// Push the mlp run as `name` (v1..v4) and make its deltas.
    pub fn push_series_with_deltas(&self, name: &str) {
        self.push_all(&SERIES, name);
        self.reg
            .make_deltas(&model(name), reg_format::VersionNumber(1), &reg_registry::Silent)
            .expect("make_deltas");
    }

    /// Resolve `NAME@REF`.
    pub fn resolve(&self, spec: &str) -> Resolved {
        let r = VersionRef::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        self.reg.resolve(&r).unwrap_or_else(|e| panic!("resolve {spec}: {e}"))
    }

    /// The bytes a version pulls as.
    pub fn pulled(&self, v: &Resolved) -> Vec<u8> {
        let out = self
            .work()
            .join(format!("pulled-{}-v{}", v.manifest.name, v.manifest.number));
        self.reg.pull(v, &out, true).expect("pull");
        let bytes = std::fs::read(&out).expect("read pulled file");
        std::fs::remove_file(&out).expect("remove pulled file");
        bytes
    }

    /// Assert that `spec` pulls byte-identical to the fixture `rel`.
    pub fn assert_pulls(&self, spec: &str, rel: &str) {
        let pulled = self.pulled(&self.resolve(spec));
        let original = std::fs::read(fixture(rel)).expect("read fixture");
        assert!(pulled == original, "{spec} does not pull byte-identical to {rel}");
    }

    /// Every blob file in the store.
    pub fn blobs_on_disk(&self) -> BTreeSet<BlobId> {
        self.reg.store().list().expect("list blobs").into_iter().collect()
    }

    /// The parent a blob's header names (None: self-contained).
    pub fn parent(&self, id: BlobId) -> Option<BlobId> {
        self.reg.store().describe(id).expect("describe blob").parent
    }

    /// Links from a blob to the self-contained blob its chain ends in.
    pub fn chain_len(&self, id: BlobId) -> usize {
        self.reg.store().chain(id).expect("blob chain").len()
    }

    /// Every blob of every version, with the file bytes of each blob, to
    /// see that nothing changed.
    pub fn store_snapshot(&self) -> Vec<(BlobId, Vec<u8>)> {
        self.blobs_on_disk()
            .into_iter()
            .map(|id| (id, std::fs::read(self.reg.store().path_of(id)).expect("read blob file")))
            .collect()
    }

    /// Version numbers of a name.
    pub fn numbers(&self, name: &str) -> Vec<u32> {
        self.reg
            .versions(&model(name))
            .expect("versions")
            .iter()
            .map(|v| v.number.get())
            .collect()
    }
}

/// Push options with a name.
pub fn named(name: &str) -> PushOptions {
    PushOptions {
        name: Some(name.to_string()),
        ..PushOptions::default()
    }
}

/// The blob holding a tensor of a version.
pub fn blob_of(m: &Manifest, path: &str) -> BlobId {
    m.tensors
        .iter()
        .find(|t| t.path == path)
        .and_then(|t| t.blob)
        .unwrap_or_else(|| panic!("{}@v{} has no tensor {path}", m.name, m.number))
}

/// A tensor of a checkpoint made by [`write_ckpt`]: a view of its own
/// storage, `bytes`.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
    /// Strides in elements.
    pub stride: Vec<u64>,
    /// First element in the storage.
    pub offset: u64,
    pub bytes: Vec<u8>,
}

impl Tensor {
    /// A contiguous tensor that is its whole storage.
    pub fn new(name: &str, dtype: DType, shape: &[u64], bytes: Vec<u8>) -> Tensor {
        let numel: u64 = shape.iter().product();
        assert_eq!(
            numel as usize * dtype.size(),
            bytes.len(),
            "{name}: bytes do not fit the shape"
        );
        let mut stride = vec![1u64; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * shape[d + 1];
        }
        Tensor::view(name, dtype, shape, &stride, 0, bytes)
    }

    /// A strided view of a storage.
    pub fn view(name: &str, dtype: DType, shape: &[u64], stride: &[u64], offset: u64, bytes: Vec<u8>) -> Tensor {
        assert_eq!(bytes.len() % dtype.size(), 0, "{name}: a partial element");
        Tensor {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
            offset,
            bytes,
        }
    }
}

/// Write a Lightning-shaped torch zip: `epoch`, `global_step`, a
/// `state_dict` of `tensors` (in order, each its own storage) and the
/// `extra` top-level entries after them.
pub fn write_ckpt(path: &Path, epoch: i64, step: i64, tensors: &[Tensor], extra: Vec<(Emit, Emit)>) {
    let state_dict: Vec<(Emit, Emit)> = tensors
        .iter()
        .enumerate()
        .map(|(key, t)| {
            let view = Emit::Tensor(TensorRef {
                storage_key: key.to_string(),
                dtype: t.dtype,
                storage_numel: (t.bytes.len() / t.dtype.size()) as u64,
                offset: t.offset,
                shape: t.shape.clone(),
                stride: t.stride.clone(),
                requires_grad: false,
            });
            (Emit::Str(t.name.clone()), view)
        })
        .collect();
    let mut root = vec![
        (Emit::Str("epoch".into()), Emit::Int(epoch)),
        (Emit::Str("global_step".into()), Emit::Int(step)),
        (Emit::Str("pytorch-lightning_version".into()), Emit::Str("2.6.6".into())),
        (Emit::Str("state_dict".into()), Emit::OrderedDict(state_dict)),
    ];
    root.extend(extra);
    let pickle = reg_write::to_pickle(&Emit::Dict(root)).expect("pickle");
    let sources: Vec<StorageSource<'_>> = tensors
        .iter()
        .enumerate()
        .map(|(key, t)| StorageSource {
            key: key.to_string(),
            len: t.bytes.len() as u64,
            fill: Box::new(move |w: &mut dyn std::io::Write| w.write_all(&t.bytes)),
        })
        .collect();
    let file = std::fs::File::create(path).expect("create checkpoint");
    write_checkpoint(std::io::BufWriter::new(file), "archive", &pickle, sources).expect("write checkpoint");
}

/// A ModelCheckpoint callback entry for [`write_ckpt`]'s `extra`: it
/// monitors `metric` in `mode` and saw `score` for this checkpoint.
pub fn model_checkpoint(metric: &str, mode: &str, score: f64) -> (Emit, Emit) {
    let key = format!("ModelCheckpoint{{'monitor': '{metric}', 'mode': '{mode}'}}");
    let state = Emit::Dict(vec![
        (Emit::Str("monitor".into()), Emit::Str(metric.into())),
        (Emit::Str("mode".into()), Emit::Str(mode.into())),
        (Emit::Str("best_model_score".into()), Emit::Float(score)),
        (Emit::Str("current_score".into()), Emit::Float(score)),
    ]);
    (Emit::Str("callbacks".into()), Emit::Dict(vec![(Emit::Str(key), state)]))
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A value in about [-1, 1) for a counter.
fn unit(key: u64) -> f64 {
    (splitmix(key) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// `n` weights of a layer at some step of training: values of `seed` that
/// drift by `drift` per step (0: the same values every time), the way
/// trained weights change between epochs.
pub fn weights(seed: u64, n: usize, step: u32, drift: f64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let key = seed.wrapping_mul(0x1_0000_0001) ^ i;
            0.05 * unit(key) + drift * f64::from(step) * unit(key ^ 0xD1F7_0000_0000)
        })
        .collect()
}

/// Little-endian bytes of `values` in `dtype` (f32, f64, f16, bf16, i64).
pub fn encode(values: &[f64], dtype: DType) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * dtype.size());
    for &v in values {
        match dtype {
            DType::Float32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            DType::Float64 => out.extend_from_slice(&v.to_le_bytes()),
            // bfloat16: the upper half of the f32.
            DType::Bfloat16 => out.extend_from_slice(&(((v as f32).to_bits() >> 16) as u16).to_le_bytes()),
            DType::Float16 => out.extend_from_slice(&f16_bits(v as f32).to_le_bytes()),
            DType::Int64 => out.extend_from_slice(&((v * 1e6) as i64).to_le_bytes()),
            other => panic!("encode: {other:?} not covered"),
        }
    }
    out
}

/// IEEE half precision bits of a small normal f32 (truncated mantissa).
fn f16_bits(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xFF) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    sign | ((exp.min(30) as u16) << 10) | ((b >> 13) & 0x3FF) as u16
}

/// `name` as a model name (the tests name their models validly).
pub fn model(name: &str) -> reg_format::ModelName {
    reg_format::ModelName::new(name).expect("a valid model name")
}

/// `tag` as a tag name (the tests' tags are valid).
pub fn tag(tag: &str) -> reg_format::TagName {
    reg_format::TagName::new(tag).expect("a valid tag")
}
