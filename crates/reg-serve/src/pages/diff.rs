//! `/diff?a=REF&b=REF`: what `reg diff --stats` shows (meta,
//! hyperparameters, optimizer, scheduler, checkpoint callback, tensors),
//! with a picture of the relative L2 change of every tensor, per layer.

use super::layout::{compact, page, Crumb};
use crate::api::DiffQuery;
use crate::failure::Failure;
use crate::state::AppState;
use crate::svg::{self, Change, ChangeRow};
use crate::{units, urls};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use maud::{html, Markup};
use reg_ckpt::tensors::Role;
use reg_registry::diff::{Changed, ChangedTensor};
use reg_registry::{Diff, DiffOptions, Only};
use std::collections::HashMap;

/// Most rows drawn in one chart; the tables below list everything.
const MAX_ROWS: usize = 400;

struct Gathered {
    diff: Diff,
    /// B's tensors in file order, with their roles (A's for removed ones).
    order: Vec<(String, Role)>,
}

/// `/diff`.
pub async fn handler(
    State(state): State<AppState>,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Html<String>, Failure> {
    let Query(query) = query.map_err(|e| Failure::bad_request(e.body_text()).page())?;
    let (a, b) = query.sides().map_err(Failure::page)?;
    let (ra, rb) = (
        urls::parse_ref(&a).map_err(Failure::page)?,
        urls::parse_ref(&b).map_err(Failure::page)?,
    );
    let g = state
        .access
        .read(move |reg| {
            let (va, vb) = (reg.resolve(&ra)?, reg.resolve(&rb)?);
            let diff = reg.diff(
                &va,
                &vb,
                DiffOptions {
                    stats: true,
                    only: Only::All,
                },
            )?;
            let order = vb.manifest.tensors.iter().map(|t| (t.path.clone(), t.role)).collect();
            Ok(Gathered { diff, order })
        })
        .await
        .map_err(Failure::page)?;
    let root = state.access.root().display().to_string();
    Ok(render(&g, &root))
}

fn side_spec(s: &reg_registry::diff::Side) -> String {
    urls::spec(&s.name, s.version)
}

fn render(g: &Gathered, root: &str) -> Html<String> {
    let d = &g.diff;
    let (a, b) = (side_spec(&d.a), side_spec(&d.b));
    let t = &d.tensors;
    let weights = chart_rows(g, |r| r == Role::Weight);
    let others = chart_rows(g, |r| r != Role::Weight);
    let crumbs = if d.a.name == d.b.name {
        vec![
            Crumb::link(d.a.name.clone(), urls::model(&d.a.name)),
            Crumb::here(format!("diff v{} → v{}", d.a.version, d.b.version)),
        ]
    } else {
        vec![Crumb::here(format!("diff {a} → {b}"))]
    };
    let body = html! {
        h1 {
            a href=(urls::version(&d.a.name, &format!("v{}", d.a.version))) { (a) }
            " → "
            a href=(urls::version(&d.b.name, &format!("v{}", d.b.version))) { (b) }
        }
        p.summary-line { (d.summary()) }
        div.actions {
            a.button href=(urls::diff(&b, &a)) { "swap A and B" }
            a.button href=(urls::api_diff(&a, &b)) { "diff JSON" }
        }
        section.card #tensor-plot {
            h2 { "Tensor changes per layer" }
            p.muted {
                "Relative L2 change ‖B − A‖ / ‖A‖ of each tensor of equal dtype and shape, log scale; "
                "identical tensors (same blob, same view) are marked."
            }
            @if weights.is_empty() && others.is_empty() {
                p.muted { "No tensors in common." }
            } @else {
                @if !weights.is_empty() {
                    h3 { "weights" }
                    (chart(&weights))
                }
                @if !others.is_empty() {
                    details open[weights.is_empty()] {
                        summary { "optimizer state and other tensors (" (others.len()) ")" }
                        (chart(&others))
                    }
                }
            }
        }
        div.grid {
            section.card #meta { h2 { "Meta" } (changes(&d.meta)) }
            section.card #hparams {
                h2 { "Hyperparameters" }
                @let h = &d.hyper_parameters;
                @if h.count() == 0 {
                    p.muted { "Same." }
                } @else {
                    table {
                        thead { tr { th { "key" } th { "A" } th { "B" } } }
                        tbody {
                            @for c in &h.changed { tr { td.path { (c.path) } td.old.mono { (compact(&c.old)) } td.new.mono { (compact(&c.new)) } } }
                            @for p in &h.added { tr { td.path { (p.path) } td.muted { "–" } td.new.mono { (compact(&p.value)) } } }
                            @for p in &h.removed { tr { td.path { (p.path) } td.old.mono { (compact(&p.value)) } td.muted { "–" } } }
                        }
                    }
                }
            }
        }
        div.grid {
            section.card #optimizer { h2 { "Optimizer" } (changes(&d.optimizer)) }
            section.card #scheduler {
                h2 { "Scheduler and checkpoint callback" }
                (changes(&d.scheduler))
                h3 { "checkpoint" }
                (changes(&d.checkpoint))
            }
        }
        section.card #tensors {
            h2 { "Tensors" }
            @if t.changed.is_empty() {
                p.muted { "No tensor changed." }
            } @else {
                input type="search" placeholder="filter tensors" data-filter="changed-table" hidden;
                table.sortable #changed-table {
                    thead { tr {
                        th { "changed" } th { "what" } th { "dtype" } th { "shape" }
                        th.num { "max |B − A|" } th.num { "relative L2" } th.num { "elements changed" }
                    } }
                    tbody { @for c in &t.changed { (changed_row(c)) } }
                }
            }
            @if !t.added.is_empty() {
                h3 { "added in B (" (t.added.len()) ")" }
                ul { @for p in &t.added { li.path.new { (p) } } }
            }
            @if !t.removed.is_empty() {
                h3 { "removed in B (" (t.removed.len()) ")" }
                ul { @for p in &t.removed { li.path.old { (p) } } }
            }
            @if !t.identical.is_empty() {
                details {
                    summary { (t.identical.len()) " identical tensors" }
                    ul { @for p in &t.identical { li.path.muted { (p) } } }
                }
            }
        }
    };
    page(&format!("diff {a} → {b}"), &crumbs, Some(root), body)
}

