//! Crash consistency: a registry whose blobs are on a `CrashDisk`
//! (reg_store, feature `crash-sim`) is pushed to, crashed at a random
//! mutating operation, and reopened on what survived. Every version the
//! index lists must then pull byte-identical to the file pushed, `verify
//! --full` must be clean, and a further push and a gc must work.
//!
//! Two kinds of crash, at random: a power loss at the crash point (the
//! disk keeps what was synced, and with `Writeback::Random` some of the
//! rest), or a killed process (the volatile state stays, the next process
//! finishes the workload, and only then does the power go).
//!
//! The index and the lock files stay on the real disk, in the test's temp
//! folder: sled flushes every transaction, so after a crash the index is
//! as far ahead of the blobs as it can ever be.
//!
//! `REG_CRASH_ITERATIONS` (default 60) sets how many crashes the full
//! durability test tries (`REG_CRASH_FAST_ITERATIONS`, default 12, the
//! fast one), `REG_CRASH_SEED` the first seed; a failure
//! names its seed, and `REG_CRASH_SEED=<seed> REG_CRASH_ITERATIONS=1`
//! replays it (on the same code: the crash point is drawn against the
//! workload's operation count; and as far as the order in which threads
//! reach the disk allows).

mod common;

use common::{fixture, FINETUNE, SERIES};
use reg_registry::{BackgroundRunner, Config, DeltaTiming, PushOptions, Registry, RegistryError, VersionRef};
use reg_store::backend::{CrashDisk, Writeback};
use reg_store::Durability;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The directory versions (a Lightning sharded run: DCP folders).
const DIRS: [&str; 2] = [
    "dirs/lightning-sharded/net/epoch=0-step=4.ckpt",
    "dirs/lightning-sharded/net/epoch=1-step=8.ckpt",
];

/// Two versions of a safetensors file with a 256 KiB float tensor (big
/// enough for a fast push to store it raw; no fixture has one), made once
/// per test process: absolute paths, which `fixture` keeps as they are.
fn big_files() -> [&'static str; 2] {
    static FILES: std::sync::OnceLock<[&'static str; 2]> = std::sync::OnceLock::new();
    *FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("reg-crash-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir for generated files");
        let make = |version: u32| -> &'static str {
            const N: usize = 65536;
            let header = format!(
                r#"{{"w":{{"dtype":"F32","shape":[{N}],"data_offsets":[0,{}]}}}}"#,
                N * 4
            );
            let mut header = header.into_bytes();
            while header.len() % 8 != 0 {
                header.push(b' ');
            }
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(&header);
            let mut state = 0x1234_5678u64;
            for i in 0..N {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                let drift = if i % 3 == 0 { version as f32 * 1e-3 } else { 0.0 };
                bytes.extend_from_slice(&(noise * 0.02 + drift).to_le_bytes());
            }
            let path = dir.join(format!("big-{version}.safetensors"));
            std::fs::write(&path, bytes).expect("write generated file");
            Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
        };
        [make(0), make(1)]
    })
}

/// One step of the workload.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Push a fixture (file or folder) as a name.
    Push(&'static str, &'static str),
    /// Push a fine-tune against a base version.
    PushOnto(&'static str, &'static str, &'static str),
    /// Push a fixture with `fast`: its big storages stored raw, their
    /// compression left to the background job.
    PushFast(&'static str, &'static str),
    /// Run the background job's queue (deferred compression, retention).
    Background,
    /// Remove a version, when it is still listed.
    Remove(&'static str, u32),
    /// Delete what no version needs.
    Gc,
}

/// The workload: a run with inline deltas (each push re-encodes the
/// previous version, replacing blob files), two folder versions, a
/// fine-tune stored as deltas against its base, two fast pushes whose
/// raw blobs the background job then compresses (replacing blob files
/// again), a removal and a gc.
fn workload() -> Vec<Step> {
    vec![
        Step::Push(SERIES[0], "mlp"),
        Step::Push(SERIES[1], "mlp"),
        Step::Push(DIRS[0], "net"),
        Step::Push(SERIES[2], "mlp"),
        Step::Push(DIRS[1], "net"),
        Step::Push(SERIES[3], "mlp"),
        Step::PushOnto(FINETUNE[0], "ft", "mlp@v4"),
        Step::PushFast(big_files()[0], "big"),
        Step::PushFast(big_files()[1], "big"),
        Step::Background,
        Step::Remove("mlp", 2),
        Step::Gc,
    ]
}

/// The source of every version a workload makes: `name` -> sources in
/// version order (a removed version keeps its number).
fn sources(steps: &[Step]) -> BTreeMap<String, Vec<&'static str>> {
    let mut out: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for s in steps {
        if let Step::Push(rel, name) | Step::PushOnto(rel, name, _) | Step::PushFast(rel, name) = s {
            out.entry(name.to_string()).or_default().push(rel);
        }
    }
    out
}

