//! The command line, as clap types. Parsing only: no I/O here.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// A registry for PyTorch and Lightning checkpoints: deduplicated,
/// verified, byte-exact.
#[derive(Debug, Parser)]
#[command(name = "reg", version, about, long_about = None)]
pub struct Cli {
    /// Registry directory (overrides REG_HOME and registry.toml).
    #[arg(long, global = true, value_name = "DIR")]
    pub registry: Option<PathBuf>,
    /// Print only errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--json` flag shared by data commands.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a registry (optional: every command creates one on first use).
    Init {
        /// Directory for the registry (default: the located registry).
        dir: Option<PathBuf>,
    },
    /// Store a checkpoint file as a new version.
    Push {
        /// The checkpoint (.ckpt, .pt, .pth, .bin, .safetensors).
        file: PathBuf,
        /// Model name (default: registry.toml default_name, else the file stem).
        #[arg(long, short)]
        name: Option<String>,
        /// Tag the new version.
        #[arg(long, short)]
        tag: Option<String>,
        /// A message to keep with the version.
        #[arg(long = "message", short = 'm')]
        message: Option<String>,
        /// Store files whose pickle would run dangerous code when loaded.
        #[arg(long)]
        allow_unsafe: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Write a version back to a file, byte for byte.
    Pull {
        /// NAME[@REF] (REF: vN, latest, epoch=N, step=N, best, a tag, an id prefix).
        reference: String,
        /// Output path (default: the original file name in the working directory).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Overwrite an existing output file.
        #[arg(long, short)]
        force: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Describe one version: metadata, optimizer, tensors.
    Show {
        /// NAME[@REF].
        reference: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List the versions of a model.
    Log {
        /// Model name.
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List models.
    Ls {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Registry size and deduplication numbers.
    Stats {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Tag a version, or delete a tag with -d NAME@TAG.
    Tag {
        /// NAME[@REF] to tag (or NAME@TAG with -d).
        reference: String,
        /// The tag name.
        tag: Option<String>,
        /// Move the tag if it exists.
        #[arg(long, short)]
        force: bool,
        /// Delete the tag NAME@TAG.
        #[arg(long, short)]
        delete: bool,
    },
}
