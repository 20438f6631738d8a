//! Remote commands: `reg remote add|ls|rm`, `reg sync push|pull`, and the
//! `--remote` variants of push, pull, ls and log.
//!
//! Remotes belong to the registry (`<registry>/config.toml`, see
//! `reg_remote::config`, which also checks and edits them). Credentials are
//! never written there: object_store reads them from the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` ...).
//! Remote errors reach main as `RemoteError`, which picks the exit code.

use crate::bar::Bar;
use crate::cli::{RemoteCommand, SyncCommand};
use crate::human;
use anyhow::{Context, Result};
use reg_registry::report::{LogEntry, NameEntry};
use reg_registry::{Config, ModelName, Registry, VersionRef};
use reg_remote::config::{self as remotes, Creates, RemoteSpec, RemoteView};
use reg_remote::{Remote, Selection, SyncReport};
use serde::Serialize;
use std::io::Write;

/// Open a remote by name or URL.
pub fn open_remote(config: &Config, which: &str) -> Result<Remote> {
    Ok(Remote::open(&remotes::find_remote(config, which)?)?)
}

fn print_json<T: Serialize>(v: &T) -> Result<()> {
    let text = reg_registry::report::to_json_text(v)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `reg ls --remote R`.
pub fn ls(config: &Config, which: &str) -> Result<Vec<NameEntry>> {
    Ok(open_remote(config, which)?.list_names()?)
}

/// `reg log MODEL --remote R`.
pub fn log(config: &Config, which: &str, name: &str) -> Result<Vec<LogEntry>> {
    Ok(open_remote(config, which)?.log(name)?)
}

/// Print a sync summary (objects and bytes sent or received, skipped).
fn print_report(r: &SyncReport) {
    let (verb, dir) = if r.direction == "push" {
        ("sent", "to")
    } else {
        ("received", "from")
    };
    for v in &r.versions {
        let what = if v.transferred { verb } else { "already there" };
        if r.direction == "push" {
            crate::human::say!(
                "  {} -> {}:{} ({what})",
                reg_format::VersionLabel::new(&v.name, v.local),
                r.remote,
                reg_format::VersionLabel::new(&v.name, v.remote)
            );
        } else {
            crate::human::say!(
                "  {}:{} -> {} ({what})",
                r.remote,
                reg_format::VersionLabel::new(&v.name, v.remote),
                reg_format::VersionLabel::new(&v.name, v.local)
            );
        }
    }
    for t in &r.tags {
        crate::human::say!("  tag {t}");
    }
    for n in &r.notes {
        crate::human::say!("  note: {n}");
    }
    let parts = if r.multipart_blobs > 0 {
        format!(", {} in parts", r.multipart_blobs)
    } else {
        String::new()
    };
    crate::human::say!(
        "{verb} {} objects ({}) {dir} {}: {} blobs ({}{parts}); skipped {} blobs already present ({})",
        r.objects_transferred,
        human::bytes(r.bytes_transferred),
        r.remote,
        r.blobs_transferred,
        human::bytes(r.blob_bytes_transferred),
        r.blobs_skipped,
        human::bytes(r.blob_bytes_skipped),
    );
}

/// After `reg push FILE... --remote R`: upload the versions just pushed.
pub fn upload_pushed(
    reg: &Registry,
    which: &str,
    pushed: &[(String, u32)],
    quiet: bool,
    json: bool,
) -> Result<SyncReport> {
    let remote = open_remote(reg.config(), which)?;
    let mut total = SyncReport::default();
    let mut names: Vec<&str> = pushed.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    for name in names {
        let numbers = pushed.iter().filter(|(n, _)| n == name).map(|(_, v)| *v).collect();
        let what = Selection::Numbers {
            name: name.to_string(),
            numbers,
        };
        let r = remote.push(reg, &what, &Bar::new(quiet || json, u64::MAX))?;
        merge(&mut total, r);
    }
    if !quiet && !json {
        print_report(&total);
    }
    Ok(total)
}

fn merge(total: &mut SyncReport, r: SyncReport) {
    total.remote = r.remote;
    total.direction = r.direction;
    total.versions.extend(r.versions);
    total.blobs_transferred += r.blobs_transferred;
    total.blob_bytes_transferred += r.blob_bytes_transferred;
    total.blobs_skipped += r.blobs_skipped;
    total.blob_bytes_skipped += r.blob_bytes_skipped;
    total.multipart_blobs += r.multipart_blobs;
    total.objects_transferred += r.objects_transferred;
    total.bytes_transferred += r.bytes_transferred;
    total.tags.extend(r.tags);
    total.notes.extend(r.notes);
}

/// Bring a remote version into the registry; returns the local ref of it.
pub fn fetch(reg: &Registry, which: &str, wanted: &VersionRef, quiet: bool) -> Result<VersionRef> {
    let remote = open_remote(reg.config(), which)?;
    let r = remote.pull(reg, wanted, &Bar::new(quiet, u64::MAX))?;
    if !quiet {
        print_report(&r);
    }
    let v = r.versions.first().context("the pull named no version")?;
    Ok(VersionRef {
        name: v.name.clone(),
        spec: reg_registry::RefSpec::Number(v.local),
    })
}

/// `reg sync push|pull`: the registry opened as every command opens it
/// (`--wait-timeout` bounds its waits, `--quiet` silences them).
pub fn sync(ctx: &super::Ctx, cmd: SyncCommand) -> Result<()> {
    let (config, quiet) = (ctx.config.clone(), ctx.quiet);
    match cmd {
        SyncCommand::Push {
            remote,
            reference,
            json,
        } => {
            let what = match reference.as_deref() {
                None => Selection::All,
                Some(r) if r.contains('@') => Selection::Version(VersionRef::parse(r)?),
                Some(n) => Selection::Name(ModelName::new(n)?.to_string()),
            };
            let remote = open_remote(&config, &remote)?;
            let reg = ctx.open()?;
            let r = remote.push(&reg, &what, &Bar::new(quiet || json.json, u64::MAX))?;
            if json.json {
                print_json(&r)?;
            } else if !quiet {
                print_report(&r);
            }
        }
        SyncCommand::Pull {
            remote,
            reference,
            best,
            json,
        } => {
            let wanted = best.apply(VersionRef::parse(&reference)?);
            let remote = open_remote(&config, &remote)?;
            let reg = ctx.open()?;
            let r = remote.pull(&reg, &wanted, &Bar::new(quiet || json.json, u64::MAX))?;
            if json.json {
                print_json(&r)?;
            } else if !quiet {
                print_report(&r);
            }
        }
    }
    Ok(())
}

/// `reg remote add|ls|rm`.
pub fn remote(config: &Config, cmd: RemoteCommand, quiet: bool) -> Result<()> {
    match cmd {
        RemoteCommand::Add {
            name,
            url,
            endpoint,
            region,
            allow_http,
        } => {
            let spec = RemoteSpec {
                name,
                url,
                endpoint,
                region,
                allow_http,
                ..RemoteSpec::default()
            };
            let path = remotes::add_remote(config, &spec)?;
            if !quiet {
                crate::human::say!("added remote {} ({}) to {}", spec.name, spec.url, path.display());
            }
            // Probe once whether the server's creates are exclusive, and
            // record it; an unreachable server is probed by the first push.
            match Remote::open(&spec).and_then(|r| r.probe()) {
                Ok(creates) => {
                    remotes::record_creates(&config.root, &spec, creates)?;
                    if creates == Creates::NotExclusive {
                        crate::human::say_err!("reg: note: {}", reg_remote::not_exclusive_note(&spec.name));
                    }
                }
                Err(e) => {
                    if !quiet {
                        crate::human::say_err!(
                            "reg: note: could not probe remote {} now ({}); the first push will",
                            spec.name,
                            e.to_string().replace('\n', " ")
                        );
                    }
                }
            }
        }
        RemoteCommand::Ls { json } => {
            let known = remotes::remotes(config)?;
            if json.json {
                let list: Vec<RemoteView> = known.iter().map(RemoteView::from).collect();
                print_json(&list)?;
            } else if known.is_empty() {
                if !quiet {
                    crate::human::say!("no remotes; add one with: reg remote add NAME URL");
                }
            } else {
                let mut rows = vec![vec![
                    "name".to_string(),
                    "url".into(),
                    "endpoint".into(),
                    "region".into(),
                ]];
                for r in &known {
                    rows.push(vec![
                        r.name.clone(),
                        r.url.clone(),
                        r.endpoint.clone().unwrap_or_else(|| "-".into()),
                        r.region.clone().unwrap_or_else(|| "-".into()),
                    ]);
                }
                print!("{}", human::table(&rows));
            }
        }
        RemoteCommand::Rm { name } => {
            let path = remotes::remove_remote(config, &name)?;
            if !quiet {
                crate::human::say!("removed remote {name} from {} (its data is untouched)", path.display());
            }
        }
    }
    Ok(())
}
