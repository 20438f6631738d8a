//! Remote version numbers: which push gets which.
//!
//! A number is claimed by creating its version entry
//! (`versions/<name>/<number>`), and the version entry is the only object
//! that names a number. Two ways, chosen by what the store does:
//!
//! - **Exclusive creates** (`If-None-Match: *` honoured on S3; an
//!   exclusive create on `file://`): the create is the claim. A number
//!   someone else took fails the create and the next number is tried.
//! - **Creates that are not exclusive** (Garage 2.5 accepts the header
//!   and overwrites): claims of a name are serialised under a lease. A
//!   pusher writes its own lease object `leases/<name>/<ms>-<token>` (a
//!   key nobody else writes), then lists `leases/<name>/`: when no other
//!   live lease is there it holds the lease, otherwise it removes its own
//!   and tries again after a random pause. On a store whose PUT and LIST
//!   are strongly consistent (S3 since 2020, MinIO, Garage, Ceph) two
//!   pushers cannot both see only themselves: the later of the two PUTs
//!   completes before the later LIST starts, so that LIST sees the other
//!   lease. The holder lists the numbers, checks that the next one is free,
//!   writes the entry and removes its lease. A lease older than
//!   [`LEASE_TTL`] (a push killed while holding it) is ignored.
//!
//! Which way a store goes is found out once, by a probe
//! ([`Remote::probe`]: create a probe key twice, then remove it), and
//! recorded in the registry's own config. Either way the push reads its
//! entries back afterwards (push.rs `confirm_entries`).

use crate::config::Creates;
use crate::error::RemoteError;
use crate::layout::{self, VersionEntry};
use crate::push::Outgoing;
use crate::remote::Remote;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use reg_format::ids::VersionId;
use reg_registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a lease is honoured after it was taken.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(30);

/// How long a push waits for a lease before giving up.
const LEASE_PATIENCE: Duration = Duration::from_secs(300);

/// Attempts at finding a free version number before giving up.
const MAX_NUMBER_ATTEMPTS: u32 = 10_000;

/// A held lease: its key, removed when the claims are done.
struct Lease {
    key: Path,
}

