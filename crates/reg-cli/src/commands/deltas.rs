//! `reg deltas [NAME[@vN]...]`: older versions as deltas against newer
//! ones (what a push leaves to run in the background).

use super::{print, Ctx};
use crate::cli::DeltasArgs;
use crate::human;
use anyhow::Result;
use reg_registry::report::DeltasView;
use reg_registry::ModelName;
use std::process::ExitCode;

/// Re-encode the named models (with none: what pushes left queued, then
/// every model), waiting for a background re-encoding that runs.
pub fn run(ctx: &Ctx, args: DeltasArgs) -> Result<ExitCode> {
    let mut wanted: Vec<(ModelName, u32)> = Vec::new();
    for model in &args.models {
        wanted.push(parse_model(model)?);
    }
    let print_text = !ctx.quiet && !args.json.json;
    let mut views = Vec::new();
    let mut say = |name: &str, r: reg_registry::deltas::DeltaReport| {
        if print_text && (r.blobs > 0 || !r.warnings.is_empty()) {
            crate::human::say!(
                "{}: {} tensors re-encoded as deltas against v{}: {} -> {}",
                reg_format::VersionLabel::new(name, r.version.unwrap_or(0)),
                r.blobs,
                r.against.unwrap_or(0),
                human::bytes(r.bytes_before),
                human::bytes(r.bytes_after)
            );
        }
        for w in &r.warnings {
            crate::human::say_err!("reg: warning: {w}");
        }
        views.push(DeltasView {
            name: name.to_string(),
            report: r,
        });
    };
    if args.background {
        // Started by a push: the lock it handed over, the queue it left
        // (reg_registry::background).
        let reg = ctx.with_waits(reg_registry::Registry::open_existing(ctx.config.clone())?);
        let fd = std::env::var(reg_registry::lock::DELTAS_LOCK_FD_ENV)
            .ok()
            .and_then(|v| v.parse::<i32>().ok());
        for (name, r) in reg.run_background_job(fd)? {
            say(&name, r);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let reg = ctx.open()?;
    if wanted.is_empty() {
        // What pushes left, a failed job's work included.
        for (name, r) in reg.wait_background()? {
            say(&name, r);
        }
        if !args.queued {
            wanted = reg.names()?.into_iter().map(|(n, _)| (n, 1)).collect();
        }
    }
    for (name, from) in &wanted {
        for r in reg.make_deltas(name, reg_format::VersionNumber(*from), &reg_registry::Silent)? {
            say(name, r);
        }
    }
    if args.json.json {
        print::json(&views)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `NAME` (from v1) or `NAME@vN`.
fn parse_model(model: &str) -> Result<(ModelName, u32)> {
    let (name, from) = match model.split_once('@') {
        Some((n, v)) => {
            let from = v
                .strip_prefix('v')
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| anyhow::anyhow!("{model}: expected NAME or NAME@vN"))?;
            (n, from)
        }
        None => (model, 1),
    };
    Ok((ModelName::new(name)?, from))
}
