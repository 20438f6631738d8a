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

/// `--by METRIC --mode min|max`: choose the version with the best score.
#[derive(Debug, Args)]
pub struct BestFlags {
    /// Pick the version with the best score of this metric (as `@best:METRIC`).
    #[arg(long, value_name = "METRIC")]
    pub by: Option<String>,
    /// Whether lower (min) or higher (max) scores are better (default: the callback's mode).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
}

impl BestFlags {
    /// Apply to a parsed ref.
    pub fn apply(&self, r: reg_meta::VersionRef) -> reg_meta::VersionRef {
        r.with_best(self.by.as_deref(), self.mode.map(|m| m == Mode::Min))
    }
}

/// Score direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
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
        /// Checkpoint files (.ckpt, .pt, .pth, .bin, .safetensors), pushed in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
        /// Store changed float tensors as deltas against this version's
        /// (NAME@REF; a fine-tune against its base model).
        #[arg(long, value_name = "REF")]
        parent: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
        #[command(flatten)]
        remote: RemoteFlag,
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
        /// Write a new torch checkpoint with only what Lightning's
        /// save_weights_only keeps (loads with torch.load(weights_only=True)).
        #[arg(long, conflicts_with = "format")]
        weights_only: bool,
        /// Write the state dict in another format instead of the original bytes.
        #[arg(long, value_enum)]
        format: Option<OutFormat>,
        #[command(flatten)]
        best: BestFlags,
        #[command(flatten)]
        json: JsonFlag,
        #[command(flatten)]
        remote: RemoteFlag,
    },
    /// Describe one version: metadata, optimizer, tensors.
    Show {
        /// NAME[@REF].
        reference: String,
        #[command(flatten)]
        best: BestFlags,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List the versions of a model.
    Log {
        /// Model name.
        name: String,
        #[command(flatten)]
        json: JsonFlag,
        #[command(flatten)]
        remote: RemoteFlag,
    },
    /// List models.
    Ls {
        #[command(flatten)]
        json: JsonFlag,
        #[command(flatten)]
        remote: RemoteFlag,
    },
    /// Registry size and deduplication numbers.
    Stats {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show what changed between two versions (of one model or of two).
    Diff {
        /// NAME[@REF] of the older side.
        a: String,
        /// NAME[@REF] of the newer side.
        b: String,
        /// For changed tensors: max |diff|, relative L2 change, changed fraction.
        #[arg(long)]
        stats: bool,
        /// Only this section.
        #[arg(long, value_enum)]
        only: Option<Section>,
        /// List every tensor, not a summary of long lists.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Check versions against the blob store (exit 2 when damage is found).
    Verify {
        /// NAME[@REF] to check (default: every version).
        reference: Option<String>,
        /// Also re-hash every blob and re-assemble every version.
        #[arg(long)]
        full: bool,
        /// Rebuild a lost or corrupt index from the manifest blobs.
        #[arg(long)]
        rebuild_index: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove a version (its blobs are freed by `reg gc`).
    Rm {
        /// NAME@REF.
        reference: String,
    },
    /// Store older versions as deltas against the newer ones (push starts
    /// this in the background after each version it adds).
    Deltas {
        /// NAME (every version) or NAME@vN (from version N on).
        #[arg(required = true)]
        models: Vec<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete blobs no version needs.
    Gc {
        /// Only report what would be freed.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove old versions of a model, keeping the newest, best and tagged.
    Prune {
        /// Model name.
        name: String,
        /// Keep the newest N versions.
        #[arg(long, default_value_t = 0)]
        keep_last: usize,
        /// Keep the N versions with the best monitored score.
        #[arg(long, default_value_t = 0)]
        keep_best: usize,
        /// Keep tagged versions.
        #[arg(long)]
        keep_tagged: bool,
        /// Drop optimizer and scheduler state from all but the newest N
        /// versions (they keep their weights and pull as weights-only files).
        #[arg(long, value_name = "N")]
        keep_optimizer_last: Option<usize>,
        /// Only report.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Measure push, pull and diff against cp on a generated training run.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
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
    /// Manage remotes (S3-compatible object stores or shared directories).
    Remote {
        #[command(subcommand)]
        command: RemoteCommand,
    },
    /// Transfer versions between the registry and a remote.
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Serve a read-only web view of the registry: pages, JSON, downloads.
    Serve {
        /// Address to listen on; any but loopback lets everyone who can
        /// reach it read the registry.
        #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
        bind: std::net::IpAddr,
        /// Port; 0 takes a free one (the address is printed on stdout).
        #[arg(long, default_value_t = 8780)]
        port: u16,
    },
}

/// Sections of `reg diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// Hyperparameters.
    Hparams,
    /// Optimizer, scheduler and checkpoint-callback settings.
    Optimizer,
    /// Tensors.
    Tensors,
    /// Epoch, step, versions, size.
    Meta,
}

/// `--remote NAME`: act on a remote instead of (or after) the local registry.
#[derive(Debug, Args)]
pub struct RemoteFlag {
    /// A remote from registry.toml (`reg remote ls`), or an s3:// / file:// URL.
    #[arg(long, value_name = "REMOTE")]
    pub remote: Option<String>,
}

/// `reg remote ...`.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add a remote to registry.toml (credentials come from AWS_* environment variables).
    Add {
        /// Remote name.
        name: String,
        /// s3://BUCKET[/PREFIX] or file:///PATH.
        url: String,
        /// S3 endpoint of an S3-compatible server (MinIO, Garage, R2 ...).
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// S3 region.
        #[arg(long, value_name = "R")]
        region: Option<String>,
        /// Allow a plain-http endpoint.
        #[arg(long)]
        allow_http: bool,
    },
    /// List remotes.
    Ls {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove a remote from registry.toml (its data stays where it is).
    Rm {
        /// Remote name.
        name: String,
    },
}

/// `reg sync ...`.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Upload local versions the remote lacks (all, one model, or one version).
    Push {
        /// Remote name or URL.
        remote: String,
        /// MODEL (every version) or MODEL@REF (one version); default: everything.
        reference: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Download a remote version (REF as the remote numbers it) into the registry.
    Pull {
        /// Remote name or URL.
        remote: String,
        /// MODEL[@REF].
        reference: String,
        #[command(flatten)]
        best: BestFlags,
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// Output formats of `reg pull --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    /// The state dict as safetensors, with epoch, step and hparams in `__metadata__`.
    Safetensors,
}

/// `reg bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Generate a run and time cp, push, re-push, next-epoch push, pull and diff.
    Run {
        /// Size of each checkpoint (e.g. 2G, 512M).
        #[arg(long, default_value = "2G")]
        size: String,
        /// Number of epochs to generate (at least 2).
        #[arg(long, default_value_t = 3)]
        epochs: u32,
        /// Directory to work in (its disk is the one measured).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Keep the generated files and registry.
        #[arg(long)]
        keep: bool,
    },
    /// Write one epoch of a generated Lightning-style run to FILE.
    Generate {
        /// Output file.
        file: PathBuf,
        /// Approximate file size (e.g. 4.5G).
        #[arg(long, default_value = "64M")]
        size: String,
        /// Epoch number (frozen layers stay, the rest drift).
        #[arg(long, default_value_t = 0)]
        epoch: u32,
        /// Weight matrices (default 8); with --frozen equal to it the file
        /// is one storage per layer and no optimizer state.
        #[arg(long)]
        layers: Option<usize>,
        /// Frozen weight matrices (default 2).
        #[arg(long, requires = "layers")]
        frozen: Option<usize>,
    },
}
