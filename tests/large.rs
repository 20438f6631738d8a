use crate::common::Reg;
use std::io::Read;

fn file_hash(path: &std::path::Path) -> blake3::Hash {
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize()
}

/// Checkpoints over 4 GiB (zip64 offsets, and one storage over 4 GiB for
/// zip64 sizes) push and pull byte-identical. Needs about 20 GB of disk and
/// a few minutes: run with `cargo test --release --test tests large -- --ignored`.
#[test]
#[ignore]
fn checkpoints_over_4_gib_round_trip() {
    let reg = Reg::new();
    for (name, extra) in [
        ("many", vec![]),
        ("one-storage", vec!["--layers", "1", "--frozen", "1"]),
    ] {
        let src = reg.work().join(format!("{name}.ckpt"));
        let mut args = vec!["bench", "generate", src.to_str().expect("utf8"), "--size", "4.3G"];
        args.extend(extra);
        reg.ok(&args);
        assert!(std::fs::metadata(&src).expect("meta").len() > 4 << 30);
        reg.ok(&["push", src.to_str().expect("utf8"), "-n", name]);
        let out = reg.work().join(format!("{name}.pulled"));
        reg.ok(&["pull", name, "-o", out.to_str().expect("utf8")]);
        assert_eq!(file_hash(&src), file_hash(&out), "{name}");
        let shown = reg.ok(&["show", name, "--json"]).json();
        assert!(shown["size"].as_u64() > Some(4 << 30));
        std::fs::remove_file(&src).expect("rm");
        std::fs::remove_file(&out).expect("rm");
    }
    reg.ok(&["verify"]);
}
