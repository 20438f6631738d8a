//! Every input in `tests/fixtures/fuzz/` that once crashed, hung or blew up
//! a reader (found by `scripts/fuzz.sh` or built to show a hang the fuzzers
//! point at) must now come back with `Ok` or `Err`, promptly, without a
//! panic.
//!
//! Files are named `<target>-<short>.bin`; the target picks the reader:
//! `pickle` (`pickle::parse`), `torchzip` (`torchzip::read`), `legacy`
//! (`legacy::read`), `safetensors` (`safetensors::read`), `inspect`
//! (`inspect` and `inspect_deferred`). `codecs_decode-*` files belong to
//! reg-store and are skipped here.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Time one input may take in a debug build before it counts as a hang.
/// Inputs are at most a few hundred KiB; a correct reader takes
/// milliseconds, so this is far above any honest cost.
const DEADLINE: Duration = Duration::from_secs(30);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/fuzz")
}

/// Run the reader the file name asks for; `None` for files of other crates.
fn run(target: &str, bytes: &[u8]) -> Option<String> {
    let outcome = match target {
        "pickle" => format!(
            "{:?}",
            reg_ckpt::pickle::parse(bytes, &reg_ckpt::pickle::Limits::default()).map(|_| ())
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
        _ => return None,
    };
    Some(outcome)
}

#[test]
fn fuzz_findings_are_handled() {
    let dir = fuzz_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no {}: nothing to check", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in files {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let Some((target, _)) = name.split_once('-') else {
            continue;
        };
        let target = target.to_owned();
        if !matches!(
            target.as_str(),
            "pickle" | "torchzip" | "legacy" | "safetensors" | "inspect"
        ) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        checked += 1;
        // A thread per input: a panic is caught by join, a hang by the
        // deadline (the stuck thread is left behind and dies with the process).
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let out = run(&target, &bytes);
                let _ = tx.send(out);
            })
            .expect("spawn");
        match rx.recv_timeout(DEADLINE) {
            Ok(outcome) => {
                let _ = handle.join();
                eprintln!("{name}: {:.2?}: {}", started.elapsed(), outcome.unwrap_or_default());
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let why = match handle.join() {
                    Err(panic) => panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panic".into()),
                    Ok(()) => "thread ended without an answer".into(),
                };
                failures.push(format!("{name}: panicked: {why}"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                failures.push(format!("{name}: still running after {DEADLINE:?}"));
            }
        }
    }
    eprintln!("{checked} fuzz regression inputs checked");
    assert!(failures.is_empty(), "fuzz regressions:\n{}", failures.join("\n"));
}
