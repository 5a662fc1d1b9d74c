//! `<WORKLOAD>_comparison.png`: four panels against QPS — mean TTFT, mean inter-token latency,
//! mean TPOT and output token throughput — one line per series, with a shared legend.
//!
//! Text is drawn with the DejaVu Sans embedded in the binary (plotters' `ab_glyph` backend), so
//! no system font library or font file is needed. Runs without a QPS (timed trace replay) are
//! drawn as unconnected markers at x = 0 and the x axis label says so.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::load::{RunResult, WorkloadGroup};

/// Width of the comparison PNG in pixels.
pub const WIDTH: u32 = 1600;
/// Height of the comparison PNG in pixels.
pub const HEIGHT: u32 = 1100;

/// The family name the embedded font is registered under (plotters' default family, so any
/// text plotters draws on its own finds it too).
pub const FONT_FAMILY: &str = "sans-serif";

static FONT_BYTES: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

/// Registers the embedded DejaVu Sans once per process.
pub fn ensure_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded DejaVu Sans font could not be loaded"))
    }
}

/// Tableau's ten colours (matplotlib's default cycle, which LMBench's plots used).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const MARKERS: usize = 6;

/// The ring drawn around the marker of a point whose measurement is invalid
/// (`results.measurement.valid` false): a colour no series uses.
pub const INVALID_RING: RGBColor = RGBColor(255, 0, 0);

/// The colour of series `i`.
pub fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One panel: a metric of the results against QPS (`<block>.<stat>` or a field of `results`;
/// for a point with repeats, their mean, with its 95 % confidence interval as an error bar).
struct Panel {
    title: &'static str,
    y_desc: &'static str,
    metric: &'static str,
}

impl Panel {
    fn value(&self, r: &RunResult) -> Option<f64> {
        match self.metric.split_once('.') {
            Some((block, stat)) => r.stat(block, stat),
            None => r.field(self.metric),
        }
    }
}

/// The ITL panel of a group whose results have no per-chunk ITL at all (result files written
/// by LMBench itself): its own `itl_ms`, labelled for what it is. Never mixed with the per-chunk
/// figure in one panel, since the two measure different things.
const LMBENCH_ITL_PANEL: Panel = Panel {
    title: "LMBench's itl_ms, mean: (end − send) ÷ tokens, TTFT included",
    y_desc: "itl_ms (ms)",
    metric: "itl_ms.mean",
};

const PANELS: [Panel; 4] = [
    Panel {
        title: "Time to first token (TTFT), mean",
        y_desc: "TTFT (ms)",
        metric: "ttft_ms.mean",
    },
    Panel {
        title: "Inter-token latency (ITL), mean gap between chunks",
        y_desc: "ITL (ms)",
        metric: "inter_token_latency_ms.mean",
    },
    Panel {
        title: "Time per output token (TPOT), mean",
        y_desc: "TPOT (ms)",
        metric: "tpot_ms.mean",
    },
    Panel {
        title: "Output token throughput",
        y_desc: "output tokens/s",
        metric: "output_token_throughput_tok_per_s",
    },
];

/// The panels of `group`: the ITL panel shows the gap between chunks, or, when no result of the
/// group has it, LMBench's own `itl_ms` under its own label.
fn panels_for(group: &WorkloadGroup) -> [&'static Panel; 4] {
    let per_chunk = group
        .runs
        .iter()
        .any(|r| r.stat("inter_token_latency_ms", "mean").is_some());
    let itl = if per_chunk {
        &PANELS[1]
    } else {
        &LMBENCH_ITL_PANEL
    };
    [&PANELS[0], itl, &PANELS[2], &PANELS[3]]
}

/// A series' points for one panel: connected (x, y) with a QPS, and unconnected ones at 0;
/// the error bars `(x, low, high)` of points with repeats.
struct Points {
    line: Vec<(f64, f64)>,
    untimed: Vec<(f64, f64)>,
    bars: Vec<(f64, f64, f64)>,
    /// Points whose measurement is invalid.
    invalid: Vec<(f64, f64)>,
}

fn points(group: &WorkloadGroup, series: usize, panel: &Panel) -> Points {
    let mut p = Points {
        line: Vec::new(),
        untimed: Vec::new(),
        bars: Vec::new(),
        invalid: Vec::new(),
    };
    for &i in &group.series[series].points {
        let r = &group.runs[i];
        let Some(y) = panel.value(r).filter(|y| y.is_finite()) else {
            continue;
        };
        let x = r.qps();
        match x {
            Some(x) => p.line.push((x, y)),
            None => p.untimed.push((0.0, y)),
        }
        if r.results["measurement"]["valid"] == false {
            p.invalid.push((x.unwrap_or(0.0), y));
        }
        if let Some((lo, hi)) = r
            .ci95(panel.metric)
            .filter(|(l, h)| l.is_finite() && h.is_finite())
        {
            p.bars.push((x.unwrap_or(0.0), lo.max(0.0), hi));
        }
    }
    p
}

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot failed: {e}")
}

