//! Versions, refs, manifests and the registry for `reg`.
//!
//! This crate ties the blob store (`reg-store`) and the checkpoint reader
//! (`reg-ckpt`) into a registry: named models with numbered versions, each
//! version a [`Manifest`] that lists the pieces of the original file and what
//! the checkpoint contains. It owns the sled index, the registry lock,
//! `registry.toml`, refs (`name@epoch=3`) and the JSON views the CLI prints.
//! Locking lives in [`lock`] (one page: who takes what, for how long);
//! the registry's file names in [`layout`].
//! It never prints and never exits: the binary does.
//!
//! It also decides which blobs are stored as deltas against which
//! ([`deltas`]: older versions against newer ones, bounded chains) and
//! keeps gc from ever breaking a chain ([`gc`]).
//!
//! Main types:
//! - [`Config`]: where the registry is and its settings.
//! - [`Registry`]: an open registry (`push`, `resolve`, `pull`, views).
//! - [`VersionRef`]: a parsed `NAME@REF`.
//! - [`Manifest`]: everything about one version.
//!
//! ```no_run
//! use reg_meta::{Config, PushOptions, Registry, VersionRef};
//! # fn main() -> Result<(), reg_meta::RegistryError> {
//! let reg = Registry::open(Config::at("/tmp/reg-example"))?;
//! let report = reg.push("epoch=3.ckpt".as_ref(), &PushOptions::default())?;
//! let version = reg.resolve(&VersionRef::parse(&format!("{}@v{}", report.name, report.number))?)?;
//! reg.pull(&version, "copy.ckpt".as_ref(), false)?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod background;
pub mod config;
mod deferred;
pub mod deltas;
pub mod diff;
mod error;
mod export;
mod export_tree;
pub mod gc;
pub mod ids;
pub mod import;
pub mod index;
pub mod layout;
pub mod locate;
pub mod lock;
pub mod logical;
pub mod maintenance;
pub mod manifest;
mod manifest_blobs;
mod output;
pub mod progress;
mod pull;
mod pull_tree;
mod push;
pub mod ranges;
pub mod ranking;
pub mod refs;
mod registry;
pub mod remote_spec;
pub mod remotes;
pub mod report;
mod resolve;
mod retention_tree;
mod runner;
pub mod select;
mod skeleton_cache;
pub mod stream;
mod tags;
pub mod tensor_stats;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
mod toml_text;
pub mod units;

pub use background::lower_worker_priority;
pub use config::{Config, DeltaTiming};
pub use diff::{Diff, DiffOptions, Only};
pub use error::RegistryError;
pub use export::{default_name as export_file_name, ExportFormat, ExportReport};
pub use ids::{FileHash, ModelName, SourceName, VersionId, VersionLabel};
pub use layout::RegistryLayout;
pub use lock::{ReadGuard, WaitNotice, WaitPolicy, WriteGuard};
pub use manifest::{Manifest, Piece, TensorEntry};
pub use progress::{Progress, Silent};
pub use pull::PullReport;
pub use push::{PushOptions, PushReport, PushedFile, StageReport};
pub use refs::{RefSpec, VersionRef};
pub use registry::Registry;
pub use resolve::Resolved;
pub use runner::BackgroundRunner;
