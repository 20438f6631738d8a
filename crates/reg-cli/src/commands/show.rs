//! `reg show NAME[@REF]`.

use super::{print, Ctx};
use crate::cli::ShowArgs;
use crate::human;
use anyhow::Result;
use reg_registry::report::{ShowView, TensorsView};
use reg_registry::VersionRef;
use std::process::ExitCode;

/// Describe one version.
pub fn run(ctx: &Ctx, args: ShowArgs) -> Result<ExitCode> {
    let wanted = args.best.apply(VersionRef::parse(&args.reference)?);
    let reg = ctx.open()?;
    let v = reg.resolve(&wanted)?;
    print::note(&v.note, ctx.quiet);
    let view = reg.show_view(&v)?;
    if args.json.json {
        print::json(&view)?;
    } else {
        print_show(&view)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_show(v: &ShowView) -> Result<()> {
    let mut s = String::new();
    let tags = if v.tags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", v.tags.join(", "))
    };
    s.push_str(&format!(
        "{}{tags}  {}\n",
        reg_format::VersionLabel::new(&v.name, v.version),
        v.id
    ));
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
        let what = if v.kind.is_some() {
            "its optimizer, scheduler and RNG files are gone"
        } else {
            "pulls as a weights-only file"
        };
        s.push_str(&format!(
            "  retention  optimizer state dropped {}: {what} (was {}, blake3 {})\n",
            human::time(d.when),
            human::bytes(d.size),
            d.blake3.short()
        ));
    }
    if v.epoch.is_some() || v.meta.global_step.is_some() {
        s.push_str(&format!(
            "  epoch      {}   step {}\n",
            v.epoch.as_ref().map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
            print::opt(v.meta.global_step)
        ));
    }
    if let Some(l) = &v.meta.lightning_version {
        s.push_str(&format!("  lightning  {l}\n"));
    }
    if let Some(h) = &v.meta.hyper_parameters {
        s.push_str(&format!("  hparams    {}\n", print::compact(h)));
    }
    for (i, o) in v.meta.optimizers.iter().enumerate() {
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
                print::compact(&settings)
            ));
        }
    }
    for sch in &v.meta.schedulers {
        let mut state = sch.state.clone();
        if let Some(obj) = state.as_object_mut() {
            obj.retain(|k, _| !k.starts_with('_') && k != "verbose");
        }
        s.push_str(&format!("  scheduler  {} {}\n", sch.kind, print::compact(&state)));
    }
    if let Some(mc) = &v.meta.model_checkpoint {
        s.push_str(&format!(
            "  checkpoint monitor {} mode {} best {}\n",
            mc.monitor.as_deref().unwrap_or("-"),
            mc.mode.as_deref().unwrap_or("-"),
            mc.best_model_score.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
        ));
    }
    if let Some(m) = &v.meta.safetensors_metadata {
        s.push_str(&format!("  metadata   {}\n", print::compact(m)));
    }
    let flagged: Vec<String> = reg_ckpt::safety::not_safe(&v.globals)
        .map(|g| format!("{} ({:?})", g.global, g.verdict).to_lowercase())
        .collect();
    if !flagged.is_empty() {
        s.push_str(&format!("  globals    {}\n", flagged.join(", ")));
    }
    if let (Some(layout), Some(files)) = (&v.layout, &v.files) {
        s.push_str(&format!("  layout     {layout} directory, {} files\n", files.len()));
        let mut rows = Vec::new();
        for f in files {
            rows.push(vec![
                format!("    {}{}", f.path, if f.executable { " (x)" } else { "" }),
                human::bytes(f.size),
                f.format.to_string(),
                format!("{} tensors", f.tensors),
            ]);
        }
        s.push_str(&human::table(&rows));
    }
    s.push_str(&format!(
        "  tensors    {} in {} storages\n",
        v.tensors.len(),
        v.storages
    ));
    let mut rows = Vec::new();
    match &v.tensors {
        TensorsView::File(tensors) => {
            for t in tensors {
                rows.push(vec![
                    format!("    {}", human::short_path(&t.path)),
                    t.dtype.name().to_string(),
                    human::shape(&t.shape),
                    format!("{:?}", t.role).to_lowercase(),
                    if t.meta {
                        "meta (no storage)".to_string()
                    } else {
                        format!("storage {}", t.storage_key)
                    },
                ]);
            }
        }
        TensorsView::Directory(tensors) => {
            for t in tensors {
                let files: std::collections::BTreeSet<&str> = t.chunks.iter().map(|c| c.file.as_str()).collect();
                rows.push(vec![
                    format!("    {}", human::short_path(&t.path)),
                    t.dtype.clone(),
                    human::shape(&t.shape),
                    format!("{:?}", t.role).to_lowercase(),
                    if t.meta {
                        "meta (no storage)".to_string()
                    } else {
                        format!(
                            "{} chunk{} in {}",
                            t.chunks.len(),
                            if t.chunks.len() == 1 { "" } else { "s" },
                            files.into_iter().collect::<Vec<_>>().join(", ")
                        )
                    },
                ]);
            }
        }
    }
    s.push_str(&human::table(&rows));
    print::out(&s)
}
