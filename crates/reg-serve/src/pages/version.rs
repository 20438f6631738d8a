//! `/m/NAME/REF`: what `reg show` shows (metadata, hyperparameters,
//! optimizer and scheduler, the checkpoint callback, tensors with their
//! stored size and codec) and download links.

use super::layout::{self, bytes, compact, page, stat, time, Crumb};
use crate::api::bad_path;
use crate::failure::Failure;
use crate::state::AppState;
use crate::urls;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Html;
use maud::{html, Markup};
use reg_registry::report::{ShowView, TensorsView};
use serde_json::Value;
use std::collections::HashMap;

/// How one blob is stored.
struct BlobFacts {
    codec: &'static str,
    stored: u64,
    delta: bool,
}

struct Gathered {
    view: ShowView,
    note: Option<String>,
    blobs: HashMap<String, BlobFacts>,
    numbers: Vec<u32>,
}

/// `/m/NAME/REF`.
pub async fn handler(
    State(state): State<AppState>,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Html<String>, Failure> {
    let Path((name, reference)) = params.map_err(|e| bad_path(e).page())?;
    let wanted = urls::path_ref(&name, &reference).map_err(Failure::page)?;
    let g = state
        .access
        .read(move |reg| {
            let v = reg.resolve(&wanted)?;
            let view = reg.show_view(&v)?;
            let mut blobs = HashMap::new();
            let tensor_blobs = v.manifest.tensors.iter().filter_map(|t| t.blob).chain(
                v.manifest
                    .tree
                    .iter()
                    .flat_map(|t| t.tensors.iter().flat_map(|t| t.chunks.iter().map(|c| c.blob))),
            );
            for blob in tensor_blobs {
                if blobs.contains_key(&blob.to_hex()) {
                    continue;
                }
                let facts = match (reg.store().describe(blob), reg.store().stored_len(blob)) {
                    (Ok(info), Ok(stored)) => BlobFacts {
                        codec: info.codec.name(),
                        stored,
                        delta: info.parent.is_some(),
                    },
                    _ => BlobFacts {
                        codec: "missing",
                        stored: 0,
                        delta: false,
                    },
                };
                blobs.insert(blob.to_hex(), facts);
            }
            let numbers = reg.versions(&v.manifest.name)?.iter().map(|r| r.number.get()).collect();
            Ok(Gathered {
                view,
                note: v.note,
                blobs,
                numbers,
            })
        })
        .await
        .map_err(Failure::page)?;
    let root = state.access.root().display().to_string();
    Ok(render(&g, &root))
}

fn render(g: &Gathered, root: &str) -> Html<String> {
    let v = &g.view;
    let spec = urls::spec(&v.name, v.version);
    let previous = g.numbers.iter().copied().filter(|n| *n < v.version).max();
    let next = g.numbers.iter().copied().filter(|n| *n > v.version).min();
    let latest = g.numbers.iter().copied().max().unwrap_or(v.version);
    let vlink = |n: u32| urls::version(&v.name, &format!("v{n}"));
    let body = html! {
        h1 {
            (v.name) "@v" (v.version)
            span.sub.mono title=(v.id) { (&v.id[..16.min(v.id.len())]) }
            " " @for t in &v.tags { span.pill { (t) } }
            @if v.optimizer_dropped.is_some() { span.pill.warn { "weights only" } }
        }
        @if let Some(n) = &g.note { p.lead { (n) } }
        div.actions {
            a.button.primary href=(urls::pull(&spec, None)) download { "Download " (v.source) " (" (crate::units::bytes(v.size)) ")" }
            @if v.format != "safetensors" {
                a.button href=(urls::pull(&spec, Some("weights_only=1"))) download { "weights only" }
            }
            a.button href=(urls::pull(&spec, Some("format=safetensors"))) download { "safetensors" }
            a.button href=(urls::api_show(&spec)) { "show JSON" }
            @if let Some(p) = previous {
                a.button href=(urls::diff(&urls::spec(&v.name, p), &spec)) { "diff with v" (p) }
            }
            @if latest != v.version {
                a.button href=(urls::diff(&spec, &urls::spec(&v.name, latest))) { "diff with latest (v" (latest) ")" }
            }
        }
        p.muted {
            @if let Some(p) = previous { a href=(vlink(p)) { "← v" (p) } " · " }
            a href=(urls::model(&v.name)) { "all versions" }
            @if let Some(n) = next { " · " a href=(vlink(n)) { "v" (n) " →" } }
            " · permalink " a href=(urls::version(&v.name, &v.id[..12.min(v.id.len())])) { code { (&v.id[..12.min(v.id.len())]) } }
        }
        div.stats {
            (stat("size", bytes(v.size)))
            (stat("stored", bytes(v.stored.stored_bytes)))
            (stat("blobs", html! { (v.stored.blobs) }))
            (stat("deltas", html! { (v.stored.deltas) @if v.stored.deltas > 0 { span.muted { " (chain ≤ " (v.stored.longest_chain) ")" } } }))
            (stat("epoch", html! { (v.epoch.as_ref().map(|e| e.to_string()).unwrap_or_else(|| "-".into())) }))
            (stat("step", html! { (layout::opt(v.meta.global_step)) }))
            (stat("tensors", html! { (v.tensors.len()) }))
        }
        div.grid {
            section.card { h2 { "Checkpoint" } (checkpoint(v)) }
            section.card #hparams {
                h2 { "Hyperparameters" }
                @match &v.meta.hyper_parameters {
                    Some(h) => (kv_table(&flatten(h))),
                    None => p.muted { "None saved." },
                }
                @if let Some(d) = &v.meta.datamodule_hyper_parameters {
                    h3 { "datamodule" }
                    (kv_table(&flatten(d)))
                }
            }
        }
        @if !v.meta.optimizers.is_empty() || !v.meta.schedulers.is_empty() {
            section.card #optimizer {
                h2 { "Optimizer and schedulers" }
                @for (i, o) in v.meta.optimizers.iter().enumerate() {
                    h3 { "optimizer " (i) ": " (o.kind) }
                    (param_groups(&o.param_groups))
                    p.muted { (o.params_with_state) " parameters with state: " (o.state_keys.join(", ")) }
                }
                @for (i, s) in v.meta.schedulers.iter().enumerate() {
                    h3 { "scheduler " (i) ": " (s.kind) }
                    (kv_table(&flatten(&s.state)))
                }
            }
        }
        @if let Some(md) = &v.meta.safetensors_metadata {
            section.card { h2 { "safetensors metadata" } (kv_table(&flatten(md))) }
        }
        @if let (Some(layout), Some(files)) = (&v.layout, &v.files) {
            section.card #files {
                h2 { "Files" span.sub.muted { " " (files.len()) " files, " (layout.name()) " layout" } }
                table.sortable {
                    thead { tr { th { "path" } th.num { "size" } th { "format" } th.num { "tensors" } } }
                    tbody {
                        @for f in files {
                            tr {
                                td.path { a href=(urls::pull_file(&spec, &f.path)) download { (f.path) } }
                                td.num data-v=(f.size) { (bytes(f.size)) }
                                td.mono { (f.format) }
                                td.num { (f.tensors) }
                            }
                        }
                    }
                }
                p.muted { "The download button above gives the whole directory as one tar file." }
            }
        }
        section.card #tensors {
            h2 { "Tensors" span.sub.muted { " " (v.tensors.len()) " in " (v.storages) " storages" } }
            input type="search" placeholder="filter tensors" data-filter="tensor-table" hidden;
            table.sortable #tensor-table {
                thead { tr {
                    th { "path" } th { "dtype" } th { "shape" } th { "role" } th.num { "stored" } th { "codec" } th { "storage" }
                } }
                tbody {
                    @if let TensorsView::Directory(logical) = &v.tensors {
                        @for t in logical {
                            @let stored: u64 = t.chunks.iter().filter_map(|c| g.blobs.get(&c.blob)).map(|b| b.stored).sum();
                            @let deltas = t.chunks.iter().filter_map(|c| g.blobs.get(&c.blob)).filter(|b| b.delta).count();
                            tr {
                                td.path title=(t.path) { (t.path) }
                                td.mono { (t.dtype) }
                                td.mono data-v=(t.shape.iter().product::<u64>()) { (shape(&t.shape)) }
                                td { (role(t.role)) }
                                td.num data-v=(stored) { (bytes(stored)) }
                                td {
                                    @if deltas > 0 { span.pill.delta { (deltas) " delta" } } @else { span.pill.whole { "whole" } }
                                }
                                td.mono.muted { (t.chunks.len()) " chunk" @if t.chunks.len() != 1 { "s" } }
                            }
                        }
                    }
                    @for t in file_tensors(&v.tensors) {
                        @let b = t.blob.and_then(|id| g.blobs.get(&id.to_hex()));
                        tr {
                            td.path title=(t.path) { (t.path) }
                            td.mono { (t.dtype.name()) }
                            td.mono data-v=(t.shape.iter().product::<u64>()) { (shape(&t.shape)) }
                            td { (role(t.role)) }
                            td.num data-v=[b.map(|b| b.stored)] { @if let Some(b) = b { (bytes(b.stored)) } }
                            td {
                                @if let Some(b) = b {
                                    @if b.delta { span.pill.delta { "delta" } } @else { span.pill.whole { (b.codec) } }
                                }
                            }
                            @if t.meta {
                                td.mono.muted title="on the meta device: no storage" { "meta" }
                            } @else {
                                td.mono.muted title=[t.blob.map(|id| id.to_hex())] { (t.storage_key) }
                            }
                        }
                    }
                }
            }
            p.muted { "A storage's blob may be shared by several tensors (tied weights, views) and by other versions; its stored size is that of its blob file." }
        }
    };
    page(
        &format!("{}", reg_format::VersionLabel::new(&v.name, v.version)),
        &[
            Crumb::link(v.name.clone(), urls::model(&v.name)),
            Crumb::here(format!("v{}", v.version)),
        ],
        Some(root),
        body,
    )
}

