//! Content-addressed blob storage for `reg`.
//!
//! This crate owns bytes and nothing else: it knows nothing of checkpoints,
//! versions or names. A blob is identified by the blake3 hash of its raw
//! (uncompressed) bytes, a [`BlobId`]; it is stored once, compressed with the
//! [`Codec`] that pays for it, written atomically (temp file, fsync, rename)
//! and hash-checked on every read.
//!
//! A blob may be stored as a delta: frames XORed with a parent blob named
//! in its header. Reading decodes through the chain of parents
//! ([`ChainReader`]); the store never makes a chain that loops, and leaves
//! how long chains grow and which blob is whose parent to its caller.
//!
//! Two words are used one way throughout: a blob's *raw* bytes are its
//! decoded bytes, the ones its id hashes ([`RawSource`], `raw_len`); its
//! *stored* form is its blob file, header and encoded body as they are on
//! disk (`read_stored`, `put_stored`, [`StoredWriter`], `stored_len`).
//!
//! The store holds the policy (codecs, which writes are fsynced when) and
//! does all its I/O through a [`Backend`], a small trait keyed by blob id
//! (open, length, temp file, install, remove, sync, list): [`LocalDisk`]
//! is a directory on the local disk, where the on-disk layout is spelled;
//! the `crash-sim` feature adds `backend::CrashDisk`, an in-memory disk
//! that loses what was not synced when a crash test tells it to.
//!
//! Main types:
//! - [`BlobId`]: the 32-byte blake3 id, shown as 64 hex digits.
//! - [`BlobStore`]: the blobs of one registry (`put`, `read`, `copy_to`,
//!   `contains`, `remove`, `sync`; deltas: `put_delta`,
//!   `encode_as_delta`, `make_self_contained`, `chain`).
//! - [`Backend`]: where blob files live ([`LocalDisk`], or any other
//!   implementation given to [`BlobStore::with_backend`]), with the
//!   [`BlobFile`] readers and [`TempFile`] writers it hands out.
//! - [`PendingBlob`]: a blob encoded into a temp file, committed under its
//!   id once the caller has checked what it read.
//! - [`BlobSource`]: a stored blob's raw bytes as a [`RawSource`], to
//!   re-encode it or encode another blob against it.
//! - [`StoredWriter`]: a blob file received in stored form (from a
//!   remote), stored only once it decodes to its id.
//! - [`Codec`]: how a blob's bytes are encoded on disk; [`codecs`] holds
//!   the byte-plane, Huffman and XOR transforms themselves.
//!
//! ```no_run
//! use reg_store::{BlobId, BlobStore};
//! # fn main() -> Result<(), reg_store::StoreError> {
//! let store = BlobStore::open("/tmp/reg-example/blobs", 3)?;
//! let bytes = b"tensor bytes";
//! let id = BlobId::of(bytes);
//! store.put(id, bytes)?;
//! store.sync()?; // make the new blobs durable before naming them anywhere
//! assert_eq!(store.read(id)?, bytes);
//!
//! // The same store over a backend chosen by the caller (a wrapper, a
//! // test disk): here the local disk again, opened by hand.
//! use reg_store::{Backend, LocalDisk};
//! use std::sync::Arc;
//! let disk: Arc<dyn Backend> = Arc::new(LocalDisk::open("/tmp/reg-example/blobs")?);
//! let same = BlobStore::with_backend(disk, 3);
//! assert_eq!(same.read(id)?, bytes);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod backend;
mod blob_file;
mod chain;
mod codec;
pub mod codecs;
mod deferred;
mod delta;
mod error;
mod frames;
mod id;
mod pending;
mod reader;
mod source;
mod store;
mod stored;

pub use backend::{Backend, BlobFile, LocalDisk, TempFile};
pub use chain::{ChainReader, MAX_CHAIN};
pub use codec::Codec;
pub use error::StoreError;
pub use id::{BlobId, ParseIdError};
pub use pending::PendingBlob;
pub use reader::BlobReader;
pub use source::{BlobSource, FileRange, ParentCheck, RangeReader, RawSource};
pub use store::{BlobInfo, BlobStore, CodecPolicy, Durability, PutOutcome};
pub use stored::StoredWriter;
