//! `reg bench compress NAME`: stored bytes by tensor role against the
//! order-0 entropy bound of their representation
//! (`reg_registry::compression_report`).

use crate::commands::context::Ctx;
use crate::human;
use anyhow::Result;
use reg_registry::compression_report::RoleBytes;

/// Print the report of `name` as a table, or as JSON.
pub fn print(ctx: &Ctx, name: &str, json: bool) -> Result<()> {
    let reg = ctx.open()?;
    let name = reg_format::ModelName::new(name)?;
    let report = reg.compression_report(&name)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let mut rows = vec![[
        "role",
        "blobs",
        "deltas",
        "raw",
        "stored",
        "bound",
        "stored/bound",
        "bits/value",
        "bound bits/value",
    ]
    .map(String::from)
    .to_vec()];
    for r in report.roles.iter().chain([&report.total]) {
        rows.push(row(r));
    }
    println!(
        "{} ({} version{}): stored bytes by role, against the order-0 entropy of their byte planes",
        report.name,
        report.versions,
        if report.versions == 1 { "" } else { "s" }
    );
    print!("{}", human::table(&rows));
    Ok(())
}

fn row(r: &RoleBytes) -> Vec<String> {
    let ratio = if r.bound_bytes == 0 {
        "-".to_string()
    } else {
        format!("{:.3}", r.stored_bytes as f64 / r.bound_bytes as f64)
    };
    vec![
        r.role.to_string(),
        r.blobs.to_string(),
        r.deltas.to_string(),
        human::bytes(r.raw_bytes),
        human::bytes(r.stored_bytes),
        human::bytes(r.bound_bytes),
        ratio,
        format!("{:.2}", r.stored_bits_per_value()),
        format!("{:.2}", r.bound_bits_per_value()),
    ]
}