/// A token no other pusher has: process, time and a counter, hashed.
pub(crate) fn token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{}-{nanos}-{}-{:?}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::thread::current().id()
    );
    let mut hex = blake3::hash(seed.as_bytes()).to_hex().to_string();
    hex.truncate(16);
    hex
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A pause of `around` milliseconds, more or less (a pseudo-random half
/// to whole of it, so rivals do not retry in step).
fn jitter(around: u64) -> Duration {
    let spread = u64::from_str_radix(&token()[..8], 16).unwrap_or(0) % (around / 2 + 1);
    Duration::from_millis(around / 2 + spread)
}

impl Remote {
    /// Find out whether the store's conditional creates are exclusive:
    /// create a probe key under the remote's prefix twice, then remove it.
    /// `reg remote add` calls this; a push calls it when nothing is
    /// recorded yet.
    pub fn probe(&self) -> Result<Creates, RemoteError> {
        self.block_on(self.probe_async())
    }

    pub(crate) async fn probe_async(&self) -> Result<Creates, RemoteError> {
        let key = Path::from(format!("reg-probe-{}", token()));
        let first = self.create_small(&key, b"reg probe 1".to_vec()).await?;
        if !first {
            return Err(self.bad_object(&key, "a fresh probe key exists already"));
        }
        let second = self.create_small(&key, b"reg probe 2".to_vec()).await;
        // Only the probe's own key is removed; failing to remove it leaves
        // a few bytes behind, nothing else.
        let _ = self.store.delete(&key).await;
        Ok(if second? {
            Creates::NotExclusive
        } else {
            Creates::Exclusive
        })
    }

    /// How creates behave on this store: recorded, or probed now (and
    /// recorded in `reg`'s own config). The note says so when they are not
    /// exclusive, once: the probe runs only when nothing is recorded.
    pub(crate) async fn creates_for(&self, reg: &Registry) -> Result<(Creates, Option<String>), RemoteError> {
        if let Some(c) = self.creates.get() {
            return Ok((*c, None));
        }
        let c = self.probe_async().await?;
        crate::config::record_creates(&reg.config().root, &self.spec, c)?;
        let _ = self.creates.set(c);
        Ok((c, (c == Creates::NotExclusive).then(|| not_exclusive_note(&self.name))))
    }

    /// Claim numbers for `versions` (all of one name), in order, from
    /// `start` on; returns each entry with its size in bytes.
    pub(crate) async fn claim(
        &self,
        creates: Creates,
        versions: &[&Outgoing],
        start: u32,
    ) -> Result<Vec<(VersionEntry, u64)>, RemoteError> {
        let mut out = Vec::with_capacity(versions.len());
        match creates {
            Creates::Exclusive => {
                let mut next = start;
                for o in versions {
                    let (entry, len) = self.create_entry(o, next).await?;
                    next = entry.number.saturating_add(1);
                    out.push((entry, len));
                }
            }
            Creates::NotExclusive => {
                let Some(first) = versions.first() else {
                    return Ok(out);
                };
                let lease = self.take_lease(&first.name).await?;
                let claimed = self.claim_leased(versions, start).await;
                // Only this push's own lease is removed.
                let _ = self.store.delete(&lease.key).await;
                out = claimed?;
            }
        }
        Ok(out)
    }

    /// Create the version entry of `o` at the first free number from
    /// `start` (conditional create: a number someone else took is skipped).
    pub(crate) async fn create_entry(&self, o: &Outgoing, start: u32) -> Result<(VersionEntry, u64), RemoteError> {
        let mut number = start.max(1);
        for _ in 0..MAX_NUMBER_ATTEMPTS {
            let (entry, body) = entry_of(o, number);
            let len = body.len() as u64;
            if self.create_small(&layout::version_key(&o.name, number), body).await? {
                return Ok((entry, len));
            }
            number = number.saturating_add(1);
        }
        Err(self.numbering_failed(o))
    }

    /// Under the lease: the next number after every listed one, checked
    /// free, written with a plain put.
    async fn claim_leased(&self, versions: &[&Outgoing], start: u32) -> Result<Vec<(VersionEntry, u64)>, RemoteError> {
        let mut out = Vec::with_capacity(versions.len());
        for o in versions {
            let listed = self.version_keys(&o.name).await?;
            let mut number = listed.last().map(|(n, _)| n.saturating_add(1)).unwrap_or(1).max(start);
            let mut attempts = 0;
            loop {
                let key = layout::version_key(&o.name, number);
                if !self.exists(&key).await? {
                    let (entry, body) = entry_of(o, number);
                    let len = body.len() as u64;
                    self.put_small(&key, body).await?;
                    out.push((entry, len));
                    break;
                }
                attempts += 1;
                if attempts >= MAX_NUMBER_ATTEMPTS {
                    return Err(self.numbering_failed(o));
                }
                number = number.saturating_add(1);
            }
        }
        Ok(out)
    }

    /// Take the number-claim lease of a name (see the module docs).
    async fn take_lease(&self, name: &str) -> Result<Lease, RemoteError> {
        let deadline = Instant::now() + LEASE_PATIENCE;
        let mut pause = 40u64;
        loop {
            let taken = now_millis();
            let key = layout::lease_key(name, taken, &token());
            self.put_small(&key, format!("{{\"taken\": {taken}}}").into_bytes())
                .await?;
            let mut rival = false;
            for o in self.list_all(&layout::leases_prefix(name)).await? {
                if o.location == key {
                    continue;
                }
                let (ms, _) = layout::parse_lease_key(&o.location).map_err(|e| self.bad_object(&o.location, e))?;
                // Live by either clock: the taker's (in the key) or the
                // server's (last modified).
                let stamp = ms.max(o.last_modified.timestamp_millis().max(0) as u64);
                if stamp.saturating_add(LEASE_TTL.as_millis() as u64) > now_millis() {
                    rival = true;
                }
            }
            if !rival {
                return Ok(Lease { key });
            }
            self.store.delete(&key).await.map_err(self.err())?;
            if Instant::now() >= deadline {
                return Err(RemoteError::LeaseBusy {
                    remote: self.name.clone(),
                    name: name.to_string(),
                    waited_secs: LEASE_PATIENCE.as_secs(),
                });
            }
            tokio::time::sleep(jitter(pause)).await;
            pause = (pause * 2).min(1000);
        }
    }

    fn numbering_failed(&self, o: &Outgoing) -> RemoteError {
        RemoteError::Numbering {
            remote: self.name.clone(),
            name: o.name.to_string(),
            attempts: MAX_NUMBER_ATTEMPTS,
        }
    }
}

/// What `reg` says once about a store whose creates are not exclusive.
pub fn not_exclusive_note(remote: &str) -> String {
    format!(
        "remote {remote}: the server does not make conditional creates exclusive (If-None-Match is ignored); \
         version numbers are claimed under a lease there (docs/remote.md)"
    )
}

/// The entry of `o` at `number`, and its JSON.
fn entry_of(o: &Outgoing, number: u32) -> (VersionEntry, Vec<u8>) {
    let entry = VersionEntry {
        name: o.name.clone(),
        number,
        id: VersionId(o.id.0),
        blake3: o.record.blake3,
        size: o.record.size,
        created: o.record.created,
        epoch: o.record.epoch,
        step: o.record.global_step,
        source: o.record.source.clone(),
        message: o.record.message.clone(),
        tensors: o.record.tensor_count,
    };
    // ok: a struct of strings and numbers always encodes.
    let body = serde_json::to_vec(&entry).unwrap_or_default();
    (entry, body)
}
