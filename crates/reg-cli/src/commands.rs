//! One function per subcommand: open the registry, call the library,
//! print the result as text or JSON.

use crate::bar::Bar;
use crate::cli::{BenchCommand, Cli, Command, OutFormat, Section};
use crate::human;
use anyhow::{Context, Result};
use reg_meta::report::ShowView;
use reg_meta::{Config, PushOptions, Registry, VersionRef};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let reg_home = std::env::var_os("REG_HOME").map(PathBuf::from);
    let config = Config::locate(cli.registry.as_deref(), reg_home.as_deref(), &cwd)?;
    let quiet = cli.quiet;
    let open = |config: Config| -> Result<Registry> {
        let root = config.root.clone();
        Ok(Registry::open(config, &|| {
            // Waiting for the deltas a push left to encode is expected.
            if !crate::background::held_in_background(&root) {
                eprintln!("reg: waiting for another reg process using {}", root.display());
            }
        })?)
    };
    match cli.command {
        Command::Init { dir } => {
            let config = match dir {
                Some(d) => Config {
                    root: cwd.join(d),
                    ..config
                },
                None => config,
            };
            let reg = open(config)?;
            if !quiet {
                println!("registry ready at {}", reg.config().root.display());
            }
        }
        Command::Push {
            files,
            name,
            tag,
            message,
            allow_unsafe,
            parent,
            json,
            remote,
        } => {
            let parent = parent.map(|p| VersionRef::parse(&p)).transpose()?;
            let reg = open(config)?;
            let opts = PushOptions {
                name,
                tag: tag.clone(),
                message,
                allow_unsafe,
                parent,
            };
            let mut reports = Vec::new();
            let mut pushed: Vec<(String, u32)> = Vec::new();
            let mut deferred: Vec<(String, u32)> = Vec::new();
            for file in &files {
                let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
                let started = std::time::Instant::now();
                let r = reg.push_with(file, &opts, &Bar::new(quiet || json.json, size))?;
                if !json.json && !quiet {
                    print_push(file, &r, tag.as_deref(), started.elapsed());
                }
                pushed.push((r.name.clone(), r.number));
                if let (true, Some(from)) = (r.rebase.pending, r.rebase.version) {
                    deferred.push((r.name.clone(), from));
                }
                reports.push(serde_json::json!({
                    "name": r.name, "version": r.number, "id": r.id.to_hex(), "created": r.created,
                    "file": file, "tensors": r.tensors, "payloads": r.payloads, "new_payloads": r.new_payloads,
                    "logical_bytes": r.logical_bytes, "new_raw_bytes": r.new_raw_bytes,
                    "written_bytes": r.written_bytes, "deltas": r.deltas,
                    "rebased": {
                        "version": r.rebase.version, "blobs": r.rebase.blobs,
                        "bytes_before": r.rebase.bytes_before, "bytes_after": r.rebase.bytes_after,
                        "warnings": r.rebase.warnings, "in_background": r.rebase.pending,
                    },
                    "unknown_globals": r.unknown_globals,
                }));
            }
            let synced = match &remote.remote {
                Some(r) => Some(crate::remote_cmd::upload_pushed(&reg, r, &pushed, quiet, json.json)?),
                None => None,
            };
            if json.json {
                match (&synced, reports.len()) {
                    (Some(s), _) => print_json(&serde_json::json!({"pushed": reports, "remote": s}))?,
                    (None, 1) => print_json(&reports[0])?,
                    (None, _) => print_json(&reports)?,
                }
            }
            // The previous versions become deltas against the new ones
            // after this command returns (see background.rs).
            let mut pending: std::collections::BTreeMap<String, u32> = std::collections::BTreeMap::new();
            for (name, from) in &deferred {
                let e = pending.entry(name.clone()).or_insert(*from);
                *e = (*e).min(*from);
            }
            if !pending.is_empty() {
                let models: Vec<String> = pending.iter().map(|(n, v)| format!("{n}@v{v}")).collect();
                crate::background::spawn_deltas(reg, &models, quiet || json.json)?;
            }
        }
        Command::Pull {
            reference,
            output,
            force,
            weights_only,
            format,
            best,
            json,
            remote,
        } => {
            let reg = open(config)?;
            let wanted = best.apply(VersionRef::parse(&reference)?);
            let wanted = match &remote.remote {
                Some(r) => crate::remote_cmd::fetch(&reg, r, &wanted, quiet || json.json)?,
                None => wanted,
            };
            let v = reg.resolve(&wanted)?;
            note(&v.note, quiet);
            let export = match (weights_only, format) {
                (true, _) => Some(reg_meta::ExportFormat::WeightsOnly),
                (false, Some(OutFormat::Safetensors)) => Some(reg_meta::ExportFormat::Safetensors),
                (false, None) => None,
            };
            let started = std::time::Instant::now();
            let (path, bytes, what) = match export {
                None => {
                    let out = output.unwrap_or_else(|| cwd.join(&v.manifest.source));
                    let r = reg.pull_with(&v, &out, force, &Bar::new(quiet || json.json, v.manifest.size))?;
                    (r.path, r.bytes, "verified".to_string())
                }
                Some(fmt) => {
                    let out = output.unwrap_or_else(|| cwd.join(reg_meta::export_file_name(&v.manifest, fmt)));
                    let r = reg.export(&v, fmt, &out, force)?;
                    let kind = match fmt {
                        reg_meta::ExportFormat::WeightsOnly => "weights only",
                        reg_meta::ExportFormat::Safetensors => "safetensors",
                    };
                    (r.path, r.bytes, format!("{kind}, {} tensors", r.tensors))
                }
            };
            if v.manifest
                .globals
                .iter()
                .any(|g| g.verdict != reg_ckpt::safety::Verdict::Safe)
                && export.is_none()
                && !quiet
            {
                let names: Vec<&str> = v
                    .manifest
                    .globals
                    .iter()
                    .filter(|g| g.verdict != reg_ckpt::safety::Verdict::Safe)
                    .map(|g| g.global.as_str())
                    .collect();
                eprintln!(
                    "reg: warning: {} holds globals that loading it in Python would import: {} (use torch.load(weights_only=True) or --weights-only)",
                    path.display(),
                    names.join(", ")
                );
            }
            if json.json {
                print_json(&serde_json::json!({
                    "name": v.manifest.name, "version": v.manifest.number, "path": path, "bytes": bytes,
                }))?;
            } else if !quiet {
                println!(
                    "pulled {}@v{} to {} ({}, {what}; {})",
                    v.manifest.name,
                    v.manifest.number,
                    path.display(),
                    human::bytes(bytes),
                    human::rate(bytes, started.elapsed())
                );
            }
        }
        Command::Show { reference, best, json } => {
            let reg = open(config)?;
            let v = reg.resolve(&best.apply(VersionRef::parse(&reference)?))?;
            note(&v.note, quiet);
            let view = reg.show_view(&v)?;
            if json.json {
                print_json(&view)?;
            } else {
                print_show(&view)?;
            }
        }
        Command::Log { name, json, remote } => {
            let log = match &remote.remote {
                Some(r) => crate::remote_cmd::log(&config, r, &name)?,
                None => open(config)?.log_view(&name)?,
            };
            if json.json {
                print_json(&log)?;
            } else {
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
                        opt(e.epoch),
                        opt(e.global_step),
                        human::bytes(e.size),
                        human::time(e.created),
                        e.source.to_string(),
                        extra,
                    ]);
                }
                out(&human::table(&rows))?;
            }
        }
        Command::Ls { json, remote } => {
            let names = match &remote.remote {
                Some(r) => crate::remote_cmd::ls(&config, r)?,
                None => open(config)?.ls_view()?,
            };
            if json.json {
                print_json(&names)?;
            } else if names.is_empty() {
                if !quiet {
                    println!("no models yet; push one with: reg push FILE");
                }
            } else {
                let mut rows = vec![vec!["name".into(), "versions".into(), "latest".into()]];
                for n in &names {
                    rows.push(vec![n.name.to_string(), n.versions.to_string(), format!("v{}", n.latest)]);
                }
                out(&human::table(&rows))?;
            }
        }
        Command::Stats { json } => {
            let reg = open(config)?;
            let s = reg.stats()?;
            if json.json {
                print_json(&s)?;
            } else {
                let ratio = if s.stored_bytes > 0 {
                    s.logical_bytes as f64 / s.stored_bytes as f64
                } else {
                    0.0
                };
                let mut text = format!(
                    "registry   {}\nmodels     {}\nversions   {}\nblobs      {}\nlogical    {}\nunique     {}\nstored     {}\nratio      {ratio:.2}x\n",
                    reg.config().root.display(),
                    s.names,
                    s.versions,
                    s.blobs,
                    human::bytes(s.logical_bytes),
                    human::bytes(s.unique_bytes),
                    human::bytes(s.stored_bytes),
                );
                for (codec, (n, bytes)) in &s.codecs {
                    text.push_str(&format!("  {codec:<8} {n} blobs, {}\n", human::bytes(*bytes)));
                }
                out(&text)?;
            }
        }
        Command::Diff {
            a,
            b,
            stats,
            only,
            all,
            json,
        } => {
            let reg = open(config)?;
            let va = reg.resolve(&VersionRef::parse(&a)?)?;
            note(&va.note, quiet);
            let vb = reg.resolve(&VersionRef::parse(&b)?)?;
            note(&vb.note, quiet);
            let only = match only {
                None => reg_meta::Only::All,
                Some(Section::Hparams) => reg_meta::Only::Hparams,
                Some(Section::Optimizer) => reg_meta::Only::Optimizer,
                Some(Section::Tensors) => reg_meta::Only::Tensors,
                Some(Section::Meta) => reg_meta::Only::Meta,
            };
            let d = reg.diff(&va, &vb, reg_meta::DiffOptions { stats, only })?;
            if json.json {
                print_json(&d)?;
            } else {
                out(&crate::diff_view::render(&d, all, crate::diff_view::use_colour()))?;
            }
        }
        Command::Verify {
            reference,
            full,
            rebuild_index,
            json,
        } => {
            let reg = if rebuild_index {
                let (reg, restored) = Registry::rebuild(config, &|| eprintln!("reg: waiting for another reg process"))?;
                if !quiet {
                    eprintln!("reg: rebuilt the index: {restored} versions restored (tags are not kept in blobs)");
                }
                reg
            } else {
                open(config)?
            };
            let only = match &reference {
                Some(r) => Some(reg.resolve(&VersionRef::parse(r)?)?),
                None => None,
            };
            let report = reg.verify(only.as_ref(), full)?;
            if json.json {
                print_json(&report)?;
            } else {
                for d in &report.damaged_versions {
                    println!("damaged {}: {}", d.version, d.problems.join("; "));
                }
                for b in &report.damaged_blobs {
                    println!("damaged blob {b}");
                }
                if !quiet {
                    println!(
                        "{} {} versions, {} blobs{}: {}",
                        if full { "verified (full)" } else { "checked" },
                        report.versions,
                        report.blobs,
                        if full { " re-hashed" } else { "" },
                        if report.is_clean() {
                            "ok".to_string()
                        } else {
                            format!("{} damaged versions", report.damaged_versions.len())
                        }
                    );
                }
            }
            if !report.is_clean() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Rm { reference } => {
            let reg = open(config)?;
            let v = reg.resolve(&VersionRef::parse(&reference)?)?;
            reg.remove(&v)?;
            if !quiet {
                println!(
                    "removed {}@v{} (run `reg gc` to free its blobs)",
                    v.manifest.name, v.manifest.number
                );
            }
        }
        Command::Deltas { models, json } => {
            let root = config.root.clone();
            let (reg, _owner) = crate::background::open_for_deltas(config, &|| {
                if !crate::background::held_in_background(&root) {
                    eprintln!("reg: waiting for another reg process using {}", root.display());
                }
            })?;
            let done = crate::background::run_deltas(&reg, &models, !quiet && !json.json)?;
            if json.json {
                let rows: Vec<serde_json::Value> = done
                    .iter()
                    .map(|(name, r)| serde_json::json!({"name": name, "report": r}))
                    .collect();
                print_json(&rows)?;
            }
        }
        Command::Gc { dry_run, json } => {
            let reg = open(config)?;
            let r = reg.gc(dry_run)?;
            if json.json {
                print_json(&r)?;
            } else if !quiet {
                println!(
                    "{} {} unreferenced blobs ({}); {} blobs kept",
                    if dry_run { "would remove" } else { "removed" },
                    r.removed_blobs,
                    human::bytes(r.freed_bytes),
                    r.kept_blobs
                );
                if r.reencoded_blobs > 0 {
                    println!(
                        "{} {} delta blobs without the parents no version needs any more",
                        if dry_run { "would re-encode" } else { "re-encoded" },
                        r.reencoded_blobs
                    );
                }
            }
        }
        Command::Prune {
            name,
            keep_last,
            keep_best,
            keep_tagged,
            keep_optimizer_last,
            dry_run,
            json,
        } => {
            let reg = open(config)?;
            if keep_last == 0 && keep_best == 0 && !keep_tagged && keep_optimizer_last.is_none() {
                anyhow::bail!(
                    "prune keeps nothing: give --keep-last, --keep-best, --keep-tagged or --keep-optimizer-last"
                );
            }
            let rules = reg_meta::maintenance::PruneRules {
                keep_last,
                keep_best,
                keep_tagged,
                keep_optimizer_last,
                dry_run,
            };
            let r = reg.prune(&name, rules)?;
            if json.json {
                print_json(&r)?;
            } else if !quiet {
                let list = |v: &[u32]| v.iter().map(|n| format!("v{n}")).collect::<Vec<_>>().join(", ");
                if !r.optimizer_dropped.is_empty() {
                    println!(
                        "{} optimizer state of {} (weights kept)",
                        if dry_run { "would drop" } else { "dropped" },
                        list(&r.optimizer_dropped)
                    );
                }
                println!(
                    "{} {} versions of {name} ({}); kept {}; freed {}",
                    if dry_run { "would remove" } else { "removed" },
                    r.removed.len(),
                    list(&r.removed),
                    list(&r.kept),
                    human::bytes(r.freed_bytes)
                );
            }
        }
        Command::Bench { what } => match what {
            BenchCommand::Run {
                size,
                epochs,
                dir,
                keep,
            } => crate::bench::run(&cwd.join(dir), crate::bench::parse_size(&size)?, epochs, keep)?,
            BenchCommand::Generate {
                file,
                size,
                epoch,
                layers,
                frozen,
            } => {
                let shape = layers.map(|l| (l, frozen.unwrap_or(0)));
                let n = crate::bench::generate(&cwd.join(&file), crate::bench::parse_size(&size)?, epoch, shape)?;
                if !quiet {
                    println!("wrote {} ({})", file.display(), human::bytes(n));
                }
            }
        },
        Command::Tag {
            reference,
            tag,
            force,
            delete,
        } => {
            let reg = open(config)?;
            if delete {
                let r = VersionRef::parse(&reference)?;
                let reg_meta::RefSpec::Word(t) = &r.spec else {
                    anyhow::bail!("tag -d takes NAME@TAG");
                };
                reg.remove_tag(&r.name, t)?;
                if !quiet {
                    println!("deleted tag {}@{t}", r.name);
                }
            } else {
                let tag = tag.context("reg tag NAME@REF TAG: missing TAG")?;
                let v = reg.resolve(&VersionRef::parse(&reference)?)?;
                let moved = reg.tag(&v, &tag, force)?;
                if !quiet {
                    match moved {
                        Some(old) => println!(
                            "moved tag {tag} from v{old} to {}@v{}",
                            v.manifest.name, v.manifest.number
                        ),
                        None => println!("tagged {}@v{} as {tag}", v.manifest.name, v.manifest.number),
                    }
                }
            }
        }
        Command::Remote { command } => crate::remote_cmd::remote(&config, command, quiet)?,
        Command::Sync { command } => crate::remote_cmd::sync(config, command, quiet)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn print_push(file: &std::path::Path, r: &reg_meta::PushReport, tag: Option<&str>, took: std::time::Duration) {
    if !r.unknown_globals.is_empty() {
        eprintln!(
            "reg: warning: {} names globals reg does not know (loading it in Python imports them): {}",
            file.display(),
            r.unknown_globals.join(", ")
        );
    }
    if r.created {
        println!(
            "pushed {}@v{} ({}) from {}",
            r.name,
            r.number,
            r.id.short(),
            file.display()
        );
        println!(
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
        println!(
            "  {} logical, {} new tensor bytes, {} written{ratio}",
            human::bytes(r.logical_bytes),
            human::bytes(r.new_raw_bytes),
            human::bytes(r.written_bytes)
        );
        if r.deltas > 0 {
            println!(
                "  {} new tensors stored as deltas against the --parent version",
                r.deltas
            );
        }
        if let (Some(v), true) = (r.rebase.version, r.rebase.pending) {
            println!(
                "  v{v}: its changed tensors become deltas against v{} in the background",
                r.number
            );
        }
        if let (Some(v), true) = (r.rebase.version, r.rebase.blobs > 0) {
            println!(
                "  v{v}: {} changed tensors re-encoded as deltas against v{}: {} -> {}",
                r.rebase.blobs,
                r.number,
                human::bytes(r.rebase.bytes_before),
                human::bytes(r.rebase.bytes_after)
            );
        }
        for w in &r.rebase.warnings {
            eprintln!("reg: warning: {w}");
        }
        println!("  {}", human::rate(r.logical_bytes, took));
    } else {
        println!(
            "unchanged: {} is identical to {}@v{} ({}); no version added",
            file.display(),
            r.name,
            r.number,
            r.id.short()
        );
    }
    if let Some(t) = tag {
        println!("  tagged {t}");
    }
}

fn opt(v: Option<i64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn note(note: &Option<String>, quiet: bool) {
    if let (Some(n), false) = (note, quiet) {
        eprintln!("reg: note: {n}");
    }
}

fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn print_json<T: Serialize>(v: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    out(&text)
}

fn compact(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn print_show(v: &ShowView) -> Result<()> {
    let mut s = String::new();
    let tags = if v.tags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", v.tags.join(", "))
    };
    s.push_str(&format!("{}@v{}{tags}  {}\n", v.name, v.version, v.id));
    s.push_str(&format!(
        "  file       {} ({}, {}), pushed {}\n",
        v.source,
        v.format,
        human::bytes(v.size),
        human::time(v.created)
    ));
    if let Some(m) = &v.message {
        s.push_str(&format!("  message    {m}\n"));
    }
    let chain = if v.stored.deltas > 0 {
        format!(
            ", {} as deltas (longest chain {} link{})",
            v.stored.deltas,
            v.stored.longest_chain,
            if v.stored.longest_chain == 1 { "" } else { "s" }
        )
    } else {
        String::new()
    };
    s.push_str(&format!(
        "  stored     {} blobs, {}{chain}\n",
        v.stored.blobs,
        human::bytes(v.stored.stored_bytes)
    ));
    if let Some(d) = &v.optimizer_dropped {
        s.push_str(&format!(
            "  retention  optimizer state dropped {}: pulls as a weights-only file (was {}, blake3 {})\n",
            human::time(d.when),
            human::bytes(d.size),
            d.blake3.short()
        ));
    }
    if v.epoch.is_some() || v.global_step.is_some() {
        s.push_str(&format!(
            "  epoch      {}   step {}\n",
            opt(v.epoch),
            opt(v.global_step)
        ));
    }
    if let Some(l) = &v.lightning_version {
        s.push_str(&format!("  lightning  {l}\n"));
    }
    if let Some(h) = &v.hyper_parameters {
        s.push_str(&format!("  hparams    {}\n", compact(h)));
    }
    for (i, o) in v.optimizers.iter().enumerate() {
        for (g, group) in o.param_groups.iter().enumerate() {
            let mut settings = group.clone();
            if let Some(obj) = settings.as_object_mut() {
                obj.retain(|k, val| {
                    !val.is_null()
                        && !matches!(
                            k.as_str(),
                            "params" | "differentiable" | "capturable" | "foreach" | "fused" | "maximize"
                        )
                });
            }
            s.push_str(&format!(
                "  optimizer  #{i} {} group {g}: {}\n",
                o.kind,
                compact(&settings)
            ));
        }
    }
    for sch in &v.schedulers {
        let mut state = sch.state.clone();
        if let Some(obj) = state.as_object_mut() {
            obj.retain(|k, _| !k.starts_with('_') && k != "verbose");
        }
        s.push_str(&format!("  scheduler  {} {}\n", sch.kind, compact(&state)));
    }
    if let Some(mc) = &v.model_checkpoint {
        s.push_str(&format!(
            "  checkpoint monitor {} mode {} best {}\n",
            mc.monitor.as_deref().unwrap_or("-"),
            mc.mode.as_deref().unwrap_or("-"),
            mc.best_model_score.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
        ));
    }
    if let Some(m) = &v.safetensors_metadata {
        s.push_str(&format!("  metadata   {}\n", compact(m)));
    }
    let flagged: Vec<String> = v
        .globals
        .iter()
        .filter(|g| g.verdict != reg_ckpt::safety::Verdict::Safe)
        .map(|g| format!("{} ({:?})", g.global, g.verdict).to_lowercase())
        .collect();
    if !flagged.is_empty() {
        s.push_str(&format!("  globals    {}\n", flagged.join(", ")));
    }
    s.push_str(&format!(
        "  tensors    {} in {} storages\n",
        v.tensors.len(),
        v.storages
    ));
    let mut rows = Vec::new();
    for t in &v.tensors {
        rows.push(vec![
            format!("    {}", human::short_path(&t.path)),
            t.dtype.clone(),
            human::shape(&t.shape),
            format!("{:?}", t.role).to_lowercase(),
            format!("storage {}", t.storage_key),
        ]);
    }
    s.push_str(&human::table(&rows));
    out(&s)
}