/// splitmix64, for seeds and crash points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A registry in `dir` with its blobs on `disk`.
fn open(dir: &Path, disk: &CrashDisk, durability: Durability) -> Registry {
    let mut config = Config::at(dir.join("reg"));
    config.durability = durability;
    config.deltas = DeltaTiming::Inline;
    // The background job runs only in Step::Background, on this disk.
    Registry::open_with_backend(config, Arc::new(disk.clone()))
        .expect("open registry on the crash disk")
        .with_background(BackgroundRunner::Queue)
}

/// Blobs the fast pushes of this process deferred (a pushed step that
/// runs again after a kill may find its blobs stored already).
static DEFERRED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn run_step(reg: &Registry, step: Step) -> Result<(), RegistryError> {
    let opts = |name: &str, parent: Option<&str>| PushOptions {
        name: Some(name.to_string()),
        parent: parent.map(|p| VersionRef::parse(p).expect("parent ref")),
        ..PushOptions::default()
    };
    match step {
        Step::Push(rel, name) => reg.push(&fixture(rel), &opts(name, None)).map(|_| ()),
        Step::PushOnto(rel, name, base) => reg.push(&fixture(rel), &opts(name, Some(base))).map(|_| ()),
        Step::PushFast(rel, name) => {
            let fast = PushOptions {
                fast: true,
                ..opts(name, None)
            };
            let report = reg.push(&fixture(rel), &fast)?;
            DEFERRED.fetch_add(report.deferred.len(), std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        Step::Background => reg.wait_background().map(|_| ()),
        Step::Remove(name, number) => {
            let listed = reg
                .all_versions()?
                .iter()
                .any(|(n, r)| n.as_str() == name && r.number == number);
            if !listed {
                return Ok(());
            }
            let v = reg.resolve(&VersionRef::parse(&format!("{name}@v{number}")).expect("ref"))?;
            reg.remove(v)
        }
        Step::Gc => reg.gc(false).map(|_| ()),
    }
}

/// Run `steps` from `from` until one fails because the disk died (its
/// index is returned) or all are done (`None`). A step that fails while
/// the disk lives is a bug.
fn run_until_dead(reg: &Registry, disk: &CrashDisk, steps: &[Step], from: usize) -> Result<Option<usize>, String> {
    for (i, step) in steps.iter().enumerate().skip(from) {
        let result = run_step(reg, *step);
        if disk.is_dead() {
            return Ok(Some(i));
        }
        result.map_err(|e| format!("{step:?} failed on a live disk: {e}"))?;
    }
    Ok(None)
}

/// Every regular file under `root`, by its path relative to it.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(root).expect("under root").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

/// What pulling one version did.
enum Pulled {
    Identical,
    /// Refused as damage (the error's text).
    Damaged(String),
}

/// Pull `name@vN` into `work` and compare it with its source; wrong bytes
/// are an error, whatever the durability.
fn pull(reg: &Registry, work: &Path, name: &str, number: u32, rel: &str) -> Result<Pulled, String> {
    let label = format!("{name}@v{number}");
    let v = match reg.resolve(&VersionRef::parse(&label).expect("ref")) {
        Ok(v) => v,
        Err(e) if e.is_damage() => return Ok(Pulled::Damaged(e.to_string())),
        Err(e) => return Err(format!("resolving {label}: {e}")),
    };
    let out = work.join(format!("{name}-v{number}"));
    match reg.pull(&v, &out, true) {
        Ok(_) => {}
        Err(e) if e.is_damage() => return Ok(Pulled::Damaged(e.to_string())),
        Err(e) => return Err(format!("pulling {label}: {e}")),
    }
    let src = fixture(rel);
    let same = if src.is_dir() {
        let same = tree(&out) == tree(&src);
        std::fs::remove_dir_all(&out).expect("remove pulled folder");
        same
    } else {
        let same = std::fs::read(&out).expect("read pulled file") == std::fs::read(&src).expect("read fixture");
        std::fs::remove_file(&out).expect("remove pulled file");
        same
    };
    if same {
        Ok(Pulled::Identical)
    } else {
        Err(format!("{label} pulled, but not byte-identical to {rel}"))
    }
}

/// Every version the index lists, with its source.
fn listed(reg: &Registry, steps: &[Step]) -> Result<Vec<(String, u32, &'static str)>, String> {
    let sources = sources(steps);
    let mut out = Vec::new();
    for (name, rec) in reg.all_versions().map_err(|e| format!("listing versions: {e}"))? {
        let rel = sources
            .get(name.as_str())
            .and_then(|s| s.get(rec.number.get() as usize - 1))
            .ok_or_else(|| format!("{name}@v{} is no version the workload made", rec.number))?;
        out.push((name.to_string(), rec.number.get(), *rel));
    }
    Ok(out)
}

/// The checks after a crash with full durability.
fn check_intact(reg: &Registry, work: &Path, steps: &[Step]) -> Result<(), String> {
    let versions = listed(reg, steps)?;
    for (name, number, rel) in &versions {
        if let Pulled::Damaged(e) = pull(reg, work, name, *number, rel)? {
            return Err(format!("{name}@v{number} was committed but is damaged: {e}"));
        }
    }
    let report = reg.verify(None, true).map_err(|e| format!("verify: {e}"))?;
    if !report.is_clean() {
        return Err(format!("verify --full is not clean: {report:?}"));
    }
    // The registry goes on working.
    reg.push(&fixture(FINETUNE[1]), &common::named("after"))
        .map_err(|e| format!("a push after the crash: {e}"))?;
    reg.gc(false).map_err(|e| format!("a gc after the crash: {e}"))?;
    let report = reg.verify(None, true).map_err(|e| format!("verify after gc: {e}"))?;
    if !report.is_clean() {
        return Err(format!("verify --full after the push and gc is not clean: {report:?}"));
    }
    let mut after = steps.to_vec();
    after.push(Step::Push(FINETUNE[1], "after"));
    for (name, number, rel) in listed(reg, &after)? {
        if let Pulled::Damaged(e) = pull(reg, work, &name, number, rel)? {
            return Err(format!("{name}@v{number} is damaged after the push and gc: {e}"));
        }
    }
    Ok(())
}

/// How a crash iteration goes.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// The power goes at the crash point.
    PowerLoss(Writeback),
    /// The process is killed at the crash point; another finishes the
    /// workload; then the power goes (nothing written back).
    KillThenPowerLoss,
}

/// Count the mutating operations of the whole workload (and check that
/// it runs clean without a crash).
fn calibrate(durability: Durability) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = CrashDisk::new(0);
    let reg = open(dir.path(), &disk, durability);
    let steps = workload();
    let before = DEFERRED.load(std::sync::atomic::Ordering::Relaxed);
    let stopped = run_until_dead(&reg, &disk, &steps, 0).expect("the workload runs clean");
    assert!(stopped.is_none());
    assert!(
        DEFERRED.load(std::sync::atomic::Ordering::Relaxed) > before,
        "the fast pushes deferred nothing"
    );
    disk.ops()
}

