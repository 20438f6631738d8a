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
    /// Give up waiting for another reg process after SECS seconds
    /// (default: wait; waiting is said once on stderr).
    #[arg(long, global = true, value_name = "SECS")]
    pub wait_timeout: Option<f64>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `reg completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `reg manpage`.
#[derive(Debug, Args)]
pub struct ManpageArgs {
    /// Write `reg.1` and `reg-COMMAND.1` for every command into DIR
    /// instead of printing `reg.1`.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
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
    pub fn apply(&self, r: reg_registry::VersionRef) -> reg_registry::VersionRef {
        let mode = self.mode.map(|m| match m {
            Mode::Min => reg_format::refs::ScoreMode::Min,
            Mode::Max => reg_format::refs::ScoreMode::Max,
        });
        r.with_best(self.by.as_deref(), mode)
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
    Init(InitArgs),
    /// Store a checkpoint file as a new version.
    Push(PushArgs),
    /// Write a version back to a file, byte for byte.
    Pull(PullArgs),
    /// Stream one file of a staging session from stdin, its tensor chunks
    /// straight into blobs (the DCP writer's ranks; `reg push --staged`
    /// makes the version).
    Stage(StageArgs),
    /// Describe one version: metadata, optimizer, tensors.
    Show(ShowArgs),
    /// Write byte ranges of one file of a version to stdout, reading only the blobs they overlap.
    Cat(CatArgs),
    /// Where a version's tensors lie on disk as they are, for a loader that maps them.
    Locate(LocateArgs),
    /// List the versions of a model.
    Log(LogArgs),
    /// List models.
    Ls(LsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// bash: `reg completions bash > ~/.local/share/bash-completion/completions/reg`;
    /// zsh: into a directory of `$fpath` as `_reg`; fish:
    /// `~/.config/fish/completions/reg.fish`. The pip wheel installs them.
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command into DIR.
    Manpage(ManpageArgs),
    /// Registry size and deduplication numbers.
    ///
    /// logical: the bytes of every version as files (what pulling them all
    /// writes). unique: their distinct content after dedupe, before
    /// compression (each tensor storage and skeleton once; never more than
    /// logical). stored: the blob files on disk (that content compressed,
    /// plus manifests and tree listings, plus blobs no version needs until
    /// `reg gc` frees them). dedupe = logical / unique; compression =
    /// unique / the stored bytes of that content; overall = logical /
    /// stored. `--json` has each number (docs/cli.md).
    Stats(StatsArgs),
    /// Show what changed between two versions (of one model or of two).
    Diff(DiffArgs),
    /// Check versions against the blob store (exit 2 when damage is found).
    Verify(VerifyArgs),
    /// Remove a version (its blobs are freed by `reg gc`).
    Rm(RmArgs),
    /// Store older versions as deltas against the newer ones (push starts
    /// this in the background after each version it adds).
    Deltas(DeltasArgs),
    /// Delete blobs no version needs.
    Gc(GcArgs),
    /// Remove old versions of a model, keeping the newest, best and tagged.
    Prune(PruneArgs),
    /// Measure push, pull and diff against cp on a generated training run.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Tag a version, or delete a tag with -d NAME@TAG.
    Tag(TagArgs),
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
    Serve(ServeArgs),
}

/// `reg serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; any but loopback lets everyone who can
    /// reach it read the registry.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub bind: std::net::IpAddr,
    /// Port; 0 takes a free one (the address is printed on stdout).
    #[arg(long, default_value_t = 8780)]
    pub port: u16,
    /// Also answer requests addressed to NAME (or NAME:PORT), e.g. the
    /// name of a proxy in front; repeatable. On loopback only localhost,
    /// 127.0.0.1 and [::1] are answered otherwise (against DNS rebinding);
    /// on another address, naming any limits it to those names.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<reg_serve::AllowedHost>,
}

