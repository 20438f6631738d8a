use crate::common::{fixture, fixture_files, Reg};

#[test]
fn keep_optimizer_last_drops_old_optimizer_state_and_keeps_weights() {
    let reg = Reg::new();
    for rel in fixture_files(&["lightning/mlp"]) {
        reg.push(&rel, "mlp");
    }
    // The pushes' re-encodings run in the background; the stats compared
    // below are those after them.
    reg.settle();
    // What v1 and v2 look like as weights-only files, before retention.
    reg.ok(&["pull", "mlp@v1", "--weights-only", "-o", "v1.weights"]);
    reg.ok(&["pull", "mlp@v2", "--weights-only", "-o", "v2.weights"]);
    let before = reg.ok(&["stats", "--json"]).json();
    let dry = reg
        .ok(&["prune", "mlp", "--keep-optimizer-last", "2", "--dry-run", "--json"])
        .json();
    assert_eq!(dry["optimizer_dropped"], serde_json::json!([1, 2]));
    assert_eq!(
        reg.ok(&["stats", "--json"]).json(),
        before,
        "dry run changed the registry"
    );
    let r = reg.ok(&["prune", "mlp", "--keep-optimizer-last", "2", "--json"]).json();
    assert_eq!(r["optimizer_dropped"], serde_json::json!([1, 2]));
    assert!(r["removed"].as_array().is_some_and(Vec::is_empty));
    assert!(r["freed_bytes"].as_u64() > Some(0));
    let after = reg.ok(&["stats", "--json"]).json();
    assert!(after["stored_bytes"].as_u64() < before["stored_bytes"].as_u64());
    assert_eq!(after["versions"], before["versions"]);
    reg.ok(&["verify", "--full"]);

    // Dropped versions pull as the weights-only file, and say so.
    for v in [1, 2] {
        reg.ok(&["pull", &format!("mlp@v{v}"), "-o", &format!("p{v}")]);
        assert_eq!(
            std::fs::read(reg.work().join(format!("p{v}"))).ok(),
            std::fs::read(reg.work().join(format!("v{v}.weights"))).ok(),
            "v{v}"
        );
        let shown = reg.ok(&["show", &format!("mlp@v{v}"), "--json"]).json();
        assert!(shown["optimizer_dropped"].is_object(), "{}", shown["optimizer_dropped"]);
        assert!(shown["optimizers"].as_array().is_some_and(Vec::is_empty));
        assert_eq!(shown["epoch"], v - 1);
        assert!(shown["tensors"].as_array().is_some_and(|t| t.len() == 6));
        assert!(reg.ok(&["show", &format!("mlp@v{v}")]).stdout.contains("weights-only"));
    }
    let log = reg.ok(&["log", "mlp", "--json"]).json();
    let dropped: Vec<bool> = log
        .as_array()
        .expect("log")
        .iter()
        .map(|e| e["optimizer_dropped"] == true)
        .collect();
    assert_eq!(dropped, vec![true, true, false, false]);
    assert!(reg.ok(&["log", "mlp"]).stdout.contains("[weights only]"));
    // The newest two are untouched: byte-identical to the fixtures.
    for (v, rel) in [(3, "lightning/mlp/epoch=02.ckpt"), (4, "lightning/mlp/epoch=03.ckpt")] {
        reg.ok(&["pull", &format!("mlp@v{v}"), "-o", &format!("o{v}")]);
        assert_eq!(
            std::fs::read(reg.work().join(format!("o{v}"))).ok(),
            std::fs::read(fixture(rel)).ok()
        );
    }
    // Refs by epoch still find the dropped versions; a second prune is a no-op.
    assert_eq!(reg.ok(&["show", "mlp@epoch=0", "--json"]).json()["version"], 1);
    let again = reg.ok(&["prune", "mlp", "--keep-optimizer-last", "2", "--json"]).json();
    assert!(again["optimizer_dropped"].as_array().is_some_and(Vec::is_empty));
}

