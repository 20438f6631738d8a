//! `reg log`, `reg ls`, `reg stats`: what the registry (or a remote) holds.

use super::{print, Ctx};
use crate::cli::{LogArgs, LsArgs, StatsArgs};
use crate::human;
use anyhow::Result;
use std::process::ExitCode;

/// The versions of a model, newest first in text.
pub fn log(ctx: &Ctx, args: LogArgs) -> Result<ExitCode> {
    let log = match &args.remote.remote {
        Some(r) => super::remote::log(&ctx.config, r, &args.name)?,
        None => ctx.open()?.log_view(&args.name)?,
    };
    if args.json.json {
        return print::json(&log).map(|_| ExitCode::SUCCESS);
    }
    let mut rows = vec![vec![
        "version".into(),
        "id".into(),
        "epoch".into(),
        "step".into(),
        "size".into(),
        "pushed".into(),
        "source".into(),
        "tags / message".into(),
    ]];
    for e in log.iter().rev() {
        let mut extra = e.tags.join(",");
        if e.optimizer_dropped {
            if !extra.is_empty() {
                extra.push(' ');
            }
            extra.push_str("[weights only]");
        }
        if let Some(m) = &e.message {
            if !extra.is_empty() {
                extra.push(' ');
            }
            extra.push_str(m);
        }
        rows.push(vec![
            format!("v{}", e.version),
            e.id.short(),
            print::opt(e.epoch),
            print::opt(e.global_step),
            human::bytes(e.size),
            human::time(e.created),
            e.source.to_string(),
            extra,
        ]);
    }
    print::out(&human::table(&rows))?;
    Ok(ExitCode::SUCCESS)
}

/// The models.
pub fn ls(ctx: &Ctx, args: LsArgs) -> Result<ExitCode> {
    let names = match &args.remote.remote {
        Some(r) => super::remote::ls(&ctx.config, r)?,
        None => ctx.open()?.ls_view()?,
    };
    if args.json.json {
        print::json(&names)?;
    } else if names.is_empty() {
        if !ctx.quiet {
            crate::human::say!("no models yet; push one with: reg push FILE");
        }
    } else {
        let mut rows = vec![vec!["name".into(), "versions".into(), "latest".into()]];
        for n in &names {
            rows.push(vec![
                n.name.to_string(),
                n.versions.to_string(),
                format!("v{}", n.latest),
            ]);
        }
        print::out(&human::table(&rows))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Sizes and deduplication.
pub fn stats(ctx: &Ctx, args: StatsArgs) -> Result<ExitCode> {
    let reg = ctx.open()?;
    let s = reg.stats()?;
    if args.json.json {
        return print::json(&s).map(|_| ExitCode::SUCCESS);
    }
    let overall = if s.stored_bytes > 0 {
        s.logical_bytes as f64 / s.stored_bytes as f64
    } else {
        0.0
    };
    let mut text = format!(
        "registry     {}\nmodels       {}\nversions     {}\nblobs        {}\n\
         logical      {:>10}  every version as files\n\
         unique       {:>10}  their distinct content after dedupe, before compression\n\
         stored       {:>10}  blob files on disk: {} content, {} manifests, {} in {} blobs gc can free\n\
         dedupe       {:>9.2}x  logical / unique\n\
         compression  {:>9.2}x  unique / its stored bytes\n\
         overall      {overall:>9.2}x  logical / stored\n",
        reg.config().root.display(),
        s.names,
        s.versions,
        s.blobs,
        human::bytes(s.logical_bytes),
        human::bytes(s.content_bytes),
        human::bytes(s.stored_bytes),
        human::bytes(s.content_stored_bytes),
        human::bytes(s.metadata_stored_bytes),
        human::bytes(s.unreferenced_stored_bytes),
        s.unreferenced_blobs,
        s.dedupe_ratio,
        s.compression_ratio,
    );
    for (codec, (n, bytes)) in &s.codecs {
        text.push_str(&format!("  {codec:<8} {n} blobs, {}\n", human::bytes(*bytes)));
    }
    if s.deferred_blobs > 0 {
        text.push_str(&format!(
            "deferred     {} blobs stored raw by fast pushes, for the background job to compress (`reg deltas` does it now)\n",
            s.deferred_blobs
        ));
    }
    print::out(&text)?;
    Ok(ExitCode::SUCCESS)
}
