//! `reg tag NAME@REF TAG`, `reg tag -d NAME@TAG`.

use super::Ctx;
use crate::cli::TagArgs;
use anyhow::{Context, Result};
use reg_registry::{RefSpec, VersionRef};
use std::process::ExitCode;

/// Set, move or delete a tag.
pub fn run(ctx: &Ctx, args: TagArgs) -> Result<ExitCode> {
    let r = VersionRef::parse(&args.reference)?;
    if args.delete {
        // Validate before any I/O.
        let RefSpec::TagOrId(t) = &r.spec else {
            anyhow::bail!("tag -d takes NAME@TAG");
        };
        ctx.open()?
            .remove_tag(&r.name, &reg_format::TagName::stored(t.clone()))?;
        if !ctx.quiet {
            crate::human::say!("deleted tag {}@{t}", r.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tag = args.tag.context("reg tag NAME@REF TAG: missing TAG")?;
    let tag = reg_format::TagName::new(&tag)?;
    let reg = ctx.open()?;
    let v = reg.resolve(&r)?;
    let moved = reg.tag(&v, &tag, args.force)?;
    if !ctx.quiet {
        match moved {
            Some(old) => crate::human::say!(
                "moved tag {tag} from v{old} to {}",
                reg_format::VersionLabel::new(&v.manifest.name, v.manifest.number)
            ),
            None => crate::human::say!(
                "tagged {} as {tag}",
                reg_format::VersionLabel::new(&v.manifest.name, v.manifest.number)
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