fn checkpoint(v: &ShowView) -> Markup {
    let unsafe_globals: Vec<&reg_ckpt::safety::GlobalVerdict> = reg_ckpt::safety::not_safe(&v.globals).collect();
    html! {
        table.kv {
            tr { th { "source" } td { (v.source) } }
            tr { th { "format" } td { (v.format) } }
            tr { th { "pushed" } td { (time(v.created)) } }
            @if let Some(m) = &v.message { tr { th { "message" } td { (m) } } }
            tr { th { "blake3" } td { (v.blake3) } }
            @if let Some(l) = &v.meta.lightning_version { tr { th { "Lightning" } td { (l) } } }
            @if let Some(h) = &v.meta.hparams_name { tr { th { "hparams_name" } td { (h) } } }
            tr { th { "top-level keys" } td { (v.meta.top_keys.join(", ")) } }
            @if let Some(mc) = &v.meta.model_checkpoint {
                tr { th { "monitor" } td { (mc.monitor.as_deref().unwrap_or("–")) " (" (mc.mode.as_deref().unwrap_or("–")) ")" } }
                tr { th { "current score" } td { (mc.current_score.map(crate::units::number).unwrap_or_else(|| "–".into())) } }
                tr { th { "best score" } td { (mc.best_model_score.map(crate::units::number).unwrap_or_else(|| "–".into())) } }
                @if let Some(p) = &mc.best_model_path { tr { th { "best path" } td { (p) } } }
            }
            @if let Some(d) = &v.optimizer_dropped {
                tr { th { "retention" } td { "optimizer state dropped " (time(d.when)) "; was " (bytes(d.size)) } }
            }
            @if !unsafe_globals.is_empty() {
                tr { th { "globals" } td {
                    @for g in &unsafe_globals {
                        span.pill.bad[g.verdict == reg_ckpt::safety::Verdict::Dangerous].warn[g.verdict != reg_ckpt::safety::Verdict::Dangerous] { (g.global) }
                    }
                } }
            }
        }
    }
}

