//! One module per subcommand: each parses nothing more, calls the
//! libraries and prints the result as text or JSON (the JSON shapes are
//! typed views in `reg_registry::report`).

mod cat;
pub(crate) mod context;
mod deltas;
mod diff;
mod gc;
mod init;
mod list;
mod locate;
mod maintenance;
mod print;
mod pull;
mod push;
mod remote;
mod shell;
mod show;
mod stage;
mod tag;

pub use context::Ctx;

use crate::cli::{Cli, Command};
use anyhow::Result;
use std::process::ExitCode;

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    // These need no registry: they work however the environment is broken.
    match &cli.command {
        Command::Completions(args) => return ok(shell::completions(args)),
        Command::Manpage(args) => return ok(shell::manpage(args)),
        _ => {}
    }
    let ctx = Ctx::new(&cli)?;
    match cli.command {
        Command::Init(args) => init::run(&ctx, args),
        Command::Push(args) => push::run(&ctx, args),
        Command::Stage(args) => stage::run(&ctx, args),
        Command::Pull(args) => pull::run(&ctx, args),
        Command::Show(args) => show::run(&ctx, args),
        Command::Cat(args) => cat::run(&ctx, args),
        Command::Locate(args) => locate::run(&ctx, args),
        Command::Log(args) => list::log(&ctx, args),
        Command::Ls(args) => list::ls(&ctx, args),
        Command::Stats(args) => list::stats(&ctx, args),
        Command::Diff(args) => diff::run(&ctx, args),
        Command::Verify(args) => maintenance::verify(&ctx, args),
        Command::Rm(args) => maintenance::rm(&ctx, args),
        Command::Deltas(args) => deltas::run(&ctx, args),
        Command::Gc(args) => gc::gc(&ctx, args),
        Command::Prune(args) => gc::prune(&ctx, args),
        Command::Bench { what } => crate::bench::command(&ctx, what),
        Command::Tag(args) => tag::run(&ctx, args),
        Command::Remote { command } => ok(remote::remote(&ctx.config, command, ctx.quiet)),
        Command::Serve(args) => ok(crate::serve_cmd::run(
            ctx.config.clone(),
            args.bind,
            args.port,
            args.allow_hosts.clone(),
            ctx.quiet,
        )),
        Command::Sync { command } => ok(remote::sync(&ctx, command)),
        Command::Completions(_) | Command::Manpage(_) => Ok(ExitCode::SUCCESS),
    }
}

/// A command that only fails or succeeds.
fn ok(done: Result<()>) -> Result<ExitCode> {
    done.map(|_| ExitCode::SUCCESS)
}
