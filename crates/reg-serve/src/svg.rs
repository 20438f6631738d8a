//! Plots as inline SVG, drawn on the server: a line of scores over epochs,
//! grouped bars of bytes per version, and horizontal bars of how much each
//! tensor changed (log scale). Colours come from the page's CSS classes, so
//! they follow light and dark mode; every mark has a `<title>` (a tooltip
//! without script) and may link somewhere.

use crate::units;
use maud::{html, Markup};

/// Width of the line and bar charts (they shrink with the page, never grow).
const W: f64 = 640.0;
/// Width of the tensor-change chart.
const CW: f64 = 1100.0;

/// A power of ten as a tick label: `0.001` .. `1000`, else `1e-6`.
fn decade(d: i32) -> String {
    match d {
        -3..=-1 => format!("{}", 10f64.powi(d)),
        0..=3 => format!("{}", 10i64.pow(d.unsigned_abs())),
        _ => format!("1e{d}"),
    }
}

/// One point of a line chart.
pub struct Point {
    /// Position on x.
    pub x: f64,
    /// Position on y.
    pub y: f64,
    /// Tooltip.
    pub title: String,
    /// Where clicking the point goes.
    pub href: Option<String>,
    /// Drawn highlighted (the best score).
    pub best: bool,
}

/// A round step of about `range / target`: 1, 2 or 5 times a power of 10.
fn nice_step(range: f64, target: f64) -> f64 {
    let raw = (range / target).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Ticks covering `lo..hi`: the rounded bounds and the values between.
fn ticks(lo: f64, hi: f64, target: f64, min_step: f64) -> (f64, f64, Vec<f64>) {
    let (lo, hi) = if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    } else {
        (lo, hi)
    };
    let step = nice_step(hi - lo, target).max(min_step);
    let start = (lo / step).floor() * step;
    let end = (hi / step).ceil() * step;
    let mut out = Vec::new();
    let mut t = start;
    while t <= end + step * 1e-9 && out.len() < 50 {
        out.push(t);
        t += step;
    }
    (start, end, out)
}

fn fmt_tick(x: f64, step: f64) -> String {
    if step >= 1.0 && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        units::number(x)
    }
}

/// Scores (y) over epochs (x). `integer_x`: ticks on whole numbers only.
pub fn line_chart(points: &[Point], x_title: &str, y_title: &str, integer_x: bool) -> Markup {
    let h = 250.0;
    let (left, right, top, bottom) = (64.0, 18.0, 14.0, 42.0);
    let (pw, ph) = (W - left - right, h - top - bottom);
    let xs = points.iter().map(|p| p.x);
    let ys = points.iter().map(|p| p.y).filter(|y| y.is_finite());
    let (x0, x1) = (
        xs.clone().fold(f64::INFINITY, f64::min),
        xs.fold(f64::NEG_INFINITY, f64::max),
    );
    let (y0, y1) = (
        ys.clone().fold(f64::INFINITY, f64::min),
        ys.fold(f64::NEG_INFINITY, f64::max),
    );
    if !x0.is_finite() || !y0.is_finite() {
        return html! { p.muted { "No scores to plot." } };
    }
    let (xa, xb, xt) = ticks(x0, x1, 8.0, if integer_x { 1.0 } else { 0.0 });
    let (ya, yb, yt) = ticks(y0, y1, 5.0, 0.0);
    let ystep = yt.get(1).map(|t| t - yt[0]).unwrap_or(1.0);
    let xstep = xt.get(1).map(|t| t - xt[0]).unwrap_or(1.0);
    let sx = |x: f64| left + (x - xa) / (xb - xa) * pw;
    let sy = |y: f64| top + ph - (y - ya) / (yb - ya) * ph;
    let line: Vec<String> = points
        .iter()
        .filter(|p| p.y.is_finite())
        .map(|p| format!("{:.1},{:.1}", sx(p.x), sy(p.y)))
        .collect();
    html! {
        svg.plot.line width=(W) height=(h) viewBox={ "0 0 " (W) " " (h) } role="img" aria-label={ (y_title) " over " (x_title) } {
            @for t in &yt {
                line.grid x1=(left) x2=(W - right) y1=(fmt1(sy(*t))) y2=(fmt1(sy(*t))) {}
                text x=(left - 8.0) y=(fmt1(sy(*t) + 4.0)) text-anchor="end" { (fmt_tick(*t, ystep)) }
            }
            @for t in &xt {
                text x=(fmt1(sx(*t))) y=(h - bottom + 16.0) text-anchor="middle" { (fmt_tick(*t, xstep)) }
            }
            line.axis x1=(left) x2=(W - right) y1=(top + ph) y2=(top + ph) {}
            text x=(left + pw / 2.0) y=(h - 6.0) text-anchor="middle" { (x_title) }
            text transform={ "translate(14," (fmt1(top + ph / 2.0)) ") rotate(-90)" } text-anchor="middle" { (y_title) }
            polyline.series points=(line.join(" ")) {}
            @for p in points.iter().filter(|p| p.y.is_finite()) {
                (link(p.href.as_deref(), html! {
                    circle.point.best[p.best] cx=(fmt1(sx(p.x))) cy=(fmt1(sy(p.y))) r=(if p.best { 5.5 } else { 4.0 }) {
                        title { (p.title) }
                    }
                }))
            }
        }
    }
}

