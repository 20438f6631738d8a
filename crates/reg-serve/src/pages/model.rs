//! `/m/NAME`: a model's versions (number, id, epoch, step, monitored
//! score, tags, size, stored bytes, delta or whole, retention), plots of
//! the score over epochs and of bytes per version, and a form to diff two.

use super::layout::{self, bytes, page, stat, time, Crumb};
use super::summary::{self, VersionFacts};
use crate::api::bad_path;
use crate::failure::Failure;
use crate::state::AppState;
use crate::svg::{self, Bar, BarGroup, Point};
use crate::{units, urls};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Html;
use maud::{html, Markup};

/// `/m/NAME`.
pub async fn handler(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Html<String>, Failure> {
    let Path(name) = name.map_err(|e| bad_path(e).page())?;
    urls::model_name(&name).map_err(Failure::page)?;
    let lookup = name.clone();
    let versions = state
        .access
        .read(move |reg| summary::model_versions(reg, &lookup))
        .await
        .map_err(Failure::page)?;
    let root = state.access.root().display().to_string();
    Ok(render(&name, &versions, &root))
}

fn render(name: &str, versions: &[VersionFacts], root: &str) -> Html<String> {
    let metric = summary::monitored_metric(versions);
    let best = summary::best(versions);
    let latest = versions.last();
    let logical: u64 = versions.iter().map(|v| v.size).sum();
    let stored: u64 = versions.iter().map(|v| v.added_bytes).sum();
    let (default_a, default_b) = match versions {
        [.., a, b] => (a.number, b.number),
        [only] => (only.number, only.number),
        [] => (0, 0),
    };
    let body = html! {
        h1 { (name) span.sub { (versions.len()) " versions" } }
        div.stats {
            @if let Some(v) = latest {
                (stat("latest", html! { a href=(urls::version(name, &format!("v{}", v.number))) { "v" (v.number) } }))
                (stat("epoch", html! { (layout::opt(v.epoch)) }))
                (stat("step", html! { (layout::opt(v.step)) }))
            }
            @if let Some(b) = &best {
                (stat(&format!("best {} ({})", b.metric, b.mode), html! {
                    span.best { (units::number(b.value)) } " "
                    a href=(urls::version(name, &format!("v{}", b.number))) { "v" (b.number) }
                }))
            }
            (stat("logical", bytes(logical)))
            (stat("stored", bytes(stored)))
            (stat("saving", html! { (units::ratio(logical, stored)) }))
        }
        div.grid {
            @if let Some(m) = &metric {
                section.card #score-plot {
                    h2 { (m) " over " (if score_axis_is_epoch(versions, m) { "epochs" } else { "versions" }) }
                    (score_plot(name, versions, m, best.as_ref().map(|b| b.number)))
                }
            }
            section.card #bytes-plot {
                h2 { "Bytes per version" }
                div.legend {
                    span { i.logical {} "logical (file size)" }
                    span { i.stored {} "stored (its blobs)" }
                    span { i.added {} "added (blobs new in it)" }
                }
                (bytes_plot(name, versions))
            }
        }
        section.card {
            h2 { "Versions" }
            form.pick method="get" action="/diff" {
                table.sortable #versions {
                    thead { tr {
                        th.nosort title="diff from" { "A" } th.nosort title="diff to" { "B" }
                        th { "version" } th { "id" } th.num { "epoch" } th.num { "step" }
                        th.num { (metric.as_deref().unwrap_or("score")) }
                        th { "tags" } th.num { "size" } th.num { "stored" } th.num { "added" }
                        th { "storage" } th { "pushed" } th.nosort { "" }
                    } }
                    tbody {
                        @for (i, v) in versions.iter().enumerate().rev() {
                            (row(name, v, metric.as_deref(), best.as_ref().map(|b| b.number), default_a, default_b, i.checked_sub(1).map(|p| versions[p].number)))
                        }
                    }
                }
                div.actions {
                    button.primary type="submit" #diff-button { "Diff A → B" }
                    a.button href=(urls::api_log(name)) { "log JSON" }
                }
            }
            @if versions.len() > 1 {
                p.muted { "Pick A and B and press Diff, or follow “diff” to compare a version with the one before it." }
            }
        }
    };
    page(name, &[Crumb::here(name)], Some(root), body)
}