/// Renders the comparison PNG of `group` to `path` (written atomically, so a reader never
/// sees half a file). `family` is the font family to draw with; [`FONT_FAMILY`] after
/// [`ensure_font`]. Fails (never panics) when the family is not registered.
pub fn write_png(
    path: &Path,
    group: &WorkloadGroup,
    title: &str,
    subtitle: &str,
    family: &str,
) -> anyhow::Result<()> {
    let bytes = render_png(group, title, subtitle, family)?;
    crate::files::write_atomic(path, &bytes, crate::files::Existing::Replace)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The comparison PNG of `group`, encoded.
pub fn render_png(
    group: &WorkloadGroup,
    title: &str,
    subtitle: &str,
    family: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, group, title, subtitle, family)?;
        root.present()
            .map_err(|e| anyhow!("drawing the plot failed: {e}"))?;
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().context("encoding the PNG")?;
    w.write_image_data(&rgb).context("encoding the PNG")?;
    w.finish().context("encoding the PNG")?;
    Ok(out)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    group: &WorkloadGroup,
    title: &str,
    subtitle: &str,
    family: &str,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    let centre = Pos::new(HPos::Center, VPos::Top);
    root.draw_text(
        title,
        &(family, 30).into_font().color(&BLACK).pos(centre),
        (WIDTH as i32 / 2, 14),
    )
    .map_err(plot_err)?;
    root.draw_text(
        subtitle,
        &(family, 17)
            .into_font()
            .color(&RGBColor(90, 90, 90))
            .pos(centre),
        (WIDTH as i32 / 2, 54),
    )
    .map_err(plot_err)?;
    let legend_bottom = draw_legend(root, group, family, 88)?;
    let (_, body) = root.split_vertically(legend_bottom + 6);
    let panels = body.split_evenly((2, 2));
    let x_desc = x_description(group);
    // One x range for all four panels, over every plotted run, so the panels line up even
    // where a metric is missing for some runs.
    let xs: Vec<f64> = group
        .series
        .iter()
        .flat_map(|s| &s.points)
        .map(|&i| group.runs[i].qps().unwrap_or(0.0))
        .collect();
    let x = x_range(&xs);
    for (area, panel) in panels.iter().zip(panels_for(group)) {
        draw_panel(area, group, panel, x, &x_desc, family)?;
    }
    Ok(())
}

fn x_description(group: &WorkloadGroup) -> String {
    let mut d = if group.measured_x() {
        "measured QPS (requests/s)".to_string()
    } else {
        "QPS (requests/s)".to_string()
    };
    if group.has_untimed() {
        d.push_str("   ·   unconnected markers at 0: timed replay (no QPS)");
    }
    d
}

