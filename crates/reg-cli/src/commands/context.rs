//! What every subcommand gets: the working directory, the located
//! registry config, `--quiet` and the wait policy.

use crate::cli::Cli;
use anyhow::{Context, Result};
use reg_registry::{BackgroundRunner, Config, Registry, WaitPolicy};
use std::path::PathBuf;
use std::time::Duration;

/// How this binary runs a push's background work: as itself, `reg
/// deltas --background` (in a thread when its own path is unknown).
pub fn worker() -> BackgroundRunner {
    match std::env::current_exe() {
        Ok(exe) => BackgroundRunner::Process(exe),
        Err(_) => BackgroundRunner::Thread,
    }
}

/// The context of one `reg` run.
pub struct Ctx {
    /// The working directory.
    pub cwd: PathBuf,
    /// The registry's settings (located, not opened).
    pub config: Config,
    /// `--quiet`: print only errors.
    pub quiet: bool,
    /// `--wait-timeout`.
    pub wait: WaitPolicy,
}

impl Ctx {
    /// Locate the registry for `cli` (no registry is opened or created).
    pub fn new(cli: &Cli) -> Result<Ctx> {
        let cwd = std::env::current_dir().context("cannot read the working directory")?;
        let reg_home = std::env::var_os("REG_HOME").map(PathBuf::from);
        let config = Config::locate(cli.registry.as_deref(), reg_home.as_deref(), &cwd)?;
        // A bad remote declaration fails every command, not only the
        // ones that use a remote: a typo is found where it is made.
        reg_remote::config::remotes(&config)?;
        let timeout = match cli.wait_timeout {
            Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
            Some(s) => anyhow::bail!("--wait-timeout {s}: give a number of seconds, 0 or more"),
            None => None,
        };
        Ok(Ctx {
            cwd,
            config,
            quiet: cli.quiet,
            wait: WaitPolicy { timeout },
        })
    }

    /// Open the registry (creating it on first use); waiting for another
    /// process is said once on stderr.
    pub fn open(&self) -> Result<Registry> {
        self.open_config(self.config.clone())
    }

    /// Open the registry `config` names, as [`Ctx::open`]. The work a
    /// push leaves runs in a `reg deltas --background` process of this
    /// binary, which outlives the command.
    pub fn open_config(&self, config: Config) -> Result<Registry> {
        Ok(self.with_waits(Registry::open(config)?.with_background(worker())))
    }

    /// Say waits on stderr (unless quiet) and bound them by `--wait-timeout`.
    pub fn with_waits(&self, reg: Registry) -> Registry {
        let quiet = self.quiet;
        reg.with_waits(
            self.wait,
            Box::new(move |notice| {
                if !quiet {
                    crate::human::say_err!("reg: {notice}");
                }
            }),
        )
    }
}
