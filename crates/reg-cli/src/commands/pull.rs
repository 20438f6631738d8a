//! `reg pull NAME[@REF]`: the original bytes, or an export.

use super::{print, Ctx};
use crate::bar::Bar;
use crate::cli::{OutFormat, PullArgs};
use crate::human;
use anyhow::Result;
use reg_registry::report::PullView;
use reg_registry::select::{ExportScope, TensorSelection};
use reg_registry::{ExportFormat, VersionRef};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Write a version (fetched from `--remote` first) to a file or stdout.
pub fn run(ctx: &Ctx, args: PullArgs) -> Result<ExitCode> {
    let export = match (args.weights_only, args.format) {
        (true, Some(OutFormat::Safetensors)) => Some(ExportFormat::SafetensorsWeights),
        (true, None) => Some(ExportFormat::WeightsOnly),
        (false, Some(OutFormat::Safetensors)) => Some(ExportFormat::Safetensors),
        (false, None) => None,
    };
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    if to_stdout && args.json.json {
        anyhow::bail!("--json cannot be used with -o - (stdout carries the file)");
    }
    let selection = match args.tensors.is_empty() {
        true => None,
        false => Some(TensorSelection::new(&args.tensors)?),
    };
    let scope = ExportScope {
        tensors: selection.as_ref(),
        header_only: args.header_only,
    };
    let wanted = args.best.apply(VersionRef::parse(&args.reference)?);
    let local = ctx.open()?;
    let quiet = ctx.quiet || args.json.json || to_stdout;
    // Part of a remote version (--tensors, --header-only): read through
    // to the remote, so only the blobs the export reads move
    // (reg_remote::ReadThrough); the writer guard keeps gc off what was
    // fetched until the export is written. A whole version is pulled
    // into the registry first.
    let mut through = None;
    let (reading, v) = match (&args.remote.remote, selection.is_some() || args.header_only) {
        (Some(r), true) => {
            let remote = std::sync::Arc::new(super::remote::open_remote(local.config(), r)?);
            let (v, label) = remote.read_version(&wanted)?;
            let guard = local.writer()?;
            let (reading, backend) = remote.read_through(&local, label)?;
            through = Some((backend, guard, r.clone()));
            (Some(reading), v)
        }
        (Some(r), false) => {
            let wanted = super::remote::fetch(&local, r, &wanted, quiet)?;
            (None, local.resolve(&wanted)?)
        }
        (None, _) => (None, local.resolve(&wanted)?),
    };
    let reg = reading.as_ref().unwrap_or(&local);
    let said_fetched = || {
        if let (Some((backend, _, remote)), false) = (&through, ctx.quiet || args.json.json) {
            let (blobs, bytes) = backend.fetched();
            crate::human::say_err!(
                "reg: read {blobs} blob{} ({}) of {} from remote {remote}; the rest stayed there",
                if blobs == 1 { "" } else { "s" },
                human::bytes(bytes),
                reg_format::VersionLabel::new(&v.manifest.name, v.manifest.number)
            );
        }
    };
    print::note(&v.note, ctx.quiet);
    if to_stdout {
        // `-o -`: the bytes go to stdout, nothing else does.
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        match export {
            // A directory goes out as a tar stream.
            None if v.manifest.is_directory() => {
                reg.pull_tar_to(&v, &args.files, &mut w)?;
                w.flush()?;
            }
            None => {
                reg.pull_to(&v, &mut w)?;
            }
            Some(fmt) => {
                reg.export_to_scoped(&v, fmt, scope, &mut w)?;
                w.flush()?;
            }
        }
        said_fetched();
        return Ok(ExitCode::SUCCESS);
    }
    let started = std::time::Instant::now();
    let (path, bytes, what, files) = match export {
        None if v.manifest.is_directory() || !args.files.is_empty() => {
            let out = args.output.unwrap_or_else(|| ctx.cwd.join(&v.manifest.source));
            let r = reg.pull_tree(&v, &out, args.force, &args.files, &Bar::new(quiet, v.manifest.size))?;
            let n = r.files.unwrap_or(0);
            let what = format!("{n} file{}, each verified", if n == 1 { "" } else { "s" });
            (r.path, r.bytes, what, r.files)
        }
        None => {
            let out = args.output.unwrap_or_else(|| ctx.cwd.join(&v.manifest.source));
            let r = reg.pull_with(&v, &out, args.force, &Bar::new(quiet, v.manifest.size))?;
            (r.path, r.bytes, "verified".to_string(), None)
        }
        Some(fmt) => {
            let out = args
                .output
                .unwrap_or_else(|| ctx.cwd.join(reg_registry::export_file_name(&v.manifest, fmt)));
            let r = reg.export_scoped(&v, fmt, scope, &out, args.force)?;
            let kind = match fmt {
                ExportFormat::WeightsOnly => "weights only",
                ExportFormat::Safetensors => "safetensors",
                ExportFormat::SafetensorsWeights => "safetensors, weights only",
            };
            (r.path, r.bytes, format!("{kind}, {} tensors", r.tensors), None)
        }
    };
    said_fetched();
    let flagged: Vec<&str> = reg_ckpt::safety::not_safe(&v.manifest.globals)
        .map(|g| g.global.as_str())
        .collect();
    if !flagged.is_empty() && export.is_none() && !ctx.quiet {
        crate::human::say_err!(
            "reg: warning: {} holds globals that loading it in Python would import: {} (use torch.load(weights_only=True) or --weights-only)",
            path.display(),
            flagged.join(", ")
        );
    }
    if args.json.json {
        print::json(&PullView {
            name: v.manifest.name.clone(),
            version: v.manifest.number,
            path,
            bytes,
            files,
        })?;
    } else if !ctx.quiet {
        crate::human::say!(
            "pulled {} to {} ({}, {what}; {})",
            reg_format::VersionLabel::new(&v.manifest.name, v.manifest.number),
            path.display(),
            human::bytes(bytes),
            human::rate(bytes, started.elapsed())
        );
    }
    Ok(ExitCode::SUCCESS)
}
