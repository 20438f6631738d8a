use crate::common::Reg;

#[test]
fn bench_compress_accounts_for_every_stored_byte_by_role_against_its_entropy_bound() {
    let reg = Reg::new();
    for epoch in ["0", "1", "2"] {
        let f = reg.work().join(format!("e{epoch}.ckpt"));
        reg.ok(&[
            "bench",
            "generate",
            f.to_str().expect("utf8"),
            "--size",
            "2M",
            "--epoch",
            epoch,
        ]);
        reg.ok(&["push", f.to_str().expect("utf8"), "-n", "run"]);
    }
    reg.settle();
    let r = reg.ok(&["bench", "compress", "run", "--json"]).json();
    assert_eq!(r["versions"], 3);
    let roles: Vec<&str> = r["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(|x| x["role"].as_str())
        .collect();
    for want in ["weights", "frozen", "exp_avg", "exp_avg_sq", "skeleton"] {
        assert!(roles.contains(&want), "no {want} in {roles:?}");
    }
    // The roles add up to the total, and the total is every content blob
    // on disk (the registry holds this name only; manifests are metadata).
    let sum = |key: &str| -> u64 {
        r["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x[key].as_u64())
            .sum()
    };
    for key in ["blobs", "raw_bytes", "stored_bytes", "bound_bytes", "deltas"] {
        assert_eq!(Some(sum(key)), r["total"][key].as_u64(), "{key}");
    }
    let stats = reg.ok(&["stats", "--json"]).json();
    assert_eq!(r["total"]["stored_bytes"], stats["content_stored_bytes"], "{stats}");
    // Older versions' changing tensors are deltas; frozen layers never are.
    let role = |name: &str| {
        r["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["role"] == name)
            .cloned()
    };
    assert!(role("weights").is_some_and(|w| w["deltas"].as_u64() > Some(0)));
    assert!(role("frozen").is_some_and(|f| f["deltas"] == 0));
    // Float tensors' bound is at most their raw size and above nothing.
    for name in ["weights", "exp_avg", "exp_avg_sq"] {
        let x = role(name).expect("role");
        let (raw, bound) = (x["raw_bytes"].as_u64(), x["bound_bytes"].as_u64());
        assert!(bound > Some(0) && bound <= raw, "{x}");
    }
    // The table says the same in words.
    let table = reg.ok(&["bench", "compress", "run"]).stdout;
    assert!(
        table.contains("exp_avg_sq") && table.contains("stored/bound"),
        "{table}"
    );
    // An unknown name is refused in one line.
    let bad = reg.run(&["bench", "compress", "nope"]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("no model named"), "{}", bad.stderr);
}
