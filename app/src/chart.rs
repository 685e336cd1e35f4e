//! Metric charts as inline SVG: the server renders them, so a chart is visible before the bundle
//! loads. Each run's downsampled buckets give a faint min/max band and a line through each bucket's
//! last value, smoothed with a debiased EMA (as TensorBoard and W&B do), by step or by elapsed time.

use crucible_types::MetricSeries;
use leptos::prelude::*;

/// Colours of overlaid runs, in order.
pub const PALETTE: [&str; 9] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f",
    "#475569",
];

const W: f64 = 640.0;
const H: f64 = 240.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// What the x-axis measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Training step.
    Step,
    /// Minutes since the run's first point.
    Time,
}

/// One run's series in a chart.
#[derive(Debug, Clone)]
pub struct Line {
    /// Colour of the line.
    pub color: &'static str,
    /// The series.
    pub series: MetricSeries,
}

/// SVG paths of one line.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePaths {
    /// Colour.
    pub color: &'static str,
    /// Min/max band of the buckets (closed polygon).
    pub band: String,
    /// The unsmoothed line (drawn faint when smoothing is on).
    pub raw: String,
    /// The smoothed line.
    pub smooth: String,
}

/// Everything the chart draws, in SVG user units.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartLayout {
    /// One entry per line with data.
    pub lines: Vec<LinePaths>,
    /// Positions and labels of the x ticks.
    pub x_ticks: Vec<(f64, String)>,
    /// Positions and labels of the y ticks.
    pub y_ticks: Vec<(f64, String)>,
}

/// Debiased exponential moving average: `weight` 0 is the raw series, towards 1 smoother. The
/// first values are not pulled towards zero because the average is divided by `1 − weight^t`.
pub fn smooth(values: &[f64], weight: f64) -> Vec<f64> {
    let weight = weight.clamp(0.0, 0.999);
    let mut avg = 0.0;
    let mut debias = 1.0;
    values
        .iter()
        .map(|&v| {
            avg = avg * weight + (1.0 - weight) * v;
            debias *= weight;
            avg / (1.0 - debias)
        })
        .collect()
}

/// About `count` round tick values covering `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() * step;
    (0..=count * 2 + 1)
        .map(|i| first + i as f64 * step)
        .take_while(|t| *t <= hi + step * 1e-9)
        .collect()
}

fn label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn xs(series: &MetricSeries, axis: XAxis) -> Vec<f64> {
    let start = series.buckets.first().map_or(0, |b| b.last_time_ms);
    series
        .buckets
        .iter()
        .map(|b| match axis {
            XAxis::Step => b.step_max as f64,
            XAxis::Time => (b.last_time_ms - start) as f64 / 60_000.0,
        })
        .collect()
}

fn polyline(points: impl Iterator<Item = (f64, f64)>) -> String {
    let mut d = String::new();
    for (i, (x, y)) in points.enumerate() {
        d.push_str(if i == 0 { "M" } else { " L" });
        d.push_str(&format!("{x:.1},{y:.1}"));
    }
    d
}

/// Lays out `lines` in the chart's box.
pub fn layout(lines: &[Line], axis: XAxis, weight: f64) -> ChartLayout {
    let finite = |v: &f64| v.is_finite();
    let all_x: Vec<f64> = lines.iter().flat_map(|l| xs(&l.series, axis)).collect();
    let all_y: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.series.buckets.iter().flat_map(|b| [b.min, b.max, b.last]))
        .filter(finite)
        .collect();
    if all_x.is_empty() || all_y.is_empty() {
        return ChartLayout {
            lines: Vec::new(),
            x_ticks: Vec::new(),
            y_ticks: Vec::new(),
        };
    }
    let (x_lo, mut x_hi) = bounds(&all_x);
    if x_hi <= x_lo {
        x_hi = x_lo + 1.0;
    }
    let (mut y_lo, mut y_hi) = bounds(&all_y);
    let pad = if y_hi > y_lo {
        (y_hi - y_lo) * 0.05
    } else {
        y_lo.abs().max(1.0) * 0.5
    };
    y_lo -= pad;
    y_hi += pad;
    let sx = move |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * (W - LEFT - RIGHT);
    let sy = move |y: f64| TOP + (y_hi - y) / (y_hi - y_lo) * (H - TOP - BOTTOM);
    let paths = lines
        .iter()
        .filter(|l| !l.series.buckets.is_empty())
        .map(|l| {
            let x = xs(&l.series, axis);
            let b = &l.series.buckets;
            let last: Vec<f64> = b.iter().map(|b| b.last).collect();
            let smoothed = smooth(&last, weight);
            let top = x.iter().zip(b).map(|(x, b)| (sx(*x), sy(b.max)));
            let bottom = x.iter().zip(b).rev().map(|(x, b)| (sx(*x), sy(b.min)));
            LinePaths {
                color: l.color,
                band: polyline(top.chain(bottom)) + " Z",
                raw: polyline(x.iter().zip(&last).map(|(x, y)| (sx(*x), sy(*y)))),
                smooth: polyline(x.iter().zip(&smoothed).map(|(x, y)| (sx(*x), sy(*y)))),
            }
        })
        .collect();
    ChartLayout {
        lines: paths,
        x_ticks: nice_ticks(x_lo, x_hi, 5)
            .into_iter()
            .map(|t| (sx(t), label(t)))
            .collect(),
        y_ticks: nice_ticks(y_lo, y_hi, 4)
            .into_iter()
            .map(|t| (sy(t), label(t)))
            .collect(),
    }
}

