//! Remote declarations: how one is declared, the checks a declaration
//! passes (name, URL, endpoint), and reading and editing the registry's
//! own config file that holds them. What needs a whole
//! [`reg_registry::Config`] (the remotes it knows, finding one by name, `reg
//! remote add` and `rm`) is [`crate::config`], on top of this.
//!
//! Remotes belong to the registry, as git keeps them in `.git/config`:
//! they live in `<registry>/config.toml` (`reg_format::layout::OWN_CONFIG_FILE`), whichever
//! way the registry was found (`--registry`, `REG_HOME`, `registry.toml`,
//! the default). A `registry.toml` may still declare remotes under
//! `[remotes.NAME]`; they count for the registry that file names (its
//! `path`), not for another registry used from the same folder. A name
//! declared in both places means the registry's own one.
//!
//! The own config also records what a probe found out about a store
//! (`[probes."URL ENDPOINT"]`): whether the server's conditional creates
//! are exclusive (see [`Creates`]); the answer is the server's, whichever
//! remote name reaches it.
//!
//! ```toml
//! [remotes.origin]
//! url = "s3://team-bucket/checkpoints"
//! endpoint = "https://minio.internal:9000"
//! concurrency = 16
//!
//! [probes."s3://team-bucket/checkpoints https://minio.internal:9000"]
//! creates = "exclusive"
//! ```

use reg_format::layout::{OWN_CONFIG_FILE, OWN_CONFIG_LOCK};
use reg_registry::toml_text::toml_message;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Blobs in flight at once when a remote does not say (`concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Most requests in flight a remote may ask for.
pub const MAX_CONCURRENCY: usize = 256;

/// A remote: from `[remotes.NAME]` in the registry's own config or a
/// `registry.toml`, or a URL given on the command line. Credentials are
/// never kept here: they come from the environment (`AWS_ACCESS_KEY_ID` ...).
#[derive(Clone, Debug, PartialEq, Eq, Default, Deserialize, Serialize)]
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
    /// Blobs (and other requests) in flight at once; default
    /// [`DEFAULT_CONCURRENCY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// What a probe found out about the server's creates (from the own
    /// config's `[probes]`; `None` until probed).
    #[serde(skip)]
    pub creates: Option<Creates>,
    /// The file that declares the remote (`None` for a URL given directly).
    #[serde(skip)]
    pub declared_in: Option<PathBuf>,
}

/// Whether a store's conditional create (`If-None-Match: *` on S3) is
/// exclusive: a second create of a key that exists fails. Garage 2.5, for
/// one, accepts the header and overwrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Creates {
    /// A create of an existing key fails: remote version numbers are
    /// claimed by conditional creates.
    Exclusive,
    /// A create of an existing key overwrites it: number claims are
    /// serialised under a lease (see reg-remote's numbering).
    NotExclusive,
}

impl RemoteSpec {
    /// A declaration of remote `name` at `url`, every other field at its
    /// default (not checked: see [`RemoteSpec::check`]).
    pub fn named(name: &str, url: &str) -> RemoteSpec {
        RemoteSpec {
            name: name.into(),
            url: url.into(),
            ..RemoteSpec::default()
        }
    }

    /// A remote named by its URL, as `reg sync push file:///x` gives one.
    pub fn from_url(url: &str) -> RemoteSpec {
        RemoteSpec {
            name: url.to_string(),
            url: url.to_string(),
            ..RemoteSpec::default()
        }
    }

    /// What identifies the store behind the remote: its URL and endpoint
    /// (the key of its `[probes]` entry).
    pub fn store_key(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("{} {e}", self.url),
            None => self.url.clone(),
        }
    }

    /// Requests in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
            .unwrap_or(DEFAULT_CONCURRENCY)
            .clamp(1, MAX_CONCURRENCY)
    }

    /// Check the whole declaration: name, URL, endpoint policy, limits.
    pub fn check(&self) -> Result<(), RemoteConfigError> {
        check_name(&self.name)?;
        self.check_location()
    }

    /// Check all but the name (a remote given as a URL is named by it):
    /// URL, endpoint policy, limits.
    pub fn check_location(&self) -> Result<(), RemoteConfigError> {
        check_url(&self.url)?;
        if let Some(e) = &self.endpoint {
            check_endpoint(e, self.allow_http)?;
        }
        match self.concurrency {
            Some(n) if n == 0 || n > MAX_CONCURRENCY => Err(RemoteConfigError::Invalid(format!(
                "remote {}: concurrency {n}: use 1 to {MAX_CONCURRENCY}",
                self.name
            ))),
            _ => Ok(()),
        }
    }
}

