//! Finding the registry and reading `registry.toml`.
//!
//! Order: an explicit directory (`--registry DIR`), then `REG_HOME`, then a
//! `registry.toml` in the working directory or a parent (its `path`,
//! relative to the file), else `<user data dir>/reg`.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Name of the config file searched for upwards from the working directory.
pub const CONFIG_FILE: &str = "registry.toml";

/// Settings of a registry.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The registry directory.
    pub root: PathBuf,
    /// zstd level for new blobs.
    pub compression_level: i32,
    /// Model name used when `push` gets no `--name`.
    pub default_name: Option<String>,
    /// The config file the settings came from, if any.
    pub file: Option<PathBuf>,
    /// Refuse pickles naming globals of unknown safety, not only dangerous ones.
    pub strict_pickles: bool,
    /// After each push, drop optimizer state from all but the newest N
    /// versions of the name (`keep_optimizer_last`).
    pub keep_optimizer_last: Option<usize>,
    /// How new blobs are encoded (`codecs = "auto" | "zstd" | "raw"`).
    pub codecs: reg_store::CodecPolicy,
    /// When new blobs reach the disk (`durability = "full" | "fast"`).
    pub durability: reg_store::Durability,
    /// When a push re-encodes the previous version as deltas against the
    /// new one (`deltas = "background" | "inline" | "off"`).
    pub deltas: DeltaTiming,
    /// Longest chain of delta blobs (links) a pull may have to decode;
    /// 0 stores no deltas (`max_delta_chain`, see [`crate::deltas`]).
    pub max_delta_chain: usize,
    /// Remotes named in `[remotes.NAME]`, sorted by name.
    pub remotes: Vec<RemoteSpec>,
}

/// When the previous version's changed tensors become deltas against a
/// new version's (see [`crate::deltas`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeltaTiming {
    /// After the push returns, in a separate `reg deltas` process that
    /// holds the registry lock (the default of the `reg` binary; library
    /// callers run [`crate::Registry::make_deltas`] themselves).
    #[default]
    Background,
    /// In the push, after the new version is committed.
    Inline,
    /// Never (no delta blobs are made).
    Off,
}

/// A remote from `[remotes.NAME]` in registry.toml. Credentials are never
/// kept here: they come from the environment (`AWS_ACCESS_KEY_ID` ...).
#[derive(Clone, Debug, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSpec {
    /// The remote's name (the table key; not written inside the table).
    #[serde(skip)]
    pub name: String,
    /// `s3://bucket[/prefix]` or `file:///path`.
    pub url: String,
    /// S3 endpoint for S3-compatible servers (MinIO, Garage, R2 ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3 region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Allow plain-http endpoints.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http: bool,
}

/// `registry.toml` as written by users.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    registry: RegistrySection,
    #[serde(default)]
    remotes: std::collections::BTreeMap<String, RemoteSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrySection {
    path: Option<PathBuf>,
    compression_level: Option<i32>,
    default_name: Option<String>,
    pickle_policy: Option<String>,
    keep_optimizer_last: Option<usize>,
    codecs: Option<String>,
    max_delta_chain: Option<usize>,
    durability: Option<String>,
    deltas: Option<String>,
}

/// Returned by [`Config::locate`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read or parsed.
    #[error("{path}: {reason}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No directory could be chosen.
    #[error("no registry location: pass --registry DIR or set REG_HOME")]
    NoLocation,
}

/// Default zstd level.
pub const DEFAULT_LEVEL: i32 = 3;

