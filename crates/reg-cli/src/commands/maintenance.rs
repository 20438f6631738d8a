//! `reg verify` and `reg rm`.

use super::{print, Ctx};
use crate::cli::{RmArgs, VerifyArgs};
use anyhow::Result;
use reg_meta::VersionRef;
use std::process::ExitCode;

/// Check versions (exit 2 on damage); `--rebuild-index` first rebuilds
/// the index from the manifest blobs.
pub fn verify(ctx: &Ctx, args: VerifyArgs) -> Result<ExitCode> {
    let only = args.reference.as_deref().map(VersionRef::parse).transpose()?;
    let reg = ctx.open()?;
    if args.rebuild_index {
        let restored = reg.rebuild_index()?;
        if !ctx.quiet {
            eprintln!("reg: rebuilt the index: {restored} versions restored (tags are not kept in blobs)");
        }
    }
    let only = match &only {
        Some(r) => Some(reg.resolve(r)?),
        None => None,
    };
    let report = reg.verify(only.as_ref(), args.full)?;
    if args.json.json {
        print::json(&report)?;
    } else {
        for d in &report.damaged_versions {
            println!("damaged {}: {}", d.version, d.problems.join("; "));
        }
        for b in &report.damaged_blobs {
            println!("damaged blob {b}");
        }
        if !ctx.quiet {
            println!(
                "{} {} versions, {} blobs{}: {}",
                if args.full { "verified (full)" } else { "checked" },
                report.versions,
                report.blobs,
                if args.full { " re-hashed" } else { "" },
                if report.is_clean() {
                    "ok".to_string()
                } else {
                    format!("{} damaged versions", report.damaged_versions.len())
                }
            );
        }
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Remove a version.
pub fn rm(ctx: &Ctx, args: RmArgs) -> Result<ExitCode> {
    let wanted = VersionRef::parse(&args.reference)?;
    let reg = ctx.open()?;
    let v = reg.resolve(&wanted)?;
    let (name, number) = (v.manifest.name.clone(), v.manifest.number);
    reg.remove(v)?;
    if !ctx.quiet {
        println!("removed {name}@v{number} (run `reg gc` to free its blobs)");
    }
    Ok(ExitCode::SUCCESS)
}