/// `reg init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory for the registry (default: the located registry).
    pub dir: Option<PathBuf>,
    /// Print `{"path": DIR, "staging": DIR}`: the registry's directory and
    /// the private folder under it where writers that cannot stream (the
    /// Python package's DCP writer) stage files, which gc cleans.
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `reg push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Checkpoint files (.ckpt, .pt, .pth, .bin, .safetensors) or folders,
    /// pushed in order; `-` reads one checkpoint from standard input (a
    /// torch zip as torch.save writes it, legacy torch, or safetensors).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The file name a version read from `-` records (what `reg pull`
    /// writes by default; the model name defaults to its stem).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Model name (default: registry.toml default_name, else the file stem).
    #[arg(long, short)]
    pub name: Option<String>,
    /// Tag the new version.
    #[arg(long, short)]
    pub tag: Option<String>,
    /// A message to keep with the version.
    #[arg(long = "message", short = 'm')]
    pub message: Option<String>,
    /// Store files whose pickle would run dangerous code when loaded.
    #[arg(long)]
    pub allow_unsafe: bool,
    /// Store changed float tensors as deltas against this version's
    /// (NAME@REF; a fine-tune against its base model).
    #[arg(long, value_name = "REF")]
    pub parent: Option<String>,
    /// Then drop optimizer state from all but the newest N versions of the
    /// name (as `keep_optimizer_last`; done by the background job, so the
    /// push does not wait for it).
    #[arg(long, value_name = "N")]
    pub keep_optimizer_last: Option<usize>,
    /// Store the new tensors uncompressed and leave their compression to
    /// the background job: the push costs what hashing and writing cost
    /// (a save in the training loop). Compressed later, same bytes.
    #[arg(long)]
    pub fast: bool,
    /// The pushed folder is in this staging session (`staging/ID` of the
    /// registry), whose files `reg stage` streamed: their hashes and
    /// chunks come from its records (the DCP writer's coordinator).
    #[arg(long, value_name = "SESSION")]
    pub staged: Option<PathBuf>,
    #[command(flatten)]
    pub json: JsonFlag,
    #[command(flatten)]
    pub remote: RemoteFlag,
}

/// `reg stage`.
#[derive(Debug, Args)]
pub struct StageArgs {
    /// The staging session (a folder of the registry's `staging/`, holding
    /// its `.lock`).
    pub session: PathBuf,
    /// The file to write, relative to the session (`run/__0_0.distcp`).
    pub path: String,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `reg pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// NAME[@REF] (REF: vN, latest, epoch=N, step=N, best, a tag, an id prefix).
    pub reference: String,
    /// Output path (default: the original file name in the working directory); `-` writes to stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Overwrite an existing output file (or folder).
    #[arg(long, short)]
    pub force: bool,
    /// For a directory version: write only the files this glob matches
    /// (repeatable; `*` does not cross `/`, `**` does).
    #[arg(long = "files", value_name = "GLOB")]
    pub files: Vec<String>,
    /// Write a new torch checkpoint with only what Lightning's
    /// save_weights_only keeps (loads with torch.load(weights_only=True));
    /// with --format safetensors: only model weights.
    #[arg(long)]
    pub weights_only: bool,
    /// Write the state dict in another format instead of the original bytes.
    #[arg(long, value_enum)]
    pub format: Option<OutFormat>,
    /// With --format safetensors: only the tensors whose name (as in the
    /// export: state-dict keys) this glob matches (repeatable; `*` matches
    /// any characters, `\` escapes one). Only their blobs are read (and
    /// fetched, with --remote).
    #[arg(long = "tensors", value_name = "GLOB", requires = "format")]
    pub tensors: Vec<String>,
    /// With --format safetensors: only the file's header (tensor names,
    /// dtypes, shapes, data offsets and metadata); no tensor is read.
    #[arg(long, requires = "format")]
    pub header_only: bool,
    #[command(flatten)]
    pub best: BestFlags,
    #[command(flatten)]
    pub json: JsonFlag,
    #[command(flatten)]
    pub remote: RemoteFlag,
}

