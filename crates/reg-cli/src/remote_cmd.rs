//! Remote commands: `reg remote add|ls|rm`, `reg sync push|pull`, and the
//! `--remote` variants of push, pull, ls and log.
//!
//! Remotes live in registry.toml under `[remotes.NAME]` (url, endpoint,
//! region, allow_http). Credentials are never written there: object_store
//! reads them from the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` ...).

use crate::bar::Bar;
use crate::cli::{RemoteCommand, SyncCommand};
use crate::human;
use anyhow::{bail, Context, Result};
use reg_meta::config::{RemoteSpec, CONFIG_FILE};
use reg_meta::index::IndexError;
use reg_meta::report::{LogEntry, NameEntry};
use reg_meta::{Config, ModelName, Registry, RegistryError, VersionRef};
use reg_remote::{Remote, RemoteError, Selection, SyncReport};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Turn a remote error into one the binary maps to the right exit code
/// (damage is exit 2, like local damage).
fn lift(e: RemoteError) -> anyhow::Error {
    match e {
        RemoteError::Damaged { version, source } => RegistryError::Damaged { version, source }.into(),
        RemoteError::BadObject { remote, key, reason } => RegistryError::Index(IndexError::Damaged {
            what: format!("remote {remote} object {key}"),
            reason,
        })
        .into(),
        RemoteError::Registry(r) => r.into(),
        other => other.into(),
    }
}

/// The remote named `which` in the config, or a URL given directly.
fn spec(config: &Config, which: &str) -> Result<RemoteSpec> {
    if which.contains("://") {
        return Ok(RemoteSpec {
            name: which.to_string(),
            url: which.to_string(),
            ..RemoteSpec::default()
        });
    }
    if let Some(s) = config.remotes.iter().find(|r| r.name == which) {
        return Ok(s.clone());
    }
    let known: Vec<&str> = config.remotes.iter().map(|r| r.name.as_str()).collect();
    bail!(
        "no remote named {which:?}; {}",
        if known.is_empty() {
            "add one with: reg remote add NAME URL".to_string()
        } else {
            format!("known remotes: {}", known.join(", "))
        }
    )
}

/// Open a remote by name or URL.
pub fn open_remote(config: &Config, which: &str) -> Result<Remote> {
    Remote::open(&spec(config, which)?).map_err(lift)
}

fn open_registry(config: Config) -> Result<Registry> {
    Ok(Registry::open(config)?.with_waits(
        reg_meta::WaitPolicy::default(),
        Box::new(|notice| eprintln!("reg: {notice}")),
    ))
}

