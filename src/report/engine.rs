//! The engine's own metrics in `report.html`: per point the summary of `results.engine_metrics`
//! (requests running and waiting, KV-cache usage, the server's prefix-cache hit rate, the
//! server's token totals against the client's, preemptions), then each point's series over
//! time (`<result>.metrics.jsonl`) drawn as an inline SVG with plotters: requests running and
//! waiting, and KV-cache usage where the engine reports it.

use std::fmt::Write as _;

use plotters::prelude::*;
use serde_json::Value;

use super::load::{RunResult, WorkloadGroup};
use super::text::{escape, num};
use crate::engine_metrics::{Scrape, COMMON};

fn metrics(r: &RunResult) -> Option<&Value> {
    r.results
        .get("engine_metrics")
        .filter(|m| m["scrapes"].as_u64().unwrap_or(0) > 0)
}

/// The summary table and the charts of a workload's points, if any point has engine metrics.
pub fn section(h: &mut String, g: &WorkloadGroup, row_start: impl Fn(&mut String, usize)) {
    if !g.runs.iter().any(|r| metrics(r).is_some()) {
        return;
    }
    h.push_str(
        "<h3>Engine metrics</h3>\n<p class=\"muted\">Scraped from the engine's Prometheus \
         endpoint once a second during each point (names mapped to common ones; \
         <code>results.engine_metrics.raw_names</code> says which). Levels are peak / mean over \
         the scrapes; token counts are the server's increases over the point against what the \
         responses reported (warmup included).</p>\n<div class=\"scroll\"><table>\n<thead><tr>\
         <th>Baseline</th><th>QPS</th><th>engine</th><th>running</th><th>waiting</th>\
         <th>KV-cache usage</th><th>prefix-cache hit rate</th><th>prompt tokens server − \
         client</th><th>generated tokens server − client</th><th>preemptions</th></tr></thead>\n\
         <tbody>\n",
    );
    for (i, r) in g.runs.iter().enumerate() {
        let Some(m) = metrics(r) else { continue };
        row_start(h, i);
        let level = |k: &str| {
            let v = &m["metrics"][k];
            match (v["peak"].as_f64(), v["mean"].as_f64()) {
                (Some(p), Some(a)) => format!("{} / {}", num(Some(p)), num(Some(a))),
                _ => "—".into(),
            }
        };
        let diff = |k: &str| {
            let c = &m["server_vs_client"][k];
            match (c["server"].as_f64(), c["client"].as_f64()) {
                (Some(s), Some(cl)) => format!("{} ({})", num(Some(s - cl)), num(Some(cl))),
                _ => "—".into(),
            }
        };
        let hit = m["metrics"]["prefix_cache_hit_rate_over_point"]
            .as_f64()
            .or_else(|| m["metrics"]["prefix_cache_hit_rate"]["mean"].as_f64());
        let _ = writeln!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            escape(m["engine"].as_str().unwrap_or("?")),
            level("requests_running"),
            level("requests_waiting"),
            level("kv_cache_usage"),
            num(hit),
            diff("prompt_tokens"),
            diff("generation_tokens"),
            num(m["metrics"]["preemptions_total"].as_f64()),
        );
    }
    h.push_str("</tbody></table></div>\n");
    for r in &g.runs {
        let Some(series) = series(r) else { continue };
        let _ = writeln!(
            h,
            "<details class=\"engine\"><summary>{} · {}: engine over time</summary>{}</details>",
            escape(&r.baseline_key),
            escape(&r.point_label()),
            chart(&series)
        );
    }
}

/// A point's scrapes, from the file beside its result.
fn series(r: &RunResult) -> Option<Vec<Scrape>> {
    let file = metrics(r)?["file"].as_str()?;
    let text = std::fs::read_to_string(r.path.with_file_name(file)).ok()?;
    let scrapes: Vec<Scrape> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (!scrapes.is_empty()).then_some(scrapes)
}

/// `(t, value)` of a common metric over the scrapes.
fn line(scrapes: &[Scrape], name: &str) -> Vec<(f64, f64)> {
    let Some(c) = COMMON.iter().find(|c| c.name == name) else {
        return Vec::new();
    };
    scrapes
        .iter()
        .filter_map(|s| s.common(c).map(|(v, _)| (s.t, v)))
        .collect()
}

/// The inline SVG of a point's series: requests running and waiting; KV-cache usage (0–1) in
/// a second panel where reported.
pub fn chart(scrapes: &[Scrape]) -> String {
    let mut svg = String::new();
    let running = line(scrapes, "requests_running");
    let waiting = line(scrapes, "requests_waiting");
    let kv = line(scrapes, "kv_cache_usage");
    let height = if kv.is_empty() { 240 } else { 420 };
    {
        let root = SVGBackend::with_string(&mut svg, (760, height)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let panels = if kv.is_empty() {
            vec![root.clone()]
        } else {
            root.split_evenly((2, 1))
        };
        let t_max = scrapes.last().map_or(1.0, |s| s.t).max(1.0);
        let counts = [
            ("requests running", &running),
            ("requests waiting", &waiting),
        ];
        let y_max = counts
            .iter()
            .flat_map(|(_, l)| l.iter().map(|p| p.1))
            .fold(1.0, f64::max)
            * 1.15;
        let _ = draw(&panels[0], "requests", t_max, y_max, &counts);
        if let Some(area) = panels.get(1) {
            let _ = draw(
                area,
                "KV-cache usage",
                t_max,
                1.0,
                &[("KV-cache usage", &kv)],
            );
        }
        let _ = root.present();
    }
    svg
}

fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    y_desc: &str,
    t_max: f64,
    y_max: f64,
    lines: &[(&str, &Vec<(f64, f64)>)],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds into the point")
        .y_desc(y_desc)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(err)?;
    for (i, (label, pts)) in lines.iter().enumerate() {
        let c = super::plot::series_color(i);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err)?;
    Ok(())
}