/// Draws the legend in rows from `top`, centred; returns the y below it.
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    group: &WorkloadGroup,
    family: &str,
    top: i32,
) -> anyhow::Result<i32> {
    const ROW: i32 = 32;
    const SWATCH: i32 = 44;
    const GAP: i32 = 36;
    let style = (family, 20).into_font().color(&BLACK);
    let max_width = WIDTH as i32 - 80;
    let mut rows: Vec<Vec<(usize, i32)>> = vec![Vec::new()];
    let mut row_width = 0;
    for (i, s) in group.series.iter().enumerate() {
        let (w, _) = root
            .estimate_text_size(&s.label, &style)
            .map_err(plot_err)?;
        let item = SWATCH + 8 + w as i32;
        let needed = if row_width == 0 { item } else { GAP + item };
        if row_width > 0 && row_width + needed > max_width {
            rows.push(Vec::new());
            row_width = 0;
        }
        row_width += if row_width == 0 { item } else { GAP + item };
        if let Some(row) = rows.last_mut() {
            row.push((i, item));
        }
    }
    let left = Pos::new(HPos::Left, VPos::Center);
    for (r, row) in rows.iter().enumerate() {
        let width: i32 =
            row.iter().map(|(_, w)| *w).sum::<i32>() + GAP * (row.len().saturating_sub(1)) as i32;
        let mut x = (WIDTH as i32 - width) / 2;
        let y = top + r as i32 * ROW + ROW / 2;
        for &(i, w) in row {
            let color = series_color(i);
            root.draw(&PathElement::new(
                vec![(x, y), (x + SWATCH, y)],
                color.stroke_width(3),
            ))
            .map_err(plot_err)?;
            draw_marker(root, (x + SWATCH / 2, y), i, color)?;
            root.draw_text(
                &group.series[i].label,
                &style.pos(left),
                (x + SWATCH + 8, y),
            )
            .map_err(plot_err)?;
            x += w + GAP;
        }
    }
    Ok(top + rows.len() as i32 * ROW)
}

