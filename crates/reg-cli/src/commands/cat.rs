//! `reg cat NAME[@REF] [FILE] [--range START:LEN]...`: byte ranges of one
//! file of a version, to stdout.

use super::Ctx;
use crate::cli::CatArgs;
use anyhow::Result;
use reg_registry::VersionRef;
use std::io::Write;
use std::process::ExitCode;

/// Resolve the version and write the ranges (the whole file by default).
pub fn run(ctx: &Ctx, args: CatArgs) -> Result<ExitCode> {
    let wanted = VersionRef::parse(&args.reference)?;
    let reg = ctx.open()?;
    let v = reg.resolve(&wanted)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    reg.read_ranges(&v, args.file.as_deref(), &args.ranges, &mut w)?;
    w.flush()?;
    Ok(ExitCode::SUCCESS)
}