fn fmt1(x: f64) -> String {
    format!("{x:.1}")
}

fn link(href: Option<&str>, inner: Markup) -> Markup {
    match href {
        Some(h) => html! { a href=(h) { (inner) } },
        None => inner,
    }
}

/// One bar of a group.
pub struct Bar {
    /// CSS class (its colour).
    pub class: &'static str,
    /// Bytes.
    pub value: u64,
    /// Tooltip.
    pub title: String,
}

/// Bars side by side for one version.
pub struct BarGroup {
    /// Label under the group.
    pub label: String,
    /// Where clicking goes.
    pub href: Option<String>,
    /// The bars.
    pub bars: Vec<Bar>,
}

/// Grouped bars of byte counts (one group per version).
pub fn byte_bars(groups: &[BarGroup]) -> Markup {
    let h = 250.0;
    let (left, right, top, bottom) = (70.0, 12.0, 14.0, 34.0);
    let (pw, ph) = (W - left - right, h - top - bottom);
    let max = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.value))
        .max()
        .unwrap_or(0);
    if groups.is_empty() || max == 0 {
        return html! { p.muted { "Nothing stored yet." } };
    }
    // Ticks in the unit of the largest value.
    let mut unit = 1u64;
    let names = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut name = names[0];
    for (i, n) in names.iter().enumerate().skip(1) {
        let u = 1u64 << (10 * i);
        if max >= u {
            unit = u;
            name = n;
        }
    }
    let (_, top_value, yt) = ticks(0.0, max as f64 / unit as f64, 5.0, 0.0);
    let ystep = yt.get(1).map(|t| t - yt[0]).unwrap_or(1.0);
    let sy = |v: f64| top + ph - v / top_value * ph;
    let slot = pw / groups.len() as f64;
    let per = groups.iter().map(|g| g.bars.len()).max().unwrap_or(1).max(1) as f64;
    let bar_w = (slot * 0.8 / per).min(28.0);
    let label_every = (groups.len() as f64 / 16.0).ceil().max(1.0) as usize;
    html! {
        svg.plot.bars width=(W) height=(h) viewBox={ "0 0 " (W) " " (h) } role="img" aria-label="bytes per version" {
            @for t in &yt {
                line.grid x1=(left) x2=(W - right) y1=(fmt1(sy(*t))) y2=(fmt1(sy(*t))) {}
                text x=(left - 8.0) y=(fmt1(sy(*t) + 4.0)) text-anchor="end" { (fmt_tick(*t, ystep)) " " (name) }
            }
            line.axis x1=(left) x2=(W - right) y1=(top + ph) y2=(top + ph) {}
            @for (i, g) in groups.iter().enumerate() {
                @let x0 = left + slot * i as f64 + (slot - bar_w * g.bars.len() as f64) / 2.0;
                (link(g.href.as_deref(), html! {
                    g {
                        @for (k, b) in g.bars.iter().enumerate() {
                            @let y = sy(b.value as f64 / unit as f64);
                            rect class=(b.class) x=(fmt1(x0 + bar_w * k as f64)) y=(fmt1(y)) width=(fmt1(bar_w - 1.0)) height=(fmt1((top + ph - y).max(0.5))) {
                                title { (g.label) ": " (b.title) }
                            }
                        }
                    }
                }))
                @if i % label_every == 0 {
                    text x=(fmt1(left + slot * (i as f64 + 0.5))) y=(h - bottom + 16.0) text-anchor="middle" { (g.label) }
                }
            }
        }
    }
}

/// How one tensor changed.
pub enum Change {
    /// Relative L2 change ‖b − a‖ / ‖a‖.
    RelL2(f64),
    /// Changed from all zeros (no relative change).
    FromZero,
    /// Same bytes and view.
    Identical,
    /// Changed without a number (dtype or shape, or a dtype --stats skips).
    Other(String),
}

/// One row of the tensor-change chart.
pub struct ChangeRow {
    /// A layer heading drawn above this row, when it starts a layer.
    pub group: Option<String>,
    /// The tensor's name within its layer.
    pub label: String,
    /// Its full path (tooltip).
    pub title: String,
    /// How it changed.
    pub change: Change,
    /// CSS class of its bar (`weight` or other roles).
    pub class: &'static str,
}

