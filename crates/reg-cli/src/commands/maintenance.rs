//! `reg verify` and `reg rm`.

use super::{print, Ctx};
use crate::cli::{RmArgs, VerifyArgs};
use anyhow::Result;
use reg_registry::VersionRef;
use std::process::ExitCode;

/// Check versions (exit 2 on damage); `--rebuild-index` first rebuilds
/// the index from the manifest blobs.
pub fn verify(ctx: &Ctx, args: VerifyArgs) -> Result<ExitCode> {
    let only = args.reference.as_deref().map(VersionRef::parse).transpose()?;
    let reg = ctx.open()?;
    let mut rebuild_damage = false;
    if args.rebuild_index {
        let rebuilt = reg.rebuild_index()?;
        for s in &rebuilt.superseded {
            crate::human::say_err!("reg: note: not restored: {s}");
        }
        for b in &rebuilt.damaged_blobs {
            crate::human::say!("damaged blob {b}");
        }
        if !rebuilt.is_clean() {
            crate::human::say_err!(
                "reg: error: the index was rebuilt without {} blobs that cannot be read; one could be the manifest of a version it now lacks, so gc deletes nothing until they are repaired or removed",
                rebuilt.damaged_blobs.len()
            );
            rebuild_damage = true;
        }
        if !ctx.quiet {
            crate::human::say_err!(
                "reg: rebuilt the index: {} versions restored (tags are not kept in blobs)",
                rebuilt.restored
            );
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
            crate::human::say!("damaged {}: {}", d.version, d.problems.join("; "));
        }
        for b in &report.damaged_blobs {
            crate::human::say!("damaged blob {b}");
        }
        if !ctx.quiet {
            crate::human::say!(
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
    if report.manifests_written_back > 0 && !ctx.quiet {
        crate::human::say_err!(
            "reg: note: wrote {} manifest blobs back from the index (a crash had left them unwritten)",
            report.manifests_written_back
        );
    }
    Ok(if report.is_clean() && !rebuild_damage {
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
        crate::human::say!(
            "removed {} (run `reg gc` to free its blobs)",
            reg_format::VersionLabel::new(&name, number)
        );
    }
    Ok(ExitCode::SUCCESS)
}