fn print_json<T: Serialize>(v: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `reg ls --remote R`.
pub fn ls(config: &Config, which: &str) -> Result<Vec<NameEntry>> {
    open_remote(config, which)?.list_names().map_err(lift)
}

/// `reg log MODEL --remote R`.
pub fn log(config: &Config, which: &str, name: &str) -> Result<Vec<LogEntry>> {
    open_remote(config, which)?.log(name).map_err(lift)
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
            println!(
                "  {}@v{} -> {}:{}@v{} ({what})",
                v.name, v.local, r.remote, v.name, v.remote
            );
        } else {
            println!(
                "  {}:{}@v{} -> {}@v{} ({what})",
                r.remote, v.name, v.remote, v.name, v.local
            );
        }
    }
    for t in &r.tags {
        println!("  tag {t}");
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    let parts = if r.multipart_blobs > 0 {
        format!(", {} in parts", r.multipart_blobs)
    } else {
        String::new()
    };
    println!(
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
        let r = remote
            .push(reg, &what, &Bar::new(quiet || json, u64::MAX))
            .map_err(lift)?;
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
    let r = remote.pull(reg, wanted, &Bar::new(quiet, u64::MAX)).map_err(lift)?;
    if !quiet {
        print_report(&r);
    }
    let v = r.versions.first().context("the pull named no version")?;
    Ok(VersionRef {
        name: v.name.clone(),
        spec: reg_meta::RefSpec::Number(v.local),
    })
}

/// `reg sync push|pull`.
pub fn sync(config: Config, cmd: SyncCommand, quiet: bool) -> Result<()> {
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
            let reg = open_registry(config)?;
            let r = remote
                .push(&reg, &what, &Bar::new(quiet || json.json, u64::MAX))
                .map_err(lift)?;
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
            let reg = open_registry(config)?;
            let r = remote
                .pull(&reg, &wanted, &Bar::new(quiet || json.json, u64::MAX))
                .map_err(lift)?;
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
pub fn remote(config: &Config, cwd: &Path, cmd: RemoteCommand, quiet: bool) -> Result<()> {
    match cmd {
        RemoteCommand::Add {
            name,
            url,
            endpoint,
            region,
            allow_http,
        } => {
            check_name(&name)?;
            reg_remote::check_url(&url).map_err(|e| anyhow::anyhow!(e))?;
            if let Some(e) = &endpoint {
                if e.starts_with("http://") && !allow_http {
                    bail!("endpoint {e} is plain http: pass --allow-http to use it");
                }
                if !e.starts_with("http://") && !e.starts_with("https://") {
                    bail!("endpoint {e}: give a URL (https://host:port)");
                }
            }
            if config.remotes.iter().any(|r| r.name == name) {
                bail!("remote {name} exists; remove it first with: reg remote rm {name}");
            }
            let (path, created) = config_file(config, cwd);
            let mut doc = if created {
                new_doc(&config.root)
            } else {
                read_doc(&path)?
            };
            let remotes = doc
                .entry("remotes")
                .or_insert_with(|| {
                    let mut t = toml_edit::Table::new();
                    t.set_implicit(true);
                    toml_edit::Item::Table(t)
                })
                .as_table_mut()
                .context("registry.toml: `remotes` is not a table")?;
            let mut t = toml_edit::Table::new();
            t.insert("url", toml_edit::value(url.as_str()));
            if let Some(e) = &endpoint {
                t.insert("endpoint", toml_edit::value(e.as_str()));
            }
            if let Some(r) = &region {
                t.insert("region", toml_edit::value(r.as_str()));
            }
            if allow_http {
                t.insert("allow_http", toml_edit::value(true));
            }
            remotes.insert(&name, toml_edit::Item::Table(t));
            write_doc(&path, &doc)?;
            if !quiet {
                if created {
                    println!(
                        "created {} for the registry at {}",
                        path.display(),
                        config.root.display()
                    );
                }
                println!("added remote {name} ({url}) to {}", path.display());
            }
        }
        RemoteCommand::Ls { json } => {
            if json.json {
                let list: Vec<serde_json::Value> = config
                    .remotes
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "name": r.name, "url": r.url, "endpoint": r.endpoint,
                            "region": r.region, "allow_http": r.allow_http,
                        })
                    })
                    .collect();
                print_json(&list)?;
            } else if config.remotes.is_empty() {
                if !quiet {
                    println!("no remotes; add one with: reg remote add NAME URL");
                }
            } else {
                let mut rows = vec![vec![
                    "name".to_string(),
                    "url".into(),
                    "endpoint".into(),
                    "region".into(),
                ]];
                for r in &config.remotes {
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
            let path = match &config.file {
                Some(p) if config.remotes.iter().any(|r| r.name == name) => p.clone(),
                _ => bail!("no remote named {name:?}"),
            };
            let mut doc = read_doc(&path)?;
            let removed = doc
                .get_mut("remotes")
                .and_then(|r| r.as_table_like_mut())
                .and_then(|t| t.remove(&name))
                .is_some();
            if !removed {
                bail!("no remote named {name:?} in {}", path.display());
            }
            write_doc(&path, &doc)?;
            if !quiet {
                println!("removed remote {name} from {} (its data is untouched)", path.display());
            }
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("invalid remote name {name:?}: use letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// The registry.toml to edit: the one in use, else a new one in the
/// working directory that points at the registry in use.
fn config_file(config: &Config, cwd: &Path) -> (PathBuf, bool) {
    match &config.file {
        Some(p) => (p.clone(), false),
        None => (cwd.join(CONFIG_FILE), true),
    }
}

fn read_doc(path: &Path) -> Result<toml_edit::DocumentMut> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.parse::<toml_edit::DocumentMut>()
        .with_context(|| format!("{} does not parse", path.display()))
}

/// A fresh registry.toml. Its `path` keeps naming the registry already in
/// use, so creating the file never moves the registry.
fn new_doc(root: &Path) -> toml_edit::DocumentMut {
    let mut doc = toml_edit::DocumentMut::new();
    let mut registry = toml_edit::Table::new();
    registry.insert("path", toml_edit::value(root.to_string_lossy().as_ref()));
    registry
        .decor_mut()
        .set_prefix("# reg looks for this file in the working directory and its parents.\n");
    doc.insert("registry", toml_edit::Item::Table(registry));
    doc
}

fn write_doc(path: &Path, doc: &toml_edit::DocumentMut) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".registry.toml.")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    tmp.write_all(doc.to_string().as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
