use crate::common::{fixture, fixture_files, Reg};

#[test]
fn every_fixture_pulls_back_byte_identical() {
    let reg = Reg::new();
    let files = fixture_files(&["lightning", "torch", "safetensors"]);
    assert!(files.len() >= 13, "fixtures missing: {files:?}");
    for (i, rel) in files.iter().enumerate() {
        let name = format!("m{i}");
        let pushed = reg.push(rel, &name).json();
        let version = pushed["version"].as_u64().expect("version");
        let out = reg.work().join(format!("out{i}"));
        reg.ok(&["pull", &format!("{name}@v{version}"), "-o", out.to_str().expect("utf8")]);
        let original = std::fs::read(fixture(rel)).expect("read fixture");
        let pulled = std::fs::read(&out).expect("read pulled");
        assert!(original == pulled, "{rel}: pulled file differs");
    }
}

#[test]
fn pull_defaults_to_original_name_and_never_overwrites() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=02.ckpt", "mlp");
    reg.ok(&["pull", "mlp"]);
    let out = reg.work().join("epoch=02.ckpt");
    assert_eq!(
        std::fs::read(&out).ok(),
        std::fs::read(fixture("lightning/mlp/epoch=02.ckpt")).ok()
    );
    std::fs::write(&out, b"mine").expect("write");
    let again = reg.run(&["pull", "mlp"]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(std::fs::read(&out).ok().as_deref(), Some(&b"mine"[..]));
    reg.ok(&["pull", "mlp", "--force"]);
    assert_eq!(
        std::fs::read(&out).ok(),
        std::fs::read(fixture("lightning/mlp/epoch=02.ckpt")).ok()
    );
}

#[test]
fn identical_file_adds_no_version() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=03.ckpt", "mlp");
    let again = reg.push("lightning/mlp/last.ckpt", "mlp").json();
    assert_eq!(again["created"], false);
    assert_eq!(again["version"], 1);
    let plain = reg.ok(&[
        "push",
        fixture("lightning/mlp/last.ckpt").to_str().expect("utf8"),
        "-n",
        "mlp",
    ]);
    assert!(plain.stdout.contains("identical to mlp@v1"), "{}", plain.stdout);
    assert_eq!(
        reg.ok(&["log", "mlp", "--json"]).json().as_array().map(Vec::len),
        Some(1)
    );
}
