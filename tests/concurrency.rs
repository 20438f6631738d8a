//! Many processes on one registry (issue 14): readers in other processes
//! during pushes, background re-encodings and gc, with writers killed at
//! random moments; many writers at once; readers that never wait.
//!
//! Every command runs as a real `reg` process with `--wait-timeout`, so a
//! deadlock or a wait that should not happen fails the test instead of
//! hanging it. Timing is only used to spread kills; what is asserted is
//! what readers saw and in which order things happened.

use crate::common::{fixture, Reg};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest any command may wait for another process: far more than any
/// short transaction takes, far less than a hung test.
const WAIT_LIMIT: &str = "60";

/// `reg --wait-timeout WAIT_LIMIT ARGS` on the scratch registry.
fn reg_cmd(home: &Path, work: &Path, args: &[&str]) -> Command {
    reg_waiting(home, work, WAIT_LIMIT, args)
}

/// `reg --wait-timeout SECS ARGS` on the scratch registry.
fn reg_waiting(home: &Path, work: &Path, secs: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reg"));
    c.env("REG_HOME", home)
        .current_dir(work)
        .args(["--wait-timeout", secs])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Run to the end; the output.
fn run(home: &Path, work: &Path, args: &[&str]) -> Output {
    reg_cmd(home, work, args).output().expect("run reg")
}

/// Run to the end and require success; stdout.
fn ok(home: &Path, work: &Path, args: &[&str]) -> String {
    let out = run(home, work, args);
    assert!(
        out.status.success(),
        "reg {args:?} failed ({:?}): {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

/// A generated epoch checkpoint (`reg bench generate`), named `stem.ckpt`.
fn generate(reg: &Reg, stem: &str, size: &str, epoch: u32) -> PathBuf {
    let file = reg.work().join(format!("{stem}.ckpt"));
    let file_arg = file.to_string_lossy().into_owned();
    reg.ok(&[
        "bench",
        "generate",
        &file_arg,
        "--size",
        size,
        "--epoch",
        &epoch.to_string(),
    ]);
    file
}

/// A tiny deterministic generator for random moments and choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// SIGKILL a child and reap it.
fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `(number, id, source)` of every version `reg log NAME --json` lists.
fn log_of(home: &Path, work: &Path, name: &str) -> Vec<(u64, String, String)> {
    let out = run(home, work, &["log", name, "--json"]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // Before the first push commits, the name does not exist yet.
        assert!(
            err.contains("no model named") || err.contains("empty"),
            "reg log {name}: {err}"
        );
        return Vec::new();
    }
    let mut versions: Vec<(u64, String, String)> = json(&String::from_utf8_lossy(&out.stdout))
        .as_array()
        .expect("log is a list")
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().expect("version"),
                v["id"].as_str().expect("id").to_string(),
                v["source"].as_str().expect("source").to_string(),
            )
        })
        .collect();
    versions.sort();
    versions
}

/// What every reader has seen of one name: version number -> id. Shared
/// by all readers, so a number that ever named two versions fails.
#[derive(Default)]
struct Seen {
    ids: Mutex<BTreeMap<u64, String>>,
}

impl Seen {
    /// Check one `reg log` against everything seen before: versions only
    /// appear (none seen before is missing, none changed its id), and the
    /// numbers are 1..=k without a gap (each taken when its version
    /// committed, so none is visible before the ones below it).
    fn check(&self, log: &[(u64, String, String)], what: &str) {
        let numbers: Vec<u64> = log.iter().map(|v| v.0).collect();
        let gapless: Vec<u64> = (1..=numbers.len() as u64).collect();
        assert_eq!(numbers, gapless, "{what}: numbers with a gap");
        let mut ids = self.ids.lock().expect("seen");
        for (n, id, _) in log {
            if let Some(old) = ids.insert(*n, id.clone()) {
                assert_eq!(&old, id, "{what}: v{n} named two versions");
            }
        }
    }
}

