//! Finding the registry and reading `registry.toml`.
//!
//! Order: an explicit directory (`--registry DIR`), then `REG_HOME`, then a
//! `registry.toml` in the working directory or a parent (its `path`,
//! relative to the file), else `<user data dir>/reg`.
//!
//! Remotes come from the registry's own config (`<registry>/config.toml`)
//! and from a `registry.toml` that names this registry; this crate only
//! carries the latter's `[remotes]` table ([`RemoteDeclarations`]):
//! `reg-remote` reads, checks and edits remote declarations.

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
    /// Keep the newest version of each name stored raw (`keep_newest_raw
    /// = true`): pushes store new tensors uncompressed (as `--fast` does)
    /// and the background job compresses a blob only once no newest
    /// version names it, so loads map the newest version's tensors
    /// (`reg locate`) instead of decoding them. Costs the compression of
    /// one version per name on disk.
    pub keep_newest_raw: bool,
    /// The remotes a `registry.toml` declares for this registry, as
    /// written (`reg_remote::config::remotes` reads them with the
    /// registry's own config).
    pub remote_declarations: RemoteDeclarations,
}

/// The `[remotes]` table of a `registry.toml` that names this registry,
/// unread: `reg-remote` owns what a remote declaration means.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemoteDeclarations {
    /// `[remotes.NAME]` tables by name (empty when no `registry.toml`
    /// names this registry).
    pub table: toml::Table,
    /// The `registry.toml` they come from.
    pub declared_in: Option<PathBuf>,
}

/// When the previous version's changed tensors become deltas against a
/// new version's (see [`crate::deltas`]); `deltas = "background" |
/// "inline" | "off"` in registry.toml.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// `registry.toml` as written by users.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    registry: RegistrySection,
    #[serde(default)]
    remotes: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrySection {
    path: Option<PathBuf>,
    compression_level: Option<i32>,
    default_name: Option<String>,
    pickle_policy: Option<PicklePolicy>,
    keep_optimizer_last: Option<usize>,
    codecs: Option<CodecsSetting>,
    max_delta_chain: Option<usize>,
    durability: Option<DurabilitySetting>,
    deltas: Option<DeltaTiming>,
    keep_newest_raw: Option<bool>,
}

/// `pickle_policy = "default" | "strict"`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PicklePolicy {
    Default,
    Strict,
}

/// `codecs = "auto" | "zstd" | "raw"`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CodecsSetting {
    Auto,
    Zstd,
    Raw,
}

impl From<CodecsSetting> for reg_store::CodecPolicy {
    fn from(c: CodecsSetting) -> reg_store::CodecPolicy {
        match c {
            CodecsSetting::Auto => reg_store::CodecPolicy::Auto,
            CodecsSetting::Zstd => reg_store::CodecPolicy::Zstd,
            CodecsSetting::Raw => reg_store::CodecPolicy::Raw,
        }
    }
}

/// `durability = "full" | "fast"`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DurabilitySetting {
    Full,
    Fast,
}

impl From<DurabilitySetting> for reg_store::Durability {
    fn from(d: DurabilitySetting) -> reg_store::Durability {
        match d {
            DurabilitySetting::Full => reg_store::Durability::Full,
            DurabilitySetting::Fast => reg_store::Durability::Fast,
        }
    }
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
    #[error("no registry location")]
    NoLocation,
}

