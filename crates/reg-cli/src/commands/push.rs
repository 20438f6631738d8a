//! `reg push FILE...` (and `reg push -`, a checkpoint from standard input).

use super::{print, Ctx};
use crate::bar::Bar;
use crate::cli::PushArgs;
use crate::human;
use anyhow::Result;
use reg_registry::report::PushView;
use reg_registry::{PushOptions, PushReport, VersionRef};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Push each file in order (each push starts the background work it
/// leaves, as a `reg deltas --background` process), then upload
/// (`--remote`).
pub fn run(ctx: &Ctx, args: PushArgs) -> Result<ExitCode> {
    let parent = args.parent.as_deref().map(VersionRef::parse).transpose()?;
    let reg = ctx.open()?;
    if let Some((when, error)) = reg.background_failure() {
        crate::human::say_err!(
            "reg: warning: the background re-encoding after an earlier push failed ({}): {error}; \
             its work stays queued (`reg deltas --queued` retries it here)",
            human::time(when)
        );
    }
    let stdin = Path::new("-");
    if args.files.iter().filter(|f| f.as_path() == stdin).count() > 1 {
        anyhow::bail!("`-` (standard input) can be pushed once per command");
    }
    if args.source.is_some() && !args.files.iter().any(|f| f.as_path() == stdin) {
        anyhow::bail!("--source names a checkpoint read from `-` (standard input); files record their own name");
    }
    let opts = PushOptions {
        name: args.name,
        tag: args.tag.as_deref().map(reg_format::TagName::new).transpose()?,
        message: args.message,
        allow_unsafe: args.allow_unsafe,
        parent,
        keep_optimizer_last: args.keep_optimizer_last,
        source: None,
        fast: args.fast,
        staged: args.staged,
    };
    let quiet = ctx.quiet || args.json.json;
    let mut views = Vec::new();
    let mut pushed: Vec<(String, u32)> = Vec::new();
    for file in &args.files {
        let started = std::time::Instant::now();
        let (r, shown) = if file.as_path() == stdin {
            let opts = PushOptions {
                source: args.source.clone(),
                ..opts.clone()
            };
            let shown = PathBuf::from(args.source.as_deref().unwrap_or("<stdin>"));
            let r = reg.push_stream(&mut std::io::stdin().lock(), &opts, &Bar::new(quiet, 0))?;
            (r, shown)
        } else {
            let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            (reg.push_with(file, &opts, &Bar::new(quiet, size))?, file.clone())
        };
        if !quiet {
            print_push(&shown, &r, args.tag.as_deref(), started.elapsed());
        }
        pushed.push((r.name.clone(), r.number));
        views.push(PushView::new(&r, &shown));
    }
    let synced = match &args.remote.remote {
        Some(r) => Some(super::remote::upload_pushed(
            &reg,
            r,
            &pushed,
            ctx.quiet,
            args.json.json,
        )?),
        None => None,
    };
    if args.json.json {
        match (&synced, views.len()) {
            (Some(s), _) => print::json(&reg_remote::PushedAndSynced {
                pushed: &views,
                remote: s,
            })?,
            (None, 1) => print::json(&views[0])?,
            (None, _) => print::json(&views)?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_push(file: &Path, r: &PushReport, tag: Option<&str>, took: Duration) {
    if !r.unknown_globals.is_empty() {
        crate::human::say_err!(
            "reg: warning: {} names globals reg does not know (loading it in Python imports them): {}",
            file.display(),
            r.unknown_globals.join(", ")
        );
    }
    if r.created {
        crate::human::say!(
            "pushed {} ({}) from {}",
            reg_format::VersionLabel::new(&r.name, r.number),
            r.id.short(),
            file.display()
        );
        crate::human::say!(
            "  {} tensors in {} storages: {} new, {} already stored",
            r.tensors,
            r.payloads,
            r.new_payloads,
            r.payloads - r.new_payloads
        );
        let ratio = if r.written_bytes > 0 {
            format!(" (compression {:.2}x)", r.new_raw_bytes as f64 / r.written_bytes as f64)
        } else {
            String::new()
        };
        crate::human::say!(
            "  {} logical, {} new tensor bytes, {} written{ratio}",
            human::bytes(r.logical_bytes),
            human::bytes(r.new_raw_bytes),
            human::bytes(r.written_bytes)
        );
        if !r.deferred.is_empty() {
            crate::human::say!(
                "  {} new tensors stored uncompressed (--fast): the background job compresses them",
                r.deferred.len()
            );
        }
        if r.deltas > 0 {
            crate::human::say!(
                "  {} new tensors stored as deltas against the --parent version",
                r.deltas
            );
        }
        if let (Some(v), true) = (r.previous_deltas.version, r.previous_deltas.pending) {
            crate::human::say!(
                "  v{v}: its changed tensors become deltas against v{} in the background",
                r.number
            );
        }
        if let (Some(v), true) = (r.previous_deltas.version, r.previous_deltas.blobs > 0) {
            crate::human::say!(
                "  v{v}: {} changed tensors re-encoded as deltas against v{}: {} -> {}",
                r.previous_deltas.blobs,
                r.number,
                human::bytes(r.previous_deltas.bytes_before),
                human::bytes(r.previous_deltas.bytes_after)
            );
        }
        for w in &r.previous_deltas.warnings {
            crate::human::say_err!("reg: warning: {w}");
        }
        crate::human::say!("  {}", human::rate(r.logical_bytes, took));
    } else {
        crate::human::say!(
            "unchanged: {} is identical to {} ({}); no version added",
            file.display(),
            reg_format::VersionLabel::new(&r.name, r.number),
            r.id.short()
        );
    }
    if let Some(t) = tag {
        crate::human::say!("  tagged {t}");
    }
}