/// One reader process loop: log, ls, show, diff, pull (compared with the
/// file the version was pushed from), stats and verify, round and round
/// until `stop`, checking each answer. Some pulls are killed half way.
/// Returns how many commands it ran.
fn reader_loop(
    home: &Path,
    work: &Path,
    name: &str,
    files: &BTreeMap<String, Vec<u8>>,
    seen: &Seen,
    stop: &AtomicBool,
    seed: u64,
) -> usize {
    let mut rng = Rng(seed);
    let mut high_water = 0usize;
    let mut ran = 0;
    let out = work.join(format!("reader-{seed:x}.ckpt"));
    let out_arg = out.to_string_lossy().into_owned();
    while !stop.load(Ordering::SeqCst) {
        let log = log_of(home, work, name);
        ran += 1;
        assert!(log.len() >= high_water, "a version disappeared: {log:?}");
        high_water = log.len();
        seen.check(&log, "reg log");
        let Some((number, id, source)) = log.get(rng.below(log.len() as u64) as usize).cloned() else {
            continue;
        };
        let version = format!("{name}@v{number}");
        match rng.below(7) {
            0 => {
                let ls = json(&ok(home, work, &["ls", "--json"]));
                let listed = ls.as_array().expect("ls").iter().find(|m| m["name"] == name);
                let count = listed.and_then(|m| m["versions"].as_u64()).expect("name listed");
                assert!(count >= number, "ls lists {count} versions after log listed v{number}");
            }
            1 => {
                let show = json(&ok(home, work, &["show", &version, "--json"]));
                assert_eq!(show["id"].as_str(), Some(id.as_str()), "show {version}");
            }
            2 => {
                ok(
                    home,
                    work,
                    &["diff", &format!("{name}@v1"), &version, "--only", "hparams"],
                );
            }
            3 | 4 => {
                ok(home, work, &["pull", &version, "-o", &out_arg, "--force"]);
                let pulled = std::fs::read(&out).expect("pulled file");
                assert!(
                    files.get(&source).is_some_and(|f| *f == pulled),
                    "{version} (from {source}) did not pull byte-identical"
                );
            }
            5 => {
                let stats = json(&ok(home, work, &["stats", "--json"]));
                assert!(stats["versions"].as_u64() >= Some(number), "{stats}");
            }
            _ => {
                if rng.below(3) == 0 {
                    // A reader killed half way holds nothing afterwards.
                    let child = reg_cmd(home, work, &["pull", &version, "-o", &out_arg, "--force"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("spawn pull");
                    std::thread::sleep(Duration::from_millis(rng.below(60)));
                    kill(child);
                } else {
                    let v = json(&ok(home, work, &["verify", "--json"]));
                    assert_eq!(v["damaged_versions"], serde_json::json!([]), "{v}");
                }
            }
        }
        ran += 1;
    }
    ran
}

/// Start `threads` reader loops on `name`; they run until `stop` is set.
fn start_readers(
    reg: &Reg,
    name: &'static str,
    files: &Arc<BTreeMap<String, Vec<u8>>>,
    stop: &Arc<AtomicBool>,
    threads: u64,
) -> Vec<std::thread::JoinHandle<usize>> {
    let seen = Arc::new(Seen::default());
    (0..threads)
        .map(|i| {
            let (home, work) = (reg.home(), reg.work());
            let (files, stop, seen) = (files.clone(), stop.clone(), seen.clone());
            std::thread::spawn(move || reader_loop(&home, &work, name, &files, &seen, &stop, 0x9E37_79B9 + i * 7919))
        })
        .collect()
}

/// Stop the readers; every one must have run and passed.
fn stop_readers(stop: &AtomicBool, readers: Vec<std::thread::JoinHandle<usize>>) -> usize {
    stop.store(true, Ordering::SeqCst);
    readers
        .into_iter()
        .map(|r| r.join().expect("a reader failed (see its panic above)"))
        .inspect(|ran| assert!(*ran > 0, "a reader never ran"))
        .sum()
}

/// Every version of `name` pulls byte-identical to the file it came from.
fn all_pull_whole(reg: &Reg, name: &str, files: &BTreeMap<String, Vec<u8>>) -> usize {
    let log = log_of(&reg.home(), &reg.work(), name);
    for (number, _, source) in &log {
        let out = reg.work().join("check.ckpt");
        reg.ok(&[
            "pull",
            &format!("{name}@v{number}"),
            "-o",
            out.to_str().expect("utf8"),
            "--force",
        ]);
        let pulled = std::fs::read(&out).expect("pulled");
        assert!(
            files.get(source).is_some_and(|f| *f == pulled),
            "{name}@v{number} (from {source}) did not pull byte-identical"
        );
    }
    log.len()
}

fn read_files(paths: &[PathBuf]) -> BTreeMap<String, Vec<u8>> {
    paths
        .iter()
        .map(|p| {
            let name = p.file_name().expect("file name").to_string_lossy().into_owned();
            (name, std::fs::read(p).expect("read input"))
        })
        .collect()
}

/// True while some process holds the registry's index lock.
fn index_lock_held(home: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(home.join("lock")) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

/// True when the blob store holds files being written (a push encoding
/// payloads, a re-encoding writing its new file).
fn writing_blobs(home: &Path) -> bool {
    std::fs::read_dir(home.join("blobs").join("tmp")).is_ok_and(|mut d| d.next().is_some())
}

/// Wait (at most `limit`) until `child` is writing blobs; false when it
/// ended first.
fn wait_until_writing(home: &Path, child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().expect("try_wait").is_some() {
            return false;
        }
        if writing_blobs(home) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Freeze `child` (SIGSTOP) at a moment it does not hold the index lock:
/// the long part of its work, which readers must not wait for.
fn freeze_outside_the_index(home: &Path, child: &Child) {
    let pid = child.id() as libc::pid_t;
    for _ in 0..1000 {
        // SAFETY: signals to our own child.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(5));
        if !index_lock_held(home) {
            return;
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        std::thread::sleep(Duration::from_millis(3));
    }
    panic!("the child held the index lock at every try");
}

fn thaw(child: &Child) {
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
}

/// Every reader command, each bounded by `--wait-timeout 10`: none may
/// wait for the frozen writer; the pull must be byte-identical.
fn readers_answer_at_once(reg: &Reg, name: &str, files: &BTreeMap<String, Vec<u8>>) {
    let (home, work) = (reg.home(), reg.work());
    let log = log_of(&home, &work, name);
    let (number, _, source) = log.last().cloned().expect("a committed version");
    let version = format!("{name}@v{number}");
    let out = work.join("frozen-pull.ckpt");
    let out_arg = out.to_string_lossy().into_owned();
    let first = format!("{name}@v1");
    for args in [
        vec!["ls"],
        vec!["log", name],
        vec!["show", &version, "--json"],
        vec!["diff", &first, &version, "--only", "hparams"],
        vec!["pull", &version, "-o", &out_arg, "--force"],
        vec!["stats"],
        vec!["verify"],
    ] {
        let mut all = vec!["--wait-timeout", "10"];
        all.extend(args.iter().copied());
        let r = reg.run(&all);
        assert_eq!(r.code, 0, "reg {args:?} waited or failed: {}{}", r.stdout, r.stderr);
        assert!(!r.stderr.contains("waiting"), "reg {args:?} waited: {}", r.stderr);
    }
    assert!(
        files
            .get(&source)
            .is_some_and(|f| std::fs::read(&out).ok().as_ref() == Some(f)),
        "{version} did not pull byte-identical"
    );
}

#[test]
fn readers_see_a_consistent_registry_while_pushes_deltas_and_gc_are_killed() {
    let reg = Reg::new();
    let (home, work) = (reg.home(), reg.work());
    let epochs: Vec<PathBuf> = (0..8).map(|e| generate(&reg, &format!("e{e:02}"), "3M", e)).collect();
    let files = Arc::new(read_files(&epochs));
    let arg = |p: &PathBuf| p.to_string_lossy().into_owned();
    ok(&home, &work, &["push", &arg(&epochs[0]), "-n", "run"]);
    // How long a push and a re-encoding take here, to spread kills over.
    let t = Instant::now();
    ok(&home, &work, &["push", &arg(&epochs[1]), "-n", "run"]);
    let push_span = t.elapsed().as_micros() as u64;
    let t = Instant::now();
    ok(&home, &work, &["deltas", "run"]);
    let deltas_span = t.elapsed().as_micros() as u64;

    let stop = Arc::new(AtomicBool::new(false));
    let readers = start_readers(&reg, "run", &files, &stop, 3);
    let mut rng = Rng(0x51_7CC1_B727_220A);
    for round in 0..14 {
        let file = arg(&epochs[2 + round % 6]);
        match rng.below(4) {
            0 => {
                // A push killed at a random moment (its version may or may
                // not have committed; readers see one or the other).
                let child = reg_cmd(&home, &work, &["push", &file, "-n", "run"])
                    .spawn()
                    .expect("push");
                std::thread::sleep(Duration::from_micros(rng.below(push_span)));
                kill(child);
            }
            1 => {
                // A push that completes and leaves its background deltas,
                // with another re-encoding started and killed beside it.
                ok(&home, &work, &["push", &file, "-n", "run"]);
                let child = reg_cmd(&home, &work, &["deltas", "--background", "run"])
                    .spawn()
                    .expect("deltas");
                std::thread::sleep(Duration::from_micros(rng.below(deltas_span)));
                kill(child);
            }
            2 => {
                let child = reg_cmd(&home, &work, &["deltas", "run"]).spawn().expect("deltas");
                std::thread::sleep(Duration::from_micros(rng.below(deltas_span)));
                kill(child);
            }
            _ => {
                // gc (it waits for the re-encodings and drains the
                // readers), killed at a random moment.
                let child = reg_cmd(&home, &work, &["gc"]).spawn().expect("gc");
                std::thread::sleep(Duration::from_micros(rng.below(push_span)));
                kill(child);
            }
        }
        // Nothing any kill left behind keeps the next command waiting.
        ok(&home, &work, &["verify"]);
    }
    let ran = stop_readers(&stop, readers);
    assert!(ran >= 20, "readers ran only {ran} commands");
    ok(&home, &work, &["deltas", "run"]);
    let v = json(&ok(&home, &work, &["verify", "--full", "--json"]));
    assert_eq!(v["damaged_versions"], serde_json::json!([]), "{v}");
    assert!(all_pull_whole(&reg, "run", &files) >= 2);
    ok(&home, &work, &["gc"]);
    ok(&home, &work, &["verify", "--full"]);
}

#[test]
fn eight_processes_pushing_eight_names_all_land() {
    let reg = Reg::new();
    let (home, work) = (reg.home(), reg.work());
    let inputs: Vec<PathBuf> = [
        "lightning/mlp/epoch=00.ckpt",
        "lightning/mlp/epoch=01.ckpt",
        "lightning/mlp-finetune/epoch=00.ckpt",
        "lightning/monitored/epoch=00.ckpt",
        "torch/zoo.pt",
        "torch/nested.pt",
        "safetensors/mlp.safetensors",
        "safetensors/zoo.safetensors",
    ]
    .iter()
    .map(|rel| fixture(rel))
    .collect();
    let children: Vec<Child> = inputs
        .iter()
        .enumerate()
        .map(|(i, f)| {
            reg_cmd(&home, &work, &["push", &f.to_string_lossy(), "-n", &format!("m{i}")])
                .spawn()
                .expect("push")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let ls = json(&ok(&home, &work, &["ls", "--json"]));
    let names: Vec<(String, u64)> = ls
        .as_array()
        .expect("ls")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().expect("name").to_string(),
                m["versions"].as_u64().expect("n"),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = (0..8).map(|i| (format!("m{i}"), 1)).collect();
    assert_eq!(names, expected);
    for (i, f) in inputs.iter().enumerate() {
        let out = work.join(format!("out{i}"));
        ok(&home, &work, &["pull", &format!("m{i}"), "-o", &out.to_string_lossy()]);
        assert_eq!(std::fs::read(&out).ok(), std::fs::read(f).ok(), "m{i}");
    }
    ok(&home, &work, &["verify", "--full"]);
}

#[test]
fn eight_processes_pushing_one_name_get_eight_numbers_in_commit_order() {
    let reg = Reg::new();
    let (home, work) = (reg.home(), reg.work());
    let inputs: Vec<PathBuf> = (0..8).map(|e| generate(&reg, &format!("p{e}"), "1M", e)).collect();
    let files = read_files(&inputs);
    // A reader polls the log the whole time: what it sees must always be
    // v1..vk, growing (a number is taken when its version commits).
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let poller = {
        let (home, work, stop, polls) = (home.clone(), work.clone(), stop.clone(), polls.clone());
        std::thread::spawn(move || {
            let seen = Seen::default();
            let mut high_water = 0;
            while !stop.load(Ordering::SeqCst) {
                let log = log_of(&home, &work, "one");
                assert!(log.len() >= high_water, "a version disappeared: {log:?}");
                high_water = log.len();
                seen.check(&log, "reg log during 8 pushes");
                polls.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let children: Vec<Child> = inputs
        .iter()
        .map(|f| {
            reg_cmd(&home, &work, &["push", &f.to_string_lossy(), "-n", "one", "--json"])
                .spawn()
                .expect("push")
        })
        .collect();
    let mut numbers: Vec<(u64, String)> = children
        .into_iter()
        .zip(&inputs)
        .map(|(c, f)| {
            let out = c.wait_with_output().expect("wait");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let report = json(&String::from_utf8_lossy(&out.stdout));
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            (report["version"].as_u64().expect("version"), name)
        })
        .collect();
    stop.store(true, Ordering::SeqCst);
    poller.join().expect("the polling reader failed");
    assert!(polls.load(Ordering::SeqCst) > 0);
    numbers.sort();
    let got: Vec<u64> = numbers.iter().map(|n| n.0).collect();
    assert_eq!(got, (1..=8).collect::<Vec<u64>>(), "{numbers:?}");
    // The number each push reported is the version holding its file.
    let log = log_of(&home, &work, "one");
    for ((n, source), (ln, _, lsource)) in numbers.iter().zip(&log) {
        assert_eq!((n, source), (ln, lsource));
    }
    assert_eq!(all_pull_whole(&reg, "one", &files), 8);
    ok(&home, &work, &["deltas"]);
    ok(&home, &work, &["verify", "--full"]);
}

#[test]
fn a_log_started_during_a_push_returns_before_the_push_ends() {
    let reg = Reg::new();
    let (home, work) = (reg.home(), reg.work());
    let small = generate(&reg, "small", "1M", 0);
    // Large enough that its push lasts seconds in a debug build.
    let large = generate(&reg, "large", "40M", 1);
    ok(&home, &work, &["push", &small.to_string_lossy(), "-n", "big"]);
    let mut push = reg_cmd(&home, &work, &["push", &large.to_string_lossy(), "-n", "big"])
        .spawn()
        .expect("push");
    assert!(
        wait_until_writing(&home, &mut push, Duration::from_secs(120)),
        "the push never started writing blobs"
    );
    // The push is encoding its payloads: the log must not wait for it.
    let log = log_of(&home, &work, "big");
    let still_running = push.try_wait().expect("try_wait").is_none();
    let out = push.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(still_running, "reg log returned only after the push ended");
    let listed: Vec<u64> = log.iter().map(|v| v.0).collect();
    assert_eq!(
        listed,
        vec![1],
        "the log lists the committed versions, not the one being pushed"
    );
    let after: Vec<u64> = log_of(&home, &work, "big").iter().map(|v| v.0).collect();
    assert_eq!(after, vec![1, 2]);
    ok(&home, &work, &["deltas"]);
}

#[test]
fn readers_and_pushes_never_wait_for_a_frozen_push_or_reencoding() {
    let reg = Reg::new();
    let (home, work) = (reg.home(), reg.work());
    let toml = work.join("registry.toml");
    std::fs::write(&toml, "[registry]\ndeltas = \"off\"\n").expect("toml");
    let inputs: Vec<PathBuf> = (0..4).map(|e| generate(&reg, &format!("f{e}"), "8M", e)).collect();
    let files = read_files(&inputs);
    let arg = |i: usize| inputs[i].to_string_lossy().into_owned();
    ok(&home, &work, &["push", &arg(0), "-n", "run"]);
    ok(&home, &work, &["push", &arg(1), "-n", "run"]);
    std::fs::remove_file(&toml).expect("toml");

    // A re-encoding frozen half way (holding gc.lock and deltas.lock).
    let mut deltas = reg_cmd(&home, &work, &["deltas", "run"]).spawn().expect("deltas");
    assert!(
        wait_until_writing(&home, &mut deltas, Duration::from_secs(120)),
        "the re-encoding never started writing"
    );
    freeze_outside_the_index(&home, &deltas);
    readers_answer_at_once(&reg, "run", &files);
    // A push does not wait for the re-encoding either (its own deltas are
    // left to a background job, which queues behind the frozen one).
    let r = reg.run(&["--wait-timeout", "30", "push", &arg(2), "-n", "run"]);
    assert_eq!(r.code, 0, "a push waited for a re-encoding: {}", r.stderr);
    readers_answer_at_once(&reg, "run", &files);
    // gc does wait for it, says so, and gives up at --wait-timeout; so
    // does another re-encoding, naming the one it waits for.
    let gc = reg.run(&["--wait-timeout", "1", "gc"]);
    assert_eq!(gc.code, 1, "{}{}", gc.stdout, gc.stderr);
    assert!(
        gc.stderr.contains("waiting for running pushes and re-encodings"),
        "{}",
        gc.stderr
    );
    let again = reg.run(&["--wait-timeout", "1", "deltas", "run"]);
    assert_eq!(again.code, 1, "{}{}", again.stdout, again.stderr);
    // Said once, naming the holder; then the one-line error.
    let said: Vec<&str> = again.stderr.lines().filter(|l| l.starts_with("reg: waiting")).collect();
    assert_eq!(
        said,
        vec![format!("reg: waiting for reg deltas of run (pid {})", deltas.id())],
        "{}",
        again.stderr
    );
    thaw(&deltas);
    assert!(deltas.wait().expect("wait").success());
    // The push's own background re-encoding finishes too (reg deltas
    // waits for it), so that the blobs being written below are the next
    // push's.
    ok(&home, &work, &["deltas"]);

    // A push frozen while it encodes (holding gc.lock).
    let mut push = reg_cmd(&home, &work, &["push", &arg(3), "-n", "run"])
        .spawn()
        .expect("push");
    assert!(
        wait_until_writing(&home, &mut push, Duration::from_secs(120)),
        "the push never started writing"
    );
    freeze_outside_the_index(&home, &push);
    readers_answer_at_once(&reg, "run", &files);
    let r = reg.run(&["--wait-timeout", "30", "deltas", "run"]);
    assert_eq!(r.code, 0, "a re-encoding waited for a push: {}", r.stderr);
    thaw(&push);
    assert!(push.wait().expect("wait").success());
    assert_eq!(log_of(&home, &work, "run").len(), 4);
    ok(&home, &work, &["deltas"]);
    ok(&home, &work, &["verify", "--full"]);
    assert_eq!(all_pull_whole(&reg, "run", &files), 4);
}

#[test]
fn gc_while_readers_and_reencodings_run_loses_nothing() {
    let reg = Reg::new();
    let (home, work) = (reg.home(), reg.work());
    let inputs: Vec<PathBuf> = (0..7).map(|e| generate(&reg, &format!("g{e}"), "2M", e)).collect();
    let files = Arc::new(read_files(&inputs));
    let arg = |i: usize| inputs[i].to_string_lossy().into_owned();
    for i in 0..4 {
        ok(&home, &work, &["push", &arg(i), "-n", "run"]);
    }
    ok(&home, &work, &["deltas"]);
    // Versions the readers pull: never removed. v2 and v3 are removed
    // while they run, so gc re-encodes v1's deltas against v2 whole and
    // deletes blobs, and new versions arrive with their re-encodings.
    let keep: Arc<Mutex<Vec<(u64, String)>>> =
        Arc::new(Mutex::new(vec![(1, "g0.ckpt".to_string()), (4, "g3.ckpt".to_string())]));
    let stop = Arc::new(AtomicBool::new(false));
    let pulls = Arc::new(AtomicUsize::new(0));
    // Readers that overlap all the time: there is never a moment without
    // one, so gc must not need one.
    let readers: Vec<_> = (0..3u64)
        .map(|i| {
            let (home, work, files) = (home.clone(), work.clone(), files.clone());
            let (keep, stop, pulls) = (keep.clone(), stop.clone(), pulls.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x2545_F491_4F6C_DD1D + i);
                let out = work.join(format!("gc-reader-{i}.ckpt"));
                while !stop.load(Ordering::SeqCst) {
                    let (n, source) = {
                        let k = keep.lock().expect("keep");
                        k[rng.below(k.len() as u64) as usize].clone()
                    };
                    ok(
                        &home,
                        &work,
                        &["pull", &format!("run@v{n}"), "-o", &out.to_string_lossy(), "--force"],
                    );
                    let pulled = std::fs::read(&out).expect("pulled");
                    assert!(files[&source] == pulled, "run@v{n} did not pull whole during gc");
                    pulls.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for (i, removed) in [(4usize, 2u64), (5, 3)] {
        ok(&home, &work, &["rm", &format!("run@v{removed}")]);
        ok(&home, &work, &["push", &arg(i), "-n", "run"]);
        // A re-encoding of its own beside the push's background one.
        let deltas = reg_cmd(&home, &work, &["deltas", "run"]).spawn().expect("deltas");
        // It waits for the re-encodings (they hold gc.lock shared), never
        // for the readers; the bound only catches a gc that never ends.
        let gc = reg_waiting(&home, &work, "180", &["gc"]).output().expect("gc");
        if !gc.status.success() {
            // Stop the readers first: the registry goes when the test
            // unwinds, and their errors would hide this one.
            stop.store(true, Ordering::SeqCst);
            for r in readers {
                let _ = r.join();
            }
            panic!("gc while readers run: {}", String::from_utf8_lossy(&gc.stderr));
        }
        assert!(deltas.wait_with_output().expect("deltas").status.success());
        keep.lock().expect("keep").push((i as u64 + 1, format!("g{i}.ckpt")));
        // And a gc killed at a random moment: nothing it did half way shows.
        let child = reg_cmd(&home, &work, &["gc"]).spawn().expect("gc");
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        kill(child);
    }
    ok(&home, &work, &["gc"]);
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().expect("a reader failed");
    }
    assert!(pulls.load(Ordering::SeqCst) >= 3);
    ok(&home, &work, &["verify", "--full"]);
    let numbers: Vec<u64> = log_of(&home, &work, "run").iter().map(|v| v.0).collect();
    assert_eq!(numbers, vec![1, 4, 5, 6]);
    assert_eq!(all_pull_whole(&reg, "run", &files), 4);
}

/// True while `child` has a file of the registry's blob folder open.
fn has_a_blob_open(home: &Path, child: &Child) -> bool {
    let blobs = home.join("blobs");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", child.id())) else {
        return false;
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| target.starts_with(&blobs) && target.is_file())
}

/// True while some process holds the current readers' lock (shared).
fn readers_lock_held(home: &Path) -> bool {
    let generation: u64 = std::fs::read_to_string(home.join("readers.gen"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let path = home.join(format!("readers.{}.lock", generation % 2));
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(path) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

#[test]
fn rm_does_not_delete_what_a_running_verify_still_checks() {
    let reg = Reg::new();
    let (home, work) = (reg.home(), reg.work());
    for e in 0..3 {
        let f = generate(&reg, &format!("a{e}"), "4M", e);
        ok(&home, &work, &["push", &f.to_string_lossy(), "-n", "a"]);
    }
    ok(&home, &work, &["deltas"]);
    reg.push("torch/zoo.pt", "z");
    let z = log_of(&home, &work, "z");
    let manifest = home.join("blobs").join(&z[0].1[..2]).join(&z[0].1[2..]);
    assert!(manifest.is_file());
    // verify --full checks a's versions first (slow), then z's, whose
    // manifest blob it looks for on disk.
    let mut verify = reg_cmd(&home, &work, &["verify", "--full", "--json"])
        .spawn()
        .expect("verify");
    let start = Instant::now();
    // It takes the readers lock before it reads the index: wait until it
    // reads blobs, by then it has its list of versions.
    while !readers_lock_held(&home) || !has_a_blob_open(&home, &verify) {
        assert!(
            verify.try_wait().expect("try_wait").is_none(),
            "verify ended before it was seen"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "verify never took the readers lock"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    freeze_outside_the_index(&home, &verify);
    // rm commits at once; the file verify may still open stays (rm gives
    // up waiting for the frozen reader at --wait-timeout and leaves it).
    let r = reg.run(&["--wait-timeout", "2", "rm", "z@v1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        manifest.is_file(),
        "rm deleted a manifest blob a running reader may open"
    );
    assert_eq!(reg.run(&["log", "z"]).code, 1, "z@v1 is gone from the index");
    thaw(&verify);
    let out = verify.wait_with_output().expect("verify");
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "verify during rm: {report}");
    assert_eq!(report["versions"], 4);
    // With no reader left, gc deletes it; a reader-free rm deletes at once.
    ok(&home, &work, &["gc"]);
    assert!(!manifest.exists());
    ok(&home, &work, &["verify", "--full"]);
    reg.push("torch/zoo.pt", "z");
    let again = log_of(&home, &work, "z");
    let manifest = home.join("blobs").join(&again[0].1[..2]).join(&again[0].1[2..]);
    ok(&home, &work, &["rm", "z"]);
    assert!(!manifest.exists());
}

#[test]
fn eight_processes_creating_one_registry_at_once_all_succeed() {
    for round in 0..4 {
        let reg = Reg::new();
        let (home, work) = (reg.home(), reg.work());
        let children: Vec<Child> = (0..8)
            .map(|i| {
                let args: &[&str] = if i % 2 == 0 { &["ls"] } else { &["stats"] };
                reg_cmd(&home, &work, args).spawn().expect("spawn")
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(home.join("FORMAT").is_file());
    }
}
