//! An open remote: an object store plus the runtime that drives it, and
//! the read side (names, versions, tags, refs, manifests).

use crate::config::{split_bucket, Creates, RemoteSpec};
use crate::error::RemoteError;
use crate::layout::{self, Marker, TagEntry, VersionEntry, REMOTE_FORMAT};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use reg_format::ids::ModelName;
use reg_format::refs::ScoreMode;
use reg_registry::report::{LogEntry, NameEntry};
use reg_registry::{Manifest, RefSpec, VersionRef};
use reg_store::{BlobId, StoreError};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

/// Transfer settings. [`Remote::open`] takes `concurrency` from the
/// remote's declaration (`concurrency = N`).
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
            concurrency: crate::config::DEFAULT_CONCURRENCY,
        }
    }
}

/// An open remote. Every method is synchronous: the remote runs its own
/// small tokio runtime and blocks on it.
pub struct Remote {
    pub(crate) name: String,
    pub(crate) spec: RemoteSpec,
    pub(crate) store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
    pub(crate) tuning: Tuning,
    /// Whether the store's creates are exclusive: from the declaration's
    /// recorded probe, or probed at the first push.
    pub(crate) creates: OnceLock<Creates>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("name", &self.name)
            .field("url", &self.spec.url)
            .finish()
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
        spec.check_location().map_err(|e| bad(e.to_string()))?;
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
        let creates = OnceLock::new();
        if let Some(c) = spec.creates {
            let _ = creates.set(c);
        }
        Ok(Remote {
            name: spec.name.clone(),
            spec: spec.clone(),
            store,
            rt,
            tuning: Tuning {
                concurrency: spec.concurrency(),
                ..Tuning::default()
            },
            creates,
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
        &self.spec.url
    }

    /// The remote's declaration.
    pub fn spec(&self) -> &RemoteSpec {
        &self.spec
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
        format!("{}:{}", self.name, reg_format::VersionLabel::new(name, number))
    }

    pub(crate) fn bad_object(&self, key: &Path, reason: impl Into<String>) -> RemoteError {
        RemoteError::BadObject {
            remote: self.name.clone(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    /// An object's bytes, or `None` when it does not exist. At most
    /// `limit` bytes are read: a larger object is damage (a hostile
    /// remote must not make reg read gigabytes where it expects an entry).
    pub(crate) async fn get_bounded(&self, key: &Path, limit: u64) -> Result<Option<Vec<u8>>, RemoteError> {
        let got = match self.store.get(key).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err()(e)),
        };
        let too_big =
            |size: String| self.bad_object(key, format!("is {size} bytes, more than the {limit} reg reads of it"));
        if got.meta.size > limit {
            return Err(too_big(got.meta.size.to_string()));
        }
        let mut out = Vec::with_capacity(got.meta.size as usize);
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(self.err())?;
            if (out.len() + chunk.len()) as u64 > limit {
                return Err(too_big(format!("{} or more", out.len() + chunk.len())));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Some(out))
    }

    /// A small object (entry, tag, marker): at most
    /// [`layout::MAX_SMALL_OBJECT`] bytes.
    pub(crate) async fn get_small(&self, key: &Path) -> Result<Option<Vec<u8>>, RemoteError> {
        self.get_bounded(key, layout::MAX_SMALL_OBJECT).await
    }

    /// True when the object exists.
    pub(crate) async fn exists(&self, key: &Path) -> Result<bool, RemoteError> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
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

    /// Check the format marker; write it when the remote is new and
    /// `create` is set.
    pub(crate) async fn check_marker(&self, create: bool) -> Result<(), RemoteError> {
        let key = layout::marker_key();
        match self.get_small(&key).await? {
            Some(bytes) => {
                let m: Marker = layout::parse_marker(&bytes).map_err(|e| self.bad_object(&key, e))?;
                if m.format > REMOTE_FORMAT {
                    return Err(RemoteError::TooNew {
                        remote: self.name.clone(),
                        found: m.format,
                    });
                }
            }
            None if create => {
                let body = format!("{{\"format\": {REMOTE_FORMAT}}}").into_bytes();
                self.create_small(&key, body).await?;
            }
            None => {}
        }
        Ok(())
    }

    /// The version keys of a name with their numbers, in number order
    /// (one LIST; every key must parse).
    pub(crate) async fn version_keys(&self, name: &str) -> Result<Vec<(u32, Path)>, RemoteError> {
        let listed = self.list_all(&layout::versions_prefix(name)).await?;
        let mut keys = Vec::with_capacity(listed.len());
        for o in listed {
            let (n, number) = layout::parse_version_key(&o.location).map_err(|e| self.bad_object(&o.location, e))?;
            if n != name {
                return Err(self.bad_object(&o.location, format!("is listed under {name}")));
            }
            keys.push((number, o.location));
        }
        keys.sort_by_key(|(n, _)| *n);
        Ok(keys)
    }

    /// Version entries of a name, oldest first (empty when the name is
    /// unknown). Every key and entry must parse and agree.
    pub(crate) async fn versions_async(&self, name: &str) -> Result<Vec<VersionEntry>, RemoteError> {
        let keys = self.version_keys(name).await?;
        let mut out: Vec<VersionEntry> = futures::stream::iter(keys)
            .map(|(_, key)| async move {
                let Some(bytes) = self.get_small(&key).await? else {
                    return Ok(None); // removed since the listing
                };
                layout::parse_version_entry(&key, &bytes)
                    .map(Some)
                    .map_err(|e| self.bad_object(&key, e))
            })
            .buffer_unordered(self.tuning.concurrency.max(1) * 2)
            .try_filter_map(|e| async move { Ok(e) })
            .try_collect()
            .await?;
        out.sort_by_key(|e| e.number);
        Ok(out)
    }

    /// Tags of a name; every key and entry must parse and agree.
    pub(crate) async fn tags_async(&self, name: &str) -> Result<Vec<TagEntry>, RemoteError> {
        let listed = self.list_all(&layout::tags_prefix(name)).await?;
        let mut out: Vec<TagEntry> = futures::stream::iter(listed)
            .map(|o| async move {
                let Some(bytes) = self.get_small(&o.location).await? else {
                    return Ok(None);
                };
                let t = layout::parse_tag_entry(&o.location, &bytes).map_err(|e| self.bad_object(&o.location, e))?;
                if t.name != name {
                    return Err(self.bad_object(&o.location, format!("is listed under {name}")));
                }
                Ok(Some(t))
            })
            .buffer_unordered(self.tuning.concurrency.max(1) * 2)
            .try_filter_map(|e| async move { Ok(e) })
            .try_collect()
            .await?;
        out.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(out)
    }

    /// Check that every tag names a version there is, by number and id: a
    /// tag that points elsewhere is damage.
    pub(crate) fn check_tags(&self, versions: &[VersionEntry], tags: &[TagEntry]) -> Result<(), RemoteError> {
        for t in tags {
            match versions.iter().find(|v| v.number == t.number) {
                Some(v) if v.id == t.id => {}
                Some(v) => {
                    return Err(self.bad_object(
                        &layout::tag_key(&t.name, &t.tag),
                        format!(
                            "points at v{} as {}, which is {} there",
                            t.number,
                            t.id.short(),
                            v.id.short()
                        ),
                    ))
                }
                None => {
                    return Err(self.bad_object(
                        &layout::tag_key(&t.name, &t.tag),
                        format!("points at v{}, which the remote does not have", t.number),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Model names on the remote with their version counts and newest
    /// numbers (one LIST of `versions/`).
    pub fn list_names(&self) -> Result<Vec<NameEntry>, RemoteError> {
        self.block_on(async {
            self.check_marker(false).await?;
            let listed = self.list_all(&layout::versions_root()).await?;
            let mut names: BTreeMap<ModelName, (u32, u32)> = BTreeMap::new();
            for o in listed {
                let (name, n) = layout::parse_version_key(&o.location).map_err(|e| self.bad_object(&o.location, e))?;
                let e = names.entry(name).or_default();
                e.0 += 1;
                e.1 = e.1.max(n);
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
        // Only for the message: keys that do not parse are left out.
        let names = match self.list_all(&layout::versions_root()).await {
            Ok(listed) => {
                let mut n: Vec<String> = listed
                    .iter()
                    .filter_map(|o| layout::parse_version_key(&o.location).ok())
                    .map(|(name, _)| name.to_string())
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
        self.check_tags(&versions, &tags)?;
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
        Ok(self.resolve_among(r).await?.0)
    }

    /// The version a ref names, with every version of its name.
    pub(crate) async fn resolve_among(&self, r: &VersionRef) -> Result<(VersionEntry, Vec<VersionEntry>), RemoteError> {
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
            RefSpec::TagOrId(w) => {
                let tags = self.tags_async(&r.name).await?;
                self.check_tags(&versions, &tags)?;
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
            RefSpec::Best { metric, mode } => {
                self.best(&versions, metric.as_deref(), mode.map(ScoreMode::lower_is_better))
                    .await?
            }
        };
        match found {
            Some(v) => Ok((v, versions)),
            None => Err(not_found(format!("remote versions: {}", list(&versions)))),
        }
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
            .get_bounded(&layout::manifest_key(id), layout::MAX_MANIFEST)
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