/// Returned when a remote declaration or the file holding it is not usable.
#[derive(Debug, thiserror::Error)]
pub enum RemoteConfigError {
    /// A name, URL, endpoint or setting is not valid.
    #[error("{0}")]
    Invalid(String),
    /// `reg remote add` of a name that exists.
    #[error("remote {name} exists (in {}); remove it first with: reg remote rm {name}", path.display())]
    Exists {
        /// The remote name.
        name: String,
        /// The file that declares it.
        path: PathBuf,
    },
    /// No remote has this name.
    #[error("no remote named {name:?}; {}", known_remotes(known))]
    NoSuchRemote {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: Vec<String>,
    },
    /// A config file does not parse, or does not say what it should.
    #[error("{}: {reason}", path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a config file failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn known_remotes(known: &[String]) -> String {
    if known.is_empty() {
        "add one with: reg remote add NAME URL".to_string()
    } else {
        format!("known remotes: {}", known.join(", "))
    }
}

/// Check a remote name: letters, digits, `-`, `_` and `.`, 1 to 64
/// characters, not starting with `-`.
pub fn check_name(name: &str) -> Result<(), RemoteConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RemoteConfigError::Invalid(format!(
            "invalid remote name {name:?}: use letters, digits, '-', '_' and '.'"
        )))
    }
}

/// Split `s3://bucket/some/prefix` (without the scheme) into bucket and
/// prefix.
pub fn split_bucket(rest: &str) -> (&str, &str) {
    match rest.split_once('/') {
        Some((b, p)) => (b, p.trim_matches('/')),
        None => (rest, ""),
    }
}

/// Check a remote URL without opening it: `s3://BUCKET[/PREFIX]` or
/// `file:///ABSOLUTE/PATH`.
pub fn check_url(url: &str) -> Result<(), RemoteConfigError> {
    let bad = |why: String| Err(RemoteConfigError::Invalid(why));
    if let Some(rest) = url.strip_prefix("s3://") {
        if split_bucket(rest).0.is_empty() {
            return bad(format!("{url}: missing bucket name (s3://BUCKET[/PREFIX])"));
        }
        Ok(())
    } else if let Some(path) = url.strip_prefix("file://") {
        if !Path::new(path).is_absolute() {
            return bad(format!("{url}: a file:// remote needs an absolute path (file:///dir)"));
        }
        Ok(())
    } else {
        bad(format!("{url}: use s3://BUCKET[/PREFIX] or file:///PATH"))
    }
}

/// The endpoint policy: an `https://` URL, or `http://` when plain http
/// was allowed explicitly (`allow_http`, `--allow-http`).
pub fn check_endpoint(endpoint: &str, allow_http: bool) -> Result<(), RemoteConfigError> {
    if endpoint.starts_with("http://") && !allow_http {
        return Err(RemoteConfigError::Invalid(format!(
            "endpoint {endpoint} is plain http: pass --allow-http to use it"
        )));
    }
    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
        return Err(RemoteConfigError::Invalid(format!(
            "endpoint {endpoint}: give a URL (https://host:port)"
        )));
    }
    Ok(())
}

/// One remote as `reg remote ls --json` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RemoteView {
    /// The remote's name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// S3 endpoint, if set.
    pub endpoint: Option<String>,
    /// S3 region, if set.
    pub region: Option<String>,
    /// Plain-http endpoints allowed.
    pub allow_http: bool,
}

impl From<&RemoteSpec> for RemoteView {
    fn from(r: &RemoteSpec) -> RemoteView {
        RemoteView {
            name: r.name.clone(),
            url: r.url.clone(),
            endpoint: r.endpoint.clone(),
            region: r.region.clone(),
            allow_http: r.allow_http,
        }
    }
}

/// A probe's answer as the own config keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ProbeRecord {
    creates: Creates,
}

/// `<registry>/config.toml` as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnConfig {
    #[serde(default)]
    remotes: BTreeMap<String, RemoteSpec>,
    #[serde(default)]
    probes: BTreeMap<String, ProbeRecord>,
}

/// The registry's own config file.
pub fn own_config_path(root: &Path) -> PathBuf {
    root.join(OWN_CONFIG_FILE)
}

fn bad(path: &Path, reason: impl Into<String>) -> RemoteConfigError {
    RemoteConfigError::Bad {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Remotes of the registry at `root` (its own config, then those
/// `from_toml` declares: the `[remotes]` table of the `registry.toml` at
/// `toml_path` when that file names this registry), sorted by name, with
/// what the probes recorded.
pub(crate) fn load(
    root: &Path,
    from_toml: &toml::Table,
    toml_path: Option<&Path>,
) -> Result<Vec<RemoteSpec>, RemoteConfigError> {
    let path = own_config_path(root);
    let own: OwnConfig = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| bad(&path, toml_message(&text, &e)))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => OwnConfig::default(),
        Err(source) => {
            return Err(RemoteConfigError::Io {
                action: "reading",
                path,
                source,
            })
        }
    };
    let mut all: BTreeMap<String, RemoteSpec> = BTreeMap::new();
    for (name, value) in from_toml {
        let declared_in = toml_path.map(Path::to_path_buf);
        let spec: RemoteSpec = value.clone().try_into().map_err(|e: toml::de::Error| {
            bad(toml_path.unwrap_or(&path), format!("[remotes.{name}]: {}", e.message()))
        })?;
        all.insert(
            name.clone(),
            RemoteSpec {
                name: name.clone(),
                declared_in,
                ..spec
            },
        );
    }
    for (name, spec) in own.remotes {
        all.insert(
            name.clone(),
            RemoteSpec {
                name,
                declared_in: Some(path.clone()),
                ..spec
            },
        );
    }
    let mut out = Vec::with_capacity(all.len());
    for (_, mut spec) in all {
        spec.check()
            .map_err(|e| bad(spec.declared_in.as_deref().unwrap_or(&path), e.to_string()))?;
        spec.creates = own.probes.get(&spec.store_key()).map(|p| p.creates);
        out.push(spec);
    }
    Ok(out)
}

/// What a probe recorded about the store of `spec`, if anything.
pub fn recorded_creates(root: &Path, spec: &RemoteSpec) -> Result<Option<Creates>, RemoteConfigError> {
    let path = own_config_path(root);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RemoteConfigError::Io {
                action: "reading",
                path,
                source,
            })
        }
    };
    let own: OwnConfig = toml::from_str(&text).map_err(|e| bad(&path, toml_message(&text, &e)))?;
    Ok(own.probes.get(&spec.store_key()).map(|p| p.creates))
}

