//! Remotes for `reg`: share a registry through S3-compatible object
//! storage (AWS S3, MinIO, Garage, Ceph, R2 ...) or a shared directory
//! (`file://`), the way git shares a repository with a remote.
//!
//! Built on `object_store`; the rest of reg is synchronous, so a
//! [`Remote`] owns a small tokio runtime and every public method blocks.
//! The remote layout (docs/remote.md) is content-addressed like the local
//! store: `blobs/<id>` hold blob files exactly as stored locally,
//! `manifests/<id>` hold manifest JSON (immutable, keyed by their blake3),
//! `versions/<name>/<number>` map remote version numbers to manifests and
//! `tags/<name>/<tag>` name versions.
//!
//! It owns remote configuration too ([`config`]): how a remote is declared
//! (`[remotes.NAME]` in the registry's own `config.toml` or a
//! `registry.toml`), the checks a declaration passes, `reg remote add` /
//! `rm`, and what probes recorded about a store. It never changes a local
//! version or blob except through the registry's own operations (a pull
//! imports through `reg-registry`), and never sends credentials anywhere
//! but to the store (they come from the environment).
//!
//! Main types:
//! - [`Remote`]: an open remote (`push`, `pull`, `list_names`, `log`, `resolve`).
//! - [`Selection`]: which local versions a push sends.
//! - [`SyncReport`]: objects and bytes transferred or skipped.
//!
//! ```no_run
//! use reg_registry::{Config, Registry, Silent, VersionRef};
//! use reg_remote::config::RemoteSpec;
//! use reg_remote::{Remote, Selection};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let reg = Registry::open(Config::at("/tmp/reg-example"))?;
//! let spec = RemoteSpec { name: "shared".into(), url: "file:///mnt/shared/reg".into(), ..RemoteSpec::default() };
//! let remote = Remote::open(&spec)?;
//! let sent = remote.push(&reg, &Selection::Name("mlp".into()), &Silent)?;
//! println!("{} blobs sent, {} already there", sent.blobs_transferred, sent.blobs_skipped);
//! remote.pull(&reg, &VersionRef::parse("mlp@epoch=2")?, &Silent)?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod config;
mod declarations;
mod error;
pub mod layout;
mod numbering;
mod pull;
mod push;
mod read_through;
mod remote;
mod report;

pub use error::RemoteError;
pub use numbering::not_exclusive_note;
pub use push::Selection;
pub use read_through::ReadThrough;
pub use remote::{Remote, Tuning};
pub use report::{PushedAndSynced, SyncReport, SyncedVersion};

#[cfg(test)]
mod tests;