fn bounds(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// One metric's chart.
#[component]
pub fn LineChart(
    /// The metric key (title).
    title: String,
    /// One line per run.
    lines: Vec<Line>,
    /// What the x-axis measures.
    axis: XAxis,
    /// EMA weight, 0–0.99.
    smoothing: f64,
) -> impl IntoView {
    let chart = layout(&lines, axis, smoothing);
    let points: i64 = lines.iter().map(|l| l.series.total_points).sum();
    let x_name = match axis {
        XAxis::Step => "step",
        XAxis::Time => "minutes",
    };
    let smoothed = smoothing > 0.0;
    let key = title.clone();
    view! {
        <figure class="chart" data-key=key data-points=points>
            <figcaption>{title}<span class="muted">{format!(" · {points} points")}</span></figcaption>
            <svg viewBox=format!("0 0 {W} {H}") role="img">
                {chart.y_ticks.into_iter().map(|(y, l)| view! {
                    <line class="grid" x1=LEFT x2=W - RIGHT y1=y y2=y/>
                    <text class="tick" x=LEFT - 4.0 y=y + 3.0 text-anchor="end">{l}</text>
                }).collect_view()}
                {chart.x_ticks.into_iter().map(|(x, l)| view! {
                    <text class="tick" x=x y=H - BOTTOM + 14.0 text-anchor="middle">{l}</text>
                }).collect_view()}
                <text class="tick" x=W - RIGHT y=H - 2.0 text-anchor="end">{x_name}</text>
                {chart.lines.into_iter().map(|p| view! {
                    <path class="band" d=p.band fill=p.color/>
                    <path class=if smoothed { "raw faint" } else { "raw" } d=p.raw stroke=p.color/>
                    {smoothed.then(|| view! { <path class="smooth" d=p.smooth stroke=p.color/> })}
                }).collect_view()}
            </svg>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crucible_types::MetricBucket;

    fn series(points: &[(i64, f64, f64, f64)]) -> MetricSeries {
        MetricSeries {
            key: "loss".into(),
            total_points: points.len() as i64,
            buckets: points
                .iter()
                .map(|&(step, min, max, last)| MetricBucket {
                    step_min: step,
                    step_max: step,
                    min,
                    max,
                    last,
                    count: 1,
                    last_time_ms: step * 1000,
                })
                .collect(),
        }
    }

    #[test]
    fn smoothing_is_debiased_and_zero_weight_is_identity() {
        let v = [4.0, 2.0, 6.0];
        assert_eq!(smooth(&v, 0.0), v.to_vec());
        let s = smooth(&v, 0.5);
        // First value is not pulled towards 0; the second is (0.5·4·0.5 + 0.5·2) / 0.75.
        assert!((s[0] - 4.0).abs() < 1e-12);
        assert!((s[1] - (0.25 * 4.0 + 0.5 * 2.0) / 0.75).abs() < 1e-12);
        assert!(s[2] > s[1] && s[2] < 6.0);
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        let t = nice_ticks(0.13, 0.91, 4);
        assert!(t.first().unwrap() >= &0.13 && t.last().unwrap() <= &0.91);
        assert!(t.windows(2).all(|w| ((w[1] - w[0]) - 0.2).abs() < 1e-9));
    }

    #[test]
    fn layout_maps_the_extremes_to_the_plot_edges_and_bands_enclose_lines() {
        let lines = [Line {
            color: PALETTE[0],
            series: series(&[(0, 1.0, 3.0, 2.0), (10, 0.0, 1.0, 0.5)]),
        }];
        let c = layout(&lines, XAxis::Step, 0.0);
        assert_eq!(c.lines.len(), 1);
        let p = &c.lines[0];
        // Step 0 at the left edge, step 10 at the right edge.
        assert!(p.raw.starts_with(&format!("M{LEFT:.1},")));
        assert!(p.raw.contains(&format!("{:.1},", W - RIGHT)));
        assert!(p.band.ends_with(" Z"));
        // Without smoothing the smoothed path is the raw one.
        assert_eq!(p.raw, p.smooth);
        assert!(layout(&lines, XAxis::Step, 0.9).lines[0].smooth != p.raw);
        // By time, the x ticks are minutes from the first point (10 s → 0.17 min).
        let t = layout(&lines, XAxis::Time, 0.0);
        assert!(
            t.x_ticks
                .iter()
                .all(|(_, l)| l.parse::<f64>().unwrap() <= 0.17)
        );
    }

    #[test]
    fn empty_and_non_finite_series_lay_out_without_panicking() {
        assert!(layout(&[], XAxis::Step, 0.5).lines.is_empty());
        let lines = [Line {
            color: PALETTE[1],
            series: series(&[(3, f64::NAN, f64::NAN, f64::NAN)]),
        }];
        assert!(layout(&lines, XAxis::Step, 0.5).lines.is_empty());
    }
}