fn draw_marker<DB, CT>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    series: usize,
    color: RGBColor,
) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    CT: plotters::coord::CoordTranslate,
    CT::From: Clone,
{
    // Slightly translucent, so a marker hidden under another series' shows through.
    let fill = color.mix(0.85).filled();
    match series % MARKERS {
        0 => area
            .draw(&(EmptyElement::at(at.clone()) + Circle::new((0, 0), 6, fill)))
            .and_then(|()| {
                area.draw(&(EmptyElement::at(at) + Circle::new((0, 0), 6, WHITE.stroke_width(1))))
            }),
        1 => area.draw(&(EmptyElement::at(at) + TriangleMarker::new((0, 0), 8, fill))),
        2 => area.draw(&(EmptyElement::at(at) + Rectangle::new([(-6, -6), (6, 6)], fill))),
        3 => area.draw(
            &(EmptyElement::at(at) + Polygon::new(vec![(0, -8), (8, 0), (0, 8), (-8, 0)], fill)),
        ),
        4 => area.draw(&(EmptyElement::at(at) + Cross::new((0, 0), 7, color.stroke_width(3)))),
        _ => {
            area.draw(&(EmptyElement::at(at) + Polygon::new(vec![(-8, -5), (8, -5), (0, 8)], fill)))
        }
    }
    .map_err(plot_err)?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    group: &WorkloadGroup,
    panel: &Panel,
    (x_min, x_max): (f64, f64),
    x_desc: &str,
    family: &str,
) -> anyhow::Result<()> {
    let all: Vec<Points> = (0..group.series.len())
        .map(|s| points(group, s, panel))
        .collect();
    let ys = all.iter().flat_map(|p| {
        p.line
            .iter()
            .chain(&p.untimed)
            .map(|(_, y)| *y)
            .chain(p.bars.iter().map(|b| b.2))
    });
    let y_max = upper(ys.fold(0.0, f64::max), 1.15);

    let mut chart = ChartBuilder::on(area)
        .margin_top(8)
        .margin_bottom(12)
        .margin_left(16)
        .margin_right(28)
        .caption(panel.title, (family, 22).into_font().color(&BLACK))
        .x_label_area_size(58)
        .y_label_area_size(84)
        .build_cartesian_2d(x_min..x_max, 0f64..y_max)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(panel.y_desc)
        .axis_desc_style((family, 17).into_font().color(&BLACK))
        .label_style((family, 15).into_font().color(&RGBColor(50, 50, 50)))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(TRANSPARENT)
        .x_labels(8)
        .y_labels(7)
        .x_label_formatter(&|v| if *v < 0.0 { String::new() } else { tick(*v) })
        .y_label_formatter(&|v| tick(*v))
        .draw()
        .map_err(plot_err)?;

    let plotting = chart.plotting_area();
    for (s, p) in all.iter().enumerate() {
        let color = series_color(s);
        if p.line.len() > 1 {
            plotting
                .draw(&PathElement::new(p.line.clone(), color.stroke_width(3)))
                .map_err(plot_err)?;
        }
        // Error bars: the 95 % confidence interval of the mean over the repeats, capped.
        let cap = (x_max - x_min) * 0.008;
        for &(x, lo, hi) in &p.bars {
            let style = color.stroke_width(2);
            for seg in [
                vec![(x, lo), (x, hi)],
                vec![(x - cap, lo), (x + cap, lo)],
                vec![(x - cap, hi), (x + cap, hi)],
            ] {
                plotting
                    .draw(&PathElement::new(seg, style))
                    .map_err(plot_err)?;
            }
        }
        for &pt in p.line.iter().chain(&p.untimed) {
            draw_marker(plotting, pt, s, color)?;
        }
        // An invalid measurement: a ring around its marker (report.html says why).
        for &pt in &p.invalid {
            plotting
                .draw(
                    &(EmptyElement::at(pt) + Circle::new((0, 0), 12, INVALID_RING.stroke_width(3))),
                )
                .map_err(plot_err)?;
        }
    }
    if all
        .iter()
        .all(|p| p.line.is_empty() && p.untimed.is_empty())
    {
        let (w, h) = plotting.dim_in_pixel();
        plotting
            .strip_coord_spec()
            .draw_text(
                "no data",
                &(family, 20)
                    .into_font()
                    .color(&RGBColor(120, 120, 120))
                    .pos(Pos::new(HPos::Center, VPos::Center)),
                (w as i32 / 2, h as i32 / 2),
            )
            .map_err(plot_err)?;
    }
    Ok(())
}

/// The x axis: the points' range with 8 % padding each side (not below 0 unless a point sits
/// at 0); a single QPS sits in the middle; 0..1 without data.
fn x_range(xs: &[f64]) -> (f64, f64) {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let half = (hi.abs() * 0.5).max(0.5);
        return (
            (lo - half).max(if lo > 0.0 { 0.0 } else { -half }),
            hi + half,
        );
    }
    let pad = (hi - lo) * 0.08;
    let floor = if lo > 0.0 { 0.0 } else { lo - pad };
    ((lo - pad).max(floor), hi + pad)
}

/// The top of an axis from 0: the largest value times `headroom`, 1 when there is no data.
fn upper(max: f64, headroom: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * headroom
    } else {
        1.0
    }
}

