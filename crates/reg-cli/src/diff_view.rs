//! Text rendering of `reg diff`: summary line first, then one section per
//! kind of change, aligned, coloured on a terminal.

use crate::human;
use reg_registry::diff::{Changed, Diff};
use serde_json::Value;
use std::io::IsTerminal;

/// Tensor lists longer than this are summarised unless `--all`.
const LIST_LIMIT: usize = 12;

/// Colour when stdout is a terminal and NO_COLOR is unset or empty.
pub fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn add(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn del(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    fn chg(&self, s: &str) -> String {
        self.wrap("33", s)
    }
}

fn val(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => esc(&reg_ckpt::exact_json::to_text(other)),
    }
}

/// A name or value from a checkpoint, its control characters escaped
/// (this text is printed as is, with reg's own colour codes).
fn esc(s: &str) -> String {
    human::printable(s).into_owned()
}

fn changes(out: &mut String, p: &Paint, title: &str, items: &[Changed]) {
    if items.is_empty() {
        return;
    }
    out.push_str(&format!("\n{}\n", p.bold(title)));
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|c| {
            vec![
                format!("  {} {}", p.chg("~"), esc(&c.path)),
                val(&c.old),
                "->".into(),
                val(&c.new),
            ]
        })
        .collect();
    out.push_str(&human::table(&rows));
}

fn list(out: &mut String, p: &Paint, mark: &str, paths: &[String], all: bool) {
    let shown = if all { paths.len() } else { paths.len().min(LIST_LIMIT) };
    for path in &paths[..shown] {
        out.push_str(&format!("  {mark} {}\n", esc(&human::short_path(path))));
    }
    if shown < paths.len() {
        out.push_str(&format!(
            "  {} ... and {} more (--all to list)\n",
            p.bold(" "),
            paths.len() - shown
        ));
    }
}

/// Render a diff for a person.
pub fn render(d: &Diff, all: bool, colour: bool) -> String {
    let p = Paint(colour);
    let mut out = format!(
        "{} -> {}\n{}\n",
        reg_format::VersionLabel::new(&d.a.name, d.a.version),
        reg_format::VersionLabel::new(&d.b.name, d.b.version),
        p.bold(&d.summary())
    );
    changes(&mut out, &p, "meta", &d.meta);
    let h = &d.hyper_parameters;
    if h.count() > 0 {
        out.push_str(&format!("\n{}\n", p.bold("hyperparameters")));
        let mut rows = Vec::new();
        for c in &h.changed {
            rows.push(vec![
                format!("  {} {}", p.chg("~"), esc(&c.path)),
                val(&c.old),
                "->".into(),
                val(&c.new),
            ]);
        }
        for a in &h.added {
            rows.push(vec![
                format!("  {} {}", p.add("+"), esc(&a.path)),
                String::new(),
                String::new(),
                val(&a.value),
            ]);
        }
        for r in &h.removed {
            rows.push(vec![
                format!("  {} {}", p.del("-"), esc(&r.path)),
                val(&r.value),
                String::new(),
                String::new(),
            ]);
        }
        out.push_str(&human::table(&rows));
    }
    changes(&mut out, &p, "optimizer", &d.optimizer);
    changes(&mut out, &p, "scheduler", &d.scheduler);
    changes(&mut out, &p, "checkpoint callback", &d.checkpoint);
    let t = &d.tensors;
    if !t.changed.is_empty() {
        out.push_str(&format!(
            "\n{}\n",
            p.bold(&format!("tensors changed ({})", t.changed.len()))
        ));
        let shown = if all {
            t.changed.len()
        } else {
            t.changed.len().min(LIST_LIMIT)
        };
        let mut rows = Vec::new();
        for c in &t.changed[..shown] {
            let mut row = vec![format!("  {} {}", p.chg("~"), esc(&human::short_path(&c.path)))];
            match c.change {
                "dtype" => row.push(format!("dtype {} -> {}", c.dtype.0, c.dtype.1)),
                "shape" => row.push(format!(
                    "shape {} -> {}",
                    human::shape(&c.shape.0),
                    human::shape(&c.shape.1)
                )),
                _ => {
                    row.push(format!("{} {}", c.dtype.1, human::shape(&c.shape.1)));
                    if let Some(s) = &c.stats {
                        row.push(format!("max|d| {:.3e}", s.max_abs_diff));
                        row.push(match s.rel_l2 {
                            Some(r) => format!("rel L2 {r:.3e}"),
                            None => "rel L2 -".into(),
                        });
                        row.push(format!("changed {:.1}%", s.changed_fraction * 100.0));
                    }
                }
            }
            rows.push(row);
        }
        out.push_str(&human::table(&rows));
        if shown < t.changed.len() {
            out.push_str(&format!("  ... and {} more (--all to list)\n", t.changed.len() - shown));
        }
    }
    if !t.added.is_empty() {
        out.push_str(&format!(
            "\n{}\n",
            p.bold(&format!("tensors added ({})", t.added.len()))
        ));
        list(&mut out, &p, &p.add("+"), &t.added, all);
    }
    if !t.removed.is_empty() {
        out.push_str(&format!(
            "\n{}\n",
            p.bold(&format!("tensors removed ({})", t.removed.len()))
        ));
        list(&mut out, &p, &p.del("-"), &t.removed, all);
    }
    if !t.identical.is_empty() {
        out.push_str(&format!(
            "\n{}\n",
            p.bold(&format!("tensors identical ({})", t.identical.len()))
        ));
        list(&mut out, &p, "=", &t.identical, all);
    }
    if let Some(f) = &d.files {
        if !f.added.is_empty() || !f.removed.is_empty() || !f.changed.is_empty() {
            out.push_str(&format!(
                "\n{}\n",
                p.bold(&format!("files ({} identical)", f.identical))
            ));
            list(&mut out, &p, &p.add("+"), &f.added, all);
            list(&mut out, &p, &p.del("-"), &f.removed, all);
            list(&mut out, &p, "~", &f.changed, all);
        }
    }
    out
}
