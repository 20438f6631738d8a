//! Container readers (zip, torch zip, safetensors, legacy) against the
//! fixtures torch wrote, the bad fixtures, truncations and byte flips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reg_ckpt::segment::{Segment, SegmentKind};
use reg_ckpt::{legacy, safetensors, torchzip, zip};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn load(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn expected(rel: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected").join(format!("{rel}.json")))
        .unwrap_or_else(|e| panic!("{rel}.json: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn slice<'a>(file: &'a [u8], r: &std::ops::Range<u64>) -> &'a [u8] {
    &file[r.start as usize..r.end as usize]
}

/// Segments tile 0..len in order; payload keys are exactly `keys` (sorted).
fn check_segments(segs: &[Segment], len: u64, mut keys: Vec<String>) {
    let mut at = 0;
    let mut payloads = Vec::new();
    for s in segs {
        assert_eq!(s.range.start, at, "gap or overlap at {at}");
        assert!(s.range.end >= s.range.start);
        at = s.range.end;
        match &s.kind {
            SegmentKind::Payload { storage_key } => payloads.push(storage_key.clone()),
            SegmentKind::Skeleton => assert!(!s.is_empty()),
        }
    }
    assert_eq!(at, len);
    payloads.sort();
    keys.sort();
    assert_eq!(payloads, keys);
}

const ZIPS: &[&str] = &[
    "torch/zoo.pt",
    "torch/mlp_state_dict.pt",
    "torch/nested.pt",
    "lightning/mlp/epoch=00.ckpt",
    "lightning/mlp/epoch=01.ckpt",
    "lightning/mlp/epoch=02.ckpt",
    "lightning/mlp/epoch=03.ckpt",
    "lightning/mlp/last.ckpt",
    "lightning/mlp-finetune/epoch=00.ckpt",
    "lightning/mlp-finetune/epoch=01.ckpt",
];

#[test]
fn zip_fixtures_match_torch() {
    for rel in ZIPS {
        let file = load(rel);
        let want = expected(rel);
        assert!(torchzip::is_zip(&file), "{rel}");
        assert!(!safetensors::looks_like(&file) && !legacy::looks_like(&file));
        let z = torchzip::read(&file).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let names: Vec<&str> = z.entries.iter().map(|e| e.name.as_str()).collect();
        let want_names: Vec<&str> = want["zip_entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(names, want_names, "{rel}");
        let stem = Path::new(rel).file_stem().unwrap().to_str().unwrap();
        let prefix = if rel.starts_with("lightning") {
            "archive/".to_owned()
        } else {
            format!("{stem}/")
        };
        assert_eq!(z.prefix, prefix);
        assert_eq!(&file[z.pickle.start as usize..z.pickle.start as usize + 2], b"\x80\x02");
        assert_eq!(file[z.pickle.end as usize - 1], b'.');

        let got: BTreeMap<String, (u64, String)> = z
            .storages
            .iter()
            .map(|(k, r)| (k.clone(), (r.end - r.start, sha256(slice(&file, r)))))
            .collect();
        let wanted: BTreeMap<String, (u64, String)> = want["storages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let key = s["key"].as_str().unwrap().to_owned();
                let n = s["nbytes"].as_u64().unwrap();
                (key, (n, s["sha256"].as_str().unwrap().to_owned()))
            })
            .collect();
        assert_eq!(got, wanted, "{rel}");
        let segs = z.segments(file.len() as u64);
        check_segments(&segs, file.len() as u64, got.keys().cloned().collect());
    }
}

#[test]
fn zip_entries_are_ordered_and_in_bounds() {
    let file = load("torch/zoo.pt");
    let entries = zip::read_entries(&file).unwrap();
    let mut prev_end = 0;
    for e in &entries {
        assert!(e.header_offset >= prev_end);
        assert!(e.data.start >= e.header_offset + 30);
        assert_eq!(e.method, 0);
        // torch pads records so their data is 64-byte aligned.
        assert_eq!(e.data.start % 64, 0, "{}", e.name);
        prev_end = e.data.end;
    }
}

#[test]
fn legacy_fixture() {
    let file = load("torch/legacy.pt");
    assert!(legacy::looks_like(&file));
    assert!(!torchzip::is_zip(&file));
    let l = legacy::read(&file).unwrap();
    assert_eq!(l.storages.len(), 6);
    let want = expected("torch/legacy.pt");
    let mut want_sha: Vec<String> = want["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["sha256"].as_str().unwrap().to_owned())
        .collect();
    let mut got_sha: Vec<String> = l.storages.iter().map(|s| sha256(slice(&file, &s.data))).collect();
    want_sha.sort();
    got_sha.sort();
    assert_eq!(got_sha, want_sha);
    for s in &l.storages {
        assert_eq!(s.dtype, reg_ckpt::DType::Float32);
        assert_eq!(s.data.end - s.data.start, s.numel * 4);
    }
    assert!(l.object_pickle.start > 0 && l.object_pickle.end < l.storages[0].data.start);
    assert!(l.object.root.is_some());
    let keys = l.storages.iter().map(|s| s.key.clone()).collect();
    check_segments(&l.segments(file.len() as u64), file.len() as u64, keys);
}

#[test]
fn safetensors_fixtures() {
    for name in ["mlp", "zoo"] {
        let rel = format!("safetensors/{name}.safetensors");
        let file = load(&rel);
        assert!(safetensors::looks_like(&file));
        let want = expected(&rel);
        let st = safetensors::read(&file).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let want_meta: Option<BTreeMap<String, String>> = serde_json::from_value(want["metadata"].clone()).unwrap();
        assert_eq!(st.metadata, want_meta);
        let got: BTreeMap<String, (String, Vec<u64>, String)> = st
            .tensors
            .iter()
            .map(|t| {
                let v = (
                    t.dtype.name().to_owned(),
                    t.shape.clone(),
                    sha256(slice(&file, &t.data)),
                );
                (t.name.clone(), v)
            })
            .collect();
        let wanted: BTreeMap<String, (String, Vec<u64>, String)> = want["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let shape = serde_json::from_value(t["shape"].clone()).unwrap();
                let v = (
                    t["dtype"].as_str().unwrap().to_owned(),
                    shape,
                    t["sha256"].as_str().unwrap().to_owned(),
                );
                (t["path"].as_str().unwrap().to_owned(), v)
            })
            .collect();
        assert_eq!(got, wanted, "{rel}");
        assert!(st.tensors.windows(2).all(|w| w[0].data.end == w[1].data.start));
        assert_eq!(st.header.start, 8);
        let keys = st.tensors.iter().map(|t| t.name.clone()).collect();
        check_segments(&st.segments(file.len() as u64), file.len() as u64, keys);
    }
}

#[test]
fn bad_fixtures_are_refused() {
    for rel in [
        "bad/truncated.ckpt",
        "bad/garbage.ckpt",
        "bad/empty.ckpt",
        "bad/bad_crc.ckpt",
    ] {
        let file = load(rel);
        assert!(torchzip::read(&file).is_err(), "{rel}");
        assert!(legacy::read(&file).is_err(), "{rel}");
        assert!(safetensors::read(&file).is_err(), "{rel}");
    }
    let e = torchzip::read(&load("bad/bad_crc.ckpt")).unwrap_err().to_string();
    assert!(
        e.starts_with("zip entry archive/data/") && e.contains("crc mismatch"),
        "{e}"
    );
    let e = torchzip::read(&load("bad/truncated.ckpt")).unwrap_err().to_string();
    assert_eq!(e, "not a zip: no end of central directory record");
    let e = safetensors::read(&load("bad/huge_header.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("header length 1152921504606846976"), "{e}");
    assert!(!safetensors::looks_like(&load("bad/huge_header.safetensors")));
    let e = safetensors::read(&load("bad/short_data.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("tensor w") && e.contains("past the end"), "{e}");
    // evil.pt is a well-formed zip; reading the container runs nothing.
    let evil = torchzip::read(&load("bad/evil.pt"));
    assert!(evil.is_ok(), "{evil:?}");
}

#[test]
fn every_truncation_errors() {
    let zoo = load("torch/zoo.pt");
    for n in (0..zoo.len()).step_by(7) {
        assert!(torchzip::read(&zoo[..n]).is_err(), "zoo.pt[..{n}]");
    }
    let st = load("safetensors/zoo.safetensors");
    for n in 0..st.len() {
        assert!(safetensors::read(&st[..n]).is_err(), "zoo.safetensors[..{n}]");
    }
    let lg = load("torch/legacy.pt");
    for n in (0..lg.len()).step_by(97) {
        assert!(legacy::read(&lg[..n]).is_err(), "legacy.pt[..{n}]");
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn flips(file: &[u8], seed: u64, rounds: usize, check: impl Fn(&[u8])) {
    let mut rng = Rng(seed);
    let mut buf = file.to_vec();
    for _ in 0..rounds {
        let n = 1 + rng.next() % 3;
        let mut changed = Vec::new();
        for _ in 0..n {
            let i = (rng.next() % file.len() as u64) as usize;
            buf[i] ^= 1 << (rng.next() % 8);
            changed.push(i);
        }
        check(&buf);
        for i in changed {
            buf[i] = file[i];
        }
    }
}

#[test]
fn random_flips_never_panic() {
    let zoo = load("torch/zoo.pt");
    flips(&zoo, 1, 3000, |f| {
        if let Ok(z) = torchzip::read(f) {
            check_segments(
                &z.segments(f.len() as u64),
                f.len() as u64,
                z.storages.iter().map(|s| s.0.clone()).collect(),
            );
        }
        let _ = zip::read_entries(f);
    });
    let st = load("safetensors/zoo.safetensors");
    flips(&st, 2, 3000, |f| {
        if let Ok(s) = safetensors::read(f) {
            let keys = s.tensors.iter().map(|t| t.name.clone()).collect();
            check_segments(&s.segments(f.len() as u64), f.len() as u64, keys);
        }
    });
    let lg = load("torch/legacy.pt");
    let head = &lg[..lg.len().min(2000)];
    flips(&lg, 3, 1000, |f| {
        let _ = legacy::read(f);
        let _ = legacy::looks_like(head);
    });
}
