use crate::common::{fixture, fixture_files, Reg};
use std::process::{Command, Stdio};
use std::time::Duration;

fn blob_file(reg: &Reg, hex: &str) -> std::path::PathBuf {
    reg.home().join("blobs").join(&hex[..2]).join(&hex[2..])
}

fn push_series(reg: &Reg) -> Vec<String> {
    let files = fixture_files(&["lightning/mlp"]);
    for rel in &files {
        reg.push(rel, "mlp");
    }
    files
}

#[test]
fn verify_full_reports_a_flipped_byte_with_every_version_it_damages() {
    let reg = Reg::new();
    push_series(&reg);
    let clean = reg.ok(&["verify", "--full", "--json"]).json();
    assert_eq!(clean["versions"], 4);
    assert!(clean["damaged_versions"].as_array().is_some_and(Vec::is_empty));
    // The frozen encoder's blob is shared by all four versions.
    let hex = reg.ok(&["show", "mlp@v1", "--json"]).json()["tensors"][0]["blob"]
        .as_str()
        .expect("blob")
        .to_string();
    let path = blob_file(&reg, &hex);
    let mut bytes = std::fs::read(&path).expect("blob");
    let at = bytes.len() - 7;
    bytes[at] ^= 0x20;
    std::fs::write(&path, &bytes).expect("write");
    // A quick verify only checks presence; --full re-hashes.
    assert_eq!(reg.run(&["verify"]).code, 0);
    let r = reg.run(&["verify", "--full"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    for v in 1..=4 {
        assert!(r.stdout.contains(&format!("damaged mlp@v{v}")), "{}", r.stdout);
    }
    assert!(r.stdout.contains(&hex), "{}", r.stdout);
    let one = reg.run(&["verify", "--full", "mlp@v2", "--json"]);
    assert_eq!(one.code, 2);
    assert_eq!(one.json()["damaged_versions"].as_array().map(Vec::len), Some(1));
}

#[test]
fn lost_index_is_rebuilt_from_blobs() {
    let reg = Reg::new();
    let files = push_series(&reg);
    reg.push("torch/zoo.pt", "zoo");
    reg.settle();
    std::fs::remove_dir_all(reg.home().join("index")).expect("rm index");
    let r = reg.ok(&["verify", "--rebuild-index", "--full"]);
    assert!(r.stderr.contains("5 versions restored"), "{}", r.stderr);
    for (i, rel) in files.iter().filter(|f| !f.ends_with("last.ckpt")).enumerate() {
        let out = reg.work().join(format!("r{i}"));
        reg.ok(&["pull", &format!("mlp@v{}", i + 1), "-o", out.to_str().expect("utf8")]);
        assert_eq!(std::fs::read(&out).ok(), std::fs::read(fixture(rel)).ok(), "{rel}");
    }
    reg.ok(&["pull", "zoo", "-o", "zoo.pt"]);
    assert_eq!(
        std::fs::read(reg.work().join("zoo.pt")).ok(),
        std::fs::read(fixture("torch/zoo.pt")).ok()
    );
    // A corrupt (not just missing) index is moved aside and rebuilt too.
    let index = reg.home().join("index");
    std::fs::remove_dir_all(&index).expect("rm");
    std::fs::create_dir_all(&index).expect("mkdir");
    std::fs::write(index.join("db"), b"garbage garbage garbage").expect("write");
    reg.ok(&["verify", "--rebuild-index"]);
    assert_eq!(
        reg.ok(&["log", "mlp", "--json"]).json().as_array().map(Vec::len),
        Some(4)
    );
}

#[test]
fn rm_gc_and_prune_free_space_and_keep_the_rest_intact() {
    let reg = Reg::new();
    push_series(&reg);
    reg.ok(&["tag", "mlp@v1", "baseline"]);
    let before = reg.ok(&["stats", "--json"]).json();
    let dry = reg.ok(&["gc", "--dry-run", "--json"]).json();
    assert_eq!(dry["removed_blobs"], 0);
    reg.ok(&["rm", "mlp@v2"]);
    assert_eq!(reg.run(&["show", "mlp@v2"]).code, 1);
    let dry = reg.ok(&["gc", "--dry-run", "--json"]).json();
    assert!(dry["removed_blobs"].as_u64() > Some(0));
    assert_eq!(
        reg.ok(&["stats", "--json"]).json()["blobs"].as_u64(),
        before["blobs"].as_u64().map(|b| b - 1)
    );
    let gc = reg.ok(&["gc", "--json"]).json();
    assert_eq!(gc["removed_blobs"], dry["removed_blobs"]);
    assert!(gc["freed_bytes"].as_u64() > Some(0));
    reg.ok(&["verify", "--full"]);
    reg.ok(&["pull", "mlp@v3", "-o", "v3.ckpt"]);
    assert_eq!(
        std::fs::read(reg.work().join("v3.ckpt")).ok(),
        std::fs::read(fixture("lightning/mlp/epoch=02.ckpt")).ok()
    );
    // prune: keep the newest and the tagged one.
    let p = reg
        .ok(&["prune", "mlp", "--keep-last", "1", "--keep-tagged", "--json"])
        .json();
    assert_eq!(p["removed"], serde_json::json!([3]));
    assert_eq!(p["kept"], serde_json::json!([1, 4]));
    let log: Vec<u64> = reg
        .ok(&["log", "mlp", "--json"])
        .json()
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|e| e["version"].as_u64())
        .collect();
    assert_eq!(log, vec![1, 4]);
    reg.ok(&["verify", "--full"]);
    assert_eq!(
        reg.run(&["prune", "mlp"]).code,
        1,
        "prune with no keep rule must refuse"
    );
    // A new push after gc still numbers on and dedupes against what is left.
    let r = reg.push("lightning/mlp/epoch=02.ckpt", "mlp").json();
    assert_eq!(r["version"], 5);
}

#[test]
fn eight_processes_push_and_pull_at_once() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=00.ckpt", "seed");
    let files = fixture_files(&["lightning", "torch"]);
    let mut children = Vec::new();
    for i in 0..8 {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reg"));
        cmd.env("REG_HOME", reg.home())
            .current_dir(reg.work())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if i % 2 == 0 {
            // pushes: half to one shared name, half to names of their own
            let name = if i % 4 == 0 {
                "shared".to_string()
            } else {
                format!("own{i}")
            };
            cmd.arg("push").arg("--name").arg(name);
            for rel in files.iter().skip(i).take(4) {
                cmd.arg(fixture(rel));
            }
        } else {
            cmd.args(["pull", "seed", "--force", "-o", &format!("p{i}.ckpt")]);
        }
        children.push(cmd.spawn().expect("spawn"));
    }
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    reg.ok(&["verify", "--full"]);
    let shared = reg.ok(&["log", "shared", "--json"]).json();
    let numbers: Vec<u64> = shared
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|e| e["version"].as_u64())
        .collect();
    let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(
        numbers, expected,
        "versions of one name must be numbered without gaps or clashes"
    );
}

