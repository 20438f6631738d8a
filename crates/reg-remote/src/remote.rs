//! An open remote: an object store plus the runtime that drives it, and
//! the read side (names, versions, tags, refs, manifests).

use crate::error::RemoteError;
use crate::layout::{self, Marker, TagEntry, VersionEntry, REMOTE_FORMAT};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use reg_meta::config::RemoteSpec;
use reg_meta::ids::ModelName;
use reg_meta::report::{LogEntry, NameEntry};
use reg_meta::{Manifest, RefSpec, VersionRef};
use reg_store::{BlobId, StoreError};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// Transfer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Blobs of at least this many stored bytes are uploaded in parts.
    pub multipart_threshold: u64,
    /// Size of one part (S3 needs at least 5 MiB, except the last).
    pub part_size: usize,
    /// Parts of one blob in flight at once.
    pub part_concurrency: usize,
    /// Blobs (and small objects) in flight at once.
    pub concurrency: usize,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            part_concurrency: 4,
            concurrency: 8,
        }
    }
}

/// An open remote. Every method is synchronous: the remote runs its own
/// small tokio runtime and blocks on it.
pub struct Remote {
    pub(crate) name: String,
    url: String,
    pub(crate) store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
    pub(crate) tuning: Tuning,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish()
    }
}

/// Split `s3://bucket/some/prefix` into bucket and prefix.
fn split_bucket(rest: &str) -> (&str, &str) {
    match rest.split_once('/') {
        Some((b, p)) => (b, p.trim_matches('/')),
        None => (rest, ""),
    }
}

/// Check a remote URL without opening it: `s3://BUCKET[/PREFIX]` or
/// `file:///ABSOLUTE/PATH`.
pub fn check_url(url: &str) -> Result<(), String> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, _) = split_bucket(rest);
        if bucket.is_empty() {
            return Err(format!("{url}: missing bucket name (s3://BUCKET[/PREFIX])"));
        }
        Ok(())
    } else if let Some(path) = url.strip_prefix("file://") {
        if !std::path::Path::new(path).is_absolute() {
            return Err(format!("{url}: a file:// remote needs an absolute path (file:///dir)"));
        }
        Ok(())
    } else {
        Err(format!("{url}: use s3://BUCKET[/PREFIX] or file:///PATH"))
    }
}

impl Remote {
    /// Open a remote. S3 credentials and defaults come from the usual
    /// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT` ...); the spec's
    /// endpoint, region and allow_http override them. Nothing is contacted
    /// until the first operation.
    pub fn open(spec: &RemoteSpec) -> Result<Remote, RemoteError> {
        let bad = |reason: String| RemoteError::BadSpec {
            remote: spec.name.clone(),
            reason,
        };
        check_url(&spec.url).map_err(bad)?;
        let store_err = |source| RemoteError::Store {
            remote: spec.name.clone(),
            source,
        };
        let store: Arc<dyn ObjectStore> = if let Some(rest) = spec.url.strip_prefix("s3://") {
            let (bucket, prefix) = split_bucket(rest);
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(e) = &spec.endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(r) = &spec.region {
                b = b.with_region(r);
            }
            if spec.allow_http {
                b = b.with_allow_http(true);
            }
            let s3 = b.build().map_err(store_err)?;
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            }
        } else {
            let dir = spec.url.trim_start_matches("file://");
            std::fs::create_dir_all(dir).map_err(|e| bad(format!("creating {dir}: {e}")))?;
            Arc::new(LocalFileSystem::new_with_prefix(dir).map_err(store_err)?)
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name("reg-remote")
            .enable_all()
            .build()
            .map_err(|source| RemoteError::Runtime {
                remote: spec.name.clone(),
                source,
            })?;
        Ok(Remote {
            name: spec.name.clone(),
            url: spec.url.clone(),
            store,
            rt,
            tuning: Tuning::default(),
        })
    }

    /// Change transfer settings.
    pub fn with_tuning(mut self, tuning: Tuning) -> Remote {
        self.tuning = tuning;
        self
    }

