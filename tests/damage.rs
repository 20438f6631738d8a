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

/// Files of 32 MiB and more are written by one writer thread that the
/// decoders feed (`write_through_one_writer` in reg-registry's pull): the
/// same bytes come back through delta chains, and damage found by a
/// decoder mid-file still fails the pull with nothing left behind.
#[test]
fn large_files_pull_through_the_writer_thread_and_damage_still_fails() {
    let reg = Reg::new();
    let mut files = Vec::new();
    for epoch in 0..2 {
        let file = reg.work().join(format!("e{epoch}.ckpt"));
        let arg = file.to_string_lossy().into_owned();
        reg.ok(&[
            "bench",
            "generate",
            &arg,
            "--size",
            "80M",
            "--epoch",
            &epoch.to_string(),
        ]);
        reg.ok(&["push", &arg, "--name", "big"]);
        files.push(file);
    }
    reg.ok(&["deltas", "--queued"]);
    let shown = reg.ok(&["show", "big@v1", "--json"]).json();
    assert!(
        shown["stored"]["deltas"].as_u64() >= Some(1),
        "v1 should hold deltas against v2: {}",
        shown["stored"]
    );
    for (n, file) in files.iter().enumerate() {
        let out = reg.work().join(format!("back{n}.ckpt"));
        reg.ok(&["pull", &format!("big@v{}", n + 1), "-o", out.to_str().expect("utf8")]);
        assert!(
            std::fs::read(&out).expect("pulled") == std::fs::read(file).expect("pushed"),
            "big@v{} differs",
            n + 1
        );
        std::fs::remove_file(&out).expect("rm");
    }
    // Damage the largest blob of v1 (a delta) in its middle.
    let path = shown["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .filter_map(|t| t["blob"].as_str())
        .map(|hex| blob_path(&reg, hex))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a tensor");
    let mut bytes = std::fs::read(&path).expect("blob file");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    let out = reg.work().join("out.ckpt");
    let r = reg.run(&["pull", "big@v1", "-o", out.to_str().expect("utf8")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("big@v1"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(reg.work())
        .expect("dir")
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('e'))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}