/// A tiny deterministic generator for kill moments.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn push_killed_at_random_moments_leaves_the_registry_consistent() {
    let reg = Reg::new();
    let files: Vec<_> = fixture_files(&["lightning", "torch", "safetensors"])
        .iter()
        .map(|r| fixture(r))
        .collect();
    let push = |reg: &Reg| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_reg"));
        c.env("REG_HOME", reg.home())
            .current_dir(reg.work())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.args(["push", "--name", "series"]).args(&files);
        c
    };
    // How long a whole push takes here, to spread kills over it.
    let t0 = std::time::Instant::now();
    let first = push(&Reg::new()).stderr(Stdio::piped()).output().expect("push");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let span = t0.elapsed().as_micros().max(1000) as u64;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..50 {
        let fresh = round % 5 == 0;
        if fresh {
            // Start some rounds from an empty registry, so kills also land in first pushes.
            if reg.home().join("index").exists() {
                reg.settle();
            }
            let _ = std::fs::remove_dir_all(reg.home());
        }
        let mut child = push(&reg).spawn().expect("spawn");
        std::thread::sleep(Duration::from_micros(xorshift(&mut seed) % span));
        let _ = child.kill();
        let _ = child.wait();
        if !reg.home().join("index").exists() {
            continue; // killed before the registry existed
        }
        let v = reg.run(&["verify", "--full"]);
        assert_eq!(v.code, 0, "round {round}: {}{}", v.stdout, v.stderr);
    }
    let done = push(&reg).stderr(Stdio::piped()).output().expect("push");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    reg.ok(&["verify", "--full"]);
    reg.ok(&["gc"]);
    reg.ok(&["verify", "--full"]);
}

#[test]
fn gc_killed_at_random_moments_never_damages_a_version() {
    let reg = Reg::new();
    push_series(&reg);
    reg.push("torch/zoo.pt", "zoo");
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..10 {
        reg.ok(&["rm", "zoo"]);
        let mut c = Command::new(env!("CARGO_BIN_EXE_reg"));
        c.env("REG_HOME", reg.home())
            .current_dir(reg.work())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.arg("gc").spawn().expect("spawn");
        std::thread::sleep(Duration::from_micros(xorshift(&mut seed) % 20_000));
        let _ = child.kill();
        let _ = child.wait();
        reg.ok(&["verify", "--full"]);
        reg.push("torch/zoo.pt", "zoo");
        reg.ok(&["verify", "--full"]);
    }
}

#[test]
fn strict_policy_refuses_unknown_globals() {
    let reg = Reg::new();
    std::fs::write(
        reg.work().join("registry.toml"),
        format!(
            "[registry]\npath = {:?}\npickle_policy = \"strict\"\n",
            reg.dir.path().join("strict")
        ),
    )
    .expect("toml");
    let out = reg.run_with_toml(&["push", fixture("lightning/mlp/epoch=00.ckpt").to_str().expect("utf8")]);
    // Every global in a Lightning checkpoint is known-safe: strict accepts it.
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