fn chart(rows: &[ChangeRow]) -> Markup {
    html! {
        (svg::change_bars(&rows[..rows.len().min(MAX_ROWS)]))
        @if rows.len() > MAX_ROWS {
            p.muted { "The first " (MAX_ROWS) " of " (rows.len()) " tensors are drawn; the table below lists all changed ones." }
        }
    }
}

fn changed_row(c: &ChangedTensor) -> Markup {
    let stats = c.stats.as_ref();
    html! {
        tr {
            td.path { (c.path) }
            td { (c.change) }
            td.mono { @if c.dtype.0 == c.dtype.1 { (c.dtype.0) } @else { span.old { (c.dtype.0) } " → " span.new { (c.dtype.1) } } }
            td.mono { @if c.shape.0 == c.shape.1 { (shape(&c.shape.0)) } @else { span.old { (shape(&c.shape.0)) } " → " span.new { (shape(&c.shape.1)) } } }
            td.num data-v=[stats.map(|s| s.max_abs_diff)] { (stats.map(|s| units::number(s.max_abs_diff)).unwrap_or_default()) }
            td.num data-v=[stats.and_then(|s| s.rel_l2)] {
                @match stats.map(|s| s.rel_l2) {
                    Some(Some(r)) => (units::number(r)),
                    Some(None) => "from 0",
                    None => "",
                }
            }
            td.num data-v=[stats.map(|s| s.changed_fraction)] { (stats.map(|s| units::percent(s.changed_fraction)).unwrap_or_default()) }
        }
    }
}

fn changes(list: &[Changed]) -> Markup {
    html! {
        @if list.is_empty() {
            p.muted { "Same." }
        } @else {
            table {
                thead { tr { th { "field" } th { "A" } th { "B" } } }
                tbody {
                    @for c in list {
                        tr { td.path { (c.path) } td.old.mono { (compact(&c.old)) } td.new.mono { (compact(&c.new)) } }
                    }
                }
            }
        }
    }
}

fn shape(s: &[u64]) -> String {
    let parts: Vec<String> = s.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// `state_dict/head.2.weight` -> (`head.2`, `weight`);
/// `optimizer_states/0/state/3/exp_avg` -> (`optimizer_states/0/state/3`, `exp_avg`).
fn layer_and_name(path: &str, role: Role) -> (String, String) {
    let p = if role == Role::Weight {
        path.strip_prefix("state_dict/").unwrap_or(path)
    } else {
        path
    };
    let (dir, last) = match p.rsplit_once('/') {
        Some((d, l)) => (Some(d), l),
        None => (None, p),
    };
    match (dir, last.rsplit_once('.')) {
        (Some(d), Some((layer, name))) => (format!("{d}/{layer}"), name.to_string()),
        (None, Some((layer, name))) => (layer.to_string(), name.to_string()),
        (Some(d), None) => (d.to_string(), last.to_string()),
        (None, None) => (String::new(), last.to_string()),
    }
}

/// The chart's rows: the tensors A and B share, in B's order, grouped by layer.
fn chart_rows(g: &Gathered, want: impl Fn(Role) -> bool) -> Vec<ChangeRow> {
    let t = &g.diff.tensors;
    let changed: HashMap<&str, &ChangedTensor> = t.changed.iter().map(|c| (c.path.as_str(), c)).collect();
    let identical: std::collections::HashSet<&str> = t.identical.iter().map(String::as_str).collect();
    let mut rows = Vec::new();
    let mut last_layer: Option<String> = None;
    for (path, role) in &g.order {
        if !want(*role) {
            continue;
        }
        let change = if let Some(c) = changed.get(path.as_str()) {
            match c.stats.as_ref().map(|s| s.rel_l2) {
                Some(Some(r)) => Change::RelL2(r),
                Some(None) => Change::FromZero,
                None => Change::Other(format!("{} changed", c.change)),
            }
        } else if identical.contains(path.as_str()) {
            Change::Identical
        } else {
            continue;
        };
        let (layer, name) = layer_and_name(path, *role);
        let group = (last_layer.as_deref() != Some(layer.as_str())).then(|| {
            if layer.is_empty() {
                "(top level)".to_string()
            } else {
                layer.clone()
            }
        });
        last_layer = Some(layer);
        rows.push(ChangeRow {
            group,
            label: name,
            title: path.clone(),
            change,
            class: if *role == Role::Weight { "weight" } else { "other" },
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::layer_and_name;
    use reg_ckpt::tensors::Role;

    #[test]
    fn layers() {
        let l = |p, r| layer_and_name(p, r);
        assert_eq!(
            l("state_dict/head.2.weight", Role::Weight),
            ("head.2".into(), "weight".into())
        );
        assert_eq!(
            l("optimizer_states/0/state/3/exp_avg", Role::Optimizer),
            ("optimizer_states/0/state/3".into(), "exp_avg".into())
        );
        assert_eq!(l("encoder.weight", Role::Weight), ("encoder".into(), "weight".into()));
        assert_eq!(l("w", Role::Other), (String::new(), "w".into()));
    }
}
