//! `reg bench`: measure push, pull and diff against `cp` on a generated
//! training run, in one run on one disk, and print a table of ratios.
//!
//! Every measured step runs `reg` as a child process (this binary), so wall
//! time and peak RSS are those a user sees. The run is generated
//! (`generate.rs`), `cp` is timed as the baseline (`baseline.rs`), the
//! `reg` steps are timed in order (`steps.rs`, with `measure.rs`; readers
//! right after and during a push in `after_push.rs` and `during_push.rs`),
//! and the table and summary printed (`report.rs`).

mod after_push;
mod baseline;
mod compress;
mod during_push;
mod generate;
mod measure;
mod report;
mod steps;

pub use generate::generate;

use crate::human;
use anyhow::{Context, Result};
use std::path::Path;

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
    let files = generate::epochs(&root, size, epochs)?;
    let file_size = std::fs::metadata(&files[0])?.len();

    let (cp0, cp_row) = baseline::cp_median(&files[0].to_string_lossy(), &root)?;
    let mut rows = measure::Rows { rows: vec![cp_row] };
    let regs = steps::Registries::new(&root, &home)?;
    let timings = steps::run(&mut rows, &regs, &root, &files, size)?;
    let stats = steps::stats(&home)?;

    let summary = report::Summary {
        file_size,
        epochs,
        stats: &stats,
    };
    report::print(&rows.rows, cp0, &timings, &summary);
    if keep {
        let kept = work.keep();
        eprintln!("reg bench: kept {}", kept.display());
    }
    Ok(())
}

/// `reg bench run` / `generate` / `compress`.
/// `reg bench compress` reads the registry `ctx` names; the others make
/// their own.
pub fn command(ctx: &crate::commands::context::Ctx, what: crate::cli::BenchCommand) -> Result<std::process::ExitCode> {
    let (cwd, quiet) = (ctx.cwd.as_path(), ctx.quiet);
    match what {
        crate::cli::BenchCommand::Run {
            size,
            epochs,
            dir,
            keep,
        } => run(&cwd.join(dir), parse_size(&size)?, epochs, keep)?,
        crate::cli::BenchCommand::Compress { name, json } => compress::print(ctx, &name, json.json)?,
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
