//! Writing to stdout: text, tables, JSON (pretty, one trailing newline).

use anyhow::Result;
use serde::Serialize;
use std::io::Write;

/// Write text to stdout (a closed pipe ends the command quietly; see main),
/// its control characters escaped ([`crate::human::printable`]): names and
/// messages come from files and users.
pub fn out(text: &str) -> Result<()> {
    out_trusted(&crate::human::printable(text))
}

/// Write text whose control characters are reg's own (the colours of
/// `reg diff`, which escapes what it shows itself).
pub fn out_trusted(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Print a view as pretty JSON, the contract of every `--json`.
pub fn json<T: Serialize>(v: &T) -> Result<()> {
    out_trusted(&reg_registry::report::to_json_text(v)?)
}

/// Compact JSON of a value, for one-line summaries.
pub fn compact(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `-` for a missing number.
pub fn opt(v: Option<i64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// Say a resolution note on stderr (unless quiet).
pub fn note(note: &Option<String>, quiet: bool) {
    if let (Some(n), false) = (note, quiet) {
        crate::human::say_err!("reg: note: {n}");
    }
}