/// `reg cat`.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// NAME[@REF].
    pub reference: String,
    /// The file (a path in a directory version; for a file version its
    /// source name, or nothing).
    pub file: Option<String>,
    /// START:LEN, in bytes (repeatable; written in the order given;
    /// default: the whole file).
    #[arg(long = "range", value_name = "START:LEN")]
    pub ranges: Vec<reg_registry::ranges::ByteRange>,
}

/// `reg locate`.
#[derive(Debug, Args)]
pub struct LocateArgs {
    /// NAME[@REF].
    pub reference: String,
    /// Only the tensors (safetensors export names) this glob matches
    /// (repeatable).
    #[arg(long = "tensors", value_name = "GLOB")]
    pub tensors: Vec<String>,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `reg show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// NAME[@REF].
    pub reference: String,
    #[command(flatten)]
    pub best: BestFlags,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `reg log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Model name.
    pub name: String,
    #[command(flatten)]
    pub json: JsonFlag,
    #[command(flatten)]
    pub remote: RemoteFlag,
}

/// `reg ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub json: JsonFlag,
    #[command(flatten)]
    pub remote: RemoteFlag,
}

/// `reg stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `reg diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// NAME[@REF] of the older side.
    pub a: String,
    /// NAME[@REF] of the newer side.
    pub b: String,
    /// For changed tensors: max |diff|, relative L2 change, changed fraction.
    #[arg(long)]
    pub stats: bool,
    /// Only this section.
    #[arg(long, value_enum)]
    pub only: Option<Section>,
    /// List every tensor, not a summary of long lists.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `reg verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// NAME[@REF] to check (default: every version).
    pub reference: Option<String>,
    /// Also re-hash every blob and re-assemble every version.
    #[arg(long)]
    pub full: bool,
    /// Rebuild a lost or corrupt index from the manifest blobs.
    #[arg(long)]
    pub rebuild_index: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `reg rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// NAME@REF.
    pub reference: String,
}

/// `reg deltas`.
#[derive(Debug, Args)]
pub struct DeltasArgs {
    /// NAME (every version) or NAME@vN (from version N on); default: every model.
    pub models: Vec<String>,
    /// Started by a push: never create the registry (it may have been
    /// removed since).
    #[arg(long, hide = true)]
    pub background: bool,
    /// Only what pushes left for the background job (re-encoding and
    /// retention), waiting for a job that runs: when it returns, every
    /// push's background work is done.
    #[arg(long, conflicts_with = "models")]
    pub queued: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `reg gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only report what would be freed, and why the rest is kept.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `reg prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Model name.
    pub name: String,
    /// Keep the newest N versions.
    #[arg(long, default_value_t = 0)]
    pub keep_last: usize,
    /// Keep the N versions with the best monitored score.
    #[arg(long, default_value_t = 0)]
    pub keep_best: usize,
    /// Keep tagged versions.
    #[arg(long)]
    pub keep_tagged: bool,
    /// Drop optimizer and scheduler state from all but the newest N
    /// versions (they keep their weights and pull as weights-only files).
    #[arg(long, value_name = "N")]
    pub keep_optimizer_last: Option<usize>,
    /// Only report.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `reg tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// NAME[@REF] to tag (or NAME@TAG with -d).
    pub reference: String,
    /// The tag name.
    pub tag: Option<String>,
    /// Move the tag if it exists.
    #[arg(long, short)]
    pub force: bool,
    /// Delete the tag NAME@TAG.
    #[arg(long, short)]
    pub delete: bool,
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
    /// Stored bytes of NAME's versions by tensor role (weights, frozen,
    /// exp_avg, exp_avg_sq, momentum, other, skeleton) against the order-0
    /// entropy bound of how each is stored (byte planes; XOR with the
    /// parent for deltas): what is left to today's representation.
    Compress {
        /// The model name.
        name: String,
        #[command(flatten)]
        json: JsonFlag,
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
