//! `reg stage SESSION PATH`: one file of a staging session, streamed from
//! standard input (a DCP rank's data file), its tensor chunks straight
//! into blobs; `reg push SESSION/DIR --staged SESSION` makes the version.

use super::{print, Ctx};
use crate::bar::Bar;
use crate::cli::StageArgs;
use anyhow::Result;
use std::process::ExitCode;

/// Stage the file and report what it stored.
pub fn run(ctx: &Ctx, args: StageArgs) -> Result<ExitCode> {
    let reg = ctx.open()?;
    let quiet = ctx.quiet || args.json.json;
    let report = reg.stage_stream(
        &mut std::io::stdin().lock(),
        &args.session,
        &args.path,
        &Bar::new(quiet, 0),
    )?;
    if args.json.json {
        print::json(&report)?;
    } else if !ctx.quiet {
        println!(
            "staged {} ({} bytes, {} chunks, {} new: {} bytes)",
            report.path, report.bytes, report.chunks, report.new_chunks, report.new_bytes
        );
    }
    Ok(ExitCode::SUCCESS)
}