#[allow(clippy::too_many_arguments)]
fn row(
    name: &str,
    v: &VersionFacts,
    metric: Option<&str>,
    best: Option<u32>,
    default_a: u32,
    default_b: u32,
    previous: Option<u32>,
) -> Markup {
    let spec = urls::spec(name, v.number);
    let score = metric.and_then(|m| v.raw_score(m));
    html! {
        tr {
            td { input type="radio" name="a" value=(spec) checked[v.number == default_a] aria-label={ "A = v" (v.number) }; }
            td { input type="radio" name="b" value=(spec) checked[v.number == default_b] aria-label={ "B = v" (v.number) }; }
            td data-v=(v.number) { a href=(urls::version(name, &format!("v{}", v.number))) { strong { "v" (v.number) } } }
            td.mono title=(v.id) { (&v.id[..12.min(v.id.len())]) }
            td.num data-v=[v.epoch] { (layout::opt(v.epoch)) }
            td.num data-v=[v.step] { (layout::opt(v.step)) }
            @match score {
                Some(s) => td.num.best[best == Some(v.number)] data-v=(s) { (units::number(s)) },
                None => td.num.muted { "–" },
            }
            td {
                @for t in &v.tags { span.pill { (t) } }
                @if let Some(m) = &v.message { span.muted { (m) } }
            }
            td.num data-v=(v.size) { (bytes(v.size)) }
            td.num data-v=(v.stored.stored_bytes) { (bytes(v.stored.stored_bytes)) }
            td.num data-v=(v.added_bytes) { (bytes(v.added_bytes)) }
            td {
                @if v.stored.deltas > 0 {
                    span.pill.delta title={ (v.stored.deltas) " of " (v.stored.blobs) " blobs are deltas; longest chain " (v.stored.longest_chain) } {
                        "delta " (v.stored.deltas) "/" (v.stored.blobs)
                    }
                } @else {
                    span.pill.whole title={ (v.stored.blobs) " self-contained blobs" } { "whole" }
                }
                @if v.weights_only {
                    span.pill.warn title="retention dropped its optimizer state: it pulls as a weights-only file" { "weights only" }
                }
            }
            td data-v=(v.created) { (time(v.created)) }
            td {
                @if let Some(p) = previous {
                    a href=(urls::diff(&urls::spec(name, p), &spec)) title={ "diff v" (p) " → v" (v.number) } { "diff" }
                }
            }
        }
    }
}

fn score_axis_is_epoch(versions: &[VersionFacts], metric: &str) -> bool {
    versions
        .iter()
        .filter(|v| v.score(metric).is_some())
        .all(|v| v.epoch.is_some())
}

fn score_plot(name: &str, versions: &[VersionFacts], metric: &str, best: Option<u32>) -> Markup {
    let by_epoch = score_axis_is_epoch(versions, metric);
    let points: Vec<Point> = versions
        .iter()
        .filter_map(|v| {
            let y = v.score(metric)?;
            let x = if by_epoch { v.epoch? as f64 } else { f64::from(v.number) };
            Some(Point {
                x,
                y,
                title: format!(
                    "v{} · epoch {} · {metric} {}",
                    v.number,
                    layout::opt(v.epoch),
                    units::number(y)
                ),
                href: Some(urls::version(name, &format!("v{}", v.number))),
                best: best == Some(v.number),
            })
        })
        .collect();
    svg::line_chart(&points, if by_epoch { "epoch" } else { "version" }, metric, true)
}

fn bytes_plot(name: &str, versions: &[VersionFacts]) -> Markup {
    let groups: Vec<BarGroup> = versions
        .iter()
        .map(|v| BarGroup {
            label: format!("v{}", v.number),
            href: Some(urls::version(name, &format!("v{}", v.number))),
            bars: vec![
                Bar {
                    class: "logical",
                    value: v.size,
                    title: format!("logical {}", units::bytes(v.size)),
                },
                Bar {
                    class: "stored",
                    value: v.stored.stored_bytes,
                    title: format!("stored {}", units::bytes(v.stored.stored_bytes)),
                },
                Bar {
                    class: "added",
                    value: v.added_bytes,
                    title: format!("added {}", units::bytes(v.added_bytes)),
                },
            ],
        })
        .collect();
    svg::byte_bars(&groups)
}
