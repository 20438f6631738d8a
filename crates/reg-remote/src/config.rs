//! Remotes of a registry, as the whole configuration knows them: the
//! list ([`remotes`]), finding one by name (or a URL given directly), and
//! `reg remote add` / `rm`, which edit the file that declares it. How a
//! remote is declared and checked, and the registry's own config file,
//! come from the (private) declarations module, re-exported here.
//!
//! Remotes belong to the registry, as git keeps them in `.git/config`:
//! they live in `<registry>/config.toml` (`reg_format::layout::OWN_CONFIG_FILE`); a
//! `registry.toml` may still declare remotes for the registry it names.

pub use crate::declarations::*;

use crate::declarations::{edit, implicit_table, load};
use reg_registry::Config;
use std::path::PathBuf;

/// The remotes of the registry `config` names: those of its own config
/// file, and those of a `registry.toml` that names this registry, sorted
/// by name, each checked, with what probes recorded about its store.
pub fn remotes(config: &Config) -> Result<Vec<RemoteSpec>, RemoteConfigError> {
    let declared = &config.remote_declarations;
    load(&config.root, &declared.table, declared.declared_in.as_deref())
}

/// The remote named `which` in the config, or a remote for a URL given
/// directly (`s3://...`, `file://...`), with what a probe of its store
/// recorded.
pub fn find_remote(config: &Config, which: &str) -> Result<RemoteSpec, RemoteConfigError> {
    if which.contains("://") {
        check_url(which)?;
        let mut spec = RemoteSpec::from_url(which);
        spec.creates = recorded_creates(&config.root, &spec)?;
        return Ok(spec);
    }
    let known = remotes(config)?;
    match known.iter().position(|r| r.name == which) {
        Some(i) => Ok(known[i].clone()),
        None => Err(RemoteConfigError::NoSuchRemote {
            name: which.to_string(),
            known: known.into_iter().map(|r| r.name).collect(),
        }),
    }
}

/// Add a remote to the registry's own config (creating the file, and the
/// registry directory, when needed); returns the file. The declaration is
/// checked first; a name the registry knows already (from either file) is
/// refused.
pub fn add_remote(config: &Config, spec: &RemoteSpec) -> Result<PathBuf, RemoteConfigError> {
    spec.check()?;
    if let Some(existing) = remotes(config)?.iter().find(|r| r.name == spec.name) {
        return Err(RemoteConfigError::Exists {
            name: spec.name.clone(),
            path: existing
                .declared_in
                .clone()
                .unwrap_or_else(|| own_config_path(&config.root)),
        });
    }
    let path = own_config_path(&config.root);
    edit(&config.root, &path, |doc| {
        if let Some(t) = doc.get("remotes").and_then(|r| r.as_table_like()) {
            if t.contains_key(&spec.name) {
                return Err(RemoteConfigError::Exists {
                    name: spec.name.clone(),
                    path: path.clone(),
                });
            }
        }
        let remotes = implicit_table(doc, "remotes", &path)?;
        let mut t = toml_edit::Table::new();
        t.insert("url", toml_edit::value(spec.url.as_str()));
        if let Some(e) = &spec.endpoint {
            t.insert("endpoint", toml_edit::value(e.as_str()));
        }
        if let Some(r) = &spec.region {
            t.insert("region", toml_edit::value(r.as_str()));
        }
        if spec.allow_http {
            t.insert("allow_http", toml_edit::value(true));
        }
        if let Some(n) = spec.concurrency {
            t.insert("concurrency", toml_edit::value(n as i64));
        }
        remotes.insert(&spec.name, toml_edit::Item::Table(t));
        Ok(())
    })?;
    Ok(path)
}