/// Horizontal bars of relative change per tensor, log scale, grouped by
/// layer; identical tensors get a ring and the word "identical".
pub fn change_bars(rows: &[ChangeRow]) -> Markup {
    let (row_h, group_h, axis_h) = (22.0, 26.0, 28.0);
    let (label_w, value_w) = (330.0, 80.0);
    let (bx, bw) = (label_w + 10.0, CW - label_w - 10.0 - value_w);
    let values: Vec<f64> = rows
        .iter()
        .filter_map(|r| match r.change {
            Change::RelL2(v) if v > 0.0 && v.is_finite() => Some(v),
            _ => None,
        })
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (d0, d1) = if lo.is_finite() {
        let a = lo.log10().floor();
        let b = hi.log10().ceil().max(a + 2.0);
        (a, b)
    } else {
        (-4.0, 0.0)
    };
    let scale = |v: f64| -> f64 {
        if v <= 0.0 || !v.is_finite() {
            return 1.0;
        }
        ((v.log10() - d0) / (d1 - d0)).clamp(0.0, 1.0) * bw
    };
    let groups = rows.iter().filter(|r| r.group.is_some()).count() as f64;
    let h = axis_h + rows.len() as f64 * row_h + groups * group_h + 6.0;
    let mut y = axis_h;
    let mut marks = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(g) = &r.group {
            marks.push(html! {
                text.group x="2" y=(fmt1(y + group_h - 7.0)) { (g) }
            });
            y += group_h;
        }
        let mid = y + row_h / 2.0;
        let label: String = if r.label.chars().count() > 44 {
            let head: String = r.label.chars().take(43).collect();
            format!("{head}…")
        } else {
            r.label.clone()
        };
        let bar = match &r.change {
            Change::RelL2(v) => html! {
                rect.track x=(bx) y=(fmt1(y + 3.0)) width=(bw) height=(row_h - 6.0) {}
                rect class={ "change " (r.class) } x=(bx) y=(fmt1(y + 3.0)) width=(fmt1(scale(*v).max(1.5))) height=(row_h - 6.0) {
                    title { (r.title) ": relative L2 change " (units::number(*v)) }
                }
                text.value x=(CW - value_w + 6.0) y=(fmt1(mid + 4.0)) { (units::number(*v)) }
            },
            Change::FromZero => html! {
                rect.track x=(bx) y=(fmt1(y + 3.0)) width=(bw) height=(row_h - 6.0) {}
                text.value x=(CW - value_w + 6.0) y=(fmt1(mid + 4.0)) { "from 0" title { (r.title) ": was all zeros" } }
            },
            Change::Identical => html! {
                circle.same cx=(bx + 6.0) cy=(fmt1(mid)) r="4.5" { title { (r.title) ": identical (same blob)" } }
                text.same x=(bx + 16.0) y=(fmt1(mid + 4.0)) { "identical" }
            },
            Change::Other(what) => html! {
                text.value x=(bx + 4.0) y=(fmt1(mid + 4.0)) { (what) title { (r.title) ": " (what) } }
            },
        };
        marks.push(html! {
            text.label x="16" y=(fmt1(mid + 4.5)) { (label) title { (r.title) } }
            (bar)
        });
        y += row_h;
    }
    let decades: Vec<i32> = ((d0 as i32)..=(d1 as i32)).collect();
    html! {
        svg.plot.changes width=(CW) height=(fmt1(h)) viewBox={ "0 0 " (CW) " " (fmt1(h)) } role="img" aria-label="relative L2 change per tensor" {
            @for d in &decades {
                @let x = bx + (f64::from(*d) - d0) / (d1 - d0) * bw;
                line.grid x1=(fmt1(x)) x2=(fmt1(x)) y1=(axis_h - 4.0) y2=(fmt1(h - 4.0)) {}
                text x=(fmt1(x)) y="14" text-anchor="middle" { (decade(*d)) }
            }
            text x="2" y="14" { "relative L2 change (log scale)" }
            @for m in &marks { (m) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks() {
        let (lo, hi, t) = ticks(0.13, 0.87, 5.0, 0.0);
        assert!(
            lo <= 0.13 && hi >= 0.87 && t.len() >= 4 && t.len() <= 11,
            "{lo} {hi} {t:?}"
        );
        let (_, _, t) = ticks(0.0, 3.0, 8.0, 1.0);
        assert!(t.iter().all(|x| x.fract() == 0.0), "{t:?}");
        let (lo, hi, _) = ticks(2.0, 2.0, 5.0, 0.0);
        assert!(lo < 2.0 && hi > 2.0);
    }

    #[test]
    fn text_is_escaped() {
        let p = Point {
            x: 1.0,
            y: 2.0,
            title: "<script>alert(1)</script>".into(),
            href: Some("/m/\"x".into()),
            best: false,
        };
        let svg = line_chart(&[p], "epoch", "loss", true).into_string();
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;") && svg.contains("&quot;x"));
    }
}
