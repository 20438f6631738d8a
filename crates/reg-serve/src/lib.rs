//! `reg serve`: a read-only web view of a registry.
//!
//! This crate owns the HTTP side of reg: HTML pages (models, versions,
//! diffs, with plots drawn as inline SVG on the server), JSON twins of the
//! CLI's `--json` output, and downloads (byte-exact files with `Range`
//! support, and exports). It never changes the registry and never prints
//! anything but one line per failure to stderr; what the registry holds
//! and how it is read is `reg-registry`'s.
//!
//! How it is built (docs/serve.md has more):
//! - [`Server::bind`] binds a `std` listener (so the caller can print the
//!   address, port 0 included); [`Server::run`] starts a tokio runtime and
//!   serves HTTP/1.1 with hyper, routing with axum. Connections are
//!   bounded (when full, the one that has waited longest for its request
//!   headers is closed), slow headers time out, handlers time out.
//! - A server on loopback answers only requests addressed to loopback
//!   names (and those given as [`AllowedHost`]): the rule against DNS
//!   rebinding is in [`host`]. Every response carries security headers
//!   (`nosniff`, a Content-Security-Policy, no framing, no referrer).
//! - Every registry read goes through one function,
//!   [`access::RegistryAccess::read`], which runs on tokio's blocking pool
//!   and opens the registry for that request only, so the server never
//!   holds the registry lock between requests and pushes run beside it.
//! - Pages are `maud` templates: every interpolated value is escaped by
//!   the template macro, so escaping cannot be forgotten.
//!
//! ```no_run
//! use reg_serve::{ServeOptions, Server};
//! # fn main() -> Result<(), reg_serve::ServeError> {
//! let config = reg_registry::Config::at("/tmp/reg-example");
//! let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
//! let server = Server::bind(loopback, config, ServeOptions::default())?;
//! println!("http://{}/", server.local_addr());
//! server.run()?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod access;
mod api;
mod app;
mod assets;
mod download;
mod failure;
pub mod host;
mod pages;
mod range;
mod server;
mod state;
mod svg;
mod units;
mod urls;

pub use host::{AllowedHost, BadHost};
pub use server::{ServeError, ServeOptions, Server};
