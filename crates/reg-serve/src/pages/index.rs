//! `/`: every model with its versions, newest epoch and step, best score,
//! logical and stored size and the saving.

use super::layout::{self, bytes, page, stat, time};
use super::summary::{self, ModelRow};
use crate::failure::Failure;
use crate::state::AppState;
use crate::{units, urls};
use axum::extract::State;
use axum::response::Html;
use maud::html;
use reg_registry::report::StatsView;

/// `/`.
pub async fn handler(State(state): State<AppState>) -> Result<Html<String>, Failure> {
    let (models, stats) = state
        .access
        .read(|reg| Ok((summary::models(reg)?, reg.stats()?)))
        .await
        .map_err(Failure::page)?;
    let root = state.access.root().display().to_string();
    Ok(render(&models, &stats, &root))
}

fn render(models: &[ModelRow], stats: &StatsView, root: &str) -> Html<String> {
    let body = html! {
        h1 { "Models" }
        p.lead { "Every model in the registry, its newest version and what storing it costs after deduplication and deltas." }
        div.stats {
            (stat("models", html! { (stats.names) }))
            (stat("versions", html! { (stats.versions) }))
            (stat("logical", bytes(stats.logical_bytes)))
            (stat("stored", bytes(stats.stored_bytes)))
            (stat("saving", html! { (units::ratio(stats.logical_bytes, stats.stored_bytes)) }))
        }
        section.card {
            @if models.is_empty() {
                p { "No models yet. Push one with " code { "reg push FILE" } "; it appears here at once." }
            } @else {
                table.sortable #models {
                    thead { tr {
                        th { "model" } th.num { "versions" } th { "latest" } th.num { "epoch" } th.num { "step" }
                        th { "best score" } th.num { "logical" } th.num { "stored" } th.num { "saving" } th { "pushed" }
                    } }
                    tbody {
                        @for m in models {
                            tr {
                                td { a href=(urls::model(&m.name)) { strong { (m.name) } } }
                                td.num data-v=(m.versions) { (m.versions) }
                                td { a href=(urls::version(&m.name, &format!("v{}", m.latest))) { "v" (m.latest) } }
                                td.num data-v=[m.latest_epoch] { (layout::opt(m.latest_epoch)) }
                                td.num data-v=[m.latest_step] { (layout::opt(m.latest_step)) }
                                @match &m.best {
                                    Some(b) => td data-v=(b.value) {
                                        span.best { (units::number(b.value)) }
                                        " " span.muted { (b.metric) " (" (b.mode) ") at " }
                                        a href=(urls::version(&m.name, &format!("v{}", b.number))) { "v" (b.number) }
                                    },
                                    None => td.muted { "–" },
                                }
                                td.num data-v=(m.logical) { (bytes(m.logical)) }
                                td.num data-v=(m.stored) { (bytes(m.stored)) }
                                td.num data-v=(if m.stored > 0 { m.logical as f64 / m.stored as f64 } else { 0.0 }) { (units::ratio(m.logical, m.stored)) }
                                td data-v=(m.latest_created) { (time(m.latest_created)) }
                            }
                        }
                    }
                }
                p.muted { "Stored: the blob files a model's versions need, each counted once (blobs shared with other models are counted for each)." }
            }
        }
    };
    page("Models", &[], Some(root), body)
}