fn role(r: reg_ckpt::tensors::Role) -> &'static str {
    match r {
        reg_ckpt::tensors::Role::Weight => "weight",
        reg_ckpt::tensors::Role::Optimizer => "optimizer",
        reg_ckpt::tensors::Role::Other => "other",
    }
}

fn shape(s: &[u64]) -> String {
    let parts: Vec<String> = s.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// Nested objects as `a.b.c = value` rows (lists, scalars and floats,
/// NaN and infinities included, as values).
pub fn flatten(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), v)];
    while let Some((path, v)) = stack.pop() {
        match reg_ckpt::exact_json::as_object(v) {
            Some(map) if !map.is_empty() => {
                for (k, child) in map.iter().rev() {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    stack.push((p, child));
                }
            }
            _ => out.push((if path.is_empty() { "(value)".into() } else { path }, compact(v))),
        }
    }
    out
}

fn kv_table(rows: &[(String, String)]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.muted { "Empty." }
        } @else {
            table.kv { @for (k, val) in rows { tr { th { (k) } td { (val) } } } }
        }
    }
}

/// Param groups side by side: one column per group, one row per setting.
fn param_groups(groups: &[Value]) -> Markup {
    let mut keys: Vec<&String> = Vec::new();
    for g in groups {
        if let Some(obj) = g.as_object() {
            for k in obj.keys() {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
    }
    html! {
        table.kv {
            thead { tr { th { "setting" } @for i in 0..groups.len() { th { "group " (i) } } } }
            tbody {
                @for k in &keys {
                    tr {
                        th { (k) }
                        @for g in groups {
                            td { (g.get(k.as_str()).map(compact).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

/// The tensors of a file version (none for a directory version).
fn file_tensors(t: &TensorsView) -> &[reg_registry::report::TensorView] {
    match t {
        TensorsView::File(t) => t,
        TensorsView::Directory(_) => &[],
    }
}