fn full_iteration(seed: u64, total_ops: u64) -> Result<String, String> {
    let mut rng = Rng(seed);
    let kind = match rng.below(3) {
        0 => Kind::PowerLoss(Writeback::None),
        1 => Kind::PowerLoss(Writeback::Random),
        _ => Kind::KillThenPowerLoss,
    };
    // A few crash points past the end: the crash comes after the workload.
    let point = rng.below(total_ops + total_ops / 20 + 1);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("work")).expect("work dir");
    let steps = workload();
    let disk = CrashDisk::new(seed);
    disk.crash_after(Some(point));
    let reg = open(dir.path(), &disk, Durability::Full);
    let stopped = run_until_dead(&reg, &disk, &steps, 0)?;
    drop(reg);
    let survived = match kind {
        Kind::PowerLoss(writeback) => disk.crash(writeback),
        Kind::KillThenPowerLoss => {
            let next = disk.restart();
            if let Some(at) = stopped {
                let reg = open(dir.path(), &next, Durability::Full);
                // The step that was killed runs again, as a user would.
                if run_until_dead(&reg, &next, &steps, at)?.is_some() {
                    return Err("the disk died after a restart with no crash point".into());
                }
            }
            next.crash(Writeback::None)
        }
    };
    let reg = open(dir.path(), &survived, Durability::Full);
    check_intact(&reg, &dir.path().join("work"), &steps)
        .map_err(|e| format!("{kind:?} at operation {point} of {total_ops}, stopped in step {stopped:?}: {e}"))?;
    Ok(format!("{kind:?} at {point}, stopped in step {stopped:?}"))
}

