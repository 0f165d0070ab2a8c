//! A tiny inline SVG chart: readable without JavaScript, no chart library.

use leptos::prelude::*;

const W: f64 = 96.0;
const H: f64 = 20.0;

/// SVG polyline points for `values`, scaled to the box (pure, for tests).
pub fn points(values: &[i64]) -> String {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 {
        W / (values.len() - 1) as f64
    } else {
        0.0
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                H - 1.0 - (*v as f64 / max) * (H - 2.0)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[component]
pub fn Sparkline(values: Vec<i64>, #[prop(into)] label: String) -> impl IntoView {
    view! {
        <svg class="sparkline" width=W height=H viewBox=format!("0 0 {W} {H}") role="img" aria-label=label>
            <polyline points=points(&values) fill="none" stroke="currentColor" stroke-width="1.5"/>
        </svg>
    }
}

#[cfg(test)]
mod tests {
    use super::points;

    #[test]
    fn scales_to_the_box() {
        assert_eq!(points(&[0, 2]), "0.0,19.0 96.0,1.0");
        assert_eq!(points(&[0, 0]), "0.0,19.0 96.0,19.0");
    }
}
