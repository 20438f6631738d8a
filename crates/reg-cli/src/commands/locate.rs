//! `reg locate NAME[@REF] [--tensors GLOB]...`: where the tensors of a
//! version's safetensors export lie on disk as they are (raw blobs), and
//! which must be exported instead.

use super::{print, Ctx};
use crate::cli::LocateArgs;
use anyhow::Result;
use reg_registry::select::TensorSelection;
use reg_registry::VersionRef;
use std::process::ExitCode;

/// Resolve the version and print what can be mapped.
pub fn run(ctx: &Ctx, args: LocateArgs) -> Result<ExitCode> {
    let wanted = VersionRef::parse(&args.reference)?;
    let reg = ctx.open()?;
    let v = reg.resolve(&wanted)?;
    let selection = match args.tensors.is_empty() {
        true => None,
        false => Some(TensorSelection::new(&args.tensors)?),
    };
    let located = reg.locate(&v, selection.as_ref())?;
    if args.json.json {
        print::json(&located)?;
    } else {
        for t in &located.mapped {
            println!("{}\t{}\t{}+{}", t.name, t.dtype, t.file.display(), t.offset);
        }
        for name in &located.exported {
            println!("{name}\t(export)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
