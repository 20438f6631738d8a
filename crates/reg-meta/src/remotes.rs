//! Remotes of a registry, as the whole configuration knows them: finding
//! one by name (or a URL given directly), and `reg remote add` / `rm`,
//! which edit the file that declares it. How a remote is declared and
//! checked, and the registry's own config file, are
//! [`crate::remote_spec`] (re-exported here).
//!
//! Remotes belong to the registry, as git keeps them in `.git/config`:
//! they live in `<registry>/config.toml` ([`OWN_CONFIG_FILE`]); a
//! `registry.toml` may still declare remotes for the registry it names.

pub use crate::remote_spec::*;

use crate::config::Config;
use crate::remote_spec::{edit, implicit_table};
use std::path::PathBuf;

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
    config
        .remotes
        .iter()
        .find(|r| r.name == which)
        .cloned()
        .ok_or_else(|| RemoteConfigError::NoSuchRemote {
            name: which.to_string(),
            known: config.remotes.iter().map(|r| r.name.clone()).collect(),
        })
}

/// Add a remote to the registry's own config (creating the file, and the
/// registry directory, when needed); returns the file. The declaration is
/// checked first; a name the registry knows already (from either file) is
/// refused.
pub fn add_remote(config: &Config, spec: &RemoteSpec) -> Result<PathBuf, RemoteConfigError> {
    spec.check()?;
    if let Some(existing) = config.remotes.iter().find(|r| r.name == spec.name) {
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
    let spec = config
        .remotes
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| RemoteConfigError::NoSuchRemote {
            name: name.to_string(),
            known: config.remotes.iter().map(|r| r.name.clone()).collect(),
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
    use std::collections::BTreeMap;

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
        let loaded = load(&root, BTreeMap::new(), None)?;
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].declared_in.as_deref(), Some(path.as_path()));
        assert_eq!(loaded[0].creates, None);
        record_creates(&root, &loaded[0], Creates::NotExclusive)?;
        let loaded = load(&root, BTreeMap::new(), None)?;
        assert_eq!(loaded[0].creates, Some(Creates::NotExclusive));
        let config = Config {
            remotes: loaded,
            ..Config::at(&root)
        };
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
        assert!(load(&root, BTreeMap::new(), None)?.is_empty());
        Ok(())
    }
}
