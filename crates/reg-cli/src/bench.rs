//! `reg bench`: measure push, pull and diff against `cp` on a generated
//! training run, in one run on one disk, and print a table of ratios.
//!
//! Every measured step runs `reg` as a child process (this binary), so wall
//! time and peak RSS are those a user sees.

use crate::human;
use anyhow::{Context, Result};
use reg_ckpt::synth::{self, RunSpec};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One measured command.
struct Measure {
    what: String,
    wall: Duration,
    max_rss_kib: Option<u64>,
}

/// Parse sizes like `2G`, `512M`, `4.5GiB`, `100000`.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim().trim_end_matches("iB").trim_end_matches('B');
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().with_context(|| format!("bad size {s:?}"))?;
    Ok((v * mult as f64) as u64)
}

/// Write epoch `epoch` of a generated run of `size`-byte files to `out`.
pub fn generate(out: &Path, size: u64, epoch: u32, layers: Option<(usize, usize)>) -> Result<u64> {
    generate_labelled(out, size, epoch, layers, 0)
}

/// [`generate`] with a run label in the hyperparameters: the same tensors
/// in another skeleton.
fn generate_labelled(out: &Path, size: u64, epoch: u32, layers: Option<(usize, usize)>, label: u32) -> Result<u64> {
    let mut spec = RunSpec::of_size(size);
    spec.label = label;
    if let Some((layers, frozen)) = layers {
        anyhow::ensure!(layers >= 1 && frozen <= layers, "need 1 <= layers and frozen <= layers");
        spec.layers = layers;
        spec.frozen = frozen;
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let w = synth::write_epoch(BufWriter::with_capacity(8 << 20, file), &spec, epoch)?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(std::fs::metadata(out)?.len())
}

#[cfg(unix)]
fn run_measured(cmd: &mut Command) -> Result<(Duration, Option<u64>)> {
    let start = Instant::now();
    let child = cmd.spawn().context("starting a child process")?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data that wait4 fills for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage point to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    anyhow::ensure!(r == pid, "waiting for the child failed");
    anyhow::ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    Ok((wall, Some(usage.ru_maxrss as u64)))
}

#[cfg(not(unix))]
fn run_measured(cmd: &mut Command) -> Result<(Duration, Option<u64>)> {
    let start = Instant::now();
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "{cmd:?} failed");
    Ok((start.elapsed(), None))
}

/// `reg` as a child process on the registry `home`, in `cwd` (whose
/// registry.toml, if any, gives the settings).
fn reg_cmd(home: &Path, cwd: &Path, args: &[&str]) -> Result<Command> {
    let mut c = Command::new(std::env::current_exe()?);
    c.env("REG_HOME", home).args(["--quiet"]).args(args).current_dir(cwd);
    c.stdout(std::process::Stdio::null());
    Ok(c)
}