    /// The remote's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The remote's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub(crate) fn err(&self) -> impl Fn(object_store::Error) -> RemoteError + '_ {
        move |source| RemoteError::Store {
            remote: self.name.clone(),
            source,
        }
    }

    pub(crate) fn label(&self, name: &str, number: u32) -> String {
        format!("{}:{name}@v{number}", self.name)
    }

    /// An object's bytes, or `None` when it does not exist.
    pub(crate) async fn get_opt(&self, key: &Path) -> Result<Option<Vec<u8>>, RemoteError> {
        match self.store.get(key).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(self.err())?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err()(e)),
        }
    }

    /// Every object under a prefix (one paginated LIST).
    pub(crate) async fn list_all(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, RemoteError> {
        self.store.list(Some(prefix)).try_collect().await.map_err(self.err())
    }

    /// Put a small object, replacing what is there.
    pub(crate) async fn put_small(&self, key: &Path, bytes: Vec<u8>) -> Result<u64, RemoteError> {
        let len = bytes.len() as u64;
        self.store.put(key, PutPayload::from(bytes)).await.map_err(self.err())?;
        Ok(len)
    }

    /// Put a small object only if the key is free; `Ok(false)` when it is taken.
    pub(crate) async fn create_small(&self, key: &Path, bytes: Vec<u8>) -> Result<bool, RemoteError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self.store.put_opts(key, PutPayload::from(bytes), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.err()(e)),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, key: &Path, bytes: &[u8]) -> Result<T, RemoteError> {
        serde_json::from_slice(bytes).map_err(|e| RemoteError::BadObject {
            remote: self.name.clone(),
            key: key.to_string(),
            reason: e.to_string(),
        })
    }

    /// Check the format marker; write it when the remote is new and
    /// `create` is set.
    pub(crate) async fn check_marker(&self, create: bool) -> Result<(), RemoteError> {
        let key = layout::marker_key();
        match self.get_opt(&key).await? {
            Some(bytes) => {
                let m: Marker = self.parse(&key, &bytes)?;
                if m.format > REMOTE_FORMAT {
                    return Err(RemoteError::TooNew {
                        remote: self.name.clone(),
                        found: m.format,
                    });
                }
            }
            None if create => {
                let body = serde_json::to_vec(&Marker { format: REMOTE_FORMAT }).unwrap_or_default();
                self.create_small(&key, body).await?;
            }
            None => {}
        }
        Ok(())
    }

    /// Version entries of a name, oldest first (empty when the name is
    /// unknown).
    pub(crate) async fn versions_async(&self, name: &str) -> Result<Vec<VersionEntry>, RemoteError> {
        let listed = self.list_all(&layout::versions_prefix(name)).await?;
        let keys: Vec<(u32, Path)> = listed
            .into_iter()
            .filter_map(|o| {
                let n = o.location.filename()?.parse::<u32>().ok()?;
                Some((n, o.location))
            })
            .collect();
        let mut out: Vec<VersionEntry> = futures::stream::iter(keys)
            .map(|(n, key)| async move {
                let Some(bytes) = self.get_opt(&key).await? else {
                    return Ok(None); // removed since the listing
                };
                let e: VersionEntry = self.parse(&key, &bytes)?;
                if e.number != n || e.name != name {
                    return Err(RemoteError::BadObject {
                        remote: self.name.clone(),
                        key: key.to_string(),
                        reason: format!("names {}@v{} instead", e.name, e.number),
                    });
                }
                Ok(Some(e))
            })
            .buffer_unordered(self.tuning.concurrency.max(1) * 2)
            .try_filter_map(|e| async move { Ok(e) })
            .try_collect()
            .await?;
        out.sort_by_key(|e| e.number);
        Ok(out)
    }

    /// Tags of a name.
    pub(crate) async fn tags_async(&self, name: &str) -> Result<Vec<TagEntry>, RemoteError> {
        let listed = self.list_all(&layout::tags_prefix(name)).await?;
        let mut out: Vec<TagEntry> = futures::stream::iter(listed)
            .map(|o| async move {
                let Some(bytes) = self.get_opt(&o.location).await? else {
                    return Ok(None);
                };
                self.parse::<TagEntry>(&o.location, &bytes).map(Some)
            })
            .buffer_unordered(self.tuning.concurrency.max(1) * 2)
            .try_filter_map(|e| async move { Ok(e) })
            .try_collect()
            .await?;
        out.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(out)
    }

    /// Model names on the remote with their version counts and newest
    /// numbers (one LIST of `versions/`).
    pub fn list_names(&self) -> Result<Vec<NameEntry>, RemoteError> {
        self.block_on(async {
            self.check_marker(false).await?;
            let listed = self.list_all(&layout::versions_root()).await?;
            let mut names: BTreeMap<ModelName, (u32, u32)> = BTreeMap::new();
            for o in listed {
                let parts: Vec<String> = o.location.parts().map(|p| p.as_ref().to_string()).collect();
                if let [_, name, number] = parts.as_slice() {
                    let name = ModelName::new(name).map_err(|e| RemoteError::BadObject {
                        remote: self.name.clone(),
                        key: o.location.to_string(),
                        reason: e.to_string(),
                    })?;
                    if let Ok(n) = number.parse::<u32>() {
                        let e = names.entry(name).or_default();
                        e.0 += 1;
                        e.1 = e.1.max(n);
                    }
                }
            }
            Ok(names
                .into_iter()
                .map(|(name, (versions, latest))| NameEntry { name, versions, latest })
                .collect())
        })
    }

    /// Version entries of a name, oldest first; an unknown name is an error.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionEntry>, RemoteError> {
        self.block_on(async {
            let v = self.versions_async(name).await?;
            if v.is_empty() {
                return Err(self.no_such_name(name).await);
            }
            Ok(v)
        })
    }

    async fn no_such_name(&self, name: &str) -> RemoteError {
        let names = match self.list_all(&layout::versions_root()).await {
            Ok(listed) => {
                let mut n: Vec<String> = listed
                    .iter()
                    .filter_map(|o| o.location.parts().nth(1).map(|p| p.as_ref().to_string()))
                    .collect();
                n.dedup();
                n
            }
            Err(_) => Vec::new(),
        };
        RemoteError::NotFound {
            remote: self.name.clone(),
            message: if names.is_empty() {
                format!("no model named {name:?} (the remote is empty)")
            } else {
                format!("no model named {name:?}; known names: {}", names.join(", "))
            },
        }
    }

    /// The `log` view of a name on the remote, oldest first.
    pub fn log(&self, name: &str) -> Result<Vec<LogEntry>, RemoteError> {
        let versions = self.versions(name)?;
        let tags = self.block_on(self.tags_async(name))?;
        Ok(versions
            .into_iter()
            .map(|v| LogEntry {
                version: v.number,
                tags: tags
                    .iter()
                    .filter(|t| t.number == v.number)
                    .map(|t| t.tag.clone())
                    .collect(),
                id: v.id,
                created: v.created,
                size: v.size,
                source: v.source,
                epoch: v.epoch,
                global_step: v.step,
                message: v.message,
                tensors: v.tensors,
                optimizer_dropped: false,
            })
            .collect())
    }

    /// Find the remote version a ref names (`vN` is the remote's number).
    pub fn resolve(&self, r: &VersionRef) -> Result<VersionEntry, RemoteError> {
        self.block_on(self.resolve_async(r))
    }

    pub(crate) async fn resolve_async(&self, r: &VersionRef) -> Result<VersionEntry, RemoteError> {
        let versions = self.versions_async(&r.name).await?;
        if versions.is_empty() {
            return Err(self.no_such_name(&r.name).await);
        }
        let not_found = |available: String| RemoteError::NotFound {
            remote: self.name.clone(),
            message: format!("{}@{} matches no version; {available}", r.name, r.spec),
        };
        let list = |vs: &[VersionEntry]| {
            vs.iter()
                .map(|v| format!("v{}", v.number))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let found = match &r.spec {
            RefSpec::Latest => versions.last().cloned(),
            RefSpec::Number(n) => versions.iter().find(|v| v.number == *n).cloned(),
            RefSpec::Epoch(e) => versions.iter().rev().find(|v| v.epoch == Some(*e)).cloned(),
            RefSpec::Step(s) => versions.iter().rev().find(|v| v.step == Some(*s)).cloned(),
            RefSpec::Word(w) => {
                let tags = self.tags_async(&r.name).await?;
                match tags.iter().find(|t| &t.tag == w) {
                    Some(t) => versions.iter().find(|v| v.number == t.number).cloned(),
                    None => {
                        let lower = w.to_ascii_lowercase();
                        let hex = w.len() >= 6 && w.bytes().all(|b| b.is_ascii_hexdigit());
                        let m: Vec<VersionEntry> = if hex {
                            versions
                                .iter()
                                .filter(|v| v.id.to_hex().starts_with(&lower))
                                .cloned()
                                .collect()
                        } else {
                            Vec::new()
                        };
                        if m.len() > 1 {
                            return Err(not_found(format!("id prefix {w} is ambiguous ({})", list(&m))));
                        }
                        m.into_iter().next()
                    }
                }
            }
            RefSpec::Best {
                metric,
                lower_is_better,
            } => self.best(&versions, metric.as_deref(), *lower_is_better).await?,
        };
        found.ok_or_else(|| not_found(format!("remote versions: {}", list(&versions))))
    }

    /// The version with the best monitored score (reads every manifest).
    async fn best(
        &self,
        versions: &[VersionEntry],
        metric: Option<&str>,
        lower_is_better: Option<bool>,
    ) -> Result<Option<VersionEntry>, RemoteError> {
        let mut best: Option<(f64, &VersionEntry)> = None;
        let mut lower = lower_is_better;
        let mut chosen = metric.map(String::from);
        for v in versions {
            let (_, m) = self.fetch_manifest_async(v).await?;
            let want = match &chosen {
                Some(w) => w.clone(),
                None => match m.meta.model_checkpoint.as_ref().and_then(|mc| mc.monitor.clone()) {
                    Some(mon) => {
                        chosen = Some(mon.clone());
                        mon
                    }
                    None => continue,
                },
            };
            if let Some(score) = m.meta.scores.get(&want).filter(|s| !s.value.is_nan()) {
                let low = *lower.get_or_insert(score.mode != "max");
                let better = match best {
                    None => true,
                    Some((b, _)) => {
                        if low {
                            score.value <= b
                        } else {
                            score.value >= b
                        }
                    }
                };
                if better {
                    best = Some((score.value, v));
                }
            }
        }
        Ok(best.map(|(_, v)| v.clone()))
    }

    /// Download a version's manifest and check it: its blake3 must be the
    /// entry's id, and it must describe the file the entry names.
    pub fn fetch_manifest(&self, entry: &VersionEntry) -> Result<(Vec<u8>, Manifest), RemoteError> {
        self.block_on(self.fetch_manifest_async(entry))
    }

    pub(crate) async fn fetch_manifest_async(&self, entry: &VersionEntry) -> Result<(Vec<u8>, Manifest), RemoteError> {
        let label = self.label(&entry.name, entry.number);
        let damaged = |source| RemoteError::Damaged {
            version: label.clone(),
            source,
        };
        let id = entry.manifest_id();
        let bytes = self
            .get_opt(&layout::manifest_key(id))
            .await?
            .ok_or_else(|| damaged(StoreError::Missing(id)))?;
        if BlobId::of(&bytes) != id {
            return Err(damaged(StoreError::Corrupt {
                id,
                reason: "manifest does not match its hash".into(),
            }));
        }
        let m = Manifest::from_json(&bytes).map_err(|e| {
            damaged(StoreError::Corrupt {
                id,
                reason: format!("manifest does not parse: {e}"),
            })
        })?;
        if m.name != entry.name || m.blake3 != entry.blake3 || m.size != entry.size {
            return Err(damaged(StoreError::Corrupt {
                id,
                reason: "manifest describes another file than its version entry".into(),
            }));
        }
        Ok((bytes, m))
    }
}