/// A tick label: at most three decimals, trailing zeros dropped.
fn tick(v: f64) -> String {
    let s = if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::{panels_for, points, tick, x_range};
    use crate::report::load::{from_value, group};

    /// A result with `itl_ms` (LMBench's, always present) and, when `per_chunk`, lmbench's
    /// gap between chunks.
    fn result(key: &str, qps: f64, per_chunk: bool) -> crate::report::load::RunResult {
        let lat = |m: f64| serde_json::json!({"mean": m, "median": m, "p99": m});
        let mut results = serde_json::json!({
            "successful_requests": 4, "ttft_ms": lat(50.0), "tpot_ms": lat(8.0),
            "itl_ms": lat(40.0), "output_token_throughput_tok_per_s": 10.0,
        });
        if per_chunk {
            results["inter_token_latency_ms"] = lat(8.5);
        }
        let v = serde_json::json!({
            "name": "s", "timestamp": "20261207-1200", "results": results,
            "infra": {}, "serving": {}, "workload": {"WORKLOAD": "synthetic", "QPS": qps},
        });
        let name = format!("{key}_synthetic_{qps}_20261207-1200.json");
        from_value(
            std::path::Path::new(&name),
            &v,
            std::time::SystemTime::UNIX_EPOCH,
        )
        .unwrap()
    }

    /// The ITL panel never passes LMBench's `itl_ms` (TTFT included) off as the gap between
    /// chunks: results without the per-chunk figure get a panel labelled for `itl_ms`, and in
    /// a group that has the per-chunk figure a result without it is left out of the panel.
    #[test]
    fn the_itl_panel_says_which_itl_it_draws() {
        let lmbench_only = group(&[result("a", 1.0, false), result("a", 2.0, false)], &[]);
        let p = panels_for(&lmbench_only[0])[1];
        assert!(
            p.title.contains("itl_ms") && p.title.contains("TTFT included"),
            "{}",
            p.title
        );
        assert_eq!(points(&lmbench_only[0], 0, p).line.len(), 2);

        let mixed = group(&[result("a", 1.0, true), result("a", 2.0, false)], &[]);
        let p = panels_for(&mixed[0])[1];
        assert!(p.title.contains("gap between chunks"), "{}", p.title);
        let drawn = points(&mixed[0], 0, p).line;
        assert_eq!(
            drawn,
            vec![(1.0, 8.5)],
            "the itl_ms-only result is not drawn as a gap"
        );
    }

    /// A point whose measurement is invalid gets a ring of its own colour; a valid one none.
    #[test]
    fn invalid_points_are_ringed() {
        crate::report::plot::ensure_font().unwrap();
        let ring_pixels = |invalid: bool| {
            let mut r = result("a", 2.0, true);
            r.results["measurement"] = serde_json::json!({"valid": !invalid});
            let g = group(&[r, result("a", 4.0, true)], &[]);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.png");
            super::write_png(&path, &g[0], "t", "s", super::FONT_FAMILY).unwrap();
            let decoder = png::Decoder::new(std::fs::File::open(&path).unwrap());
            let mut reader = decoder.read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size()];
            let info = reader.next_frame(&mut buf).unwrap();
            buf.truncate(info.buffer_size());
            let c = super::INVALID_RING;
            buf.chunks(3).filter(|p| *p == [c.0, c.1, c.2]).count()
        };
        let (valid, invalid) = (ring_pixels(false), ring_pixels(true));
        // Four panels, a ring of radius 12 and width 3 in each.
        assert!(invalid >= valid + 4 * 100, "{valid} vs {invalid}");
    }

    #[test]
    fn x_ranges() {
        assert_eq!(x_range(&[]), (0.0, 1.0));
        assert_eq!(x_range(&[4.0, 4.0]), (2.0, 6.0));
        assert_eq!(x_range(&[0.2]), (0.0, 0.7));
        assert_eq!(x_range(&[0.0]), (-0.5, 0.5));
        let (lo, hi) = x_range(&[2.0, 4.0]);
        assert!((lo - 1.84).abs() < 1e-9 && (hi - 4.16).abs() < 1e-9);
        let (lo, hi) = x_range(&[0.0, 1.0]);
        assert!((lo + 0.08).abs() < 1e-9 && (hi - 1.08).abs() < 1e-9);
    }

    #[test]
    fn tick_labels() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(20.0), "20");
        assert_eq!(tick(0.125), "0.125");
        assert_eq!(tick(12345.6), "12346");
        assert_eq!(tick(-0.0001), "0");
    }
}