impl Config {
    /// Settings for a registry at `root` with defaults.
    pub fn at(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            compression_level: DEFAULT_LEVEL,
            default_name: None,
            file: None,
            strict_pickles: false,
            keep_optimizer_last: None,
            codecs: reg_store::CodecPolicy::Auto,
            max_delta_chain: crate::deltas::DEFAULT_MAX_DELTA_CHAIN,
            durability: reg_store::Durability::Full,
            deltas: DeltaTiming::Background,
            remotes: Vec::new(),
        }
    }

    /// Find the registry: `explicit`, then `reg_home` (the value of
    /// `REG_HOME`), then `registry.toml` upwards from `cwd`, then the user
    /// data directory. Settings of the nearest `registry.toml` apply in all
    /// cases except that its `path` only counts when nothing more explicit
    /// was given.
    pub fn locate(explicit: Option<&Path>, reg_home: Option<&Path>, cwd: &Path) -> Result<Config, ConfigError> {
        let found = find_file(cwd);
        let parsed = match &found {
            Some(path) => Some(read_file(path)?),
            None => None,
        };
        let (section, remotes) = parsed.map(|p| (p.registry, p.remotes)).unwrap_or_default();
        let remotes = remotes
            .into_iter()
            .map(|(name, spec)| RemoteSpec { name, ..spec })
            .collect();
        let from_file = match (&found, &section.path) {
            (Some(file), Some(p)) => Some(file.parent().unwrap_or(Path::new(".")).join(p)),
            (Some(file), None) => Some(file.parent().unwrap_or(Path::new(".")).join(".reg")),
            _ => None,
        };
        let root = explicit
            .map(|p| cwd.join(p))
            .or_else(|| reg_home.filter(|p| !p.as_os_str().is_empty()).map(|p| cwd.join(p)))
            .or(from_file)
            .or_else(|| dirs::data_dir().map(|d| d.join("reg")))
            .ok_or(ConfigError::NoLocation)?;
        let strict_pickles = match section.pickle_policy.as_deref() {
            None | Some("default") => false,
            Some("strict") => true,
            Some(other) => {
                return Err(ConfigError::Bad {
                    path: found.clone().unwrap_or_default(),
                    reason: format!("pickle_policy {other:?}: use \"default\" or \"strict\""),
                })
            }
        };
        Ok(Config {
            strict_pickles,
            keep_optimizer_last: section.keep_optimizer_last,
            codecs: match section.codecs.as_deref() {
                None => reg_store::CodecPolicy::Auto,
                Some(c) => reg_store::CodecPolicy::parse(c).ok_or_else(|| ConfigError::Bad {
                    path: found.clone().unwrap_or_default(),
                    reason: format!("codecs {c:?}: use \"auto\", \"zstd\" or \"raw\""),
                })?,
            },
            durability: match section.durability.as_deref() {
                None | Some("full") => reg_store::Durability::Full,
                Some("fast") => reg_store::Durability::Fast,
                Some(other) => {
                    return Err(ConfigError::Bad {
                        path: found.clone().unwrap_or_default(),
                        reason: format!("durability {other:?}: use \"full\" or \"fast\""),
                    })
                }
            },
            deltas: match section.deltas.as_deref() {
                None | Some("background") => DeltaTiming::Background,
                Some("inline") => DeltaTiming::Inline,
                Some("off") => DeltaTiming::Off,
                Some(other) => {
                    return Err(ConfigError::Bad {
                        path: found.clone().unwrap_or_default(),
                        reason: format!("deltas {other:?}: use \"background\", \"inline\" or \"off\""),
                    })
                }
            },
            max_delta_chain: section
                .max_delta_chain
                .unwrap_or(crate::deltas::DEFAULT_MAX_DELTA_CHAIN)
                .min(reg_store::MAX_CHAIN),
            root,
            compression_level: section.compression_level.unwrap_or(DEFAULT_LEVEL).clamp(1, 19),
            default_name: section.default_name.filter(|n| !n.is_empty()),
            file: found,
            remotes,
        })
    }
}

fn find_file(start: &Path) -> Option<PathBuf> {
    start.ancestors().map(|d| d.join(CONFIG_FILE)).find(|p| p.is_file())
}

fn read_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let bad = |reason: String| ConfigError::Bad {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let parsed: ConfigFile = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_precedence() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub)?;
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[registry]\npath = \"store\"\ncompression_level = 5\ndefault_name = \"mnist\"\n",
        )?;
        let c = Config::locate(None, None, &sub)?;
        assert_eq!(c.root, dir.path().join("store"));
        assert_eq!(c.compression_level, 5);
        assert_eq!(c.default_name.as_deref(), Some("mnist"));
        let c = Config::locate(None, Some(Path::new("/x/home")), &sub)?;
        assert_eq!(c.root, PathBuf::from("/x/home"));
        let c = Config::locate(Some(Path::new("rel")), Some(Path::new("/x/home")), &sub)?;
        assert_eq!(c.root, sub.join("rel"));
        std::fs::write(dir.path().join(CONFIG_FILE), "[registry]\nbogus = 1\n")?;
        assert!(Config::locate(None, None, &sub).is_err());
        Ok(())
    }
}
