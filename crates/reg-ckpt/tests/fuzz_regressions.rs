//! Every input in `tests/fixtures/fuzz/` once crashed, hung or exhausted
//! memory in a reader (found by `scripts/fuzz.sh`, or built by hand to show
//! a cost the fuzzers point at; see docs/fuzzing.md). Each must now come
//! back with `Ok` or `Err`, promptly, in bounded memory, without a panic.
//!
//! Files are named `<target>-<short>.bin`; the target picks the reader:
//! `pickle` (`pickle::parse`), `torchzip` (`torchzip::read` and
//! `read_with(.., false)`), `legacy` (`legacy::read`), `safetensors`
//! (`safetensors::read`), `inspect` (`inspect` and `inspect_deferred`).
//! `codecs_decode-*` files belong to reg-store and are skipped here.
//!
//! Each input runs in a child process (this test binary again, running
//! [`fuzz_regression_child`]) under a 4 GiB address-space limit and a
//! deadline, so a regression shows up as a failed test rather than as a
//! hung test run or a machine out of memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Time one input may take in a debug build before it counts as a hang.
/// Inputs are at most a few hundred KiB; a correct reader takes well
/// under a second on them, even unoptimised.
const DEADLINE: Duration = Duration::from_secs(30);

/// Address space of the child, in KiB (`ulimit -v`).
const MEMORY_KIB: u64 = 4 << 20;

/// The variable that tells the child which input to read.
const INPUT_VAR: &str = "REG_FUZZ_REGRESSION_INPUT";

const TARGETS: [&str; 5] = ["pickle", "torchzip", "legacy", "safetensors", "inspect"];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/fuzz")
}

/// The reader a file name asks for, if it is one of this crate's.
fn target_of(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    let (target, _) = name.split_once('-')?;
    TARGETS.iter().copied().find(|t| *t == target)
}

/// Run the reader on the bytes and describe what it returned.
fn run(target: &str, bytes: &[u8]) -> String {
    match target {
        "pickle" => format!(
            "{:?}",
            reg_pickle::parse(bytes, &reg_pickle::Limits::default()).map(|_| ())
        ),
        "torchzip" => {
            let a = reg_ckpt::torchzip::read(bytes).map(|_| ());
            let b = reg_ckpt::torchzip::read_with(bytes, false).map(|_| ());
            format!("{a:?} / {b:?}")
        }
        "legacy" => format!("{:?}", reg_ckpt::legacy::read(bytes).map(|_| ())),
        "safetensors" => format!("{:?}", reg_ckpt::safetensors::read(bytes).map(|_| ())),
        "inspect" => {
            let a = reg_ckpt::inspect(bytes).map(|_| ());
            let b = reg_ckpt::inspect_deferred(bytes).map(|_| ());
            format!("{a:?} / {b:?}")
        }
        other => panic!("unknown target {other}"),
    }
}

/// The child half: reads the input named by `REG_FUZZ_REGRESSION_INPUT`
/// (does nothing when it is unset, as in a normal test run).
#[test]
fn fuzz_regression_child() {
    let Some(path) = std::env::var_os(INPUT_VAR) else {
        return;
    };
    let path = PathBuf::from(path);
    let target = target_of(&path).expect("a <target>-<name> file");
    let bytes = std::fs::read(&path).expect("read input");
    let outcome = run(target, &bytes);
    println!("OUTCOME {outcome}");
}

#[test]
fn fuzz_findings_are_handled() {
    let dir = fuzz_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no {}: nothing to check", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && target_of(p).is_some())
        .collect();
    files.sort();
    let exe = std::env::current_exe().expect("test binary");
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let started = Instant::now();
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("ulimit -v {MEMORY_KIB}; exec \"$0\" \"$@\""))
            .arg(&exe)
            .args(["--exact", "fuzz_regression_child", "--nocapture", "--test-threads=1"])
            .env(INPUT_VAR, path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the test binary");
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().expect("child output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match status {
            None => failures.push(format!("{name}: still running after {DEADLINE:?}")),
            Some(s) if s.success() && stdout.contains("OUTCOME ") => {
                // The harness may print its "test ... " prefix on the same line.
                let outcome = stdout
                    .lines()
                    .find_map(|l| l.split_once("OUTCOME ").map(|(_, o)| o))
                    .unwrap_or("");
                let short: String = outcome.chars().take(200).collect();
                eprintln!("{name}: {:.2?}: {short}", started.elapsed());
            }
            Some(s) => {
                let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                failures.push(format!(
                    "{name}: exited with {s} after {:.2?} (panic, stack overflow or out of memory):\n    {}",
                    started.elapsed(),
                    tail.join("\n    ")
                ));
            }
        }
    }
    eprintln!("{} fuzz regression inputs checked", files.len());
    assert!(failures.is_empty(), "fuzz regressions:\n{}", failures.join("\n"));
}
