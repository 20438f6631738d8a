//! `reg push -`: a checkpoint read from a pipe is stored exactly as the same
//! file pushed by path; bad streams are refused in one line and change
//! nothing; memory stays bounded for a stream larger than the bound.

use crate::common::{fixture, pulls_identical, Reg, Run};
use crate::dirs::snapshot;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a `reg` run that read a stream returned, and the peak of its
/// anonymous memory (RssAnon of /proc, sampled every few ms), in bytes.
pub(crate) struct StreamRun {
    pub(crate) run: Run,
    pub(crate) peak_anon: u64,
}

/// Run reg with `bytes` written to its standard input through a pipe, in
/// chunks of 64 KiB (as torch.save writes to a stream).
pub(crate) fn run_piped(reg: &Reg, args: &[&str], input: impl Read + Send + 'static) -> StreamRun {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reg"))
        .args(args)
        .env("REG_HOME", reg.home())
        .current_dir(reg.work())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reg");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let mut input = input;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = input.read(&mut buf).expect("read input");
            if n == 0 {
                break;
            }
            // reg may refuse the stream before it ends: a broken pipe then
            // is what a writer sees.
            if stdin.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_anon = 0u64;
    let out = loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            for line in status.lines() {
                if let Some(kb) = line.strip_prefix("RssAnon:") {
                    let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak_anon = peak_anon.max(kb * 1024);
                }
            }
        }
        if child.try_wait().expect("wait").is_some() {
            break child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    writer.join().expect("writer");
    StreamRun {
        run: Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        peak_anon,
    }
}

fn file_bytes(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).expect("fixture")
}

fn push_piped(reg: &Reg, rel: &str, extra: &[&str]) -> Run {
    let mut args = vec!["push", "-", "--json"];
    args.extend_from_slice(extra);
    let r = run_piped(reg, &args, std::io::Cursor::new(file_bytes(rel))).run;
    assert_eq!(r.code, 0, "{rel}: {}{}", r.stdout, r.stderr);
    r
}

#[test]
fn zip_legacy_and_safetensors_streams_pull_byte_identical_under_their_source_name() {
    let reg = Reg::new();
    for (rel, source, name) in [
        ("lightning/mlp/epoch=00.ckpt", "epoch=00.ckpt", "epoch-00"),
        ("torch/legacy.pt", "legacy.pt", "legacy"),
        ("safetensors/mlp.safetensors", "mlp.safetensors", "mlp"),
    ] {
        let pushed = push_piped(&reg, rel, &["--source", source]).json();
        // The model name defaults to the source's stem.
        assert_eq!(pushed["name"], name, "{pushed}");
        pulls_identical(&reg, name, rel);
        // A pull without -o writes the recorded source name.
        reg.ok(&["pull", name, "--force"]);
        let written = std::fs::read(reg.work().join(source)).expect("pulled by source name");
        assert_eq!(written, file_bytes(rel), "{rel}");
        let log = reg.ok(&["log", name, "--json"]).json();
        assert_eq!(log[0]["source"], source, "{log}");
    }
    // What reg show reports is the same as for the file pushed by path.
    reg.push("lightning/mlp/epoch=00.ckpt", "by-path");
    let a = reg.ok(&["show", "epoch-00", "--json"]).json();
    let b = reg.ok(&["show", "by-path", "--json"]).json();
    assert_eq!(a["tensors"], b["tensors"]);
    assert_eq!(a["hyper_parameters"], b["hyper_parameters"]);
}