#[test]
fn keep_optimizer_last_in_registry_toml_applies_on_push() {
    let reg = Reg::new();
    let root = reg.dir.path().join("cfg-registry");
    std::fs::write(
        reg.work().join("registry.toml"),
        format!("[registry]\npath = {:?}\nkeep_optimizer_last = 1\n", root),
    )
    .expect("toml");
    for rel in ["lightning/mlp/epoch=00.ckpt", "lightning/mlp/epoch=01.ckpt"] {
        let out = reg.run_with_toml(&["push", fixture(rel).to_str().expect("utf8"), "-n", "m"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Retention runs in the push's background job: wait for it.
    let out = reg.run_with_toml(&["deltas", "--queued"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = reg.run_with_toml(&["log", "m", "--json"]);
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let dropped: Vec<bool> = log
        .as_array()
        .expect("log")
        .iter()
        .map(|e| e["optimizer_dropped"] == true)
        .collect();
    assert_eq!(dropped, vec![true, false]);
}

#[test]
fn push_keep_optimizer_last_runs_in_the_background_job() {
    let reg = Reg::new();
    let files = fixture_files(&["lightning/mlp"]);
    let epochs: Vec<&String> = files.iter().filter(|f| f.contains("epoch=")).collect();
    assert!(epochs.len() >= 3, "{files:?}");
    for rel in &epochs {
        let path = fixture(rel);
        reg.ok(&[
            "push",
            path.to_str().expect("utf8"),
            "-n",
            "m",
            "--keep-optimizer-last",
            "1",
        ]);
    }
    // `deltas --queued` returns once the pushes' background work, the
    // retention included, is done.
    reg.ok(&["deltas", "--queued"]);
    let log = reg.ok(&["log", "m", "--json"]).json();
    let dropped: Vec<bool> = log
        .as_array()
        .expect("log")
        .iter()
        .map(|e| e["optimizer_dropped"] == true)
        .collect();
    let mut want = vec![true; epochs.len() - 1];
    want.push(false);
    assert_eq!(dropped, want);
    // Every version still pulls whole: the dropped ones as weights-only
    // files, the newest byte-identical.
    for (i, rel) in epochs.iter().enumerate() {
        let v = i + 1;
        reg.ok(&["pull", &format!("m@v{v}"), "-o", &format!("p{v}")]);
        if v == epochs.len() {
            assert_eq!(
                std::fs::read(reg.work().join(format!("p{v}"))).ok(),
                std::fs::read(fixture(rel)).ok()
            );
        }
    }
    reg.ok(&["verify"]);
    // Names with --queued are refused before anything runs.
    let r = reg.run(&["deltas", "--queued", "m"]);
    assert_ne!(r.code, 0);
}

/// The blob file of a blob id (hex) in a registry.
fn blob_file(home: &std::path::Path, hex: &str) -> std::path::PathBuf {
    home.join("blobs").join(&hex[..2]).join(&hex[2..])
}

/// The blob ids of a version's tensors with the given role.
fn blobs_of(show: &serde_json::Value, role: &str) -> std::collections::BTreeSet<String> {
    show["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .filter(|t| t["role"] == role)
        .filter_map(|t| t["blob"].as_str().map(String::from))
        .collect()
}

#[test]
fn a_failed_background_job_is_reported_by_the_next_push() {
    let (e0, e1, e2) = (
        fixture("lightning/mlp/epoch=00.ckpt"),
        fixture("lightning/mlp/epoch=01.ckpt"),
        fixture("lightning/mlp/epoch=02.ckpt"),
    );
    let s = |p: &std::path::PathBuf| p.to_str().expect("utf8").to_string();
    // Which of epoch 0's weights epoch 1 does not share (learnt in a
    // registry of its own).
    let other = Reg::new();
    other.ok(&["push", &s(&e1), "-n", "m"]);
    let next = blobs_of(&other.ok(&["show", "m", "--json"]).json(), "weight");
    let reg = Reg::new();
    reg.ok(&["push", &s(&e0), "-n", "m"]);
    let own: Vec<String> = blobs_of(&reg.ok(&["show", "m@v1", "--json"]).json(), "weight")
        .difference(&next)
        .cloned()
        .collect();
    assert!(!own.is_empty());
    // Damage them: the retention the next push queues has to read them to
    // write v1 weights-only, and fails in the background job.
    for hex in &own {
        let path = blob_file(&reg.home(), hex);
        let mut bytes = std::fs::read(&path).expect("blob");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).expect("damage");
    }
    reg.ok(&["push", &s(&e1), "-n", "m", "--keep-optimizer-last", "1"]);
    let waited = reg.run(&["deltas", "--queued"]);
    assert_ne!(waited.code, 0, "{}", waited.stdout);
    // One error line (a wait for the running job may be said before it).
    let errors = waited.stderr.lines().filter(|l| !l.starts_with("reg: waiting")).count();
    assert_eq!(errors, 1, "{}", waited.stderr);
    // The job wrote down why; the next push says so, and still lands.
    let note = reg.home().join("deltas.failed");
    for _ in 0..100 {
        if note.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(note.exists(), "the background job left no note");
    let pushed = reg.run(&["push", &s(&e2), "-n", "m"]);
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    assert!(
        pushed
            .stderr
            .contains("background re-encoding after an earlier push failed"),
        "{}",
        pushed.stderr
    );
    // Nothing was lost: v2 and v3 pull byte-identical, v1 is reported as
    // damaged, not dropped.
    reg.ok(&["pull", "m@v2", "-o", "v2"]);
    assert_eq!(std::fs::read(reg.work().join("v2")).ok(), std::fs::read(&e1).ok());
    assert_ne!(reg.run(&["pull", "m@v1", "-o", "v1"]).code, 0);
    assert_eq!(reg.ok(&["log", "m", "--json"]).json().as_array().map(Vec::len), Some(3));
}

/// Hold `gc.lock` shared, as a running push does, for the life of the
/// returned file.
fn hold_writer_lock(home: &std::path::Path) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(home.join("gc.lock"))
        .expect("gc.lock");
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH) };
    assert_eq!(rc, 0, "flock");
    f
}

#[test]
fn background_retention_runs_beside_a_writer_and_frees_space_later() {
    let reg = Reg::new();
    let files = fixture_files(&["lightning/mlp"]);
    let epochs: Vec<&String> = files.iter().filter(|f| f.contains("epoch=")).collect();
    let push = |rel: &str| {
        let path = fixture(rel);
        reg.ok(&[
            "push",
            path.to_str().expect("utf8"),
            "-n",
            "m",
            "--keep-optimizer-last",
            "1",
        ]);
    };
    push(epochs[0]);
    reg.settle();
    // Another writer holds gc.lock shared from here on (a push that runs
    // for a long time): the job's retention must not wait for it, and its
    // gc must not run under it.
    let writer = hold_writer_lock(&reg.home());
    let stored_before = reg.ok(&["stats", "--json"]).json()["stored_bytes"].as_u64();
    push(epochs[1]);
    let mut dropped = false;
    for _ in 0..300 {
        let log = reg.ok(&["log", "m", "--json"]).json();
        if log[0]["optimizer_dropped"] == true {
            dropped = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(dropped, "v1 kept its optimizer state while another writer ran");
    let stored_during = reg.ok(&["stats", "--json"]).json()["stored_bytes"].as_u64();
    assert!(stored_during > stored_before, "{stored_during:?} vs {stored_before:?}");
    drop(writer);
    // The queued request is finished (its gc) by `reg deltas --queued`:
    // what v1's optimizer state took is freed only now, so no gc ran
    // beside the writer.
    reg.ok(&["deltas", "--queued"]);
    let stored_after = reg.ok(&["stats", "--json"]).json()["stored_bytes"].as_u64();
    assert!(stored_after < stored_during, "{stored_after:?} vs {stored_during:?}");
    let after = reg.ok(&["gc", "--dry-run", "--json"]).json();
    assert_eq!(after["freed_bytes"].as_u64(), Some(0), "space left to free: {after}");
    reg.ok(&["verify"]);
    reg.ok(&["pull", "m@v2", "-o", "v2"]);
    assert_eq!(
        std::fs::read(reg.work().join("v2")).ok(),
        std::fs::read(fixture(epochs[1])).ok()
    );
}

#[test]
fn a_version_with_big_storages_drops_its_optimizer_state_writing_only_its_small_records() {
    // Storages of 64 KiB and more: retention takes them from the store by
    // id instead of writing the weights-only file out and pushing it again.
    let reg = Reg::new();
    for epoch in ["0", "1"] {
        let f = reg.work().join(format!("e{epoch}.ckpt"));
        reg.ok(&[
            "bench",
            "generate",
            f.to_str().expect("utf8"),
            "--size",
            "3M",
            "--epoch",
            epoch,
        ]);
        reg.ok(&["push", f.to_str().expect("utf8"), "-n", "big"]);
    }
    reg.settle();
    reg.ok(&["pull", "big@v1", "--weights-only", "-o", "v1.weights"]);
    let weights = std::fs::read(reg.work().join("v1.weights")).expect("weights-only export");
    let shown = reg.ok(&["show", "big@v1", "--json"]).json();
    let big = shown["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .filter(|t| {
            let numel: u64 = t["shape"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_u64())
                .product();
            t["dtype"] == "float32" && numel * 4 >= 64 << 10
        })
        .count();
    assert!(
        big > 0,
        "the generated checkpoint has no storage of 64 KiB or more: {shown}"
    );
    let blobs_before = blob_count(&reg.home());
    let r = reg.ok(&["prune", "big", "--keep-optimizer-last", "1", "--json"]).json();
    assert_eq!(r["optimizer_dropped"], serde_json::json!([1]));
    reg.ok(&["verify", "--full"]);
    reg.ok(&["pull", "big@v1", "-o", "p1"]);
    assert!(
        std::fs::read(reg.work().join("p1")).ok() == Some(weights.clone()),
        "v1 does not pull as its weights-only export"
    );
    let shown = reg.ok(&["show", "big@v1", "--json"]).json();
    assert!(shown["optimizer_dropped"].is_object(), "{shown}");
    assert_eq!(shown["size"].as_u64(), Some(weights.len() as u64));
    // No tensor blob was written: only the new skeleton and manifest (gc
    // then frees the optimizer state's blobs).
    let blobs_after = blob_count(&reg.home());
    assert!(
        blobs_after <= blobs_before,
        "{blobs_before} blobs before, {blobs_after} after"
    );
    let leftovers: Vec<_> = std::fs::read_dir(reg.home().join("blobs/tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    // The newest version is untouched.
    reg.ok(&["pull", "big@v2", "-o", "p2"]);
    assert!(std::fs::read(reg.work().join("p2")).ok() == std::fs::read(reg.work().join("e1.ckpt")).ok());
}

fn blob_count(home: &std::path::Path) -> usize {
    let mut n = 0;
    for dir in std::fs::read_dir(home.join("blobs")).into_iter().flatten().flatten() {
        if dir.file_name().len() == 2 {
            n += std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0);
        }
    }
    n
}