/// Remove a remote from the file that declares it (the registry's own
/// config or the `registry.toml` it came from); returns that file. The
/// remote's data is not touched.
pub fn remove_remote(config: &Config, name: &str) -> Result<PathBuf, RemoteConfigError> {
    let known = remotes(config)?;
    let spec = known
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| RemoteConfigError::NoSuchRemote {
            name: name.to_string(),
            known: known.iter().map(|r| r.name.clone()).collect(),
        })?;
    let path = spec
        .declared_in
        .clone()
        .ok_or_else(|| RemoteConfigError::Invalid(format!("remote {name} is not declared in a file")))?;
    edit(&config.root, &path, |doc| {
        let removed = doc
            .get_mut("remotes")
            .and_then(|r| r.as_table_like_mut())
            .and_then(|t| t.remove(name))
            .is_some();
        if removed {
            Ok(())
        } else {
            Err(RemoteConfigError::NoSuchRemote {
                name: name.to_string(),
                known: Vec::new(),
            })
        }
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reg_format::layout::OWN_CONFIG_FILE;

    fn spec(name: &str, url: &str) -> RemoteSpec {
        RemoteSpec::named(name, url)
    }

    #[test]
    fn add_remove_and_probes_live_in_the_registry() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("reg");
        let config = Config::at(&root);
        let path = add_remote(&config, &spec("origin", "file:///srv/reg"))?;
        assert_eq!(path, root.join(OWN_CONFIG_FILE));
        let loaded = remotes(&config)?;
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].declared_in.as_deref(), Some(path.as_path()));
        assert_eq!(loaded[0].creates, None);
        record_creates(&root, &loaded[0], Creates::NotExclusive)?;
        let loaded = remotes(&config)?;
        assert_eq!(loaded[0].creates, Some(Creates::NotExclusive));
        assert!(matches!(
            add_remote(&config, &spec("origin", "file:///elsewhere")),
            Err(RemoteConfigError::Exists { .. })
        ));
        assert_eq!(find_remote(&config, "origin")?.url, "file:///srv/reg");
        assert_eq!(
            find_remote(&config, "file:///srv/reg")?.creates,
            Some(Creates::NotExclusive)
        );
        assert!(find_remote(&config, "nope").is_err());
        remove_remote(&config, "origin")?;
        assert!(remotes(&config)?.is_empty());
        Ok(())
    }

    #[test]
    fn a_registry_toml_declares_remotes_only_for_the_registry_it_names() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join(reg_registry::config::CONFIG_FILE);
        std::fs::write(
            &file,
            "[registry]\npath = \"store\"\n[remotes.team]\nurl = \"file:///srv/team\"\n",
        )?;
        let named = remotes(&Config::locate(None, None, dir.path())?)?;
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].declared_in.as_deref(), Some(file.as_path()));
        let same = Config::locate(None, Some(&dir.path().join("store/.")), dir.path())?;
        assert_eq!(remotes(&same)?.len(), 1);
        let other = Config::locate(None, Some(&dir.path().join("other")), dir.path())?;
        assert!(remotes(&other)?.is_empty());
        // Its own config declares the other registry's remotes.
        add_remote(&other, &spec("mine", "file:///srv/mine"))?;
        let names = |c: &Config| -> Result<Vec<String>, RemoteConfigError> {
            Ok(remotes(c)?.into_iter().map(|r| r.name).collect())
        };
        assert_eq!(names(&other)?, ["mine"]);
        assert_eq!(names(&Config::locate(None, None, dir.path())?)?, ["team"]);
        // A bad declaration in the registry.toml is named, in one line.
        std::fs::write(
            &file,
            "[registry]\npath = \"store\"\n[remotes.team]\nurl = \"file:///srv/team\"\nbogus = 1\n",
        )?;
        let msg = match remotes(&Config::locate(None, None, dir.path())?) {
            Ok(_) => return Err("an unknown field was accepted".into()),
            Err(e) => e.to_string(),
        };
        assert!(
            msg.contains("registry.toml") && msg.contains("remotes.team") && msg.contains("bogus"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        Ok(())
    }
}
