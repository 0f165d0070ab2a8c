//! Line charts as inline SVG, rendered on the server: readable without
//! JavaScript, no chart library to keep up to date.

use leptos::prelude::*;

use crate::format::ms_time;

const W: f64 = 640.0;
const H: f64 = 180.0;
/// Room for the y labels on the left and the time labels below.
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: &'static str,
    /// CSS class giving the stroke colour (`s1`, `s2`, `s3`).
    pub class: &'static str,
    /// `(unix ms, value)`, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// A y-axis top that reads well: 1, 2, 5 × 10ⁿ at or above `max`.
pub fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * magnitude)
}

/// SVG polyline points for one series over `[from, to]` and `[0, ymax]`.
pub fn polyline(points: &[(i64, f64)], from: i64, to: i64, ymax: f64) -> String {
    let span = (to - from).max(1) as f64;
    points
        .iter()
        .map(|(at, v)| {
            let x = LEFT + (*at - from) as f64 / span * (W - LEFT);
            let y = TOP + (1.0 - v / ymax) * (H - TOP - BOTTOM);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn label(v: f64) -> String {
    if v >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[component]
pub fn LineChart(series: Vec<Series>, from: i64, to: i64, #[prop(into)] title: String) -> impl IntoView {
    let has_data = series.iter().any(|s| !s.points.is_empty());
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let ymax = nice_max(max);
    let plot_bottom = H - BOTTOM;
    let mid_y = TOP + (plot_bottom - TOP) / 2.0;
    let legend = series
        .iter()
        .map(|s| view! { <span class=format!("legend {}", s.class)>{s.label}</span> })
        .collect_view();
    let lines = series
        .into_iter()
        .map(|s| {
            view! {
                <polyline class=format!("line {}", s.class) points=polyline(&s.points, from, to, ymax) fill="none"/>
            }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <figcaption>{title.clone()}" "{legend}</figcaption>
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=title preserveAspectRatio="none">
                <line class="grid" x1=LEFT y1=TOP x2=W y2=TOP/>
                <line class="grid" x1=LEFT y1=mid_y x2=W y2=mid_y/>
                <line class="axis" x1=LEFT y1=plot_bottom x2=W y2=plot_bottom/>
                <text class="tick" x=LEFT - 4.0 y=TOP + 4.0 text-anchor="end">{label(ymax)}</text>
                <text class="tick" x=LEFT - 4.0 y=mid_y + 4.0 text-anchor="end">{label(ymax / 2.0)}</text>
                <text class="tick" x=LEFT - 4.0 y=plot_bottom text-anchor="end">"0"</text>
                <text class="tick" x=LEFT y=H - 4.0>{ms_time(from)}</text>
                <text class="tick" x=W y=H - 4.0 text-anchor="end">{ms_time(to)}" UTC"</text>
                {lines}
            </svg>
            {(!has_data).then(|| view! { <p class="muted">"No samples in this window yet."</p> })}
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(10.0), 10.0);
        assert_eq!(nice_max(1234.0), 2000.0);
    }

    #[test]
    fn points_span_the_plot() {
        assert_eq!(
            polyline(&[(0, 0.0), (100, 10.0)], 0, 100, 10.0),
            "48.0,160.0 640.0,8.0"
        );
    }
}
