//! The on-disk format of a `reg` registry, as types: what docs/format.md
//! describes, and nothing else.
//!
//! - [`ids`]: the names of things (model names, version numbers and
//!   labels, file hashes, tree paths), each a newtype that checks itself;
//! - [`refs`]: `NAME@REF` as users write it (`mymodel@epoch=3`, `@best`);
//! - [`manifest`]: everything about one version ([`Manifest`]): its pieces,
//!   tensors, training metadata and the globals its pickles name;
//! - [`index`]: the sled index (versions, names, tags, blob references,
//!   the queues), read and written in transactions ([`index::Index`]);
//! - [`layout`]: where every file of a registry lies, each name spelled
//!   once ([`RegistryLayout`]);
//! - [`logical`]: a directory version's tensors assembled from their chunks.
//!
//! It owns the encoding of these (bincode and JSON) and the index's
//! transactions. It never opens a registry, takes a lock, reads a blob's
//! bytes or runs an operation: `reg-registry` does all that on top of it.
//!
//! ```
//! use reg_format::{ModelName, RefSpec, VersionRef};
//! let r = VersionRef::parse("mymodel@epoch=3").expect("a valid ref");
//! assert_eq!(r.name, ModelName::new("mymodel").expect("a valid name"));
//! assert_eq!(r.spec, RefSpec::Epoch(3));
//! ```
#![deny(missing_docs)]

pub mod ids;
pub mod index;
pub mod layout;
pub mod logical;
pub mod manifest;
pub mod refs;

pub use ids::{FileHash, ModelName, SourceName, VersionId, VersionLabel, VersionNumber};
pub use layout::RegistryLayout;
pub use manifest::{Manifest, Piece, TensorEntry};
pub use refs::{RefSpec, TagName, VersionRef};
