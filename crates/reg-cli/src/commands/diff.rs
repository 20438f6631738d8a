//! `reg diff A B`.

use super::{print, Ctx};
use crate::cli::{DiffArgs, Section};
use anyhow::Result;
use reg_registry::{DiffOptions, Only, VersionRef};
use std::process::ExitCode;

/// What changed between two versions.
pub fn run(ctx: &Ctx, args: DiffArgs) -> Result<ExitCode> {
    let (a, b) = (VersionRef::parse(&args.a)?, VersionRef::parse(&args.b)?);
    let only = match args.only {
        None => Only::All,
        Some(Section::Hparams) => Only::Hparams,
        Some(Section::Optimizer) => Only::Optimizer,
        Some(Section::Tensors) => Only::Tensors,
        Some(Section::Meta) => Only::Meta,
    };
    let reg = ctx.open()?;
    let va = reg.resolve(&a)?;
    print::note(&va.note, ctx.quiet);
    let vb = reg.resolve(&b)?;
    print::note(&vb.note, ctx.quiet);
    let d = reg.diff(
        &va,
        &vb,
        DiffOptions {
            stats: args.stats,
            only,
        },
    )?;
    if args.json.json {
        print::json(&d)?;
    } else {
        print::out_trusted(&crate::diff_view::render(&d, args.all, crate::diff_view::use_colour()))?;
    }
    Ok(ExitCode::SUCCESS)
}
