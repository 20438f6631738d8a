//! The `reg` binary: parse arguments, call the libraries, print.
//!
//! All logic lives in the libraries: `reg-registry` (the registry and its
//! operations), `reg-format` (names, refs, manifests, the index),
//! `reg-ckpt` / `reg-tree` / `reg-write` (checkpoint files, directories,
//! new files), `reg-store` (blobs), `reg-remote` and `reg-serve`. This
//! binary parses, calls, prints, and adds the CLI's hints (the flags to
//! pass) to library errors. Errors print once, on one line, to stderr.
//! Exit codes: 0 ok, 1 bad request or input, 2 registry damage found,
//! 3 reg itself failed (an internal error).

mod bar;
mod bench;
mod cli;
mod commands;
mod diff_view;
mod human;
mod serve_cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // clap exits with 2 on bad arguments; reg keeps 2 for registry damage.
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let registry_error = err.downcast_ref::<reg_registry::RegistryError>();
            let remote_error = err.downcast_ref::<reg_remote::RemoteError>();
            let damage = registry_error.is_some_and(reg_registry::RegistryError::is_damage)
                || remote_error.is_some_and(reg_remote::RemoteError::is_damage);
            let internal = registry_error.is_some_and(reg_registry::RegistryError::is_internal)
                || remote_error.is_some_and(reg_remote::RemoteError::is_internal);
            let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
            let mut line = chain.first().cloned().unwrap_or_default();
            for cause in chain.iter().skip(1) {
                if !line.contains(cause.as_str()) {
                    line.push_str(": ");
                    line.push_str(cause);
                }
            }
            let config_error = err
                .downcast_ref::<reg_registry::config::ConfigError>()
                .or(match registry_error {
                    Some(reg_registry::RegistryError::Config(c)) => Some(c),
                    _ => None,
                });
            if let Some(hint) = registry_error.and_then(hint_for).or(config_error.and_then(config_hint)) {
                line.push_str("; ");
                line.push_str(hint);
            }
            eprintln!("reg: error: {}", human::printable(&line.replace('\n', " ")));
            ExitCode::from(match (damage, internal) {
                (true, _) => 2,
                (_, true) => 3,
                _ => 1,
            })
        }
    }
}

/// What to run or pass about an error, where the library's message (which
/// names no CLI command or flag) leaves it to the user to know.
fn hint_for(e: &reg_registry::RegistryError) -> Option<&'static str> {
    use reg_registry::RegistryError as E;
    match e {
        E::Unsafe { .. } => Some("pass --allow-unsafe to store it anyway"),
        E::Exists(_) => Some("pass --force to overwrite it"),
        E::Locked { .. } => Some("raise --wait-timeout to wait longer"),
        E::Tag(reg_registry::TagError::Exists { .. }) => Some("pass --force to move it"),
        E::Read(reg_registry::ReadError::DirectoryVersion { .. }) => Some("pass -o DIR"),
        E::Read(reg_registry::ReadError::PickFromSingleFile { .. }) => {
            Some("--files picks files of a directory version")
        }
        E::Push(reg_registry::PushError::ParentOfStream { .. } | reg_registry::PushError::ParentOfDirectory { .. }) => {
            Some("drop --parent")
        }
        E::IndexLost { .. } | E::IndexIncomplete { .. } => {
            Some("run `reg verify --rebuild-index` to rebuild the index from the blobs")
        }
        E::Index(reg_format::index::IndexError::Damaged { .. }) => {
            Some("run `reg verify --rebuild-index` to rebuild the index from the blobs")
        }
        _ => None,
    }
}

/// [`hint_for`] of a configuration error.
fn config_hint(e: &reg_registry::config::ConfigError) -> Option<&'static str> {
    match e {
        reg_registry::config::ConfigError::NoLocation => Some("pass --registry DIR or set REG_HOME"),
        _ => None,
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