/// Record what a probe found out about the store of `spec` in the
/// registry's own config.
pub fn record_creates(root: &Path, spec: &RemoteSpec, creates: Creates) -> Result<(), RemoteConfigError> {
    let path = own_config_path(root);
    edit(root, &path, |doc| {
        let probes = implicit_table(doc, "probes", &path)?;
        let mut t = toml_edit::Table::new();
        let value = match creates {
            Creates::Exclusive => "exclusive",
            Creates::NotExclusive => "not-exclusive",
        };
        t.insert("creates", toml_edit::value(value));
        probes.insert(&spec.store_key(), toml_edit::Item::Table(t));
        Ok(())
    })
}

pub(crate) fn implicit_table<'d>(
    doc: &'d mut toml_edit::DocumentMut,
    key: &str,
    path: &Path,
) -> Result<&'d mut toml_edit::Table, RemoteConfigError> {
    doc.entry(key)
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| bad(path, format!("`{key}` is not a table")))
}

/// Edit a config file in place under the registry's config lock: read
/// (an absent own config starts empty), change, check that the result
/// still parses, write atomically (temp file, fsync, rename).
pub(crate) fn edit(
    root: &Path,
    path: &Path,
    change: impl FnOnce(&mut toml_edit::DocumentMut) -> Result<(), RemoteConfigError>,
) -> Result<(), RemoteConfigError> {
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| RemoteConfigError::Io {
            action,
            path: p,
            source,
        }
    };
    std::fs::create_dir_all(root).map_err(io("creating", root))?;
    let lock_path = root.join(OWN_CONFIG_LOCK);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("opening", &lock_path))?;
    lock.lock().map_err(io("locking", &lock_path))?;
    let own = path == own_config_path(root);
    let (text, new_file) = match std::fs::read_to_string(path) {
        Ok(t) => (t, false),
        Err(e) if own && e.kind() == std::io::ErrorKind::NotFound => (String::new(), true),
        Err(e) => return Err(io("reading", path)(e)),
    };
    let mut doc = text
        .parse::<toml_edit::DocumentMut>()
        .map_err(|e| bad(path, e.message().to_string()))?;
    change(&mut doc)?;
    let mut new_text = doc.to_string();
    if new_file {
        new_text.insert_str(
            0,
            "# The registry's own settings; `reg remote add` and `reg remote rm` edit this file.\n\n",
        );
    }
    if own {
        toml::from_str::<OwnConfig>(&new_text).map_err(|e| bad(path, toml_message(&new_text, &e)))?;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.toml.")
        .tempfile_in(&dir)
        .map_err(io("creating a temp file in", &dir))?;
    tmp.write_all(new_text.as_bytes()).map_err(io("writing", tmp.path()))?;
    tmp.as_file().sync_all().map_err(io("syncing", path))?;
    tmp.persist(path).map_err(|e| io("writing", path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, url: &str) -> RemoteSpec {
        RemoteSpec::named(name, url)
    }

    #[test]
    fn declarations_are_checked() {
        assert!(spec("origin", "s3://b/p").check().is_ok());
        assert!(spec("origin", "file:///x").check().is_ok());
        for (name, url) in [
            ("-x", "s3://b"),
            ("a/b", "s3://b"),
            ("", "s3://b"),
            ("o", "s3://"),
            ("o", "file://rel"),
            ("o", "ftp://x"),
        ] {
            assert!(spec(name, url).check().is_err(), "{name} {url}");
        }
        let mut http = spec("o", "s3://b");
        http.endpoint = Some("http://127.0.0.1:9000".into());
        assert!(http.check().is_err());
        http.allow_http = true;
        assert!(http.check().is_ok());
        http.endpoint = Some("127.0.0.1:9000".into());
        assert!(http.check().is_err());
        let mut many = spec("o", "s3://b");
        many.concurrency = Some(0);
        assert!(many.check().is_err());
        many.concurrency = Some(32);
        assert_eq!(many.concurrency(), 32);
    }
}