/// Run the benchmark in `dir` with files of `size` bytes; print a Markdown
/// table. `epochs` >= 2.
pub fn run(dir: &Path, size: u64, epochs: u32, keep: bool) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let work = tempfile::Builder::new().prefix("reg-bench-").tempdir_in(dir)?;
    let root = work.path().to_path_buf();
    let home = root.join("registry");
    eprintln!(
        "reg bench: generating {epochs} checkpoints of {} in {}",
        human::bytes(size),
        root.display()
    );
    let mut files: Vec<PathBuf> = Vec::new();
    for e in 0..epochs.max(2) {
        let f = root.join(format!("epoch={e:02}.ckpt"));
        generate(&f, size, e, None)?;
        files.push(f);
    }
    let actual = std::fs::metadata(&files[0])?.len();
    let mut rows: Vec<Measure> = Vec::new();
    let f0 = files[0].to_string_lossy().into_owned();
    // cp is the baseline, so it is measured with care: this disk's (and a
    // VM's) first writes into fresh page-cache memory are much slower than
    // later ones, so one copy warms up, then three are measured and the
    // median counts. Every copy is deleted at once, so that the memory
    // it took is reused by the steps that follow.
    let copy = root.join("copy0");
    let cp_once = |copy: &Path| -> Result<Duration> {
        let _ = Command::new("sync").status();
        let mut cp = Command::new("cp");
        cp.arg(&f0).arg(copy);
        let (wall, _) = run_measured(&mut cp)?;
        std::fs::remove_file(copy)?;
        Ok(wall)
    };
    cp_once(&copy)?;
    let mut cps_measured = [cp_once(&copy)?, cp_once(&copy)?, cp_once(&copy)?];
    cps_measured.sort();
    let cp0 = cps_measured[1];
    rows.push(Measure {
        what: format!(
            "cp epoch 0 (median of {:.3} / {:.3} / {:.3} s)",
            cps_measured[0].as_secs_f64(),
            cps_measured[1].as_secs_f64(),
            cps_measured[2].as_secs_f64()
        ),
        wall: cp0,
        max_rss_kib: None,
    });
    let mut measure = |what: String, mut cmd: Command| -> Result<Duration> {
        // Each step starts with no dirty pages (so no step pays for an
        // earlier one's writeback); inputs stay in the page cache. A step
        // that waits for a background job starts at once.
        if !what.starts_with("  ") {
            let _ = Command::new("sync").status();
        }
        let (wall, rss) = run_measured(&mut cmd)?;
        rows.push(Measure {
            what,
            wall,
            max_rss_kib: rss,
        });
        Ok(wall)
    };
    let f1 = files[1].to_string_lossy().into_owned();
    // Settings: the default registry (durability "full"), and one with
    // durability "fast" for the rows that say so.
    let full_dir = root.join("full");
    let fast_dir = root.join("fast");
    std::fs::create_dir_all(&full_dir)?;
    std::fs::create_dir_all(&fast_dir)?;
    std::fs::write(fast_dir.join("registry.toml"), "[registry]\ndurability = \"fast\"\n")?;
    let fast_home = root.join("registry-fast");
    let raw_dir = root.join("raw");
    std::fs::create_dir_all(&raw_dir)?;
    std::fs::write(raw_dir.join("registry.toml"), "[registry]\ncodecs = \"raw\"\n")?;
    let raw_home = root.join("registry-raw");
    let reg = |args: &[&str]| reg_cmd(&home, &full_dir, args);
    let reg_fast = |args: &[&str]| reg_cmd(&fast_home, &fast_dir, args);
    let reg_raw = |args: &[&str]| reg_cmd(&raw_home, &raw_dir, args);

    let mut cps = Command::new("sh");
    cps.arg("-c").arg(format!(
        "cp '{f0}' '{}' && sync '{}'",
        root.join("copy0s").display(),
        root.join("copy0s").display()
    ));
    let cp0s = measure("cp + fsync epoch 0".into(), cps)?;
    std::fs::remove_file(root.join("copy0s"))?;
    let push0 = measure("push epoch 0 (new)".into(), reg(&["push", &f0, "-n", "bench"])?)?;
    let push0_fast = measure(
        "push epoch 0 (new), durability fast".into(),
        reg_fast(&["push", &f0, "-n", "bench"])?,
    )?;
    let push0_raw = measure(
        "push epoch 0 (new), codecs raw (no compression)".into(),
        reg_raw(&["push", &f0, "-n", "bench"])?,
    )?;
    let repush = measure(
        "push epoch 0 again (identical)".into(),
        reg(&["push", &f0, "-n", "bench"])?,
    )?;
    let push1 = measure("push epoch 1 (next epoch)".into(), reg(&["push", &f1, "-n", "bench"])?)?;
    // The push returned; the re-encoding of epoch 0 as deltas against
    // epoch 1 goes on in the background, and the next command waits for it.
    let deltas1 = measure(
        "  then: background deltas of epoch 0 (a command waiting for them)".into(),
        reg(&["ls"])?,
    )?;
    let push1_fast = measure(
        "push epoch 1, durability fast".into(),
        reg_fast(&["push", &f1, "-n", "bench"])?,
    )?;
    measure(
        "  then: background deltas of epoch 0, durability fast".into(),
        reg_fast(&["ls"])?,
    )?;
    // Epoch 1's tensors in another skeleton (other hyperparameters): every
    // payload is stored, the file is new.
    let relabelled = root.join("same-tensors.ckpt");
    generate_labelled(&relabelled, size, 1, None, 1)?;
    let same = measure(
        "push of a new file whose tensors are all stored".into(),
        reg(&["push", &relabelled.to_string_lossy(), "-n", "bench-relabelled"])?,
    )?;
    let out = root.join("pulled.ckpt");
    let pull = measure(
        "pull epoch 1 (newest: self-contained)".into(),
        reg(&["pull", "bench@v2", "-o", &out.to_string_lossy()])?,
    )?;
    anyhow::ensure!(
        std::fs::metadata(&out)?.len() == std::fs::metadata(&files[1])?.len(),
        "pull size differs"
    );
    std::fs::remove_file(&out)?;
    let pull_raw = measure(
        "pull epoch 0, codecs raw".into(),
        reg_raw(&["pull", "bench@v1", "-o", &out.to_string_lossy()])?,
    )?;
    std::fs::remove_file(&out)?;
    let out0 = root.join("pulled0.ckpt");
    let pull0 = measure(
        "pull epoch 0 (a delta against epoch 1)".into(),
        reg(&["pull", "bench@v1", "-o", &out0.to_string_lossy()])?,
    )?;
    std::fs::remove_file(&out0)?;
    let diff = measure(
        "diff --only hparams v1 v2".into(),
        reg(&["diff", "bench@v1", "bench@v2", "--only", "hparams"])?,
    )?;
    for (i, f) in files.iter().enumerate().skip(2) {
        measure(
            format!("push epoch {i}"),
            reg(&["push", &f.to_string_lossy(), "-n", "bench"])?,
        )?;
        measure(format!("  then: background deltas of epoch {}", i - 1), reg(&["ls"])?)?;
    }
    let stats_out = Command::new(std::env::current_exe()?)
        .env("REG_HOME", &home)
        .args(["stats", "--json"])
        .output()?;
    let stats: serde_json::Value = serde_json::from_slice(&stats_out.stdout).unwrap_or_default();

    println!("| step | wall | vs cp | peak RSS |");
    println!("|---|---:|---:|---:|");
    for m in &rows {
        println!(
            "| {} | {:.3} s | {:.2}x | {} |",
            m.what,
            m.wall.as_secs_f64(),
            m.wall.as_secs_f64() / cp0.as_secs_f64().max(1e-9),
            m.max_rss_kib
                .map(|k| human::bytes(k * 1024))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!();
    println!(
        "file size {} ({} epochs); registry: {} logical, {} stored",
        human::bytes(actual),
        epochs,
        human::bytes(stats["logical_bytes"].as_u64().unwrap_or(0)),
        human::bytes(stats["stored_bytes"].as_u64().unwrap_or(0))
    );
    println!();
    let r = |d: Duration| d.as_secs_f64() / cp0.as_secs_f64().max(1e-9);
    println!(
        "targets (issue 7): first push <= 1.5x cp: {:.2}x (durability fast: {:.2}x); all-stored push <= 0.5x cp: {:.2}x; pull <= 1.2x cp: {:.2}x; hparam diff < 20 ms: {:.1} ms",
        r(push0),
        r(push0_fast),
        r(same),
        r(pull),
        diff.as_secs_f64() * 1e3
    );
    println!(
        "(cp + fsync: {:.3} s = {:.2}x; without compression: first push {:.2}x, pull {:.2}x; identical re-push {:.2}x; next epoch {:.2}x (+{:.2}x in the background), fast {:.2}x; pull of the delta version {:.2}x)",
        cp0s.as_secs_f64(),
        r(cp0s),
        r(push0_raw),
        r(pull_raw),
        r(repush),
        r(push1),
        r(deltas1),
        r(push1_fast),
        r(pull0)
    );
    if keep {
        let kept = work.keep();
        eprintln!("reg bench: kept {}", kept.display());
    }
    Ok(())
}

/// `reg bench run` / `reg bench generate`.
pub fn command(cwd: &Path, what: crate::cli::BenchCommand, quiet: bool) -> Result<std::process::ExitCode> {
    match what {
        crate::cli::BenchCommand::Run {
            size,
            epochs,
            dir,
            keep,
        } => run(&cwd.join(dir), parse_size(&size)?, epochs, keep)?,
        crate::cli::BenchCommand::Generate {
            file,
            size,
            epoch,
            layers,
            frozen,
        } => {
            let shape = layers.map(|l| (l, frozen.unwrap_or(0)));
            let n = generate(&cwd.join(&file), parse_size(&size)?, epoch, shape)?;
            if !quiet {
                println!("wrote {} ({})", file.display(), crate::human::bytes(n));
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("2G").ok(), Some(2 << 30));
        assert_eq!(super::parse_size("512MiB").ok(), Some(512 << 20));
        assert_eq!(super::parse_size("1000").ok(), Some(1000));
        assert_eq!(super::parse_size("1.5k").ok(), Some(1536));
        assert!(super::parse_size("x").is_err());
    }
}
