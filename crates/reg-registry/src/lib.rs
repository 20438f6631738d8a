//! The registry of `reg`: opening one, and every operation on it.
//!
//! This crate ties the blob store (`reg-store`), the on-disk format
//! (`reg-format`: names, refs, manifests, the index, the layout) and the
//! checkpoint readers and writers (`reg-ckpt`, `reg-tree`, `reg-write`)
//! into named models with numbered versions. It owns:
//! - finding the registry and its settings ([`Config`], `registry.toml`);
//! - the locks ([`lock`]: one page on who takes what, for how long);
//! - the operations: push (files, directories, streams, staged DCP saves),
//!   pull and export, resolve (`NAME@epoch=3`, `@best` by [`ranking`]),
//!   tags, diff, import/export archives, retention and prune
//!   ([`maintenance`]), gc ([`gc`], which never breaks a delta chain), and
//!   the deltas and their queue ([`deltas`]: older versions against newer
//!   ones, bounded chains), which a push starts itself in the background
//!   ([`BackgroundRunner`]) or runs inline;
//! - the JSON views the CLI prints ([`report`]).
//!
//! It never prints, exits or names a CLI flag in an error (the binary
//! does, and adds the hint), never talks to a remote (`reg-remote` does,
//! and owns remote declarations), never serves HTTP (`reg-serve`), and
//! never runs or imports anything a pickle names.
//!
//! Main types:
//! - [`Config`]: where the registry is and its settings.
//! - [`Registry`]: an open registry (`push`, `resolve`, `pull`, views).
//! - [`VersionRef`]: a parsed `NAME@REF`.
//! - [`Manifest`]: everything about one version.
//!
//! ```no_run
//! use reg_registry::{Config, PushOptions, Registry, VersionRef};
//! # fn main() -> Result<(), reg_registry::RegistryError> {
//! let reg = Registry::open(Config::at("/tmp/reg-example"))?;
//! let report = reg.push("epoch=3.ckpt".as_ref(), &PushOptions::default())?;
//! let version = reg.resolve(&VersionRef::parse(&format!("{}@v{}", report.name, report.number))?)?;
//! reg.pull(&version, "copy.ckpt".as_ref(), false)?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod background;
pub mod compression_report;
pub mod config;
mod deferred;
pub mod deltas;
pub mod diff;
mod error;
mod export;
mod export_tree;
pub mod gc;
pub mod import;
pub mod locate;
pub mod lock;
pub mod maintenance;
mod manifest_blobs;
mod output;
pub mod progress;
mod pull;
mod pull_tree;
mod push;
pub mod ranges;
pub mod ranking;
mod registry;
pub mod report;
mod resolve;
mod retention;
mod runner;
pub mod select;
mod skeleton_cache;
pub mod stream;
mod tags;
pub mod tensor_stats;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
pub mod toml_text;
pub mod units;

pub use background::lower_worker_priority;
pub use config::{Config, DeltaTiming};
pub use diff::{Diff, DiffOptions, Only};
pub use error::{ImportError, OpenError, PushError, ReadError, RegistryError, TagError};
pub use export::{default_name as export_file_name, ExportFormat, ExportReport};
pub use lock::{ReadGuard, WaitNotice, WaitPolicy, WriteGuard};
pub use progress::{Progress, Silent};
pub use pull::PullReport;
pub use push::{PushOptions, PushReport, PushedFile, StageReport};
pub use reg_format::ids::{FileHash, ModelName, SourceName, VersionId, VersionLabel};
pub use reg_format::layout::RegistryLayout;
pub use reg_format::manifest::{Manifest, Piece, TensorEntry};
pub use reg_format::refs::{RefSpec, VersionRef};
pub use registry::Registry;
pub use resolve::Resolved;
pub use runner::BackgroundRunner;
