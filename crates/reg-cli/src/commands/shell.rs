//! `reg completions` and `reg manpage`: made from the clap definition
//! itself (clap_complete, clap_mangen), so they cannot drift from the
//! flags. The wheel ships the generated files (python/data/share/...);
//! tests/cli_docs.rs checks those match what these print.

use crate::cli::{Cli, CompletionsArgs, ManpageArgs};
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::io::Write;

/// Print the completion script for a shell.
pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "reg", &mut out);
    out.flush()?;
    Ok(())
}

/// Print `reg.1`, or write it and a page per command into `--dir`.
pub fn manpage(args: &ManpageArgs) -> Result<()> {
    let cmd = Cli::command();
    match &args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir).with_context(|| format!("writing man pages into {}", dir.display()))?;
        }
    }
    Ok(())
}
