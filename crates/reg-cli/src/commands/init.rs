//! `reg init [DIR]`.

use super::Ctx;
use crate::cli::InitArgs;
use anyhow::Result;
use reg_registry::Config;
use std::process::ExitCode;

/// Create (or check) the registry.
pub fn run(ctx: &Ctx, args: InitArgs) -> Result<ExitCode> {
    let config = match args.dir {
        Some(d) => Config {
            root: ctx.cwd.join(d),
            ..ctx.config.clone()
        },
        None => ctx.config.clone(),
    };
    let reg = ctx.open_config(config)?;
    if args.json.json {
        super::print::json(&serde_json::json!({
            "path": reg.config().root,
            "staging": reg.staging_dir()?,
        }))?;
    } else if !ctx.quiet {
        crate::human::say!("registry ready at {}", reg.config().root.display());
    }
    Ok(ExitCode::SUCCESS)
}
