//! `reg gc` and `reg prune`: the commands that delete.

use super::{print, Ctx};
use crate::cli::{GcArgs, PruneArgs};
use crate::human;
use anyhow::Result;
use reg_registry::maintenance::PruneRules;
use std::process::ExitCode;

/// Delete blobs no version needs.
pub fn gc(ctx: &Ctx, args: GcArgs) -> Result<ExitCode> {
    let reg = ctx.open()?;
    let r = reg.gc(args.dry_run)?;
    if args.json.json {
        return print::json(&r).map(|_| ExitCode::SUCCESS);
    }
    if !ctx.quiet {
        crate::human::say!(
            "{} {} unreferenced blobs ({}); {} blobs kept",
            if args.dry_run { "would remove" } else { "removed" },
            r.removed_blobs,
            human::bytes(r.freed_bytes),
            r.kept_blobs
        );
        for (reason, n) in &r.kept_by_reason {
            crate::human::say!("  kept {n}: {reason}");
        }
        if r.reencoded_blobs > 0 {
            crate::human::say!(
                "{} {} delta blobs without the parents no version needs any more",
                if args.dry_run { "would re-encode" } else { "re-encoded" },
                r.reencoded_blobs
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Remove old versions by rules, then gc.
pub fn prune(ctx: &Ctx, args: PruneArgs) -> Result<ExitCode> {
    // Validate before any I/O: a prune that keeps nothing is refused
    // without opening (or creating) a registry.
    if args.keep_last == 0 && args.keep_best == 0 && !args.keep_tagged && args.keep_optimizer_last.is_none() {
        anyhow::bail!("prune keeps nothing: give --keep-last, --keep-best, --keep-tagged or --keep-optimizer-last");
    }
    let rules = PruneRules {
        keep_last: args.keep_last,
        keep_best: args.keep_best,
        keep_tagged: args.keep_tagged,
        keep_optimizer_last: args.keep_optimizer_last,
        dry_run: args.dry_run,
    };
    let reg = ctx.open()?;
    let r = reg.prune(&args.name, rules)?;
    if args.json.json {
        return print::json(&r).map(|_| ExitCode::SUCCESS);
    }
    if !ctx.quiet {
        let list = |v: &[u32]| v.iter().map(|n| format!("v{n}")).collect::<Vec<_>>().join(", ");
        if !r.optimizer_dropped.is_empty() {
            crate::human::say!(
                "{} optimizer state of {} (weights kept)",
                if args.dry_run { "would drop" } else { "dropped" },
                list(&r.optimizer_dropped)
            );
        }
        crate::human::say!(
            "{} {} versions of {} ({}); kept {}; freed {}",
            if args.dry_run { "would remove" } else { "removed" },
            r.removed.len(),
            args.name,
            list(&r.removed),
            list(&r.kept),
            human::bytes(r.freed_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}
