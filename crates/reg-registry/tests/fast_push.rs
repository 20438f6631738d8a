//! A fast push (`PushOptions::fast`) through the library: new tensors are
//! stored raw and queued in the index; the registry's stats count them;
//! the background work (here run by hand: the scratch registry queues)
//! compresses them; every version pulls byte-identical throughout, and a
//! registry that runs its work inline stores no raw blob.

mod common;

use common::{write_ckpt, Scratch, Tensor};
use reg_ckpt::DType;
use reg_registry::{BackgroundRunner, PushOptions, VersionRef};

/// `n` float32 values in a narrow range, as a training step leaves them:
/// the same from epoch to epoch but for one in eight, nudged by `epoch`.
fn floats(n: usize, epoch: u32) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(n * 4);
    for i in 0..n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut v = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.02;
        if i % 8 == 0 {
            v += epoch as f32 * 1e-4;
        }
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn epoch_file(s: &Scratch, epoch: u32) -> std::path::PathBuf {
    let path = s.work().join(format!("epoch={epoch}.ckpt"));
    let tensors = [
        Tensor::new("big.weight", DType::Float32, &[256, 256], floats(65536, epoch)),
        Tensor::new("small.bias", DType::Float32, &[16], floats(16, epoch)),
    ];
    write_ckpt(&path, i64::from(epoch), i64::from(epoch) * 10, &tensors, Vec::new());
    path
}

fn fast(name: &str) -> PushOptions {
    PushOptions {
        name: Some(name.into()),
        fast: true,
        ..PushOptions::default()
    }
}

fn pulls_identical(s: &Scratch, label: &str, src: &std::path::Path) {
    let v = s.reg.resolve(&VersionRef::parse(label).expect("ref")).expect("resolve");
    let out = s.work().join("pulled.ckpt");
    s.reg.pull(&v, &out, true).expect("pull");
    assert!(
        std::fs::read(&out).expect("pulled") == std::fs::read(src).expect("source"),
        "{label}"
    );
}

#[test]
fn a_fast_push_is_raw_until_the_background_work_compresses_it() {
    let s = Scratch::new();
    let files: Vec<_> = (0..2).map(|e| epoch_file(&s, e)).collect();
    let first = s.push_opts(&files[0], &fast("run"));
    // The big storage is deferred; the small one is encoded at once.
    assert_eq!(first.deferred.len(), 1, "{first:?}");
    assert_eq!(s.reg.stats().expect("stats").deferred_blobs, 1);
    pulls_identical(&s, "run@v1", &files[0]);
    let second = s.push_opts(&files[1], &fast("run"));
    assert_eq!(second.deferred.len(), 1, "{second:?}");
    let before = s.reg.stats().expect("stats");
    assert_eq!(before.deferred_blobs, 2);
    assert_eq!(
        before.codecs.get("raw").map(|c| c.0 >= 2),
        Some(true),
        "{:?}",
        before.codecs
    );

    s.reg.wait_background().expect("background work");
    let after = s.reg.stats().expect("stats");
    assert_eq!(after.deferred_blobs, 0);
    assert!(after.stored_bytes < before.stored_bytes, "{before:?} -> {after:?}");
    // v1's big tensor became a delta against v2's; v2's is compressed.
    assert!(after.codecs.contains_key("delta"), "{:?}", after.codecs);
    assert!(after.codecs.contains_key("planes"), "{:?}", after.codecs);
    pulls_identical(&s, "run@v1", &files[0]);
    pulls_identical(&s, "run@v2", &files[1]);
    assert!(s.reg.verify(None, true).expect("verify").is_clean());
}

#[test]
fn a_registry_that_runs_its_work_inline_defers_nothing() {
    let s = Scratch::new();
    let reg = reg_registry::Registry::open(s.reg.config().clone())
        .expect("open")
        .with_background(BackgroundRunner::Inline);
    let file = epoch_file(&s, 0);
    let r = reg.push(&file, &fast("run")).expect("push");
    assert_eq!(r.deferred.len(), 0, "{r:?}");
    assert_eq!(reg.stats().expect("stats").deferred_blobs, 0);
    // The big storage was encoded at push (byte planes), not left raw.
    let codecs = reg.stats().expect("stats").codecs;
    assert!(codecs.contains_key("planes"), "{codecs:?}");
}