#[test]
fn a_stream_identical_to_a_version_adds_none_and_a_name_is_needed() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=01.ckpt", "mlp");
    let again = push_piped(&reg, "lightning/mlp/epoch=01.ckpt", &["-n", "mlp"]).json();
    assert_eq!(again["created"], false, "{again}");
    assert_eq!(again["version"], 1, "{again}");
    let r = run_piped(
        &reg,
        &["push", "-"],
        std::io::Cursor::new(file_bytes("lightning/mlp/epoch=00.ckpt")),
    )
    .run;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("needs a model name"), "{}", r.stderr);
    let r = reg.run(&[
        "push",
        fixture("torch/zoo.pt").to_str().expect("utf8"),
        "--source",
        "x.pt",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("--source names a checkpoint read from `-`"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_streams_are_refused_in_one_line_and_change_nothing() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=00.ckpt", "mlp");
    reg.settle();
    let before = snapshot(&reg);
    let ckpt = file_bytes("lightning/mlp/epoch=01.ckpt");
    let mut with_tail = ckpt.clone();
    with_tail.extend_from_slice(b"trailing bytes");
    let st = file_bytes("safetensors/mlp.safetensors");
    let mut cases: Vec<(String, Vec<u8>, &str)> = vec![
        ("empty".into(), Vec::new(), "not a checkpoint"),
        ("text".into(), b"hello, world\n".to_vec(), "not a checkpoint"),
        ("trailing bytes".into(), with_tail, "14 bytes follow the end of the zip"),
        ("evil pickle".into(), file_bytes("bad/evil.pt"), "os.system"),
        (
            "safetensors cut in a tensor".into(),
            st[..st.len() - 100].to_vec(),
            "ended",
        ),
        ("safetensors cut in its header".into(), st[..20].to_vec(), "ended"),
    ];
    // A torch zip cut at many points: in the first records, in data.pkl,
    // inside storages, in the central directory.
    for frac in [1, 5, 20, 40, 60, 80, 95, 99] {
        let at = ckpt.len() * frac / 100;
        cases.push((format!("zip cut at {frac}%"), ckpt[..at].to_vec(), "ended"));
    }
    for (what, bytes, says) in cases {
        let r = run_piped(&reg, &["push", "-", "-n", "mlp"], std::io::Cursor::new(bytes)).run;
        assert_eq!(r.code, 1, "{what}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{what}: one line: {}", r.stderr);
        assert!(
            r.stderr.starts_with("reg: error: ") && r.stderr.contains(says),
            "{what}: {}",
            r.stderr
        );
        assert_eq!(snapshot(&reg), before, "{what}: the registry changed");
    }
}

/// A generated checkpoint much larger than what a stream push may hold in
/// memory goes through a pipe with its anonymous memory under the bound
/// docs/cli.md states.
#[test]
fn a_stream_larger_than_the_memory_bound_is_pushed_in_bounded_memory() {
    const BOUND: u64 = 256 << 20;
    let reg = Reg::new();
    let src = reg.work().join("big.ckpt");
    reg.ok(&["bench", "generate", src.to_str().expect("utf8"), "--size", "320M"]);
    let len = std::fs::metadata(&src).expect("generated").len();
    assert!(len > BOUND, "the checkpoint ({len}) is larger than the bound");
    let input = std::fs::File::open(&src).expect("open");
    let r = run_piped(&reg, &["push", "-", "--source", "big.ckpt", "-q"], input);
    assert_eq!(r.run.code, 0, "{}", r.run.stderr);
    assert!(
        r.peak_anon > 0 && r.peak_anon < BOUND,
        "peak anonymous memory {} MiB for a {} MiB stream (bound {} MiB)",
        r.peak_anon >> 20,
        len >> 20,
        BOUND >> 20
    );
    let out = reg.work().join("back.ckpt");
    reg.ok(&["pull", "big", "-o", out.to_str().expect("utf8")]);
    let same = std::fs::read(&out).expect("pulled") == std::fs::read(&src).expect("source");
    assert!(same, "the pulled file differs from the stream");
}

/// The stored bytes `reg stats --json` reports.
fn stored_bytes(reg: &Reg) -> u64 {
    reg.ok(&["stats", "--json"]).json()["stored_bytes"]
        .as_u64()
        .expect("stored_bytes")
}

/// `push - --fast`: the big storages go into blobs as they arrive, stored
/// raw (the report counts them as deferred); reg's background job
/// compresses them; every version pulls byte-identical before and after,
/// and verify is clean. Without `--fast` the push returns with them
/// compressed already. A file pushed with `--fast` is deferred the same
/// way.
#[test]
fn a_fast_push_stores_raw_and_the_background_job_compresses_it() {
    let reg = Reg::new();
    let mut sources = Vec::new();
    for epoch in 0..3 {
        let src = reg.work().join(format!("gen-{epoch}.ckpt"));
        let s = src.to_str().expect("utf8");
        reg.ok(&["bench", "generate", s, "--size", "12M", "--epoch", &epoch.to_string()]);
        sources.push(src);
    }
    let open = |i: usize| std::fs::File::open(&sources[i]).expect("open");

    // Fast, from a stream.
    let r = run_piped(
        &reg,
        &["push", "-", "--fast", "-n", "run", "--source", "e0.ckpt", "--json"],
        open(0),
    )
    .run;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let fast = r.json();
    let deferred = fast["deferred"].as_u64().expect("deferred counted");
    assert!(deferred > 0, "{fast}");
    // Raw: what was written is at least the new tensor bytes.
    assert!(
        fast["written_bytes"].as_u64() >= fast["new_raw_bytes"].as_u64(),
        "{fast}"
    );
    let pull_same = |version: &str, i: usize| {
        let out = reg.work().join("back.ckpt");
        reg.ok(&["pull", version, "-o", out.to_str().expect("utf8"), "--force"]);
        assert!(
            std::fs::read(&out).expect("pulled") == std::fs::read(&sources[i]).expect("source"),
            "{version} differs from what was pushed"
        );
    };
    pull_same("run@v1", 0);
    // The job the push started may be done already: what the push wrote
    // (raw) is the reference, not a stats taken now.
    let raw = fast["written_bytes"].as_u64().expect("written_bytes");
    reg.settle();
    let compressed = stored_bytes(&reg);
    assert!(compressed < raw, "the job compressed nothing: {raw} -> {compressed}");
    let stats = reg.ok(&["stats", "--json"]).json();
    assert!(stats["codecs"]["planes"][0].as_u64() >= Some(deferred), "{stats}");
    assert!(
        stats.get("deferred_blobs").is_none(),
        "nothing left to compress: {stats}"
    );
    pull_same("run@v1", 0);

    // Not fast: compressed before the push returns, nothing left queued.
    let r = run_piped(
        &reg,
        &["push", "-", "-n", "run", "--source", "e1.ckpt", "--json"],
        open(1),
    )
    .run;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let full = r.json();
    assert!(full.get("deferred").is_none(), "{full}");
    assert!(
        full["written_bytes"].as_u64() < full["new_raw_bytes"].as_u64(),
        "{full}"
    );
    pull_same("run@v2", 1);

    // A file pushed with --fast, then the job: deltas and compression.
    let s = sources[2].to_str().expect("utf8");
    let filed = reg.ok(&["push", s, "--fast", "-n", "run", "--json"]).json();
    assert!(filed["deferred"].as_u64() > Some(0), "{filed}");
    reg.settle();
    for (v, i) in [("run@v1", 0), ("run@v2", 1), ("run@v3", 2)] {
        pull_same(v, i);
    }
    let verify = reg.ok(&["verify"]);
    assert!(verify.stdout.contains(": ok"), "{}", verify.stdout);
}

/// A stream cut inside a storage that streams into a blob, or whose
/// storage bytes do not match the CRC its zip records, is refused in one
/// line; nothing is stored and no temp file is left.
#[test]
fn a_stream_cut_or_damaged_in_a_big_storage_is_refused() {
    let reg = Reg::new();
    let bytes = reg.generated("6M");
    reg.push("lightning/mlp/epoch=00.ckpt", "run");
    reg.settle();
    let before = snapshot(&reg);
    let mut flipped = bytes.clone();
    let mid = bytes.len() / 2;
    flipped[mid] ^= 0x40;
    for (what, input, says) in [
        ("cut in a storage", bytes[..mid].to_vec(), "ended inside storage"),
        ("a flipped byte", flipped, "crc mismatch"),
    ] {
        for fast in [true, false] {
            let mut args = vec!["push", "-", "-n", "run"];
            if fast {
                args.push("--fast");
            }
            let r = run_piped(&reg, &args, std::io::Cursor::new(input.clone())).run;
            assert_eq!(r.code, 1, "{what}: {}{}", r.stdout, r.stderr);
            assert_eq!(r.stderr.trim_end().lines().count(), 1, "{what}: {}", r.stderr);
            assert!(r.stderr.contains(says), "{what}: {}", r.stderr);
            assert_eq!(snapshot(&reg), before, "{what}: the registry changed");
        }
    }
}
