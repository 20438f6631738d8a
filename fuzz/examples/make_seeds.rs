//! Writes the synthetic seeds that the fixtures lack into `fuzz/seeds/`:
//! a small Lightning-shaped torch zip (inspect, torchzip; its data.pkl for
//! pickle), blob encodings of every transform (codecs_decode), and the
//! manifests of the fixture registries and of pushed files and folders,
//! with the Trainer's `trainer_state.json` files (manifest).
//!
//! Run from `fuzz/`: `cargo run --release --example make_seeds`. The output
//! is deterministic; the files are committed, so this only needs re-running
//! when the formats change.
use reg_store::codecs::{encode, Transform};
use reg_store::BlobId;
use std::path::Path;

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("seeds").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("seeds/{target}/{name}: {} bytes", bytes.len());
}

fn main() {
    // A tiny Lightning-shaped checkpoint: 3 layers, 1 frozen, Adam state.
    let spec = reg_write::synth::RunSpec {
        file_bytes: 2048,
        layers: 3,
        frozen: 1,
        seed: 1,
        label: 0,
    };
    let ckpt = reg_write::synth::write_epoch(Vec::new(), &spec, 1).unwrap();
    reg_ckpt::inspect(&ckpt).expect("the synthetic checkpoint reads back");
    put("torchzip", "synth_small.ckpt", &ckpt);
    put("inspect", "synth_small.ckpt", &ckpt);
    let zip = reg_ckpt::torchzip::read(&ckpt).unwrap();
    let pkl = &ckpt[zip.pickle.start as usize..zip.pickle.end as usize];
    put("pickle", "synth_small_data.pkl", pkl);

    // Blob encodings: the harness decodes with the header's raw length and,
    // for XOR deltas, an all-zero parent of that length.
    let floats: Vec<u8> = (0..3000u32).flat_map(|i| ((i as f32) * 0.01).sin().to_le_bytes()).collect();
    let mut sparse = vec![0u8; 4096];
    for i in (0..sparse.len()).step_by(52) {
        sparse[i] = (i % 251) as u8 + 1;
    }
    // Over one 1 MiB block, compressible, with an odd tail.
    let big: Vec<u8> = (0..(1u32 << 20) + 1234 + 3).map(|i| ((i / 4096) % 7) as u8).collect();
    let zero_parent = |len: usize| vec![0u8; len];
    let cases: Vec<(&str, &[u8], Transform)> = vec![
        ("none_floats", &floats, Transform::None),
        ("none_short", b"hello, blob", Transform::None),
        ("none_empty", b"", Transform::None),
        ("planes4_floats", &floats, Transform::Planes { width: 4 }),
        ("planes2_floats_tail", &floats[..4001], Transform::Planes { width: 2 }),
        ("planes8_floats", &floats[..4000], Transform::Planes { width: 8 }),
        ("planes1_floats", &floats, Transform::Planes { width: 1 }),
        ("planes4_sparse", &sparse, Transform::Planes { width: 4 }),
        ("planes2_big", &big, Transform::Planes { width: 2 }),
        ("none_big", &big, Transform::None),
    ];
    for (name, raw, t) in cases {
        let enc = encode(raw, t, None, 3).unwrap();
        put("codecs_decode", &format!("{name}.bin"), &enc.bytes);
    }
    // choose() codes the sign-and-exponent planes of floats with Huffman.
    for (name, raw, width) in [("choose4_floats", &floats, 4u8), ("choose2_big", &big, 2)] {
        let enc = reg_store::codecs::choose(raw, width, None, 3).unwrap();
        put("codecs_decode", &format!("{name}.bin"), &enc.bytes);
    }
    let xor_cases: Vec<(&str, &[u8], u8)> = vec![
        ("xor4_floats", &floats, 4),
        ("xor4_sparse", &sparse, 4),
        ("xor8_floats_tail", &floats[..4005], 8),
        ("xor1_sparse", &sparse, 1),
        ("xor2_big", &big, 2),
    ];
    for (name, raw, width) in xor_cases {
        let parent = zero_parent(raw.len());
        let t = Transform::XorPlanes {
            width,
            parent: BlobId::of(&parent),
        };
        let enc = encode(raw, t, Some(&parent), 3).unwrap();
        assert_eq!(reg_store::codecs::decode(&enc.bytes, raw.len() as u64, Some(&parent)).unwrap(), raw);
        put("codecs_decode", &format!("{name}.bin"), &enc.bytes);
    }

    manifest_seeds();
}

/// Every manifest of the fixture registries (the one the last release
/// wrote with a NaN score among them) and of a fresh push of a file, a
/// DCP folder and a Trainer checkpoint; and `trainer_state.json` files.
fn manifest_seeds() {
    let fixtures = Path::new("../tests/fixtures");
    let scratch = tempfile::tempdir().unwrap();
    let mut registries = Vec::new();
    for fixture in ["registry-nan-score", "registry-format1"] {
        let home = scratch.path().join(fixture);
        copy_dir(&fixtures.join(fixture), &home);
        registries.push((fixture.to_string(), home));
    }
    let fresh = scratch.path().join("fresh");
    let reg = reg_registry::Registry::open(reg_registry::Config::at(&fresh)).unwrap();
    for (rel, name) in [
        ("lightning/diverged/epoch=01.ckpt", "diverged"),
        ("dirs/dcp/fsdp2-2rank", "dcp"),
        ("dirs/hf-trainer/tiny-bert/checkpoint-8", "trainer"),
    ] {
        let opts = reg_registry::PushOptions {
            name: Some(name.into()),
            ..Default::default()
        };
        reg.push(&fixtures.join(rel), &opts).unwrap();
    }
    drop(reg);
    registries.push(("fresh".into(), fresh));
    for (label, home) in registries {
        let reg = reg_registry::Registry::open(reg_registry::Config::at(&home)).unwrap();
        for entry in reg.ls_view().unwrap() {
            for v in reg.versions(&entry.name).unwrap() {
                let json = reg.manifest_json(&entry.name, &v).unwrap();
                put("manifest", &format!("{label}-{}-v{}.json", entry.name, v.number), &json);
            }
        }
    }
    for rel in ["dirs/hf-trainer/tiny-bert/checkpoint-8/trainer_state.json"] {
        let text = std::fs::read(fixtures.join(rel)).unwrap();
        put("manifest", "trainer_state.json", &text);
    }
    put("manifest", "python_nan.json", br#"{"loss": NaN, "best": -Infinity, "lr": [1e-3, Infinity], "s": "NaN", "$float": 1}"#);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