#[test]
fn committed_versions_survive_random_crashes_with_full_durability() {
    let iterations = env_u64("REG_CRASH_ITERATIONS", 60);
    let first = env_u64("REG_CRASH_SEED", 0x5EED_0000);
    let total_ops = calibrate(Durability::Full);
    let started = std::time::Instant::now();
    for seed in first..first + iterations {
        match full_iteration(seed, total_ops) {
            Ok(what) => eprintln!("seed {seed}: {what}: intact"),
            Err(e) => panic!(
                "crash seed {seed}: {e}\n(replay: REG_CRASH_SEED={seed} REG_CRASH_ITERATIONS=1 cargo test -p reg-registry --test crash)"
            ),
        }
    }
    eprintln!(
        "{iterations} crashes of a {total_ops}-operation workload in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// With `durability = "fast"` new blobs are left to the kernel, so a crash
/// may lose the newest versions: they must then be reported as damage
/// (by pull and by verify), never pull wrong bytes; and the versions
/// pushed before, with full durability, must all survive, even though
/// the fast pushes re-encoded them as deltas against their own new blobs.
#[test]
fn fast_durability_loses_only_new_versions_and_reports_them() {
    let iterations = env_u64("REG_CRASH_FAST_ITERATIONS", 12);
    let first = env_u64("REG_CRASH_SEED", 0xFA57_0000);
    let steps = workload();
    // mlp v1-v3 and net v1 are pushed with full durability, the rest fast.
    let (durable_part, fast_part) = steps.split_at(4);
    let fast_ops = {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = CrashDisk::new(0);
        let reg = open(dir.path(), &disk, Durability::Full);
        assert_eq!(run_until_dead(&reg, &disk, durable_part, 0), Ok(None));
        let before = disk.ops();
        let reg = open(dir.path(), &disk, Durability::Fast);
        assert_eq!(run_until_dead(&reg, &disk, fast_part, 0), Ok(None));
        disk.ops() - before
    };
    for seed in first..first + iterations {
        let mut rng = Rng(seed);
        let writeback = if rng.below(2) == 0 {
            Writeback::None
        } else {
            Writeback::Random
        };
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("work")).expect("work dir");
        let disk = CrashDisk::new(seed);
        let reg = open(dir.path(), &disk, Durability::Full);
        assert_eq!(run_until_dead(&reg, &disk, durable_part, 0), Ok(None));
        drop(reg);
        let before = disk.ops();
        let reg = open(dir.path(), &disk, Durability::Fast);
        let point = before + rng.below(fast_ops + 1);
        disk.crash_after(Some(point));
        let stopped = run_until_dead(&reg, &disk, fast_part, 0).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        drop(reg);
        let reg = open(dir.path(), &disk.crash(writeback), Durability::Fast);
        let work = dir.path().join("work");
        let context = format!("fast seed {seed} ({writeback:?}, operation {point}, stopped in step {stopped:?})");
        let report = reg
            .verify(None, true)
            .unwrap_or_else(|e| panic!("{context}: verify: {e}"));
        let damaged: Vec<&str> = report.damaged_versions.iter().map(|d| d.version.as_str()).collect();
        let mut lost = Vec::new();
        for (name, number, rel) in listed(&reg, &steps).unwrap_or_else(|e| panic!("{context}: {e}")) {
            let label = format!("{name}@v{number}");
            let pushed_durably = (name == "mlp" && number <= 3) || (name == "net" && number == 1);
            match pull(&reg, &work, &name, number, rel).unwrap_or_else(|e| panic!("{context}: {e}")) {
                Pulled::Identical => {}
                Pulled::Damaged(e) => {
                    assert!(
                        !pushed_durably,
                        "{context}: {label}, pushed with full durability, is damaged: {e}"
                    );
                    assert!(
                        damaged.contains(&label.as_str()),
                        "{context}: {label} does not pull, yet verify does not report it: {report:?}"
                    );
                    lost.push(label);
                }
            }
        }
        eprintln!("{context}: lost {lost:?}");
    }
}
