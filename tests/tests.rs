//! End-to-end tests of the `reg` binary on real checkpoints (tests/fixtures,
//! made by real torch and Lightning; see tests/fixtures/README.md).
//! Each module tests one promise:

/// Broken and hostile files are refused and change nothing (issue 2, point 4).
mod bad_input;
/// `reg bench compress`: stored bytes by role against the entropy bound (issue 28).
mod bench_compress;
/// The man pages and completions the wheel ships match the CLI (issue 25).
mod cli_docs;
/// Running `reg` in a scratch registry, reading fixtures and expectations.
mod common;
/// Many processes at once: readers during pushes, re-encodings and gc, kills, 8 writers (issue 14).
mod concurrency;
/// A damaged blob fails the pull, names the version, writes nothing (issue 2, point 5).
mod damage;
/// Storages are stored once across a run and a fine-tune (issue 2, point 3).
mod dedupe;
/// Delta chains: older versions against newer, --parent, bounds, gc, damage, format 1 (issue 5).
mod deltas;
/// `reg diff`: hyperparameters, optimizer, tensors and --stats (issue 3).
mod diff;
/// Directory versions: round trip, show vs torch, dedupe across shardings, diff by name, --files, tar, hostile dirs (issue 13).
mod dirs;
/// A diverged run: NaN scores and non-finite hparams stay readable and exact, NaN is never best; an old registry with one reads (issue 24).
mod diverged;
/// Best-score refs, cross-format dedupe, unknown formats, pickled objects (issues 3, 4, 6).
mod formats;
/// Every --json output is what the goldens say (issue 18, point 1).
mod json_golden;
/// Checkpoints over 4 GiB (ignored by default: `cargo test --release --test tests large -- --ignored`).
mod large;
/// A missing, empty or older index is damage: exit 2 everywhere, gc deletes nothing, rebuilds name what they cannot read (issue 29).
mod lost_index;
/// verify, rebuild-index, rm, gc, prune, concurrency, kills (issue 6).
mod maintenance;
/// `reg pull --tensors GLOB --format safetensors` and `--header-only`: only the chosen blobs are read (issue 27).
mod partial;
/// `reg push -`: pipes byte-identical, bad streams refused, bounded memory (issue 27).
mod push_stream;
/// Registry location, names, tags, log/ls/stats output.
mod registry;
/// Remotes: S3 (s3s-fs on loopback) and file:// push, pull, resume, races, damage (issue 8).
mod remote;
/// Remotes belong to their registry: config, probes, servers whose creates are not exclusive (issue 17).
mod remote_config;
/// Hostile remotes, over file:// and S3: damage is one line and exit 2, nothing changes (issue 19).
mod remote_hostile;
/// Training-aware retention: --keep-optimizer-last (issue 5).
mod retention;
/// Every fixture pushes and pulls back byte-identical (issue 2, point 1).
mod round_trip;
/// The S3 server the remote tests run in-process (s3s-fs on a loopback port).
mod s3_server;
/// `reg serve`: every route, JSON twins, downloads and ranges, hostile URLs, pushes while serving (issue 15).
mod serve;
/// `reg show --json` agrees with what torch reports (issue 2, point 2).
mod show_json;
/// `reg stage` and `push --staged`: DCP data files streamed into a staging session make the version a folder push makes (issue 27).
mod stage;
/// Trust boundaries: remote input, read errors in gc, index damage, file modes (issue 19).
mod trust;
