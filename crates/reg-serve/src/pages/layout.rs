//! The frame every page shares, and small pieces of markup used by all.

use crate::units;
use axum::response::Html;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// One step of the breadcrumb trail: text and, except for the last, a link.
pub struct Crumb {
    /// Shown text.
    pub text: String,
    /// Link.
    pub href: Option<String>,
}

impl Crumb {
    /// A crumb that links.
    pub fn link(text: impl Into<String>, href: impl Into<String>) -> Crumb {
        Crumb {
            text: text.into(),
            href: Some(href.into()),
        }
    }

    /// The current page.
    pub fn here(text: impl Into<String>) -> Crumb {
        Crumb {
            text: text.into(),
            href: None,
        }
    }
}

/// A whole page.
pub fn page(title: &str, crumbs: &[Crumb], root: Option<&str>, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · reg" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/static/reg.css";
            }
            body {
                header.top {
                    a.brand href="/" { "reg" span { " serve" } }
                    nav {
                        a href="/" { "models" }
                        @for c in crumbs {
                            (PreEscaped(" / "))
                            @match &c.href {
                                Some(h) => a href=(h) { (c.text) },
                                None => a aria-current="page" { (c.text) },
                            }
                        }
                    }
                    @if let Some(r) = root {
                        span.where title="registry" { code { (r) } }
                    }
                }
                main { (body) }
                footer { "reg serve · read-only · " a href="/api/ls" { "JSON" } }
                script src="/static/reg.js" defer {}
            }
        }
    };
    Html(markup.into_string())
}

/// The page of a failed request: the one-line message `reg` would print.
pub fn error_page(title: &str, message: &str) -> Html<String> {
    page(
        title,
        &[Crumb::here(title)],
        None,
        html! {
            section.card.error {
                h1 { (title) }
                p { (message) }
                p.muted { a href="/" { "All models" } }
            }
        },
    )
}

/// A Unix time: UTC in the page, the viewer's zone once the script runs.
pub fn time(secs: u64) -> Markup {
    html! { time datetime=(units::iso_time(secs)) { (units::utc_time(secs)) } }
}

/// A byte count in human units, exact in the tooltip; `data-v` sorts it.
pub fn bytes(n: u64) -> Markup {
    html! { span title={ (n) " bytes" } { (units::bytes(n)) } }
}

/// A labelled number for the stats row.
pub fn stat(key: &str, value: Markup) -> Markup {
    html! { div.stat { div.v { (value) } div.k { (key) } } }
}

/// An optional integer, or a dash.
pub fn opt(v: Option<i64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "–".into())
}

/// Compact JSON of a value (hyperparameters, settings); a float NaN or
/// infinity as the bare `nan`, `inf`, `-inf` ([`reg_ckpt::exact_json::to_text`]).
pub fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => reg_ckpt::exact_json::to_text(other),
    }
}
