use crate::common::Reg;

fn blob_path(reg: &Reg, hex: &str) -> std::path::PathBuf {
    reg.home().join("blobs").join(&hex[..2]).join(&hex[2..])
}

#[test]
fn damaged_blob_fails_pull_and_writes_nothing() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=01.ckpt", "mlp");
    let shown = reg.ok(&["show", "mlp", "--json"]).json();
    let hex = shown["tensors"][2]["blob"].as_str().expect("blob").to_string();
    let path = blob_path(&reg, &hex);
    let mut bytes = std::fs::read(&path).expect("blob file");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    let out = reg.work().join("out.ckpt");
    let r = reg.run(&["pull", "mlp@v1", "-o", out.to_str().expect("utf8")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("mlp@v1"), "{}", r.stderr);
    assert!(r.stderr.contains(&hex[..12]), "{}", r.stderr);
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(reg.work()).expect("dir").flatten().collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn missing_blob_fails_pull() {
    let reg = Reg::new();
    reg.push("torch/zoo.pt", "zoo");
    let shown = reg.ok(&["show", "zoo", "--json"]).json();
    let hex = shown["tensors"][0]["blob"].as_str().expect("blob").to_string();
    std::fs::remove_file(blob_path(&reg, &hex)).expect("remove");
    let r = reg.run(&["pull", "zoo", "-o", "z.pt"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("zoo@v1") && r.stderr.contains("missing"),
        "{}",
        r.stderr
    );
    assert!(!reg.work().join("z.pt").exists());
}