/// Longest delta chain (links) a registry makes unless configured
/// (`max_delta_chain`; see [`crate::deltas`]).
pub const DEFAULT_MAX_DELTA_CHAIN: usize = 8;

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
            max_delta_chain: DEFAULT_MAX_DELTA_CHAIN,
            durability: reg_store::Durability::Full,
            deltas: DeltaTiming::Background,
            keep_newest_raw: false,
            remote_declarations: RemoteDeclarations::default(),
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
        let (section, toml_remotes) = parsed.map(|p| (p.registry, p.remotes)).unwrap_or_default();
        let from_file = match (&found, &section.path) {
            (Some(file), Some(p)) => Some(file.parent().unwrap_or(Path::new(".")).join(p)),
            (Some(file), None) => Some(file.parent().unwrap_or(Path::new(".")).join(".reg")),
            _ => None,
        };
        let root = explicit
            .map(|p| cwd.join(p))
            .or_else(|| reg_home.filter(|p| !p.as_os_str().is_empty()).map(|p| cwd.join(p)))
            .or_else(|| from_file.clone())
            .or_else(|| dirs::data_dir().map(|d| d.join("reg")))
            .ok_or(ConfigError::NoLocation)?;
        // The remotes a registry.toml declares are those of the registry
        // it names, not of another one used from the same folder.
        let names_root = from_file.as_deref().is_some_and(|f| same_dir(f, &root));
        let remote_declarations = if names_root {
            RemoteDeclarations {
                table: toml_remotes,
                declared_in: found.clone(),
            }
        } else {
            RemoteDeclarations::default()
        };
        Ok(Config {
            strict_pickles: matches!(section.pickle_policy, Some(PicklePolicy::Strict)),
            keep_optimizer_last: section.keep_optimizer_last,
            codecs: section.codecs.map(Into::into).unwrap_or_default(),
            durability: section.durability.map(Into::into).unwrap_or_default(),
            deltas: section.deltas.unwrap_or_default(),
            keep_newest_raw: section.keep_newest_raw.unwrap_or(false),
            max_delta_chain: section
                .max_delta_chain
                .unwrap_or(DEFAULT_MAX_DELTA_CHAIN)
                .min(reg_store::MAX_CHAIN),
            root,
            compression_level: section.compression_level.unwrap_or(DEFAULT_LEVEL).clamp(1, 19),
            default_name: section.default_name.filter(|n| !n.is_empty()),
            file: found,
            remote_declarations,
        })
    }
}

/// True when two paths name one directory (compared as canonical paths
/// when both exist, else component by component).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => {
            let norm = |p: &Path| -> Vec<std::ffi::OsString> {
                let mut out: Vec<std::ffi::OsString> = Vec::new();
                for c in p.components() {
                    match c {
                        std::path::Component::CurDir => {}
                        std::path::Component::ParentDir => {
                            out.pop();
                        }
                        other => out.push(other.as_os_str().to_os_string()),
                    }
                }
                out
            };
            norm(a) == norm(b)
        }
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
    let parsed: ConfigFile = toml::from_str(&text).map_err(|e| bad(crate::toml_text::toml_message(&text, &e)))?;
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

    #[test]
    fn settings_parse_into_their_enums_and_name_the_bad_line() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join(CONFIG_FILE);
        std::fs::write(
            &file,
            "[registry]\npickle_policy = \"strict\"\ncodecs = \"raw\"\ndurability = \"fast\"\ndeltas = \"off\"\n",
        )?;
        let c = Config::locate(None, None, dir.path())?;
        assert!(c.strict_pickles);
        assert_eq!(c.codecs, reg_store::CodecPolicy::Raw);
        assert_eq!(c.durability, reg_store::Durability::Fast);
        assert_eq!(c.deltas, DeltaTiming::Off);
        for (line, words) in [
            ("pickle_policy = \"lax\"", ["`lax`", "`default`", "`strict`"]),
            ("codecs = \"lz4\"", ["`lz4`", "`auto`", "`raw`"]),
            ("durability = \"fastest\"", ["`fastest`", "`full`", "`fast`"]),
            ("deltas = \"later\"", ["`later`", "`background`", "`off`"]),
        ] {
            std::fs::write(&file, format!("[registry]\n{line}\n"))?;
            let msg = match Config::locate(None, None, dir.path()) {
                Ok(_) => return Err(format!("{line} accepted").into()),
                Err(e) => e.to_string(),
            };
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains("line 2") && msg.contains(line), "{msg}");
            for w in words {
                assert!(msg.contains(w), "{msg} lacks {w}");
            }
        }
        Ok(())
    }
}
